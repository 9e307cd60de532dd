"""Cut a test's raw trace into function-level traces, CWM's "episodes" (pure).

Every activation of a repository function in the test (and of a test function, when asked) becomes one
trace: its own events, and those of the calls it makes down to `depth` levels; deeper calls are stepped
over (the caller's next line shows their effect), and calls into outside code show as a call and a return.
The context is the entry function's source, `def` line marked, followed by the source of each repository
function the trace enters. A trace that did not finish, is too long, or does not survive its text form is
dropped and counted under a short reason.
"""

from __future__ import annotations

import ast
import textwrap
import warnings
from collections import Counter
from dataclasses import dataclass

from pydantic import BaseModel, Field

from forager.tasks.callmap import LINE_NAMED, resolve_line_names
from forager.tasks.mutations import functions_in
from forager.traces.checks import Activation, RawEvent, activations, observed_returns_of, read_events, source_lines
from forager.traces.cwm import serialise, text_round_trips
from forager.traces.models import CodeInfo, FunctionTrace, RawTestTrace, TraceEvent

START_MARK = "  # << START_OF_TRACE"

UNFINISHED = "unfinished"
UNNAMED = "unnamed"
NO_SOURCE = "no source"
CALLS_PER_FUNCTION = "calls per function"
FORMAT = "format"


def over_line_events(limit: int) -> str:
    return f"over {limit} line events"


def over_bytes(limit: int) -> str:
    return f"over {limit} bytes"


class CutResult(BaseModel):
    traces: list[FunctionTrace] = Field(default_factory=list)
    dropped: dict[str, int] = Field(default_factory=dict, description="reason -> how many roots were dropped for it")


@dataclass(frozen=True)
class _Def:
    """A function in a source file: its qualified name and lines (first: its first decorator's, else its def's)."""

    qualname: str
    first: int
    line: int
    end: int


class _Dropped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Sources:
    """Source lines and function definitions, read once per file."""

    def __init__(self, files: dict[str, str], outside: dict[str, dict[str, str]]) -> None:
        self._files = files
        self._outside = outside
        self._lines: dict[str, list[str]] = {}
        self._defs: dict[str, list[_Def]] = {}
        self._names: dict[tuple[str, str], str | None] = {}

    def lines(self, path: str) -> list[str] | None:
        if path not in self._files:
            return None
        if path not in self._lines:
            self._lines[path] = source_lines(self._files[path])
        return self._lines[path]

    def line(self, code: CodeInfo, number: int) -> str:
        """The stripped source line `number` of the code's file; `_Dropped` when it is not known."""
        if code.kind == "external":
            text = self._outside.get(code.path, {}).get(str(number))
        else:
            lines = self.lines(code.path)
            text = lines[number - 1] if lines is not None and 0 < number <= len(lines) else None
        if text is None:
            raise _Dropped(NO_SOURCE)
        return text.strip()

    def qualname(self, code: CodeInfo) -> str | None:
        """The code's qualified name; an "@LINE:NAME" (Python < 3.11) is resolved the call map's way, or None."""
        if not code.qualname.startswith(LINE_NAMED):
            return code.qualname
        key = (code.path, code.qualname)
        if key not in self._names:
            source = self._files.get(code.path)
            pairs = resolve_line_names({"": [key]}, {code.path: source} if source is not None else {})[""]
            self._names[key] = pairs[0][1] if pairs else None
        return self._names[key]

    def definition(self, code: CodeInfo) -> _Def | None:
        """The `def` of a repository or test code; None for lambdas, comprehensions, module bodies, or unknown."""
        if code.kind == "external" or code.name.startswith("<"):
            return None
        qualname = self.qualname(code)
        candidates = [found for found in self._definitions(code.path) if found.qualname == qualname]
        # why: two functions may share a qualified name (defined in both branches of an `if`); the code's
        # first line (its first decorator's) tells them apart: its def is the first at or below that line
        return next((found for found in candidates if found.line >= code.first), None)

    def _definitions(self, path: str) -> list[_Def]:
        if path not in self._defs:
            source = self._files.get(path)
            self._defs[path] = _definitions(source) if source is not None else []
        return self._defs[path]


def _definitions(source: str) -> list[_Def]:
    firsts: dict[int, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # why: invalid escapes in the project's code are not our concern
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            firsts[node.lineno] = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
    return [_Def(qualname, firsts.get(line, line), line, end) for qualname, line, end in functions_in(source)]


def cut_functions(
    raw: RawTestTrace,
    files: dict[str, str],
    *,
    depth: int = 1,
    include_tests: bool = False,
    calls_per_function: int = 5,
    max_line_events: int = 10_000,
    max_bytes: int = 1_000_000,
) -> CutResult:
    """One function-level trace per activation of a repository (and, with include_tests, test) function.

    `files`: repository-relative path -> text, for every file the run's records name (the record's own
    `files` are used too). Activations are roots in the order they were called; each gets its ordinal among
    the activations of the same function in the test before anything is dropped, so a function's n-th call
    keeps its identity whatever happens to the others.
    """
    texts = {**raw.files, **files}
    sources = _Sources(texts, raw.lines)
    events = read_events(raw)
    found = activations(raw, events)
    checked = observed_returns_of(events, found, texts)
    seen: Counter[tuple[str, str]] = Counter()
    dropped: Counter[str] = Counter()
    traces: list[FunctionTrace] = []
    cut = _Cut(events, found, sources, depth=depth, max_line_events=max_line_events)
    for root in found.values():
        if not _is_root(root.code, include_tests):
            continue
        qualname = sources.qualname(root.code)
        if qualname is None:
            dropped[UNNAMED] += 1
            continue
        ordinal = seen[(root.code.path, qualname)]
        seen[(root.code.path, qualname)] += 1
        try:
            if ordinal >= calls_per_function:
                raise _Dropped(CALLS_PER_FUNCTION)
            trace = cut.trace(root, raw.test, qualname, ordinal)
            trace.return_checked = checked.get(root.frame)
            text = serialise(trace)
            if len(text.encode("utf-8")) > max_bytes:
                raise _Dropped(over_bytes(max_bytes))
            if not text_round_trips(trace, text):
                raise _Dropped(FORMAT)
        except _Dropped as drop:
            dropped[drop.reason] += 1
            continue
        traces.append(trace)
    return CutResult(traces=traces, dropped=dict(dropped))


def _is_root(code: CodeInfo, include_tests: bool) -> bool:
    # why: lambdas, comprehensions and module bodies ("<lambda>", "<listcomp>", "<module>") have no def to
    # mark as an entry point
    return (code.kind == "repo" or (include_tests and code.kind == "test")) and not code.name.startswith("<")


class _Cut:
    """The cutting of one root: which events it takes, and how they read as trace events."""

    def __init__(self, events: list[RawEvent], found: dict[int, Activation], sources: _Sources, *, depth: int,
                 max_line_events: int) -> None:
        self.events = events
        self.found = found
        self.sources = sources
        self.depth = depth
        self.max_line_events = max_line_events

    def trace(self, root: Activation, test: str, qualname: str, ordinal: int) -> FunctionTrace:
        if root.returned is None:
            raise _Dropped(UNFINISHED)
        entry = self.sources.definition(root.code)
        if entry is None:
            raise _Dropped(NO_SOURCE)
        depths: dict[int, int | None] = {}
        taken: list[TraceEvent] = []
        entered: list[tuple[str, _Def]] = [(root.code.path, entry)]
        line_events = 0
        for index in range(root.call, root.returned + 1):
            event = self.events[index]
            activation = self.found.get(event.frame)
            if activation is None:
                continue
            if event.frame not in depths:
                depths[event.frame] = self._depth(activation, root)
            level = depths[event.frame]
            if level is None or not self._shows(activation, event, index):
                continue
            if event.kind == "line":
                line_events += 1
                if line_events > self.max_line_events:
                    raise _Dropped(over_line_events(self.max_line_events))
            if event.kind == "call" and level > 0:
                self._enter(activation.code, entered)
            taken.append(self._event(activation, event, level))
        left = root.left_by
        return FunctionTrace(
            test_id=test, path=root.code.path, qualname=qualname, ordinal=ordinal, depth=self.depth,
            context=self._context(entered), events=taken,
            return_value=None if left is not None else self.events[root.returned].value,
            raised=self.events[left].value if left is not None else None,
        )

    def _depth(self, activation: Activation, root: Activation) -> int | None:
        """How many calls below the root an activation runs; None: not under it within the depth."""
        level = 0
        current: Activation | None = activation
        while current is not None and current.frame != root.frame:
            level += 1
            if level > self.depth:
                return None
            current = self.found.get(current.parent) if current.parent is not None else None
        return level if current is not None else None

    @staticmethod
    def _shows(activation: Activation, event: RawEvent, index: int) -> bool:
        if activation.code.kind == "external":
            return event.kind in ("call", "return")
        # why: the exception frame already says the activation ended; CWM shows no return after it
        return not (index == activation.returned and activation.left_by is not None)

    def _event(self, activation: Activation, event: RawEvent, level: int) -> TraceEvent:
        code = activation.code
        line = event.line
        if event.kind == "call":
            # why: a call shows the callee's def line: not the decorator the code's first line is, nor the
            # `yield` a resumed generator carries on from
            definition = self.sources.definition(code)
            line = definition.line if definition is not None else line
        return TraceEvent(kind=event.kind, source=self.sources.line(code, line), locals=event.locals,
                          value=event.value, path=code.path, line=line, depth=level)

    def _enter(self, code: CodeInfo, entered: list[tuple[str, _Def]]) -> None:
        definition = self.sources.definition(code)
        if definition is None:
            return
        # why: a function defined inside one already shown (a closure, the entry itself recursing) is
        # already in the context
        for path, shown in entered:
            if path == code.path and shown.first <= definition.first and definition.end <= shown.end:
                return
        entered.append((code.path, definition))

    def _context(self, entered: list[tuple[str, _Def]]) -> str:
        blocks = []
        for number, (path, definition) in enumerate(entered):
            lines = list((self.sources.lines(path) or [])[definition.first - 1: definition.end])
            if number == 0:
                mark = definition.line - definition.first
                lines[mark] = lines[mark].rstrip() + START_MARK
            blocks.append(textwrap.dedent("\n".join(lines)))
        return "\n\n".join(blocks)
