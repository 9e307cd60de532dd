"""JSON columns read as the text the store holds (RawJson), and decoded when a value is needed (pure: the store
and the export share it, neither owns it)."""

from __future__ import annotations

import json

import orjson


class RawJson:
    """A JSON column's text as stored, not decoded (read so only for a JSONL export).

    A holder, not a str subclass: making one of those copies the text, and the text is most of a step.
    """

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"RawJson({self.text[:40]!r}...)"


def parse(text: str | None):
    """Stored JSON text as Python values (NULL stays None)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN or Infinity, which Python's json writes and orjson refuses
        return json.loads(text)


def decoded(value):
    """The Python value of a column, whether it came decoded or as RawJson text."""
    return parse(value.text) if isinstance(value, RawJson) else value


__all__ = ["RawJson", "decoded", "parse"]
