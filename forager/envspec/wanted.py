"""Which files the loader must read for detection; everything else is seen as a path only."""

from __future__ import annotations

from .layout import is_environment_path, is_requirements_path, split
from .suite_layout import is_test_source

_ROOT_FILES = {
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "tox.ini",
    "noxfile.py",
    "pytest.ini",
    ".pytest.ini",
    ".python-version",
    "Pipfile",
}


def wanted(path: str) -> bool:
    path = path.removeprefix("./")
    directory, name = split(path)
    if directory == "" and name in _ROOT_FILES:
        return True
    if directory == ".github/workflows":
        return name.endswith((".yml", ".yaml"))
    return is_requirements_path(path) or is_environment_path(path) or is_test_source(path)
