"""Checks on what the tracer recorded, and the reading of its raw records that the cutter shares (pure).

- `observed_returns`: where a test binds a repository call's result to a name (`x = f(...)`), the value the
  test's frame then holds must have the repr the trace gives for the call's return; a mismatch means the
  trace misreports values.
- `executed_lines` / `bug_line_seen`: whether the buggy code the gold patch fixes ran at all in the traces
  (a trace of a bug that never runs the bug teaches nothing about it).

`read_events` and `activations` turn a raw record's compact event lists (see forager/traces/models.py) into
typed events and one `Activation` per traced frame.
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from forager.tasks.patches import fix_lines
from forager.traces.models import UNCHANGED, CodeInfo, EventKind, RawTestTrace


class RawTraceError(ValueError):
    """A raw record that breaks the tracer's format (a tracer bug, not something to cut around)."""


@dataclass(frozen=True)
class RawEvent:
    kind: EventKind
    frame: int
    line: int
    locals: dict[str, str] = field(default_factory=dict)  # call and line events
    value: str | None = None  # return and exception events
    parent: int | None = None  # call events
    code: int | None = None  # call events


@dataclass
class Activation:
    """One traced frame: its code, its caller, and where its events are in the record."""

    frame: int
    code: CodeInfo
    parent: int | None
    call: int  # index of its call event
    events: list[int] = field(default_factory=list)  # indices of its own events, the call included
    returned: int | None = None  # index of its return event; None: unfinished
    left_by: int | None = None  # index of the exception that left it (the exception its return follows)


def read_events(raw: RawTestTrace) -> list[RawEvent]:
    """The record's events, typed; `RawTraceError` on one that does not have its kind's shape."""
    return [_read_event(item, index) for index, item in enumerate(raw.events)]


def _read_event(item: list, index: int) -> RawEvent:
    kind = item[0] if item else None
    shapes = {"call": 6, "line": 4, "return": 4, "exception": 4}
    if kind not in shapes or len(item) != shapes[kind]:
        raise RawTraceError(f"event {index}: not a call, line, return or exception event of the right length: "
                            f"{str(item)[:80]}")
    frame, line = item[1], item[4] if kind == "call" else item[2]
    if not _is_int(frame) or not _is_int(line):
        raise RawTraceError(f"event {index}: frame and line must be integers")
    if kind == "call":
        parent, code, local = item[2], item[3], item[5]
        if (parent is not None and not _is_int(parent)) or not _is_int(code) or not _is_locals(local):
            raise RawTraceError(f"event {index}: a call needs an integer parent (or null), code and locals")
        return RawEvent("call", frame, line, local, parent=parent, code=code)
    if kind == "line":
        if not _is_locals(item[3]):
            raise RawTraceError(f"event {index}: a line event's locals must map names to strings")
        return RawEvent("line", frame, line, item[3])
    if item[3] is not None and not isinstance(item[3], str):
        raise RawTraceError(f"event {index}: a {kind} value must be a string")
    return RawEvent(kind, frame, line, value=item[3])


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_locals(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(name, str) and isinstance(text, str)
                                           for name, text in value.items())


def activations(raw: RawTestTrace, events: list[RawEvent]) -> dict[int, Activation]:
    """frame -> its activation, in the order they were called.

    Events of a frame whose call was not recorded are left out. A `return` whose frame's previous event
    is an `exception` is that exception leaving the frame (`left_by`).
    """
    codes = {code.id: code for code in raw.codes}
    found: dict[int, Activation] = {}
    for index, event in enumerate(events):
        if event.kind == "call":
            if event.frame in found:
                raise RawTraceError(f"event {index}: frame {event.frame} is called a second time")
            if event.code not in codes:
                raise RawTraceError(f"event {index}: no code {event.code}")
            found[event.frame] = Activation(event.frame, codes[event.code], event.parent, index, [index])
            continue
        activation = found.get(event.frame)
        if activation is None or activation.returned is not None:
            continue
        if event.kind == "return":
            activation.returned = index
            last = events[activation.events[-1]]
            if last.kind == "exception":
                activation.left_by = activation.events[-1]
        activation.events.append(index)
    return found


def resolve_name(events: list[RawEvent], own: list[int], position: int, name: str) -> str | None:
    """The value of `name` at own[position] of one frame, walking back over ".."; None when unbound."""
    for index in reversed(own[: position + 1]):
        event = events[index]
        if event.kind not in ("call", "line"):
            continue
        value = event.locals.get(name)
        if value != UNCHANGED:
            return value
    return None


def observed_returns(raw: RawTestTrace, files: dict[str, str]) -> dict[int, bool]:
    """Repository activation -> whether the test saw the value its return event shows.

    Checkable: a repository call made by a test frame, on a test line `NAME = CALL(...)` (or `assert CALL(...) ==
    LITERAL` that held: the value must then equal the literal, compared as values), that is the
    last of that line's calls to return (the outermost call returns last), whose code's name is the
    called name (`f(...)`, `obj.f(...)`; so that `x = sorted(f())` or `x = Cls()`, whose bound value no
    traced call returned, are not compared), and that returned rather than raised; the test frame's next
    event must be a line event listing NAME. Anything else is absent from the result.
    """
    events = read_events(raw)
    return observed_returns_of(events, activations(raw, events), {**raw.files, **files})


def observed_returns_of(events: list[RawEvent], found: dict[int, Activation], files: dict[str, str]) -> dict[int, bool]:
    """`observed_returns` over a record already read (the cutter reads it once for both)."""
    children: dict[int, list[Activation]] = {}  # in call order, as `found` is
    for activation in found.values():
        if activation.parent is not None:
            children.setdefault(activation.parent, []).append(activation)
    bound: dict[tuple[str, int], tuple[str, str] | None] = {}  # (path, line) -> what the line binds
    checked: dict[int, bool] = {}
    for test in found.values():
        if test.code.kind != "test" or test.frame not in children:
            continue
        lines = source_lines(files.get(test.code.path, ""))
        calls = [child.call for child in children[test.frame]]
        for position, index in enumerate(test.events[:-1]):
            event = events[index]
            if event.kind != "line" or not 0 < event.line <= len(lines):
                continue
            key = (test.code.path, event.line)
            if key not in bound:
                bound[key] = _bound_call(lines[event.line - 1].strip())
            if bound[key] is None:
                continue
            form, name, called = bound[key]
            following = test.events[position + 1]
            during = [child for child in children[test.frame][bisect.bisect_right(calls, index):
                                                              bisect.bisect_left(calls, following)]
                      if child.returned is not None and child.returned < following]
            if not during:
                continue
            last = max(during, key=lambda child: child.returned or 0)
            if last.code.kind != "repo" or last.left_by is not None or last.code.name != called:
                continue
            returned = events[last.returned or 0].value
            if form == _EQUALS:  # `assert f(...) == LITERAL` held (no exception came next): the value equals it
                if events[following].kind == "exception":
                    continue
                try:
                    checked[last.frame] = ast.literal_eval(returned) == name
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    continue  # not a literal's repr (an object, a cut value): not checkable this way
                continue
            if events[following].kind != "line" or name not in events[following].locals:
                continue
            seen = resolve_name(events, test.events, position + 1, name)
            checked[last.frame] = seen == returned
    return checked


_BINDS, _EQUALS = "binds", "equals"


def _bound_call(text: str) -> tuple[str, object, str] | None:
    """What a test line says of a call's value: (_BINDS, NAME, called name) for `NAME = f(...)` or
    `NAME = obj.f(...)`; (_EQUALS, value, called name) for `assert f(...) == LITERAL` (either side)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    if len(tree.body) != 1:
        return None
    statement = tree.body[0]
    if isinstance(statement, ast.Assign):
        if len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
            return None
        called = _called_name(statement.value)
        return (_BINDS, statement.targets[0].id, called) if called else None
    if isinstance(statement, ast.Assert) and isinstance(statement.test, ast.Compare):
        compare = statement.test
        if len(compare.ops) != 1 or not isinstance(compare.ops[0], ast.Eq):
            return None
        for call, other in ((compare.left, compare.comparators[0]), (compare.comparators[0], compare.left)):
            called = _called_name(call)
            if called:
                try:
                    return _EQUALS, ast.literal_eval(other), called
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    return None
    return None


def _called_name(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


_NEWLINE = re.compile(r"\r\n|\r|\n")


def source_lines(text: str) -> list[str]:
    """A file's lines as Python numbers them (universal newlines; form feeds and the like do not end a line)."""
    return _NEWLINE.split(text)


def executed_lines(raw: RawTestTrace) -> set[tuple[str, int]]:
    """(path, line) of every line event of repository code in the record."""
    events = read_events(raw)
    found = activations(raw, events)
    return {(activation.code.path, events[index].line)
            for activation in found.values() if activation.code.kind == "repo"
            for index in activation.events if events[index].kind == "line"}


def bug_line_seen(raws: Iterable[RawTestTrace], gold_patch: str) -> bool:
    """Whether a line of the buggy code that the gold patch touches ran in any of these (buggy-state) records."""
    touched = fix_lines(gold_patch)
    if not touched:
        return False
    return any(line in touched.get(path, ()) for raw in raws for path, line in executed_lines(raw))
