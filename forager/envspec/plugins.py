"""The pytest plugins a suite needs, from its configuration and from what its test code uses."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator

from .import_map import distribution_for
from .pep508 import canonical_name, clean_requirement
from .plugin_signals import (
    ADDOPT_PLUGINS,
    ADDOPT_PREFIX_PLUGINS,
    BUILTIN_PLUGINS,
    FIXTURE_PLUGINS,
    FLAKY_PACKAGE_ARGUMENTS,
    INI_KEY_PLUGINS,
    MARKER_PLUGINS,
    PLUGIN_MODULES,
)
from .pytest_config import PytestConfig

_XDIST_N = re.compile(r"-n=?(\d+|auto|logical)?")
Need = tuple[str, str]  # (requirement, reason)


def plugin_module_distribution(module: str, own_names: set[str]) -> str | None:
    """The distribution providing a plugin module named in pytest_plugins or -p; None if builtin or local."""
    top = module.split(".", 1)[0]
    if module.startswith("no:") or top in own_names or top in BUILTIN_PLUGINS or top in ("pytest", "_pytest"):
        return None
    if top in PLUGIN_MODULES:
        return PLUGIN_MODULES[top]
    if top.startswith("pytest_"):
        return "pytest-" + top.removeprefix("pytest_").replace("_", "-")
    return distribution_for(module)


def _from_addopts(tokens: list[str], own_names: set[str]) -> Iterator[Need]:
    for i, token in enumerate(tokens):
        option = token.split("=", 1)[0]
        if _XDIST_N.fullmatch(token):
            yield "pytest-xdist", f"addopts {token}"
        elif token == "-p" or (token.startswith("-p") and not token.startswith("--")):
            module = token[2:] or (tokens[i + 1] if i + 1 < len(tokens) else "")
            if dist := plugin_module_distribution(module, own_names):
                yield dist, f"addopts -p {module}"
        elif option in ADDOPT_PLUGINS:
            yield ADDOPT_PLUGINS[option], f"addopts {option}"
        else:
            for prefix, dist in ADDOPT_PREFIX_PLUGINS.items():
                if option.startswith(prefix):
                    yield dist, f"addopts {option}"


def _from_config(config: PytestConfig) -> Iterator[Need]:
    for key in config.options:
        if key in INI_KEY_PLUGINS:
            yield INI_KEY_PLUGINS[key], f"{config.source} {key}"
    for requirement in config.words("required_plugins"):
        if cleaned := clean_requirement(requirement):
            yield cleaned, f"{config.source} required_plugins"


def _decorator_name(decorator: ast.expr) -> str | None:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else None


def _fixture_names(module: ast.Module) -> tuple[set[str], set[str]]:
    """(fixtures requested by tests and fixtures, fixtures the module defines itself)."""
    used: set[str] = set()
    defined: set[str] = set()
    for node in ast.walk(module):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        fixtures = [d for d in node.decorator_list if _decorator_name(d) in ("fixture", "yield_fixture")]
        if fixtures:
            defined.add(node.name)
            for decorator in fixtures:  # @pytest.fixture(name="x") registers "x"
                if isinstance(decorator, ast.Call):
                    defined.update(
                        kw.value.value
                        for kw in decorator.keywords
                        if kw.arg == "name" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)
                    )
        if fixtures or node.name.startswith("test"):
            args = node.args
            used.update(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs])
    return used, defined


def _is_mark(node: ast.expr) -> bool:
    """pytest.mark, or mark imported from pytest."""
    if isinstance(node, ast.Attribute):
        return node.attr == "mark" and isinstance(node.value, ast.Name) and node.value.id == "pytest"
    return isinstance(node, ast.Name) and node.id == "mark"


def _markers(module: ast.Module) -> Iterator[tuple[str, set[str], list[ast.expr]]]:
    """(marker name, keyword argument names, positional arguments) for every pytest.mark.X use."""
    called: set[int] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_mark(node.func.value):
            called.add(id(node.func))
            yield node.func.attr, {kw.arg for kw in node.keywords if kw.arg}, node.args
        elif isinstance(node, ast.Attribute) and _is_mark(node.value) and id(node) not in called:
            yield node.attr, set(), []


def pytest_plugins_named(module: ast.Module) -> list[str]:
    for stmt in module.body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in stmt.targets
        ):
            try:
                value = ast.literal_eval(stmt.value)
            except (ValueError, TypeError, SyntaxError):
                return []
            values = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
            return [v for v in values if isinstance(v, str)]
    return []


def _from_code(modules: Iterable[ast.Module], own_names: set[str]) -> Iterator[Need]:
    used: set[str] = set()
    defined: set[str] = set()
    for module in modules:
        module_used, module_defined = _fixture_names(module)
        used |= module_used
        defined |= module_defined
        for marker, keywords, args in _markers(module):
            if marker == "usefixtures":
                used.update(a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str))
            elif marker == "flaky" and keywords & FLAKY_PACKAGE_ARGUMENTS:
                yield "flaky", "marker flaky(max_runs=...)"
            elif marker in MARKER_PLUGINS:
                yield MARKER_PLUGINS[marker], f"marker {marker}"
        for plugin in pytest_plugins_named(module):
            if dist := plugin_module_distribution(plugin, own_names):
                yield dist, f"pytest_plugins {plugin}"
    for fixture in sorted(used - defined):
        if fixture in FIXTURE_PLUGINS:
            yield FIXTURE_PLUGINS[fixture], f"fixture {fixture}"


def needed_plugins(config: PytestConfig, modules: Iterable[ast.Module], own_names: set[str]) -> list[Need]:
    """Plugin requirements with the first reason found for each, sorted by name."""
    needs: dict[str, Need] = {}
    found = [*_from_addopts(config.addopts(), own_names), *_from_config(config), *_from_code(modules, own_names)]
    for requirement, reason in found:
        needs.setdefault(canonical_name(requirement), (requirement, reason))
    return [needs[name] for name in sorted(needs)]
