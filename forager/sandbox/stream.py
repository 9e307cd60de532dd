"""The byte protocol of the persistent shell, as pure functions: docker's stream frames and sentinel lines.

A `docker exec` without a TTY multiplexes stdout and stderr on one socket: each frame is an 8-byte
header (stream id, three zero bytes, big-endian payload size) followed by the payload. The shell prints
`MARK<exit code>\\n` after each command, MARK holding a per-session random nonce, so the end of a
command's output is known exactly and cannot be faked by output that merely looks like a prompt.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable

from forager.sandbox.output import HeadTailBuffer

HEADER = struct.Struct(">BxxxI")


class FrameDecoder:
    """Feeds raw socket bytes, returns the payloads of the complete frames (stdout and stderr alike)."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        payloads = []
        while len(self._pending) >= HEADER.size:
            _stream, size = HEADER.unpack_from(self._pending)
            if len(self._pending) < HEADER.size + size:
                break
            payloads.append(bytes(self._pending[HEADER.size: HEADER.size + size]))
            del self._pending[: HEADER.size + size]
        return payloads


def mark_for(nonce: str) -> bytes:
    return f"__forager_done_{nonce}__".encode()


def command_line(command: str, mark: bytes) -> bytes:
    """What is written to the shell's stdin for one command.

    The command travels base64-encoded and runs through `eval` in the shell itself, so quoting, heredocs,
    syntax errors, `cd` and `export` all behave as typed; its stdin is /dev/null, so a command that reads
    stdin gets EOF instead of swallowing the sentinel line that follows.
    """
    encoded = base64.b64encode(command.encode()).decode()
    return plain_line(f'eval "$(printf %s {encoded} | base64 -d)" < /dev/null', mark)


def plain_line(script: str, mark: bytes, data: bytes = b"") -> bytes:
    """A script of ours, sent as is (no eval, no base64: it must not fork, see shell.KILL_ALL).

    `data` follows the script, for its last line to read from stdin itself (`head -c`): bash reads a pipe one
    byte at a time, so the bytes after a line are left to that line's commands. The script must consume exactly
    len(data) bytes or leave the shell (`|| exit`): bytes left over would run as commands.
    """
    return f"{script}\n".encode() + data + f"printf '%s%d\\n' {mark.decode()} \"$?\"\n".encode()


class SentinelScanner:
    """Splits a shell's output stream into per-command captures at `MARK<exit code>\\n` lines."""

    def __init__(self, mark: bytes, new_capture: Callable[[], HeadTailBuffer]):
        self.mark = mark
        self._new_capture = new_capture
        self.capture = new_capture()
        self._hold = b""  # a possible start of the mark, or a mark still waiting for its newline

    def feed(self, data: bytes) -> list[tuple[HeadTailBuffer, int]]:
        """The commands this data completed, each as (its output, its exit code)."""
        done = []
        data = self._hold + data
        while True:
            at = data.find(self.mark)
            if at < 0:
                keep = min(len(data), len(self.mark) - 1)
                self.capture.feed(data[: len(data) - keep])
                self._hold = data[len(data) - keep:]
                return done
            end = data.find(b"\n", at)
            if end < 0:
                self.capture.feed(data[:at])
                self._hold = data[at:]
                return done
            self.capture.feed(data[:at])
            code = data[at + len(self.mark): end]
            done.append((self.capture, int(code) if code.lstrip(b"-").isdigit() else -1))
            self.capture = self._new_capture()
            data = data[end + 1:]

    def flush(self) -> HeadTailBuffer:
        """The stream ended: what the unfinished command printed, held bytes included."""
        self.capture.feed(self._hold)
        self._hold = b""
        return self.capture
