"""The repository's test modules and conftest files, parsed once for every scan that needs them."""

from __future__ import annotations

import ast

from forager.models import RepoTree

from .parse import parse_python
from .suite_layout import is_test_source


def parse_test_sources(tree: RepoTree) -> dict[str, ast.Module]:
    """Path -> module; files that do not parse (Python 2, truncated at the size cap) are skipped."""
    modules: dict[str, ast.Module] = {}
    for path in sorted(tree.files):
        if not is_test_source(path):
            continue
        module = parse_python(tree.files[path])
        if module is not None:
            modules[path] = module
    return modules
