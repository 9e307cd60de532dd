"""Which repository functions each test calls: the map that aims mutations at code the tests exercise.

A tiny pytest plugin traces function entries (sys.settrace, call events only, no line tracing)
while each test runs and writes test id -> [(repo-relative file, qualified name)]. It needs
nothing installed in the image: validation containers have no network, and coverage.py is not
part of a project's dependencies. Names are `co_qualname`, the same names `functions_in` gives.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from forager.tasks.mutations import functions_in
from forager.tasks.patches import is_test_path

PLUGIN_NAME = "forager_callmap"
OUTPUT = "callmap.json"

PLUGIN_SOURCE = '''
"""forager call map: the repository functions each test enters (setup, call and teardown)."""
import json
import os
import sys
import threading

import pytest

_ROOT = os.path.realpath(os.getcwd()) + os.sep
_OUT = os.path.join(os.environ["FORAGER_OUT_DIR"], "callmap.json")
# id(code) -> (code, (relative path, qualname) or None outside the repository). Keyed by id with the code kept
# alive: code objects compare by content, not by file, so two identical functions at the same line of two
# files would share one entry
_names = {}
_calls = {}
_current = None


def _qualname(code):
    # before Python 3.11 a code object has no qualified name: "@LINE:NAME" (its first line, decorators
    # included) is resolved against the source afterwards (forager.tasks.callmap.resolve_line_names)
    qualname = getattr(code, "co_qualname", None)
    return qualname if qualname is not None else "@%d:%s" % (code.co_firstlineno, code.co_name)


def _trace(frame, event, arg):
    code = frame.f_code
    entry = _names.get(id(code))
    if entry is not None:
        name = entry[1]
    else:
        raw = code.co_filename
        # "<frozen os>", "<string>": generated code has a pseudo name, which realpath would place in the repo
        filename = "" if raw.startswith("<") or not raw.endswith(".py") else os.path.realpath(raw)
        name = (filename[len(_ROOT):], _qualname(code)) if filename.startswith(_ROOT) else None
        _names[id(code)] = (code, name)
    if name is not None and _current is not None:
        _current.add(name)
    return None  # why: no line events; only function entries are needed, and they are cheap


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _current
    _current = set()
    sys.settrace(_trace)
    threading.settrace(_trace)
    try:
        yield
    finally:
        sys.settrace(None)
        threading.settrace(None)
        _calls[item.nodeid] = sorted(_current)
        _current = None


def pytest_sessionfinish(session):
    os.makedirs(os.path.dirname(_OUT), exist_ok=True)
    with open(_OUT, "w") as handle:
        json.dump(_calls, handle)
'''


def parse_call_map(raw: bytes | str) -> dict[str, list[tuple[str, str]]]:
    """The plugin's JSON as test id -> [(path, qualname)]; unreadable output is an empty map."""
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(test): [(str(pair[0]), str(pair[1])) for pair in pairs if isinstance(pair, list) and len(pair) == 2]
        for test, pairs in data.items()
        if isinstance(pairs, list)
    }


LINE_NAMED = "@"


def resolve_line_names(
    calls: dict[str, list[tuple[str, str]]], sources: dict[str, str]
) -> dict[str, list[tuple[str, str]]]:
    """Call maps traced on Python < 3.11 name functions "@LINE:NAME"; give them their qualified names (pure).

    LINE is the code object's first line, a decorator's when there is one, so the function is the first one
    of that name whose `def` is at LINE or below; one that cannot be found is dropped (comprehensions,
    lambdas and module bodies are no mutation targets anyway).
    """
    defs: dict[str, list[tuple[int, str]]] = {}
    for path, source in sources.items():
        defs[path] = sorted((line, qualname) for qualname, line, _end in functions_in(source))
    resolved = {}
    for test, pairs in calls.items():
        named = []
        for path, name in pairs:
            if name.startswith(LINE_NAMED):
                line_text, _, short = name[1:].partition(":")
                line = int(line_text) if line_text.isdigit() else -1
                name = next((q for start, q in defs.get(path, []) if start >= line and q.rsplit(".", 1)[-1] == short),
                            None)
            if name is not None:
                named.append((path, name))
        resolved[test] = named
    return resolved


def tests_by_function(
    calls: dict[str, list[tuple[str, str]]] | dict[str, list[list[str]]], eligible: Iterable[str]
) -> dict[tuple[str, str], list[str]]:
    """(path, qualname) of source functions -> the eligible tests that call them, in test order.

    Functions defined in test files are left out: a bug there would be a broken test, not a bug.
    """
    wanted = set(eligible)
    result: dict[tuple[str, str], list[str]] = defaultdict(list)
    for test_id, pairs in calls.items():
        if test_id not in wanted:
            continue
        for path, qualname in pairs:
            # comprehensions, lambdas and module bodies ("<genexpr>") are not functions a mutation can name
            if path.endswith(".py") and not is_test_path(path) and not qualname.rsplit(".", 1)[-1].startswith("<"):
                result[(path, qualname)].append(test_id)
    return dict(result)
