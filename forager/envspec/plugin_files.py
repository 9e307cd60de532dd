"""The repository's own files that pytest loads as plugins: grading restores them like conftest.py.

A module named with `-p` in the pytest configuration's addopts or in a conftest's `pytest_plugins`
runs inside pytest with every hook a conftest has, so a patch that edits it could grade itself.
"""

from __future__ import annotations

from forager.models import RepoTree

from .configs import load_configs
from .layout import all_paths
from .plugins import pytest_plugins_named
from .pytest_config import find_pytest_config
from .suite_sources import parse_test_sources

# where a module name may resolve: the root, a src layout, or the folder of the conftest naming it
_LAYOUT_ROOTS = ("", "src/")


def _addopts_modules(tokens: list[str]) -> list[str]:
    modules = []
    for i, token in enumerate(tokens):
        if token == "-p" and i + 1 < len(tokens):
            modules.append(tokens[i + 1])
        elif token.startswith("-p") and not token.startswith("--") and len(token) > 2:
            modules.append(token[2:])
    return [m for m in modules if not m.startswith("no:")]


def _module_paths(module: str, roots: tuple[str, ...], paths: set[str]) -> list[str]:
    stem = module.replace(".", "/")
    return [found for root in roots for found in (f"{root}{stem}.py", f"{root}{stem}/__init__.py") if found in paths]


def plugin_files(tree: RepoTree) -> list[str]:
    """Tracked files of modules that pytest loads as plugins, sorted (pure)."""
    paths = all_paths(tree)
    named: list[tuple[str, tuple[str, ...]]] = [
        (module, _LAYOUT_ROOTS) for module in _addopts_modules(find_pytest_config(load_configs(tree, paths)).addopts())
    ]
    for path, module in parse_test_sources(tree).items():
        if path.rsplit("/", 1)[-1] == "conftest.py":
            folder = path.rpartition("/")[0]
            roots = (*_LAYOUT_ROOTS, f"{folder}/") if folder else _LAYOUT_ROOTS
            named += [(name, roots) for name in pytest_plugins_named(module)]
    return sorted({found for module, roots in named for found in _module_paths(module, roots, paths)})
