"""The pytest configuration pytest itself would use, found in the same order pytest searches."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from .configs import Configs, table


@dataclass(frozen=True)
class PytestConfig:
    source: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # keys lower-cased: ini parsers lower-case them too

    def words(self, key: str) -> list[str]:
        """A list option (testpaths, python_files...) whether written as a TOML list or an ini string."""
        value = self.options.get(key)
        if isinstance(value, list):
            return [str(v) for v in value]
        return str(value).split() if value is not None else []

    def addopts(self) -> list[str]:
        value = self.options.get("addopts")
        parts = value if isinstance(value, list) else [value] if value is not None else []
        tokens: list[str] = []
        for part in parts:
            try:
                tokens += shlex.split(str(part), comments=True)
            except ValueError:  # unbalanced quotes: fall back to plain splitting
                tokens += str(part).split()
        return tokens


def _from_ini(configs: Configs, path: str, section: str) -> PytestConfig | None:
    parser = configs.ini.get(path)
    if parser is None or not parser.has_section(section):
        return None
    return PytestConfig(path, {k.lower(): v for k, v in parser.items(section)})


def find_pytest_config(configs: Configs) -> PytestConfig:
    for path in ("pytest.ini", ".pytest.ini"):
        if path in configs.present:  # pytest uses pytest.ini even when it has no [pytest] section
            return _from_ini(configs, path, "pytest") or PytestConfig(path)
    pytest_table = table(configs.pyproject, "tool", "pytest")
    if "ini_options" in pytest_table:
        options = table(pytest_table, "ini_options")
        return PytestConfig("pyproject.toml", {k.lower(): v for k, v in options.items()})
    if pytest_table:  # pytest 9's native [tool.pytest] table
        return PytestConfig("pyproject.toml", {k.lower(): v for k, v in pytest_table.items()})
    return _from_ini(configs, "tox.ini", "pytest") or _from_ini(configs, "setup.cfg", "tool:pytest") or PytestConfig()


def test_file_patterns(config: PytestConfig) -> tuple[str, ...] | None:
    """python_files from the config, or None for pytest's defaults."""
    return tuple(config.words("python_files")) or None
