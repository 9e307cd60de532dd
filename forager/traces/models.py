"""The values of the trace stage (pure): raw per-test records from the tracer, function-level traces cut from them.

A raw record is what the tracer injected into a test run (forager/traces/recorder.py) writes for one test,
one JSON object per line. Its events are compact lists, in the order they happened, over every frame the
tracer followed (repository code, the test's own frames, and Python code outside the repository called
directly from a repository frame):

    ["call", frame, parent, code, line, locals]      locals: {name: repr} in full (the arguments)
    ["line", frame, line, locals]                    locals before the line runs; ".." for a value unchanged
                                                     since this frame's previous event, every current name listed
    ["return", frame, line, value]                   value: repr of the returned (or yielded) value
    ["exception", frame, line, value]                value: repr of the exception raised or passing through

`frame` numbers one activation (a generator or coroutine resumed is a new activation); `parent` is the
frame of the nearest followed caller, or None; `code` indexes `codes`. Frames of outside code get a call
and a return event only. A `return` right after an `exception` of the same frame, with no line between,
is the exception leaving the frame.

A function-level trace is one activation of a repository function with its nested calls to a depth: the
CWM context (sources, entry marked) and its frames. Its events carry what the text serialisation carries
(kind, locals, source, value) plus where they happened (path, line, depth).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EventKind = Literal["call", "line", "return", "exception"]
CodeKind = Literal["repo", "test", "external"]
UNCHANGED = ".."  # a local's value unchanged since the previous event of the same frame


class CodeInfo(BaseModel):
    """One code object the tracer saw."""

    id: int
    path: str = Field(description="repository-relative for repo and test code; absolute for outside code")
    name: str
    qualname: str = Field(description="co_qualname; before Python 3.11 '@FIRSTLINE:NAME' (resolved on the host)")
    first: int = Field(description="co_firstlineno: the first decorator's line when decorated")
    kind: CodeKind


class RawTestTrace(BaseModel):
    """The tracer's record of one test (one JSON line of its output)."""

    test: str
    outcome: Literal["complete", "cut", "dropped"] = Field(
        description="complete; cut: the raw event cap was reached and tracing stopped there (earlier activations"
                    " that ended are usable); dropped: tracing was interrupted (deadline, tracer error)")
    reason: str | None = None
    seconds: float = 0.0
    codes: list[CodeInfo] = Field(default_factory=list)
    events: list[list] = Field(default_factory=list)
    lines: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="source lines of outside code that events name: path -> {line: text}")
    calls_skipped: int = Field(default=0, description="activations not followed: their function had been followed"
                                                      " max_calls times in the test already")
    files: dict[str, str] = Field(
        default_factory=dict, description="texts of repository and test files first seen in this test (each file"
                                          " is sent once per run: a run's records together hold every file)")


class TraceEvent(BaseModel):
    """One frame of a function-level trace."""

    kind: EventKind
    source: str = Field(description="the source line (stripped); for a call, the callee's def line")
    locals: dict[str, str] = Field(default_factory=dict, description="call and line events; '..' = unchanged")
    value: str | None = Field(default=None, description="return and exception events: the value's repr")
    path: str = ""
    line: int = 0
    depth: int = Field(default=0, description="0 for the entry function, 1 for what it calls, ...")


class FunctionTrace(BaseModel):
    """One activation of a repository function, cut from a test's raw trace."""

    test_id: str
    path: str
    qualname: str
    ordinal: int = Field(description="the n-th activation of this function in the test (0-based)")
    depth: int = Field(description="the --depth it was cut with")
    context: str = Field(description="the entry function's source (def line marked), then the nested functions'")
    events: list[TraceEvent]
    return_value: str | None = Field(default=None, description="the entry activation's return value, if it returned")
    raised: str | None = Field(default=None, description="the exception that left the entry activation, if one did")
    return_checked: bool | None = Field(
        default=None, description="the test bound the entry's return value to a name: whether the value it saw has"
                                  " the repr the trace shows (None: not checkable)")

    @property
    def line_events(self) -> int:
        return sum(1 for event in self.events if event.kind == "line")
