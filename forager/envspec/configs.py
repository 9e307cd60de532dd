"""Parses the repository's root configuration files once.

Broken files do not stop detection: each problem becomes a note and the file
is treated as absent, so an override can still rescue the repository.
"""

from __future__ import annotations

import configparser
import tomllib
from dataclasses import dataclass, field
from typing import Any

from forager.models import RepoTree
from forager.text import first_line

from .setup_py import SetupPy, read_setup_py

INI_FILES = ("setup.cfg", "tox.ini", "pytest.ini", ".pytest.ini")


@dataclass
class Configs:
    present: frozenset[str] = frozenset()  # root config files that exist, parsable or not
    pyproject: dict[str, Any] = field(default_factory=dict)
    pipfile: dict[str, Any] = field(default_factory=dict)
    ini: dict[str, configparser.ConfigParser] = field(default_factory=dict)
    tox: configparser.ConfigParser | None = None  # tox.ini, else pyproject's legacy_tox_ini
    setup_py: SetupPy | None = None
    notes: list[str] = field(default_factory=list)

    def setup_cfg(self, section: str, key: str) -> str | None:
        return ini_value(self.ini.get("setup.cfg"), section, key)


def table(data: Any, *keys: str) -> dict[str, Any]:
    """The nested TOML table at keys, or {} when any level is missing or not a table."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def as_list(value: Any) -> list[Any]:
    """value when it is a list, else []: hand-written TOML holds every kind of mistake."""
    return value if isinstance(value, list) else []


def ini_value(parser: configparser.ConfigParser | None, section: str, key: str) -> str | None:
    if parser is None or not parser.has_section(section):
        return None
    return parser.get(section, key, fallback=None)


def ini_lines(value: str | None) -> list[str]:
    """Non-empty, comment-free lines of a multi-line ini value."""
    lines = (line.split(" #", 1)[0].strip() for line in (value or "").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def parse_ini(text: str) -> configparser.ConfigParser:
    # No interpolation: values such as "%(here)s" or "--cov-report=html:%d" must stay literal.
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return parser


def _parse_toml(configs: Configs, path: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        configs.notes.append(f"{path} is not valid TOML ({exc}); ignored")
        return {}


def _parse_ini(configs: Configs, path: str, text: str) -> configparser.ConfigParser | None:
    try:
        return parse_ini(text)
    except configparser.Error as exc:
        configs.notes.append(f"{path} is not valid ini ({first_line(str(exc))}); ignored")
        return None


def load_configs(tree: RepoTree, paths: set[str]) -> Configs:
    names = {"pyproject.toml", "Pipfile", "setup.py", *INI_FILES}
    configs = Configs(present=frozenset(names & paths))
    if (text := tree.read("pyproject.toml")) is not None:
        configs.pyproject = _parse_toml(configs, "pyproject.toml", text)
    if (text := tree.read("Pipfile")) is not None:
        configs.pipfile = _parse_toml(configs, "Pipfile", text)
    for path in INI_FILES:
        if (text := tree.read(path)) is not None and (parser := _parse_ini(configs, path, text)):
            configs.ini[path] = parser
    configs.tox = configs.ini.get("tox.ini")
    legacy = table(configs.pyproject, "tool", "tox").get("legacy_tox_ini")
    if configs.tox is None and isinstance(legacy, str):
        configs.tox = _parse_ini(configs, "pyproject.toml legacy_tox_ini", legacy)
    if (text := tree.read("setup.py")) is not None:
        configs.setup_py = read_setup_py(text)
        if configs.setup_py is None:
            configs.notes.append("setup.py does not parse as Python 3; its metadata is ignored")
    return configs
