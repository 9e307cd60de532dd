"""Problem statements for mutate-fix tasks: the symptom, never the answer (pure).

An injected bug has no issue text, so the statement is written from what a user would see:
which tests fail and how. It must never name the mutated file, function, line or mutation,
or the task would be solved by reading the prompt; this module is therefore given only test
ids and their failure messages. Callers should pass the short failure message (a JUnit
``message``), not a full traceback, whose frames point at the mutated file and line.
"""

from __future__ import annotations

_INTRO = "Some tests of this repository fail and they should pass."
_OUTRO = "Find the cause in the source code and fix it. Do not change the tests."
_NO_MESSAGE = "(no error message)"
_CUT_MARK = "…"
_INDENT = "  "


def mutate_fix_statement(
    failures: list[tuple[str, str]],
    *,
    total: int,
    shown: int = 3,
    message_chars: int = 800,
) -> str:
    """The problem statement for a mutate-fix task from its failing tests.

    `failures` holds (test id, error message) pairs in a stable order; the first `shown` are
    listed, each message trimmed to `message_chars` characters. `total` is how many tests
    fail in all, so the text can say how many more there are. Same input, same text.
    """
    _check(failures, total=total, shown=shown, message_chars=message_chars)
    listed = failures[:shown]
    lines = [_INTRO, "", f"Failing tests ({len(listed)} of {total}):"]
    for test_id, message in listed:
        lines.append(f"- {_one_line(test_id)}")
        lines.extend(_INDENT + line if line else "" for line in _message_lines(message, message_chars))
    more = total - len(listed)
    if more:
        lines += ["", f"and {more} more."]
    lines += ["", _OUTRO]
    return "\n".join(lines)


def _check(failures: list[tuple[str, str]], *, total: int, shown: int, message_chars: int) -> None:
    if not failures:
        raise ValueError("mutate_fix_statement needs at least one failing test; a mutation no test catches is no task")
    if total < len(failures):
        raise ValueError(f"total={total} is less than the {len(failures)} failures given; pass the full failing count")
    if shown < 1:
        raise ValueError(f"shown={shown} must be 1 or more; the statement has to list a failing test")
    if message_chars < 1:
        raise ValueError(f"message_chars={message_chars} must be 1 or more")
    for index, (test_id, _message) in enumerate(failures):
        if not test_id.strip():
            raise ValueError(f"failures[{index}] has an empty test id; pass the pytest node id of each failing test")


def _one_line(text: str) -> str:
    # why: a test id on two lines would break the list layout
    return " ".join(text.split())


def _message_lines(message: str, limit: int) -> list[str]:
    """The message as tidy lines: no trailing spaces or blank edges, cut to `limit` characters."""
    text = "\n".join(line.rstrip() for line in message.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    text = text.strip("\n")
    if not text.strip():
        return [_NO_MESSAGE]
    if len(text) > limit:
        text = text[: limit - len(_CUT_MARK)].rstrip() + _CUT_MARK
    return text.split("\n")
