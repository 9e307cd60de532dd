"""Third-party distributions the tests import, as best-effort installs."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable

from packaging.utils import canonicalize_name

from .import_map import distribution_for


def imported_modules(modules: Iterable[ast.Module]) -> set[str]:
    """Dotted names of absolute imports; `from a import b` yields a and a.b (b may be a sub-module)."""
    found: set[str] = set()
    for module in modules:
        for node in ast.walk(module):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def third_party_distributions(modules: set[str], own_names: set[str], covered: set[str]) -> list[str]:
    """Distributions for imports that are not stdlib, not the repository's own code and not installed anyway.

    own_names are top-level import names; covered holds canonical distribution names.
    """
    distributions: dict[str, str] = {}
    for module in sorted(modules):
        top = module.split(".", 1)[0]
        if top in sys.stdlib_module_names or top in own_names or top.startswith("_"):
            continue
        name = distribution_for(module)
        if name is None:
            continue
        canonical = canonicalize_name(name)
        if canonical not in covered:
            distributions.setdefault(canonical, name)
    return sorted(distributions.values(), key=str.lower)
