"""Parsing Python source safely from worker threads."""

from __future__ import annotations

import ast
import threading

# why: CPython 3.11's AST constructor keeps its recursion depth in shared state, so ast.parse in
# parallel builds can raise "SystemError: AST constructor recursion depth mismatch" (gh-106905).
_PARSE_LOCK = threading.Lock()


def parse_python(source: str) -> ast.Module | None:
    """The module, or None when the file does not parse (Python 2, truncated at the size cap, too deep)."""
    try:
        with _PARSE_LOCK:
            return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError, SystemError):
        return None
