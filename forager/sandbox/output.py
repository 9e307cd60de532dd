"""What a tool shows and keeps: safe decoding, head+tail truncation, bounded capture, exact edits (pure)."""

from __future__ import annotations


def safe_text(data: bytes) -> str:
    """UTF-8 text with invalid bytes as `\\xff` escapes and NUL as `\\x00` (PostgreSQL text rejects NUL)."""
    return data.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def cut_marker(amount: int, lines: int, unit: str = "characters") -> str:
    return f"\n[... {amount:,} {unit} ({lines:,} lines) cut ...]\n"


def shown(text: str | bytes, max_chars: int) -> tuple[str, bool]:
    """The first and last max_chars/2 characters with a marker saying what was cut between; (text, truncated)."""
    if isinstance(text, bytes):
        text = safe_text(text)
    if len(text) <= max_chars:
        return text, False
    head, tail = text[: max_chars // 2], text[len(text) - (max_chars - max_chars // 2):]
    middle = text[len(head): len(text) - len(tail)]
    return head + cut_marker(len(middle), middle.count("\n")) + tail, True


def _complete_head(data: bytes) -> bytes:
    """Drop a UTF-8 sequence cut off at the end, so a cut does not show up as stray escapes."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # the lead byte of the last sequence
            needed = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
            return data[:-back] if needed > back else data
    return data


def _complete_tail(data: bytes) -> bytes:
    """Drop continuation bytes at the start whose lead byte was cut off."""
    start = 0
    while start < min(3, len(data)) and data[start] & 0xC0 == 0x80:
        start += 1
    return data[start:]


class HeadTailBuffer:
    """The first `head` and last `tail` bytes of a stream, plus its total size and line count.

    A command printing 100 MB costs at most head + 2*tail bytes here: the tail is trimmed only when it
    has doubled, so feeding stays linear in the stream's size.
    """

    def __init__(self, head: int, tail: int):
        self.head_limit, self.tail_limit = head, tail
        self.head = bytearray()
        self._tail = bytearray()
        self.total = 0
        self.lines = 0
        self.dropped = 0  # bytes between head and tail that were not kept

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        self.lines += data.count(b"\n")
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self._tail += data
        if len(self._tail) > 2 * self.tail_limit:
            excess = len(self._tail) - self.tail_limit
            self.dropped += excess
            del self._tail[:excess]

    @property
    def tail(self) -> bytes:
        if len(self._tail) <= self.tail_limit:
            return bytes(self._tail)
        return bytes(self._tail[len(self._tail) - self.tail_limit:])

    @property
    def cut(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self, max_chars: int) -> tuple[str, bool]:
        """Head and tail as shown text with a cut marker, at most about max_chars; (text, truncated)."""
        if not self.cut:
            return shown(bytes(self.head) + self.tail, max_chars)
        head = safe_text(_complete_head(bytes(self.head)))[: max_chars // 2]
        tail_text = safe_text(_complete_tail(self.tail))
        tail = tail_text[len(tail_text) - (max_chars - max_chars // 2):]
        cut_bytes = self.total - len(head.encode()) - len(tail.encode())
        cut_lines = max(0, self.lines - head.count("\n") - tail.count("\n"))
        return head + cut_marker(max(cut_bytes, 0), cut_lines, "bytes") + tail, True


class EditError(ValueError):
    """The edit cannot be made as asked; the message is shown to the model."""


def apply_edit(text: str, search: str, replace: str) -> str:
    """Replace the one exact occurrence of `search`; anything else is an EditError saying why."""
    if not search:
        raise EditError("search is empty: give the exact text to replace (use create for a new file)")
    count = text.count(search)
    if count == 0:
        raise EditError("search text not found in the file; it must match exactly, including whitespace and indentation")
    if count > 1:
        raise EditError(f"search text found {count} times; include more surrounding lines so it matches exactly once")
    return text.replace(search, replace, 1)


def line_of(text: str, offset: int) -> int:
    """1-based number of the line holding character `offset`."""
    return text.count("\n", 0, offset) + 1


def numbered_snippet(text: str, changed_line: int, context: int = 8, *, span: int = 1) -> str:
    """The `span` changed lines from changed_line, with `context` lines around, as `  12 | line`."""
    lines = text.splitlines()
    first = max(1, changed_line - context)
    last = min(len(lines), changed_line + span - 1 + context)
    width = len(str(last))
    return "\n".join(f"{number:>{width + 2}} | {lines[number - 1]}" for number in range(first, last + 1))
