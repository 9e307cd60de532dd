"""CWM's text form of a Python execution trace, and its parser (pure).

A function-level trace becomes one string (CWM paper §2.2, its repository's PROMPTING_GUIDE.md):

    <|trace_context_start|>CONTEXT<|frame_sep|>FRAME...

where each frame is one of

    <|call_sep|>LOCALS<|action_sep|>SOURCE<|frame_sep|>
    <|line_sep|>LOCALS<|action_sep|>SOURCE<|frame_sep|>
    <|return_sep|><|action_sep|>SOURCE<|arg_sep|>VALUE<|frame_sep|>
    <|exception_sep|><|action_sep|>SOURCE<|arg_sep|>VALUE<|frame_sep|>

LOCALS is a JSON object of name -> repr (always a JSON string; ".." for a value unchanged since the
scope's previous frame) and VALUE the JSON string of a repr. The special tokens are single tokens to
CWM's tokenizer, so their text must never occur inside a field: the parser rejects such a trace, and
`round_trips` tells the cutter to drop it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from pydantic import BaseModel, Field

from forager.traces.models import UNCHANGED, EventKind, FunctionTrace, TraceEvent

TRACE_CONTEXT_START = "<|trace_context_start|>"
FRAME_SEP = "<|frame_sep|>"
CALL_SEP = "<|call_sep|>"
LINE_SEP = "<|line_sep|>"
RETURN_SEP = "<|return_sep|>"
EXCEPTION_SEP = "<|exception_sep|>"
ACTION_SEP = "<|action_sep|>"
ARG_SEP = "<|arg_sep|>"
SPECIAL_TOKENS: tuple[str, ...] = (
    TRACE_CONTEXT_START, FRAME_SEP, CALL_SEP, LINE_SEP, RETURN_SEP, EXCEPTION_SEP, ACTION_SEP, ARG_SEP,
)
_KIND_SEPS: dict[EventKind, str] = {
    "call": CALL_SEP, "line": LINE_SEP, "return": RETURN_SEP, "exception": EXCEPTION_SEP,
}


class TraceFormatError(ValueError):
    """A text that is not a well-formed CWM trace; the message says where and why."""


class ParsedFrame(BaseModel):
    """One frame read back from the text: what the serialisation carries, no more."""

    kind: EventKind
    locals: dict[str, str] = Field(default_factory=dict)
    source: str = ""
    value: str | None = None


class ParsedTrace(BaseModel):
    context: str
    frames: list[ParsedFrame]


def serialise(trace: FunctionTrace) -> str:
    """The CWM text of a function-level trace: its context, then one frame per event."""
    parts = [TRACE_CONTEXT_START, trace.context, FRAME_SEP]
    parts.extend(_frame(event) for event in trace.events)
    return "".join(parts)


def _frame(event: TraceEvent) -> str:
    sep = _KIND_SEPS[event.kind]
    if event.kind in ("call", "line"):
        return f"{sep}{_json(event.locals)}{ACTION_SEP}{event.source}{FRAME_SEP}"
    return f"{sep}{ACTION_SEP}{event.source}{ARG_SEP}{_json(event.value)}{FRAME_SEP}"


def _json(value: object) -> str:
    # why: CWM's own examples keep non-ASCII text as is and use json's default ", " / ": " separators
    return json.dumps(value, ensure_ascii=False)


def parse(text: str) -> ParsedTrace:
    """Read a CWM trace text back; `TraceFormatError` names the first thing wrong with it."""
    if not text.startswith(TRACE_CONTEXT_START):
        raise TraceFormatError(f"the text does not start with {TRACE_CONTEXT_START}")
    context, sep, rest = text[len(TRACE_CONTEXT_START):].partition(FRAME_SEP)
    if not sep:
        raise TraceFormatError(f"no {FRAME_SEP} closes the context")
    _no_token(context, "the context")
    pieces = rest.split(FRAME_SEP)
    if pieces.pop() != "":
        raise TraceFormatError(f"text after the last {FRAME_SEP}")
    return ParsedTrace(context=context, frames=[_parse_frame(piece, number) for number, piece in enumerate(pieces)])


def _parse_frame(piece: str, number: int) -> ParsedFrame:
    where = f"frame {number}"
    kind = next((kind for kind, sep in _KIND_SEPS.items() if piece.startswith(sep)), None)
    if kind is None:
        raise TraceFormatError(f"{where}: starts with none of {', '.join(_KIND_SEPS.values())}: {piece[:40]!r}")
    body = piece[len(_KIND_SEPS[kind]):]
    if kind in ("call", "line"):
        locals_text, sep, source = body.partition(ACTION_SEP)
        if not sep:
            raise TraceFormatError(f"{where}: no {ACTION_SEP} after the locals")
        _no_token(locals_text, f"{where}'s locals")
        _no_token(source, f"{where}'s source")
        return ParsedFrame(kind=kind, locals=_read_locals(locals_text, where), source=source)
    if not body.startswith(ACTION_SEP):
        raise TraceFormatError(f"{where}: a {kind} frame must go on with {ACTION_SEP}")
    source, sep, value_text = body[len(ACTION_SEP):].partition(ARG_SEP)
    if not sep:
        raise TraceFormatError(f"{where}: no {ARG_SEP} before the {kind} value")
    _no_token(source, f"{where}'s source")
    _no_token(value_text, f"{where}'s value")
    return ParsedFrame(kind=kind, source=source, value=_read_string(value_text, where))


def _no_token(text: str, where: str) -> None:
    # why: inside a field a special token's text would be read as the token itself; the frame
    # boundaries would then be wherever the data says
    found = [token for token in SPECIAL_TOKENS if token in text]
    if found:
        raise TraceFormatError(f"{where} holds the special token {found[0]}")


def _read_locals(text: str, where: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise TraceFormatError(f"{where}: the locals are not JSON ({error})") from None
    if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
        raise TraceFormatError(f"{where}: the locals must be a JSON object of strings, not {text[:60]!r}")
    return data


def _read_string(text: str, where: str) -> str:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise TraceFormatError(f"{where}: the value is not JSON ({error})") from None
    if not isinstance(data, str):
        raise TraceFormatError(f"{where}: the value must be a JSON string, not {text[:60]!r}")
    return data


def round_trips(trace: FunctionTrace) -> bool:
    """Whether the text gives back the context and each event's kind, locals, source and value."""
    return text_round_trips(trace, serialise(trace))


def text_round_trips(trace: FunctionTrace, text: str) -> bool:
    """`round_trips` for a text already serialised from `trace` (spares the cutter a second serialisation)."""
    try:
        parsed = parse(text)
    except TraceFormatError:
        return False
    if parsed.context != trace.context or len(parsed.frames) != len(trace.events):
        return False
    # why: comparing whole events also catches what the text cannot carry (locals on a return, a
    # value on a line), which would otherwise vanish silently
    return all(
        (frame.kind, frame.locals, frame.source, frame.value) == (event.kind, event.locals, event.source, event.value)
        for frame, event in zip(parsed.frames, trace.events, strict=True)
    )


def resolve_locals(events: Sequence[TraceEvent]) -> list[dict[str, str]]:
    """Every event's locals with ".." replaced by the value from the same scope's earlier events.

    Scopes follow the events' depths: a call at depth d opens a fresh scope there, and an event at depth d
    resolves in the scope last opened at d. A return, or an exception leaving a frame (whose return the
    trace does not show), needs no bookkeeping: the next frame at that depth starts with its own call. A
    ".." with nothing before it in its scope (a malformed trace) stays "..". Return and exception events
    carry no locals, so they resolve to {}.
    """
    scopes: list[dict[str, str]] = []  # scopes[d]: the full locals last seen at depth d
    resolved_all: list[dict[str, str]] = []
    for event in events:
        depth = event.depth
        if event.kind == "call":
            del scopes[depth:]
        while len(scopes) <= depth:
            scopes.append({})
        previous = scopes[depth]
        resolved = {name: previous.get(name, value) if value == UNCHANGED else value
                    for name, value in event.locals.items()}
        if event.kind in ("call", "line"):
            scopes[depth] = resolved
        resolved_all.append(resolved)
    return resolved_all


def trace_sha256(text: str) -> str:
    """The hex SHA-256 of a trace text (UTF-8): its identity in the store and in exports."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
