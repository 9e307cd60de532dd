"""A persistent bash session inside a running container: one `docker exec` with stdin attached.

Each command is written to the shell's stdin and its output read until the sentinel line (see
stream.py). A reader thread feeds a bounded buffer, so a command printing gigabytes costs the collector
a few megabytes. On a timeout or when the shell dies, every process the agent started is killed and a
fresh shell takes over, and the command's output says so.

Killing goes through a second, idle "control" shell started with the sandbox (the container's own bash, attached
before the container starts; a `docker exec` of one if that one ends): its kill loop uses only
bash builtins (no fork), so it works even when a fork bomb holds every pid the container may have, and
it kills by walking /proc rather than by process group, so processes that left the shell's group
(setsid, daemons) go too. Only PID 1 (docker-init), the container's keep-alive process and the control
shell itself are spared.
"""

from __future__ import annotations

import queue
import secrets
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field

from docker.errors import DockerException
from requests.exceptions import RequestException

from forager.engine.docker_engine import retry_transient
from forager.sandbox.errors import SandboxError
from forager.sandbox.output import HeadTailBuffer
from forager.sandbox.stream import FrameDecoder, SentinelScanner, command_line, mark_for, plain_line

CONTROL_TIMEOUT = 30  # seconds for our own scripts (start-up, kill loop); they take milliseconds

# Records the processes PID 1 runs before any agent command: the container's keep-alive (`timeout`, whose child
# is the control shell).
FIND_KEEPALIVE = (
    'KEEP=" "; for d in /proc/[0-9]*; do read -r s < "$d/stat" 2>/dev/null || continue; s=${s##*) }; '
    'set -- $s; [ "$2" = 1 ] && KEEP="$KEEP${d#/proc/} "; done; printf "%s\\n" "$KEEP"'
)
# SIGKILL every process but PID 1, the keep-alive and this shell, until none is left (zombies wait for
# docker-init to reap them). Builtins only: a fork bomb leaves no pid to fork with.
KILL_ALL = (
    'for round in {1..200}; do n=0; for d in /proc/[0-9]*; do p=${d#/proc/}; '
    'case " 1 $$$KEEP" in *" $p "*) continue;; esac; '
    'read -r s < "$d/stat" 2>/dev/null || continue; s=${s##*) }; [ "${s%% *}" = Z ] && continue; '
    'kill -9 "$p" 2>/dev/null && n=$((n+1)); done; [ "$n" = 0 ] && break; done'
)


@dataclass
class ShellOutcome:
    """One command's result: its captured output, exit code and what happened to the shell."""

    capture: HeadTailBuffer
    exit_code: int | None
    timed_out: bool = False
    restarted: bool = False
    notes: list[str] = field(default_factory=list)  # one-line facts appended to the shown output


class _Session:
    """One bash process in the container: its stdin, and its output split into commands. `attached`: the socket of
    an attach to the container's own bash (see Shell.start) instead of a `docker exec` of one."""

    def __init__(self, api, container_id: str, environment: dict[str, str], new_capture, attached=None):
        self.api = api
        self.mark = mark_for(secrets.token_hex(8))
        self.exec_id = None if attached is not None else self._create(api, container_id, environment)
        raw = attached if attached is not None else api.exec_start(self.exec_id, socket=True)
        self._response = raw  # why: the HTTP response owns the socket; dropping it may close the socket
        self.sock: socket.socket = getattr(raw, "_sock", raw)
        self.sock.settimeout(None)  # the reader waits as long as a command is silent; timeouts are ours
        self._scanner = SentinelScanner(self.mark, new_capture)
        self._lock = threading.Lock()
        self._results: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        name = f"forager-shell-{(self.exec_id or 'attach')[:12]}"
        self._reader = threading.Thread(target=self._read, name=name, daemon=True)
        self._reader.start()

    @staticmethod
    @retry_transient
    def _create(api, container_id: str, environment: dict[str, str]) -> str:
        return api.exec_create(
            container_id, ["bash", "--noprofile", "--norc"], stdin=True, stdout=True, stderr=True, tty=False,
            environment=environment, workdir="/",  # the container's own working dir may have been deleted
        )["Id"]

    def _read(self) -> None:
        decoder = FrameDecoder()
        try:
            while data := self.sock.recv(1 << 16):
                for payload in decoder.feed(data):
                    with self._lock:
                        for result in self._scanner.feed(payload):
                            self._results.put(result)
        except OSError:
            pass  # the socket was closed under us: the session is over either way
        finally:
            self.ended.set()
            self._results.put(None)

    def send(self, data: bytes) -> bool:
        """Write to the shell's stdin; False when the shell is gone."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def wait(self, timeout: float) -> tuple[HeadTailBuffer, int] | None:
        """The next completed command, or None when the shell ended or `timeout` passed first."""
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def send_plain(self, script: str, data: bytes = b"") -> None:
        """Send one of our scripts (and the data it reads, see stream.plain_line) without waiting for it."""
        if not self.send(plain_line(script, self.mark, data)):
            raise SandboxError("the container's shell is gone")

    def answer(self, timeout: float = CONTROL_TIMEOUT) -> tuple[str, int]:
        """The output and exit code of the next of our scripts; SandboxError if the shell does not answer."""
        result = self.wait(timeout)
        if result is None:
            raise SandboxError("the container's shell ended before answering" if self.ended.is_set()
                               else f"the container's shell did not answer within {timeout:g} s")
        return bytes(result[0].head).decode(errors="replace").strip(), result[1]

    def run_plain(self, script: str) -> str:
        """Run one of our scripts and return its output; SandboxError if the shell does not answer."""
        self.send_plain(script)
        return self.answer()[0]

    def unfinished(self, join: float = 2.0) -> HeadTailBuffer:
        """What the command in progress printed so far (after the reader drained what it could)."""
        self._reader.join(join)
        with self._lock:
            return self._scanner.flush()

    def exit_code(self) -> int | None:
        if self.exec_id is None:
            return None
        try:
            return self.api.exec_inspect(self.exec_id).get("ExitCode")
        except (DockerException, RequestException):
            return None

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._response.close()


class Shell:
    """The agent's persistent bash in a container, restarted after a timeout or when it dies."""

    def __init__(self, api, container_id: str, *, cwd: str, environment: dict[str, str], keep_bytes: int):
        self.api, self.container_id = api, container_id
        self.home, self.environment = cwd, environment
        self.keep_bytes = keep_bytes
        self.cwd = cwd  # where the current shell started (the repository, or / once it was deleted)
        self._keep = ""  # pids of the container's own processes, found before any agent command ran
        self._control: _Session | None = None
        self._main: _Session | None = None
        self.start_marks: dict[str, float] = {}  # monotonic time at each stage of start(), for benchmarks

    def _capture(self) -> HeadTailBuffer:
        return HeadTailBuffer(self.keep_bytes // 2, self.keep_bytes - self.keep_bytes // 2)

    def _session(self) -> _Session:
        return _Session(self.api, self.container_id, self.environment, self._capture)

    def start(self, setup: str = "", data: bytes = b"", setup_timeout: float = CONTROL_TIMEOUT,
              control=None, prelude: str = "") -> tuple[str, int]:
        """Open the control shell and the main shell; `setup` (with `data` on its stdin, see stream.plain_line)
        runs first in the control shell, before any agent command, and its output and exit code come back.
        `prelude`: one of our scripts, run first in the control shell (its answer is awaited here, so before any
        agent command); SandboxError if it fails.

        `control`: a socket attached to the container's own bash (stdin and output), which then is the control
        shell: it is up as soon as the container is, where a `docker exec` takes another ~75 ms of daemon work
        (two execs are served one after the other, so the main shell's comes up that much sooner too).

        Every script is sent before any answer is awaited: each `docker exec` costs tens of milliseconds of
        daemon work, which then overlaps the setup instead of adding to it. On a failed setup the main shell is
        not awaited (the sandbox is closed next)."""
        self.start_marks = {}
        self._control = self._session() if control is None else _Session(
            self.api, self.container_id, self.environment, self._capture, attached=control)
        if prelude:
            self._control.send_plain(prelude)
        if setup:
            self._control.send_plain(setup, data)
        # before any agent command, so only the container's own processes are found
        self._control.send_plain(FIND_KEEPALIVE)
        self._main = self._session()
        self._main.send_plain(self._main_init())
        self.start_marks["open"] = time.monotonic()
        if prelude and (done := self._control.answer())[1] != 0:
            raise SandboxError(f"the container's shell could not start ({done[1]}): {done[0][:300]}")
        outcome = self._control.answer(setup_timeout) if setup else ("", 0)
        self.start_marks["setup"] = time.monotonic()
        if outcome[1] == 0:
            self._keep = self._control.answer()[0]
            self.cwd = self._main.answer()[0]
        self.start_marks["ready"] = time.monotonic()
        return outcome

    def _main_init(self) -> str:
        # stderr joins stdout so the model sees both in order; a deleted repository leaves the shell in /
        return f"exec 2>&1\ncd -- {shlex.quote(self.home)} 2>/dev/null || cd /\npwd"

    def _open_main(self) -> None:
        self._main = self._session()
        self.cwd = self._main.run_plain(self._main_init())

    def _kill_all(self) -> None:
        if self._control is None or self._control.ended.is_set():
            self._control = self._session()
        self._control.run_plain(f'KEEP=" {self._keep} "; {KILL_ALL}')

    def run(self, command: str, timeout: float) -> ShellOutcome:
        notes = []
        main = self._main
        if main is None or main.ended.is_set() or not main.send(command_line(command, main.mark)):
            # the shell died between commands (a background OOM kill, say)
            self._kill_all()
            if main is not None:
                main.close()
            self._open_main()
            notes.append(f"[the shell had exited; a fresh shell was started in {self.cwd}]")
            main = self._main
            if not main.send(command_line(command, main.mark)):
                raise SandboxError("the container's new shell does not take input")
        result = main.wait(timeout)
        if result is not None:
            return ShellOutcome(result[0], result[1], notes=notes)
        timed_out = not main.ended.is_set()
        self._kill_all()
        capture = main.unfinished()  # after the kill the stream ends, so everything printed is in
        code = None if timed_out else main.exit_code()
        main.close()
        self._open_main()
        if timed_out:
            notes.append(f"[command timed out after {timeout:g} s; a fresh shell was started in {self.cwd}]")
        else:
            notes.append(f"[the shell exited with code {code}; a fresh shell was started in {self.cwd}]")
        return ShellOutcome(capture, code, timed_out=timed_out, restarted=True, notes=notes)

    def close(self) -> None:
        for session in (self._main, self._control):
            if session is not None:
                session.close()
