"""Trace stage, pure parts: the CWM text form, cutting raw test records into function traces, data checks.

The raw records are written by hand (no tracer, no Docker) in the tracer's compact format
(forager/traces/models.py), against two tiny files: `lib.py` and `tests/test_lib.py`.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from forager.tasks.patches import fix_lines
from forager.traces.checks import bug_line_seen, executed_lines, observed_returns
from forager.traces.cut import START_MARK, cut_functions
from forager.traces.cwm import (
    ACTION_SEP,
    ARG_SEP,
    CALL_SEP,
    FRAME_SEP,
    LINE_SEP,
    RETURN_SEP,
    TRACE_CONTEXT_START,
    TraceFormatError,
    parse,
    resolve_locals,
    round_trips,
    serialise,
    trace_sha256,
)
from forager.traces.models import CodeInfo, FunctionTrace, RawTestTrace, TraceEvent

LIB = "lib.py"
TESTS = "tests/test_lib.py"
TEST_ID = "tests/test_lib.py::test_top"
EXT = "/usr/lib/python3.11/posixpath.py"
EXT_LINES = {EXT: {"71": "def join(a, *p):", "80": "    a = os.fspath(a)", "92": "    return path"}}

LIB_TEXT = '''\
import os


def leaf(x):
    y = x + 1
    return y


def mid(x):
    z = leaf(x)
    return z * 2


def top(x):
    w = mid(x)
    v = os.path.join("a", "b")
    return w


@decorate
@other
def decorated(n):
    return n


def gen(n):
    for i in range(n):
        yield i


def fails(x):
    raise ValueError(x)


def catches(x):
    try:
        fails(x)
    except ValueError:
        return -1


def tokens():
    s = "<|frame_sep|>"
    return s


class Box:
    @staticmethod
    def make(v):
        return [v]


def outer():
    def inner():
        return 1
    return inner()


if os.name == "nt":
    def pick():
        return "nt"
else:
    def pick():
        return "posix"
'''

TEST_TEXT = '''\
from lib import top


def test_top():
    result = top(1)
    assert result == 4
'''


def ln(text: str, source: str = LIB_TEXT) -> int:
    """The number of the first line of `source` that reads `text` (stripped): no hand-counted line numbers."""
    return next(number for number, line in enumerate(source.split("\n"), 1) if line.strip() == text)


def files(test_text: str = TEST_TEXT) -> dict[str, str]:
    return {LIB: LIB_TEXT, TESTS: test_text}


class Rec:
    """Builds a raw record event by event, numbering frames."""

    def __init__(self) -> None:
        self.codes: list[CodeInfo] = []
        self.events: list[list] = []
        self.frames = 0

    def code(self, qualname: str, first: int, *, path: str = LIB, kind: str = "repo") -> int:
        name = qualname.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
        self.codes.append(CodeInfo(id=len(self.codes), path=path, name=name, qualname=qualname, first=first,
                                   kind=kind))
        return len(self.codes) - 1

    def call(self, code: int, parent: int | None, line: int, **local: str) -> int:
        self.frames += 1
        self.events.append(["call", self.frames, parent, code, line, local])
        return self.frames

    def line(self, frame: int, line: int, **local: str) -> None:
        self.events.append(["line", frame, line, local])

    def ret(self, frame: int, line: int, value: str) -> None:
        self.events.append(["return", frame, line, value])

    def exc(self, frame: int, line: int, value: str) -> None:
        self.events.append(["exception", frame, line, value])

    def raw(self, outcome: str = "complete", **fields) -> RawTestTrace:
        return RawTestTrace(test=TEST_ID, outcome=outcome, codes=self.codes, events=self.events, lines=EXT_LINES,
                            **fields)


def leaf_call(rec: Rec, parent: int, x: int = 1, *, extra_lines: int = 0) -> int:
    leaf = rec.call(rec.code("leaf", ln("def leaf(x):")), parent, ln("def leaf(x):"), x=str(x))
    rec.line(leaf, ln("y = x + 1"), x="..")
    for _ in range(extra_lines):
        rec.line(leaf, ln("y = x + 1"), x="..")
    rec.line(leaf, ln("return y"), x="..", y=str(x + 1))
    rec.ret(leaf, ln("return y"), str(x + 1))
    return leaf


def top_call(rec: Rec, parent: int | None, *, finish: bool = True) -> int:
    """top(1) -> mid(1) -> leaf(1), and os.path.join from top; returns "4"."""
    codes = {qualname: rec.code(qualname, ln(f"def {qualname}(x):")) for qualname in ("top", "mid")}
    join = rec.code("join", 71, path=EXT, kind="external")
    top = rec.call(codes["top"], parent, ln("def top(x):"), x="1")
    rec.line(top, ln("w = mid(x)"), x="..")
    mid = rec.call(codes["mid"], top, ln("def mid(x):"), x="1")
    rec.line(mid, ln("z = leaf(x)"), x="..")
    leaf_call(rec, mid)
    rec.line(mid, ln("return z * 2"), x="..", z="2")
    rec.ret(mid, ln("return z * 2"), "4")
    if not finish:
        return top
    rec.line(top, ln('v = os.path.join("a", "b")'), x="..", w="4")
    ext = rec.call(join, top, 71, a="'a'", p="('b',)")
    rec.ret(ext, 92, "'a/b'")
    rec.line(top, ln("return w"), x="..", w="..", v="'a/b'")
    rec.ret(top, ln("return w"), "4")
    return top


def record_top(*, seen: str = "4") -> tuple[RawTestTrace, int]:
    """test_top: `result = top(1)`, then the test's next line sees `seen` bound to result."""
    rec = Rec()
    test = rec.call(rec.code("test_top", 4, path=TESTS, kind="test"), None, 4)
    rec.line(test, ln("result = top(1)", TEST_TEXT))
    top = top_call(rec, test)
    rec.line(test, ln("assert result == 4", TEST_TEXT), result=seen)
    rec.ret(test, ln("assert result == 4", TEST_TEXT), "None")
    return rec.raw(), top


def by_name(traces: list[FunctionTrace]) -> dict[str, FunctionTrace]:
    return {trace.qualname: trace for trace in traces}


def shape(trace: FunctionTrace) -> list[tuple[str, int, str]]:
    return [(event.kind, event.depth, event.source) for event in trace.events]


def simple_trace(**changes) -> FunctionTrace:
    events = [
        TraceEvent(kind="call", locals={"d": "{1: 2, 2: 4, 3: 3}", "k": "3"}, source="def f(d, k):"),
        TraceEvent(kind="line", locals={"d": "..", "k": ".."}, source="return d[k]"),
        TraceEvent(kind="return", source="return d[k]", value="3"),
    ]
    fields = dict(test_id="t", path="f.py", qualname="f", ordinal=0, depth=1,
                  context="def f(d, k):  # << START_OF_TRACE\n    return d[k]", events=events)
    fields.update(changes)
    return FunctionTrace(**fields)


# -- the CWM text --------------------------------------------------------------------------------


def test_serialise_writes_cwm_frames():
    text = serialise(simple_trace())
    assert text == (
        '<|trace_context_start|>def f(d, k):  # << START_OF_TRACE\n    return d[k]<|frame_sep|>'
        '<|call_sep|>{"d": "{1: 2, 2: 4, 3: 3}", "k": "3"}<|action_sep|>def f(d, k):<|frame_sep|>'
        '<|line_sep|>{"d": "..", "k": ".."}<|action_sep|>return d[k]<|frame_sep|>'
        '<|return_sep|><|action_sep|>return d[k]<|arg_sep|>"3"<|frame_sep|>'
    )


def test_round_trip_keeps_unicode_quotes_and_escaped_newlines():
    awkward = repr('héllo "q"\n\t✓ \\ end')
    events = [
        TraceEvent(kind="call", locals={"s": awkward, "b": repr(b"\x00'")}, source="def f(s, b):"),
        TraceEvent(kind="line", locals={"s": "..", "b": ".."}, source='t = s + "ü"'),
        TraceEvent(kind="exception", source='t = s + "ü"', value="TypeError('can\\'t \"x\"')"),
    ]
    trace = simple_trace(events=events, context="def f(s, b):\n    t = s + \"ü\"")
    text = serialise(trace)
    assert round_trips(trace)
    parsed = parse(text)
    assert parsed.context == trace.context
    assert [(f.kind, f.locals, f.source, f.value) for f in parsed.frames] == [
        (e.kind, e.locals, e.source, e.value) for e in events]
    frames = text.split(FRAME_SEP, 1)[1]
    assert "\n" not in frames  # the repr's newline is escaped inside the JSON string
    assert "héllo" in frames and "ü" in frames  # not \\u-escaped
    assert trace_sha256(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("text", [
    "no start<|frame_sep|>",
    TRACE_CONTEXT_START + "context only",
    TRACE_CONTEXT_START + "c" + FRAME_SEP + LINE_SEP + "{}" + ACTION_SEP + "x = 1" + FRAME_SEP + "tail",
    TRACE_CONTEXT_START + "c" + FRAME_SEP + "<|bogus|>{}" + ACTION_SEP + "x" + FRAME_SEP,
    TRACE_CONTEXT_START + "c" + FRAME_SEP + LINE_SEP + "{not json" + ACTION_SEP + "x" + FRAME_SEP,
    TRACE_CONTEXT_START + "c" + FRAME_SEP + LINE_SEP + '{"a": 1}' + ACTION_SEP + "x" + FRAME_SEP,
    TRACE_CONTEXT_START + "c" + FRAME_SEP + LINE_SEP + '["a"]' + ACTION_SEP + "x" + FRAME_SEP,
    TRACE_CONTEXT_START + "c" + FRAME_SEP + LINE_SEP + "{}" + FRAME_SEP,
    TRACE_CONTEXT_START + "c" + FRAME_SEP + RETURN_SEP + "x" + ARG_SEP + '"1"' + FRAME_SEP,
    TRACE_CONTEXT_START + "c" + FRAME_SEP + RETURN_SEP + ACTION_SEP + "x" + FRAME_SEP,
    TRACE_CONTEXT_START + "c" + FRAME_SEP + RETURN_SEP + ACTION_SEP + "x" + ARG_SEP + "null" + FRAME_SEP,
    TRACE_CONTEXT_START + "c" + FRAME_SEP + CALL_SEP + "{}" + ACTION_SEP + "a" + ACTION_SEP + "b" + FRAME_SEP,
    TRACE_CONTEXT_START + "c" + CALL_SEP + FRAME_SEP,
])
def test_parse_rejects_malformed_text(text):
    with pytest.raises(TraceFormatError):
        parse(text)


def test_parse_reads_an_empty_trace_and_well_formed_frames():
    assert parse(TRACE_CONTEXT_START + "c" + FRAME_SEP).frames == []
    parsed = parse(serialise(simple_trace()))
    assert [frame.kind for frame in parsed.frames] == ["call", "line", "return"]
    assert parsed.frames[2].value == "3" and parsed.frames[0].locals["k"] == "3"


@pytest.mark.parametrize("changes", [
    {"context": "x = '<|frame_sep|>'"},
    {"events": [TraceEvent(kind="call", source='s = "<|frame_sep|>"')]},
    {"events": [TraceEvent(kind="call", locals={"s": "'<|arg_sep|>'"}, source="def f(s):")]},
    {"events": [TraceEvent(kind="return", source="return s", value="'<|call_sep|>'")]},
    {"events": [TraceEvent(kind="return", source="return s", value="1", locals={"s": "1"})]},  # not carried
    {"events": [TraceEvent(kind="return", source="return s", value=None)]},
])
def test_what_the_text_cannot_carry_fails_round_trips(changes):
    assert round_trips(simple_trace())
    assert not round_trips(simple_trace(**changes))


def test_resolve_locals_walks_back_within_nested_scopes():
    events = [
        TraceEvent(source="", kind="call", locals={"a": "1"}, depth=0),
        TraceEvent(source="", kind="line", locals={"a": ".."}, depth=0),
        TraceEvent(source="", kind="call", locals={"a": "5"}, depth=1),
        TraceEvent(source="", kind="line", locals={"a": "..", "b": "6"}, depth=1),
        TraceEvent(source="", kind="line", locals={"a": "..", "b": ".."}, depth=1),
        TraceEvent(source="", kind="return", value="6", depth=1),
        TraceEvent(source="", kind="line", locals={"a": "..", "b": "6"}, depth=0),
        TraceEvent(source="", kind="call", locals={"q": "0"}, depth=1),
        TraceEvent(source="", kind="line", locals={"q": ".."}, depth=1),
        TraceEvent(source="", kind="exception", value="E()", depth=1),  # leaves: no return follows
        TraceEvent(source="", kind="exception", value="E()", depth=0),
        TraceEvent(source="", kind="line", locals={"a": "..", "b": ".."}, depth=0),
        TraceEvent(source="", kind="call", locals={"a": "9"}, depth=1),
        TraceEvent(source="", kind="line", locals={"a": ".."}, depth=1),
        TraceEvent(source="", kind="return", value="9", depth=1),
        TraceEvent(source="", kind="call", locals={"a": ".."}, depth=1),  # malformed: a call has nothing before it
    ]
    assert resolve_locals(events) == [
        {"a": "1"}, {"a": "1"},
        {"a": "5"}, {"a": "5", "b": "6"}, {"a": "5", "b": "6"}, {},
        {"a": "1", "b": "6"},
        {"q": "0"}, {"q": "0"}, {}, {},
        {"a": "1", "b": "6"},
        {"a": "9"}, {"a": "9"}, {},
        {"a": ".."},
    ]


# -- cutting -------------------------------------------------------------------------------------


def test_depth_zero_steps_over_every_call():
    raw, _top = record_top()
    result = cut_functions(raw, files(), depth=0)
    assert result.dropped == {}
    assert [trace.qualname for trace in result.traces] == ["top", "mid", "leaf"]
    top = by_name(result.traces)["top"]
    assert shape(top) == [
        ("call", 0, "def top(x):"),
        ("line", 0, "w = mid(x)"),
        ("line", 0, 'v = os.path.join("a", "b")'),
        ("line", 0, "return w"),
        ("return", 0, "return w"),
    ]
    assert top.events[2].locals == {"x": "..", "w": "4"}  # the stepped-over call's effect
    assert top.return_value == "4" and top.raised is None
    assert top.context == 'def top(x):' + START_MARK + '\n    w = mid(x)\n    v = os.path.join("a", "b")\n    return w'
    assert (top.test_id, top.path, top.ordinal, top.depth) == (TEST_ID, LIB, 0, 0)


def test_depth_one_shows_callees_and_outside_calls_as_call_and_return():
    raw, _top = record_top()
    top = by_name(cut_functions(raw, files(), depth=1).traces)["top"]
    assert shape(top) == [
        ("call", 0, "def top(x):"),
        ("line", 0, "w = mid(x)"),
        ("call", 1, "def mid(x):"),
        ("line", 1, "z = leaf(x)"),
        ("line", 1, "return z * 2"),
        ("return", 1, "return z * 2"),
        ("line", 0, 'v = os.path.join("a", "b")'),
        ("call", 1, "def join(a, *p):"),
        ("return", 1, "return path"),
        ("line", 0, "return w"),
        ("return", 0, "return w"),
    ]
    external = top.events[7]
    assert (external.path, external.line, external.locals) == (EXT, 71, {"a": "'a'", "p": "('b',)"})
    assert top.events[8].value == "'a/b'"
    assert top.context == (
        'def top(x):' + START_MARK + '\n    w = mid(x)\n    v = os.path.join("a", "b")\n    return w\n\n'
        'def mid(x):\n    z = leaf(x)\n    return z * 2'
    )


def test_depth_two_reaches_the_leaf():
    raw, _top = record_top()
    top = by_name(cut_functions(raw, files(), depth=2).traces)["top"]
    assert ("call", 2, "def leaf(x):") in shape(top)
    assert ("return", 2, "return y") in shape(top)
    assert top.context.endswith("def mid(x):\n    z = leaf(x)\n    return z * 2\n\ndef leaf(x):\n    y = x + 1\n"
                                "    return y")
    assert resolve_locals(top.events)[shape(top).index(("line", 1, "return z * 2"))] == {"x": "1", "z": "2"}


def test_include_tests_adds_the_test_function_as_a_root():
    raw, _top = record_top()
    assert "test_top" not in by_name(cut_functions(raw, files()).traces)
    test = by_name(cut_functions(raw, files(), include_tests=True).traces)["test_top"]
    assert test.path == TESTS and test.context.startswith("def test_top():" + START_MARK)
    assert test.context.endswith("\n\ndef top(x):\n    w = mid(x)\n    v = os.path.join(\"a\", \"b\")\n    return w")
    assert test.return_value == "None"


def test_decorated_function_named_by_first_line_is_resolved_and_marked_on_its_def():
    rec = Rec()
    decorator_line = ln("@decorate")
    frame = rec.call(rec.code(f"@{decorator_line}:decorated", decorator_line), None, decorator_line, n="3")
    rec.line(frame, ln("return n"), n="..")
    rec.ret(frame, ln("return n"), "3")
    result = cut_functions(rec.raw(), files())
    [trace] = result.traces
    assert trace.qualname == "decorated"
    assert (trace.events[0].line, trace.events[0].source) == (ln("def decorated(n):"), "def decorated(n):")
    assert trace.context == "@decorate\n@other\ndef decorated(n):" + START_MARK + "\n    return n"


def test_functions_sharing_a_name_are_told_apart_by_their_first_line():
    second = LIB_TEXT.split("\n").index("else:") + 2
    rec = Rec()
    frame = rec.call(rec.code("pick", second), None, second)
    rec.line(frame, ln('return "posix"'))
    rec.ret(frame, ln('return "posix"'), "'posix'")
    [trace] = cut_functions(rec.raw(), files()).traces
    assert trace.events[0].line == second
    assert trace.context == "def pick():" + START_MARK + '\n    return "posix"'


def test_unresolvable_line_name_is_dropped_as_unnamed():
    rec = Rec()
    frame = rec.call(rec.code("@3:nowhere", 3), None, 3)
    rec.ret(frame, 3, "None")
    result = cut_functions(rec.raw(), files())
    assert result.traces == [] and result.dropped == {"unnamed": 1}


def test_method_context_is_dedented_with_its_decorator():
    rec = Rec()
    first = ln("@staticmethod")
    frame = rec.call(rec.code("Box.make", first), None, first, v="2")
    rec.line(frame, ln("return [v]"), v="..")
    rec.ret(frame, ln("return [v]"), "[2]")
    [trace] = cut_functions(rec.raw(), files()).traces
    assert trace.context == "@staticmethod\ndef make(v):" + START_MARK + "\n    return [v]"
    assert trace.events[0].source == "def make(v):"


def test_generator_resumptions_are_activations_entered_at_their_def():
    rec = Rec()
    code = rec.code("gen", ln("def gen(n):"))
    first = rec.call(code, None, ln("def gen(n):"), n="2")
    rec.line(first, ln("for i in range(n):"), n="..")
    rec.line(first, ln("yield i"), n="..", i="0")
    rec.ret(first, ln("yield i"), "0")
    second = rec.call(code, None, ln("yield i"), n="2", i="0")  # a resumption starts at its yield
    rec.line(second, ln("for i in range(n):"), n="..", i="..")
    rec.line(second, ln("yield i"), n="..", i="1")
    rec.ret(second, ln("yield i"), "1")
    traces = cut_functions(rec.raw(), files()).traces
    assert [(t.ordinal, t.return_value) for t in traces] == [(0, "0"), (1, "1")]
    for trace in traces:
        assert (trace.events[0].line, trace.events[0].source) == (ln("def gen(n):"), "def gen(n):")
    assert traces[1].events[0].locals == {"n": "2", "i": "0"}


def test_context_shows_each_function_once_and_not_what_it_already_holds():
    rec = Rec()
    outer = rec.call(rec.code("outer", ln("def outer():")), None, ln("def outer():"))
    rec.line(outer, ln("def inner():"))
    rec.line(outer, ln("return inner()"), inner="<function outer.<locals>.inner>")
    for _ in range(2):
        inner = rec.call(rec.code("outer.<locals>.inner", ln("def inner():")), outer, ln("def inner():"))
        rec.line(inner, ln("return 1"))
        rec.ret(inner, ln("return 1"), "1")
        again = rec.call(rec.code("outer", ln("def outer():")), outer, ln("def outer():"))  # recursion
        rec.ret(again, ln("def outer():"), "None")
    rec.ret(outer, ln("return inner()"), "1")
    traces = by_name(cut_functions(rec.raw(), files(), depth=1, calls_per_function=1).traces)
    assert traces["outer"].context == (
        "def outer():" + START_MARK + "\n    def inner():\n        return 1\n    return inner()")
    assert traces["outer.<locals>.inner"].context == "def inner():" + START_MARK + "\n    return 1"
    assert traces["outer.<locals>.inner"].events[0].source == "def inner():"


def test_outside_code_shows_only_its_call_and_return():
    rec = Rec()
    top = rec.call(rec.code("top", ln("def top(x):")), None, ln("def top(x):"), x="1")
    rec.line(top, ln('v = os.path.join("a", "b")'), x="..")
    ext = rec.call(rec.code("join", 71, path=EXT, kind="external"), top, 71, a="'a'", p="('b',)")
    rec.line(ext, 80, a="..", p="..")  # the tracer should not send these; if it does, they stay out
    rec.exc(ext, 80, "TypeError()")
    rec.ret(ext, 92, "'a/b'")
    rec.line(top, ln("return w"), x="..", v="'a/b'")
    rec.ret(top, ln("return w"), "4")
    [trace] = cut_functions(rec.raw(), files()).traces
    assert [(e.kind, e.depth, e.line) for e in trace.events if e.depth == 1] == [("call", 1, 71), ("return", 1, 92)]


def catch_record() -> RawTestTrace:
    rec = Rec()
    catches = rec.call(rec.code("catches", ln("def catches(x):")), None, ln("def catches(x):"), x="1")
    rec.line(catches, ln("try:"), x="..")
    rec.line(catches, ln("fails(x)"), x="..")
    fails = rec.call(rec.code("fails", ln("def fails(x):")), catches, ln("def fails(x):"), x="1")
    rec.line(fails, ln("raise ValueError(x)"), x="..")
    rec.exc(fails, ln("raise ValueError(x)"), "ValueError(1)")
    rec.ret(fails, ln("raise ValueError(x)"), "None")
    rec.exc(catches, ln("fails(x)"), "ValueError(1)")
    rec.line(catches, ln("except ValueError:"), x="..")
    rec.line(catches, ln("return -1"), x="..")
    rec.ret(catches, ln("return -1"), "-1")
    return rec.raw()


def test_exception_caught_keeps_the_frame_going_and_leaving_drops_the_return():
    traces = by_name(cut_functions(catch_record(), files(), depth=1).traces)
    catches, fails = traces["catches"], traces["fails"]
    assert [(e.kind, e.depth) for e in catches.events] == [
        ("call", 0), ("line", 0), ("line", 0),
        ("call", 1), ("line", 1), ("exception", 1),  # fails' return frame is gone: the exception left it
        ("exception", 0), ("line", 0), ("line", 0), ("return", 0),
    ]
    assert (catches.return_value, catches.raised) == ("-1", None)
    assert [e.kind for e in fails.events] == ["call", "line", "exception"]
    assert (fails.return_value, fails.raised) == (None, "ValueError(1)")
    assert fails.events[-1].source == "raise ValueError(x)"


def test_line_event_limit():
    raw, _top = record_top()
    result = cut_functions(raw, files(), depth=0, max_line_events=2)
    assert result.dropped == {"over 2 line events": 1}  # top has 3; mid and leaf have 2
    assert [trace.qualname for trace in result.traces] == ["mid", "leaf"]


def test_byte_limit():
    raw, _top = record_top()
    sizes = {t.qualname: len(serialise(t).encode()) for t in cut_functions(raw, files(), depth=0).traces}
    limit = sizes["top"] - 1
    assert sizes["mid"] <= limit and sizes["leaf"] <= limit
    result = cut_functions(raw, files(), depth=0, max_bytes=limit)
    assert result.dropped == {f"over {limit} bytes": 1}
    assert [trace.qualname for trace in result.traces] == ["mid", "leaf"]


def test_special_token_in_source_is_dropped_as_format():
    rec = Rec()
    frame = rec.call(rec.code("tokens", ln("def tokens():")), None, ln("def tokens():"))
    rec.line(frame, ln('s = "<|frame_sep|>"'))
    rec.line(frame, ln("return s"), s="'<|frame_sep|>'")
    rec.ret(frame, ln("return s"), "'<|frame_sep|>'")
    result = cut_functions(rec.raw(), files())
    assert result.traces == [] and result.dropped == {"format": 1}


def test_calls_per_function_and_ordinals_counted_before_dropping():
    rec = Rec()
    test = rec.call(rec.code("test_top", 4, path=TESTS, kind="test"), None, 4)
    for extra in (5, 0, 0, 0):  # the first call is too long for the line limit below
        leaf_call(rec, test, extra_lines=extra)
    rec.ret(test, 6, "None")
    result = cut_functions(rec.raw(), files(), calls_per_function=3, max_line_events=4)
    assert [trace.ordinal for trace in result.traces] == [1, 2]
    assert result.dropped == {"over 4 line events": 1, "calls per function": 1}


def test_unfinished_activation_is_dropped():
    rec = Rec()
    test = rec.call(rec.code("test_top", 4, path=TESTS, kind="test"), None, 4)
    top_call(rec, test, finish=False)  # the record was cut after mid returned
    result = cut_functions(rec.raw(outcome="cut", reason="event cap"), files())
    assert [trace.qualname for trace in result.traces] == ["mid", "leaf"]
    assert result.dropped == {"unfinished": 1}


def test_record_files_are_used_and_a_missing_source_drops():
    raw, _top = record_top()
    assert cut_functions(raw, {}).dropped == {"no source": 3}
    raw.files = files()
    assert len(cut_functions(raw, {}).traces) == 3


def test_cut_rejects_malformed_raw_events():
    raw = RawTestTrace(test="t", outcome="complete", events=[["line", 1]])
    with pytest.raises(ValueError, match="event 0"):
        cut_functions(raw, {})


# -- data checks ---------------------------------------------------------------------------------


def test_observed_return_matches():
    raw, top = record_top()
    assert observed_returns(raw, files()) == {top: True}
    traces = by_name(cut_functions(raw, files()).traces)
    assert traces["top"].return_checked is True and traces["mid"].return_checked is None


def test_observed_return_mismatch():
    raw, top = record_top(seen="5")
    assert observed_returns(raw, files()) == {top: False}
    assert by_name(cut_functions(raw, files()).traces)["top"].return_checked is False


@pytest.mark.parametrize("line", ["assert top(1) == obj", "result = wrap(top(1))", "a, b = top(1)",
                                  "result = top(1) + 1", "assert top(1) != 5"])
def test_observed_return_absent_when_not_checkable(line):
    raw, _top = record_top()
    assert observed_returns(raw, files(TEST_TEXT.replace("result = top(1)", line))) == {}


@pytest.mark.parametrize(("line", "expected"), [("assert top(1) == 4", True), ("assert 4.0 == top(1)", True),
                                                ("assert top(1) == 5", False)])
def test_an_assertion_that_held_is_what_the_test_observed(line, expected):
    raw, top = record_top()
    assert observed_returns(raw, files(TEST_TEXT.replace("result = top(1)", line))) == {top: expected}


def test_observed_return_compares_the_outermost_call():
    rec = Rec()
    test = rec.call(rec.code("test_top", 4, path=TESTS, kind="test"), None, 4)
    rec.line(test, 5)
    leaf = leaf_call(rec, test, 0)  # the argument, evaluated first
    top = top_call(rec, test)
    rec.line(test, 6, result="4")
    rec.ret(test, 6, "None")
    checked = observed_returns(rec.raw(), files(TEST_TEXT.replace("top(1)", "top(leaf(0))")))
    assert checked == {top: True} and leaf not in checked


def test_observed_return_resolves_unchanged_marker():
    rec = Rec()
    text = TEST_TEXT.replace("    result = top(1)\n", "    result = top(1)\n    result = top(1)\n")
    test = rec.call(rec.code("test_top", 4, path=TESTS, kind="test"), None, 4)
    rec.line(test, 5)
    first = top_call(rec, test)
    rec.line(test, 6, result="4")
    second = top_call(rec, test)
    rec.line(test, 7, result="..")  # same repr as before the second call
    rec.ret(test, 7, "None")
    assert observed_returns(rec.raw(), files(text)) == {first: True, second: True}


def test_fix_lines_change_delete_and_insert_hunks():
    diff = (
        "diff --git a/lib.py b/lib.py\n"
        "--- a/lib.py\n"
        "+++ b/lib.py\n"
        "@@ -4,3 +4,3 @@\n"
        " def leaf(x):\n"
        "-    y = x + 1\n"
        "+    y = x + 2\n"
        "     return y\n"
        "@@ -9,4 +9,3 @@\n"
        " def mid(x):\n"
        "-    z = leaf(x)\n"
        "-    return z * 2\n"
        "+    return leaf(x) * 2\n"
        " \n"
        "@@ -20,4 +19,5 @@\n"
        " @decorate\n"
        " @other\n"
        "+@third\n"
        " def decorated(n):\n"
        "     return n\n"
        "diff --git a/gone.py b/gone.py\n"
        "deleted file mode 100644\n"
        "--- a/gone.py\n"
        "+++ /dev/null\n"
        "@@ -1,2 +0,0 @@\n"
        "-a = 1\n"
        "-b = 2\n"
        "diff --git a/new.py b/new.py\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        "+++ b/new.py\n"
        "@@ -0,0 +1 @@\n"
        "+x = 1\n"
        "diff --git a/zero.py b/zero.py\n"
        "--- a/zero.py\n"
        "+++ b/zero.py\n"
        "@@ -5,0 +6,2 @@\n"
        "+a\n"
        "+b\n"
        "-- \n"
        "2.39.2\n"
    )
    assert fix_lines(diff) == {"lib.py": {5, 10, 11, 21, 22}, "gone.py": {1, 2}, "zero.py": {5, 6}}


def test_fix_lines_uses_the_old_name_of_a_renamed_file():
    diff = (
        "diff --git a/old.py b/new.py\n"
        "similarity index 90%\n"
        "rename from old.py\n"
        "rename to new.py\n"
        "--- a/old.py\n"
        "+++ b/new.py\n"
        "@@ -1 +1 @@\n"
        "-a\n"
        "+b\n"
    )
    assert fix_lines(diff) == {"old.py": {1}}


def _patch(path: str, line: int) -> str:
    return f"--- a/{path}\n+++ b/{path}\n@@ -{line} +{line} @@\n-old\n+new\n"


def test_executed_lines_and_bug_line_seen():
    raw, _top = record_top()
    executed = executed_lines(raw)
    assert (LIB, ln("y = x + 1")) in executed and (LIB, ln("return w")) in executed
    assert all(path == LIB for path, _line in executed)  # test frames and outside code are not repository code
    assert bug_line_seen([raw], _patch(LIB, ln("y = x + 1")))
    assert not bug_line_seen([raw], _patch(LIB, ln("return n")))
    assert not bug_line_seen([raw], _patch(TESTS, ln("result = top(1)", TEST_TEXT)))
    assert bug_line_seen([catch_record(), raw], _patch(LIB, ln("y = x + 1")))
    assert not bug_line_seen([], _patch(LIB, ln("y = x + 1")))


def test_raw_record_survives_json():
    # the fixtures are what the tracer writes: one JSON line per test
    raw, _top = record_top()
    again = RawTestTrace.model_validate(json.loads(raw.model_dump_json()))
    assert cut_functions(again, files()) == cut_functions(raw, files())
