"""Static facts from setup.py, read with ast: the file is never executed.

Keyword arguments are looked for in every call (setup(...), dict(...)) and
every dict literal, so `setup(**kwargs)` patterns are found too; a value that
is a module-level name is followed to its literal.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from .parse import parse_python

_KEYS = {"name", "python_requires", "extras_require", "install_requires", "tests_require", "classifiers"}


class _Unresolvable(Exception):
    pass


@dataclass(frozen=True)
class SetupPy:
    name: str | None = None
    python_requires: str | None = None
    extras_require: dict[str, list[str]] = field(default_factory=dict)
    install_requires: list[str] = field(default_factory=list)
    tests_require: list[str] = field(default_factory=list)
    classifiers: list[str] = field(default_factory=list)


def _assignments(module: ast.Module) -> dict[str, ast.expr]:
    names: dict[str, ast.expr] = {}
    for stmt in module.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            names[stmt.targets[0].id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            names[stmt.target.id] = stmt.value
    return names


def _follow(node: ast.expr, names: dict[str, ast.expr]) -> ast.expr:
    for _ in range(10):  # bounded: `a = b; b = a` must not loop forever
        if not (isinstance(node, ast.Name) and node.id in names):
            return node
        node = names[node.id]
    raise _Unresolvable


def _resolve(node: ast.expr, names: dict[str, ast.expr]) -> Any:
    node = _follow(node, names)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _resolve(node.left, names) + _resolve(node.right, names)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_resolve(elt, names) for elt in node.elts]
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise _Unresolvable
        return {_resolve(k, names): _resolve(v, names) for k, v in zip(node.keys, node.values, strict=True) if k}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _resolve(kw.value, names) for kw in node.keywords if kw.arg}
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise _Unresolvable from exc


def _extras(node: ast.expr, names: dict[str, ast.expr]) -> dict[str, list[str]]:
    """Extra names even when some of their requirement lists are computed."""
    node = _follow(node, names)
    if isinstance(node, ast.Dict):
        pairs = [(k, v) for k, v in zip(node.keys, node.values, strict=True) if k is not None]
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        pairs = [(ast.Constant(kw.arg), kw.value) for kw in node.keywords if kw.arg]
    else:
        pairs = []
    extras: dict[str, list[str]] = {}
    for key_node, value_node in pairs:
        try:
            key = _resolve(key_node, names)
        except _Unresolvable:
            continue
        try:
            value = _resolve(value_node, names)
        except _Unresolvable:
            value = []
        if isinstance(key, str):
            extras[key] = _string_list(value) or []
    return extras


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, str):  # setuptools accepts one newline-separated string
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _keyword_values(module: ast.Module):
    for node in ast.walk(module):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in _KEYS:
                    yield kw.arg, kw.value
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in _KEYS:
                    yield key.value, value


def read_setup_py(source: str) -> SetupPy | None:
    """Facts from setup.py source; None when it does not parse (e.g. Python 2 syntax)."""
    module = parse_python(source)
    if module is None:
        return None
    names = _assignments(module)
    found: dict[str, Any] = {}
    for key, node in _keyword_values(module):
        if key in found:
            continue
        if key == "extras_require":
            value: Any = _extras(node, names) or None
        else:
            try:
                value = _resolve(node, names)
            except _Unresolvable:
                continue
            if key in ("name", "python_requires"):
                value = value if isinstance(value, str) else None
            else:
                value = _string_list(value)
        if value is not None:
            found[key] = value
    return SetupPy(**found)
