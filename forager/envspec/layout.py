"""Facts about the repository that follow from its tracked paths alone."""

from __future__ import annotations

import re

from forager.models import RepoTree

_MODULE_SUFFIXES = (".py", ".pyi", ".pyx", ".pxd")
_DEPENDENCY_DIRS = ("", "requirements", "ci")
_TEST_TOKENS = {"test", "tests", "testing", "dev", "develop", "development", "ci"}
_DOC_TOKENS = {"doc", "docs", "documentation"}


def all_paths(tree: RepoTree) -> set[str]:
    """Tracked paths; files handed over without a matching path entry count too."""
    return {p.removeprefix("./") for p in [*tree.paths, *tree.files]}


def split(path: str) -> tuple[str, str]:
    """(directory, file name); the directory is "" at the root."""
    directory, _, name = path.rpartition("/")
    return directory, name


def has_python(paths: set[str]) -> bool:
    return any(p.endswith(".py") for p in paths)


def own_module_names(paths: set[str]) -> set[str]:
    """Every name the repository itself could be importing: module stems and directories holding Python.

    Deliberately broad (any depth, not only packages) so test helpers and
    namespace packages are never mistaken for PyPI distributions.
    """
    names: set[str] = set()
    for path in paths:
        if path.endswith(_MODULE_SUFFIXES):
            *dirs, name = path.split("/")
            names.add(name.rsplit(".", 1)[0])
            names.update(dirs)
    return names


def is_requirements_path(path: str) -> bool:
    """A requirements text file where projects keep them: root, requirements/ or ci/."""
    directory, name = split(path)
    if directory not in _DEPENDENCY_DIRS or not name.endswith(".txt"):
        return False
    return directory == "requirements" or "requirements" in name


def is_environment_path(path: str) -> bool:
    """A conda environment file (read only for its python= hint)."""
    directory, name = split(path)
    return directory in _DEPENDENCY_DIRS and name.startswith("environment") and name.endswith((".yml", ".yaml"))


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[-_.]", name.lower().removesuffix(".txt")))


def is_install_requirements_file(path: str) -> bool:
    """requirements.txt at the root, or a requirements file named for tests, development or CI (never docs)."""
    if not is_requirements_path(path):
        return False
    directory, name = split(path)
    tokens = _tokens(name)
    if tokens & _DOC_TOKENS:
        return False
    return (directory == "" and name == "requirements.txt") or bool(tokens & _TEST_TOKENS)
