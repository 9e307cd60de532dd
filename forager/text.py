"""Text made to fit one line: of a message, a test id, an error. Pure functions, used wherever a report, a table
cell or a stored error must stay on one line (a second line would break the layout it is printed in)."""

from __future__ import annotations


def one_line(text: str, limit: int | None = None) -> str:
    """`text` with every run of whitespace (newlines included) made one space, cut to `limit` characters with
    an ellipsis."""
    line = " ".join(text.split())
    if limit is None or len(line) <= limit:
        return line
    return line[: limit - 1] + "…"


def first_line(text: str, limit: int | None = 300) -> str:
    """The first line of `text` that is not blank, stripped and cut to `limit` characters; "" when there is none
    (an exception's message can be empty: `str(exc).splitlines()[0]` would raise)."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if limit is None else line[:limit]
    return ""


def error_line(exc: BaseException, limit: int | None = 300) -> str:
    """An exception as one line: its class and the first line of its message ("LeaseLost: episode 4 is held by
    ..."), or its class alone when the message is empty."""
    message = first_line(str(exc), limit)
    return f"{exc.__class__.__name__}: {message}" if message else exc.__class__.__name__
