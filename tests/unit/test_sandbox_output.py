"""The sandbox's pure pieces: safe decoding, truncation, bounded capture, exact edits, the shell's byte protocol."""

from __future__ import annotations

import struct

import pytest

from forager.sandbox.files import looks_like_diff, tar_one, untar_one
from forager.sandbox.output import (
    EditError,
    HeadTailBuffer,
    apply_edit,
    line_of,
    numbered_snippet,
    safe_text,
    shown,
)
from forager.sandbox.stream import FrameDecoder, SentinelScanner, command_line, mark_for


def test_safe_text_escapes_invalid_bytes_and_nul():
    assert safe_text("héllo".encode()) == "héllo"
    assert safe_text(b"a\xffb") == "a\\xffb"
    assert safe_text(b"a\x00b") == "a\\x00b"
    assert "\x00" not in safe_text(bytes(range(256)))


def test_shown_keeps_short_text_and_cuts_long_text_in_the_middle():
    assert shown("short", 100) == ("short", False)
    text = "".join(f"line {i}\n" for i in range(10_000))
    out, truncated = shown(text, 1000)
    assert truncated
    assert out.startswith("line 0\nline 1\n") and out.endswith("line 9999\n")
    marker = next(line for line in out.splitlines() if line.startswith("[... "))
    cut = len(text) - 1000
    assert marker.startswith(f"[... {cut:,} characters (")
    assert marker.endswith(" lines) cut ...]")
    assert len(out) < 1000 + 80


def test_shown_decodes_bytes_safely():
    assert shown(b"\xff\x00ok", 100) == ("\\xff\\x00ok", False)


def test_buffer_keeps_everything_below_its_limits():
    buffer = HeadTailBuffer(10, 10)
    buffer.feed(b"hello ")
    buffer.feed(b"world")
    assert not buffer.cut
    assert buffer.text(100) == ("hello world", False)


def test_buffer_holds_head_and_tail_of_100_mb_fed_in_chunks():
    buffer = HeadTailBuffer(1000, 1000)
    chunk = b"0123456789abcdef" * 4096  # 64 KiB
    chunks = 100 * 1024 * 1024 // len(chunk)
    for index in range(chunks):
        buffer.feed(chunk if index else b"FIRST" + chunk[5:])
        assert len(buffer.head) + len(buffer._tail) <= 1000 + 2 * 1000 + len(chunk)
    buffer.feed(b"LAST\n")
    assert buffer.total == chunks * len(chunk) + 5
    assert bytes(buffer.head).startswith(b"FIRST") and len(buffer.head) == 1000
    assert buffer.tail.endswith(b"LAST\n") and len(buffer.tail) == 1000
    text, truncated = buffer.text(200)
    assert truncated and text.startswith("FIRST") and text.endswith("LAST\n")
    assert f"[... {buffer.total - 200:,} bytes (0 lines) cut ...]" in text


def test_buffer_does_not_split_utf8_characters_at_the_cut():
    buffer = HeadTailBuffer(5, 5)
    buffer.feed("ééééééééééé".encode())  # 22 bytes: the head ends and the tail starts mid-character
    text, truncated = buffer.text(100)
    assert truncated and "\\x" not in text
    assert text.startswith("éé\n[... ") and text.endswith("\néé")


@pytest.mark.parametrize(
    ("text", "search", "message"),
    [
        ("a = 1\n", "", "search is empty"),
        ("a = 1\n", "b = 2", "not found"),
        ("a = 1\n", "a  = 1", "whitespace and indentation"),
        ("x\nx\nx\n", "x", "found 3 times"),
    ],
)
def test_apply_edit_refuses_anything_but_one_exact_match(text, search, message):
    with pytest.raises(EditError, match=message):
        apply_edit(text, search, "y")


def test_apply_edit_replaces_the_unique_match():
    assert apply_edit("def f():\n    return 1\n", "return 1", "return 2") == "def f():\n    return 2\n"


def test_numbered_snippet_shows_context_around_the_change():
    text = "".join(f"line {n}\n" for n in range(1, 31))
    snippet = numbered_snippet(text, 12).splitlines()
    assert snippet[0] == "   4 | line 4"
    assert snippet[-1] == "  20 | line 20"
    assert len(snippet) == 17
    assert numbered_snippet(text, 2, context=1, span=3).splitlines() == [
        "  1 | line 1", "  2 | line 2", "  3 | line 3", "  4 | line 4", "  5 | line 5",
    ]
    assert line_of(text, text.index("line 12")) == 12


def _frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def test_frame_decoder_joins_frames_split_anywhere():
    raw = _frame(1, b"out") + _frame(2, b"err") + _frame(1, b"")
    decoder = FrameDecoder()
    payloads = [p for byte in range(len(raw)) for p in decoder.feed(raw[byte: byte + 1])]
    assert payloads == [b"out", b"err", b""]


def test_sentinel_scanner_splits_commands_even_when_the_mark_is_split():
    mark = mark_for("abc123")
    scanner = SentinelScanner(mark, lambda: HeadTailBuffer(100, 100))
    stream = b"hello\n" + mark + b"0\n" + b"no newline" + mark + b"127\n" + b"partial"
    done = [item for byte in range(len(stream)) for item in scanner.feed(stream[byte: byte + 1])]
    assert [(bytes(capture.head), code) for capture, code in done] == [(b"hello\n", 0), (b"no newline", 127)]
    assert bytes(scanner.flush().head) == b"partial"


def test_command_line_carries_the_command_base64_encoded():
    line = command_line("echo 'hi' && cat <<EOF\n$x\nEOF", mark_for("n"))
    assert b"echo" not in line and b"< /dev/null" in line and b"__forager_done_n__" in line


def test_tar_round_trip_and_diff_detection():
    data, info = untar_one(tar_one("f.py", b"x = 1\n", mode=0o755))
    assert (data, info.name, info.mode) == (b"x = 1\n", "f.py", 0o755)
    assert looks_like_diff("diff --git a/x b/x\n") and looks_like_diff("--- a/x\n+++ b/x\n")
    assert not looks_like_diff("just text\n")
