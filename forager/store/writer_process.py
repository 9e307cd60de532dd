"""The group-commit step writer in a process of its own: the database work off the collector's GIL.

`ProcessStepWriter` is what `Store.submit_step` uses by default (FORAGER_STEP_WRITER=process; store/episodes.py).
The episode thread that submits a step converts its row (`_InsertPlan.row`, the same conversions as the
thread writer's) and writes it, pickled, to the stdin pipe of a child process (`python -c` running this
module's `_main`, started with a collect run or at the first step). The child owns one connection of its
own: it takes every step waiting in the pipe, writes them in one transaction (each episode's fence, then the
steps' INSERT, through the driver; on PostgreSQL the fences, the INSERT, a check that every fence held and
the COMMIT all in one pipeline, one round trip), and only once committed writes their acknowledgements back
on its stdout; a receiver thread of the collector resolves the Futures. The same group commit as writer.py's
thread, with the database work on another core, and no longer competing with 30 episode threads for one GIL.

Why a process: in a thread, the writer's ~130 µs a step and the episode threads' conversions share one GIL;
here the database work runs on another core: 1.0-1.6x the thread's steps per second with 8 to 64 episodes
where the store is the limit (bench/store.py, docs/benchmarks.md).

What does not change:
- a Future resolves only after the step's transaction committed (the child acknowledges after its commit);
- a batch the database refuses is written again one episode at a time (one episode's bad row or lost lease
  fails that episode alone); a lost lease is the fence's LeaseLost (EpisodeStore._fence, run in the child);
- SQLite's WAL is checkpointed by a thread of its own (in the child), never inside the writer's commit.

The child's life:
- it ends by itself when its parent dies, SIGKILL included: its stdin reads EOF (only the parent holds the
  pipe's write end: the fd is close-on-exec, and a fork of the parent closes its copy). On EOF it exits
  without writing what it had not yet committed: nothing of that was acknowledged, and its episodes belong
  to a worker that is gone (the next claim restarts them);
- `close()` (and the writer being garbage collected) sends a stop: the child writes everything before it,
  acknowledges, and exits;
- if the child dies, every pending Future fails with StepWriterDied, one line naming the process and how it
  ended; the next submit starts a new child.
"""

from __future__ import annotations

import itertools
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future, InvalidStateError
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

from forager.store.tables import Episode
from forager.store.writer import MAX_BATCH, SQLITE_AUTOCHECKPOINT, WriteStats, _InsertPlan, step_values
from forager.text import error_line

_HEADER = struct.Struct("<I")  # each frame: its length, then a pickle
_PIPE_BYTES = 1 << 20  # why: a full pipe blocks the submitting thread; 1 MiB holds ~90 steps waiting
_READ_BYTES = 1 << 20
_PROTOCOL = pickle.HIGHEST_PROTOCOL
# why SIGINT ignored first: Ctrl-C reaches the whole process group; the collector handles it and stops us
_CHILD = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
          "from forager.store.writer_process import _main; sys.exit(_main())")
_STOP = None  # the frame that asks the child to write what it has, acknowledge, and exit


class StepWriterDied(RuntimeError):
    """The writer process ended before it acknowledged the step: it may or may not be in the store."""


class StepWriteError(RuntimeError):
    """The database refused the step, with an error that could not be carried back as it was raised."""


# -- the collector's side ---------------------------------------------------------------------------------


class _Child:
    """One writer process and the steps it has not acknowledged yet. Holds no reference to its StepWriter,
    so that a writer nobody uses any more can be collected (which stops its child)."""

    def __init__(self, url: str, max_batch: int, writer: weakref.ref):
        self.writer = writer  # its `stats` get each acknowledgement's latency (replaceable, as bench/ceiling.py does)
        self.lock = threading.Lock()  # pending, alive, the outbox; never held while blocking
        self.pending: dict[int, tuple[Future, float]] = {}
        self.alive = True
        self.stopping = False
        self.outbox: list[bytes] = []  # frames queued while another thread writes
        self.sending = False
        self.ready = threading.Event()  # it has connected to the store
        env = dict(os.environ)
        # why: the child must import this very forager, whatever the collector's working directory
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        # why -c, not -m: forager.store imports this module, and runpy would then run a second copy of it
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True, bufsize=0)
        self.stdin = self.proc.stdin.fileno()
        self.stdout = self.proc.stdout.fileno()
        for fd in (self.stdin, self.stdout):
            try:
                import fcntl
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            except (ImportError, AttributeError, OSError):  # not Linux, or over pipe-max-size: the default
                pass
        # the URL (a password, maybe) goes down the pipe, not on the command line
        self._send(pickle.dumps({"url": url, "max_batch": max_batch}, _PROTOCOL))
        self.receiver = threading.Thread(target=self._receive, name=f"forager-step-acks-{self.proc.pid}", daemon=True)
        self.receiver.start()

    def submit(self, frame_body: tuple, future: Future, seq: int) -> bool:
        """Queue one step; False if this child is gone (the caller starts another)."""
        data = pickle.dumps(frame_body, _PROTOCOL)
        with self.lock:
            # why the check and the queueing under one lock: a step is then either before stop()'s frame in the
            # pipe (written and acknowledged) or refused here (the caller starts another child), never after it
            if not self.alive or self.stopping:
                return False
            self.pending[seq] = (future, time.perf_counter())
            self._queue(data)
        self._flush()
        return True

    def _queue(self, data: bytes) -> None:
        """One frame into the outbox, in order (under self.lock)."""
        self.outbox.append(_HEADER.pack(len(data)))
        self.outbox.append(data)

    def _send(self, data: bytes) -> None:
        with self.lock:
            self._queue(data)
        self._flush()

    def _flush(self) -> None:
        """The outbox into the pipe. Whoever finds nobody writing writes, for everyone who queues meanwhile:
        one write for many steps, and the other episode threads never give up the GIL to a write of their own
        (on 2 cores each hand-over of the GIL among 30 threads cost more than the write)."""
        with self.lock:
            if self.sending or not self.outbox:
                return
            self.sending = True
        while True:
            with self.lock:
                chunks, self.outbox = self.outbox, []
                if not chunks:
                    self.sending = False
                    return
            try:
                _write_all(self.stdin, chunks)
            except OSError:  # the child is gone: its receiver fails what it had not acknowledged
                with self.lock:
                    self.outbox = []
                    self.sending = False
                return

    def stop(self, timeout: float | None = None) -> None:
        """Ask the child to write what it has and exit, and wait for it (and its acknowledgements)."""
        with self.lock:
            self.stopping = True
            self._queue(pickle.dumps(_STOP, _PROTOCOL))
        self._flush()
        self.receiver.join(timeout)

    def _receive(self) -> None:
        """Resolve the Futures the child acknowledges; when its stdout ends, fail the ones it never did."""
        from forager.store.episodes import LeaseLost

        buffer = bytearray()
        fatal = None
        try:
            while True:
                chunk = os.read(self.stdout, _READ_BYTES)
                if not chunk:
                    break
                buffer += chunk
                frames, used = _frames(buffer)
                if used:
                    del buffer[:used]
                for message in frames:
                    if message[0] == "ready":
                        self.ready.set()
                        continue
                    if message[0] == "fatal":
                        fatal = message[1]
                        continue
                    _kind, committed, acks = message
                    self._resolve(committed, acks, LeaseLost)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong here, the pending steps must hear of it
            fatal = fatal or f"its acknowledgements could not be read: {exc.__class__.__name__}: {exc}"
        with self.lock:
            self.alive = False
            pending, self.pending = self.pending, {}
        self.ready.set()  # nobody waits for a child that is gone
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        if not pending and self.stopping:
            self._reap(30)
            return
        code = self._reap(1)
        if code is None:  # alive, but nothing it does can reach anyone now
            fatal = fatal or "it closed its acknowledgements and was killed"
            try:
                self.proc.kill()
            except OSError:
                pass
            self._reap(10)
        error = StepWriterDied(_died(self.proc.pid, code, fatal, len(pending)))
        for future, _submitted in pending.values():
            try:
                future.set_exception(error)
            except InvalidStateError:
                pass

    def _reap(self, timeout: float) -> int | None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _resolve(self, committed: bool, acks: list, lease_lost) -> None:
        done = time.perf_counter()
        resolved = []
        with self.lock:
            for seq, error in acks:
                entry = self.pending.pop(seq, None)
                if entry is not None:
                    resolved.append((entry, error))
        latencies = []
        for (future, submitted), error in resolved:
            latencies.append(done - submitted)
            try:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(_error(error, lease_lost))
            except InvalidStateError:  # cancelled by its caller meanwhile: nobody waits for it
                pass
        writer = self.writer()
        if committed and writer is not None and latencies:
            writer.stats.add(latencies)


def _died(pid: int, code: int | None, fatal: str | None, pending: int) -> str:
    if code is None:
        how = "stopped answering"
    elif code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with status {code}"
    why = f" ({fatal})" if fatal else ""
    return (f"the step writer process {pid} {how}{why} before acknowledging this step ({pending} steps unacknowledged): "
            "it may or may not be in the store").replace("\n", " ")


def _error(error: tuple, lease_lost) -> BaseException:
    kind, payload, text = error
    if kind == "lost":
        return lease_lost(text)
    try:
        exc = pickle.loads(payload) if payload is not None else None
    except Exception:  # noqa: BLE001 - an exception that does not unpickle here: its text still does
        exc = None
    return exc if isinstance(exc, BaseException) else StepWriteError(text)


def _frames(buffer: bytearray) -> tuple[list, int]:
    """The complete frames at the start of `buffer`, unpickled, and how many bytes they took."""
    frames = []
    used = 0
    size = len(buffer)
    view = memoryview(buffer)
    try:
        while size - used >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer, used)
            end = used + _HEADER.size + length
            if end > size:
                break
            frames.append(pickle.loads(view[used + _HEADER.size:end]))
            used = end
    finally:
        view.release()
    return frames, used


_WRITERS: weakref.WeakSet = weakref.WeakSet()


def _forget_children_after_fork() -> None:
    """A fork of the collector must not hold the pipes: the child would miss its parent's death (no EOF)."""
    for writer in list(_WRITERS):
        child, writer._child = writer._child, None
        writer._lock = threading.Lock()
        if child is not None:
            for fd in (child.stdin, child.stdout):
                try:
                    os.close(fd)
                except OSError:
                    pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_children_after_fork)


class ProcessStepWriter:
    """A Store's group-commit writer in a child process; the same `submit` and `close` as writer.StepWriter.

    `lease_seconds()` is read at each submit: the lease the fence gives the episode (the store's setting)."""

    def __init__(self, url: str, dialect, lease_seconds, *, max_batch: int = MAX_BATCH):
        self.url = url
        self.lease_seconds = lease_seconds
        self.max_batch = max_batch
        # plain: rows of str, numbers and datetimes (JSON columns as their text), pickled as they are
        self.plan = _InsertPlan(dialect, plain=True)
        self.stats = WriteStats()
        self._seq = itertools.count()
        self._child: _Child | None = None
        self._lock = threading.Lock()
        self._finalizer = None
        _WRITERS.add(self)

    @property
    def pid(self) -> int | None:
        """The writer process's pid, while one runs."""
        child = self._child
        return child.proc.pid if child is not None and child.alive else None

    def start(self, wait: float | None = None) -> None:
        """Start the writer process now, not at the first step (it takes a second or so to import and connect);
        with `wait`, wait up to that many seconds for it to have connected."""
        child = self._live_child()
        if wait is not None:
            child.ready.wait(wait)

    def submit(self, step, holder: str, **episode_fields) -> Future:
        """Queue one step (and the episode's running totals); the Future resolves to None once it is
        committed, or raises (LeaseLost, the database's error, or StepWriterDied)."""
        row = self.plan.row(step_values(step))
        future: Future = Future()
        seq = next(self._seq)
        body = (seq, step.episode_id, holder, float(self.lease_seconds()), episode_fields, row)
        for _attempt in range(3):
            if self._live_child().submit(body, future, seq):
                return future
        future.set_exception(StepWriterDied("the step writer process could not be started: it ended at once, three times"))
        return future

    def _live_child(self) -> _Child:
        child = self._child
        if child is not None and child.alive and not child.stopping:
            return child
        with self._lock:
            child = self._child
            if child is None or not child.alive or child.stopping:
                child = _Child(self.url, self.max_batch, weakref.ref(self))
                self._child = child
                if self._finalizer is not None:
                    self._finalizer.detach()
                # why: a writer dropped without close() (a Store that goes away) still flushes and ends its child
                self._finalizer = weakref.finalize(self, _stop_soon, child)
                self._finalizer.atexit = False  # at exit the pipe closes anyway, and the child ends on EOF
            return child

    def close(self, timeout: float | None = 60) -> None:
        """Write what is queued, then stop the process (a later submit starts another)."""
        with self._lock:
            child, self._child = self._child, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
        if child is not None:
            child.stop(timeout)


def _stop_soon(child: _Child) -> None:
    """A finalizer may run in a thread that is in the middle of writing a frame: stop from another thread."""
    try:
        threading.Thread(target=child.stop, name="forager-step-writer-stop", daemon=True).start()
    except RuntimeError:  # interpreter shutting down: the child ends on EOF
        pass


# -- the writer process -----------------------------------------------------------------------------------


def _main() -> int:
    acks = os.dup(1)
    os.dup2(2, 1)  # why: a stray print must not land among the acknowledgements
    inbox = _Inbox(0)
    config = inbox.next_frame()
    if config is None:  # the parent died before it said anything
        return 0
    try:
        writer = _ChildWriter(config["url"], acks)
    except Exception as exc:  # noqa: BLE001 - said to the parent, which fails the steps with it
        _write_frame(acks, ("fatal", f"cannot open the store: {error_line(exc, None)}"))
        return 1
    max_batch = int(config.get("max_batch") or MAX_BATCH)
    try:
        _write_frame(acks, ("ready",))
        while True:
            batch, stop, eof = inbox.batch(max_batch)
            if eof:
                return 0  # the parent died: nothing here was acknowledged, and its episodes will be restarted
            if batch:
                writer.write(batch)
            if stop:
                writer.close()
                return 0
    except BrokenPipeError:  # the parent is gone
        return 0
    except Exception as exc:  # noqa: BLE001
        try:
            _write_frame(acks, ("fatal", error_line(exc, None)))
        except OSError:
            pass
        raise


class _Inbox:
    """Frames from the parent: each read takes what the pipe holds, so a batch is everything that waited."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.frames: deque = deque()
        self.eof = False

    def _fill(self, block: bool) -> None:
        while not self.frames and not self.eof:
            chunk = os.read(self.fd, _READ_BYTES)
            if not chunk:
                self.eof = True
                return
            self.buffer += chunk
            frames, used = _frames(self.buffer)
            if used:
                del self.buffer[:used]
            self.frames.extend(frames)
            if not block:
                return

    def next_frame(self):
        self._fill(block=True)
        return self.frames.popleft() if self.frames else None

    def batch(self, limit: int) -> tuple[list, bool, bool]:
        """(steps, stop asked, parent gone): at least one frame unless the pipe ended."""
        self._fill(block=True)
        if not self.frames:
            return [], False, True
        taken, stop = [], False
        while self.frames and len(taken) < limit:
            frame = self.frames.popleft()
            if frame is _STOP:
                stop = True
                break
            taken.append(frame)
        return taken, stop, False


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """Write the chunks, in order, whole (a blocking pipe's write is cut short only by a signal)."""
    for start in range(0, len(chunks), 512):  # under IOV_MAX
        part = chunks[start:start + 512]
        written = os.writev(fd, part)
        size = sum(len(chunk) for chunk in part)
        if written < size:
            rest = memoryview(b"".join(part))[written:]
            while rest:
                rest = rest[os.write(fd, rest):]


def _write_frame(fd: int, message) -> None:
    data = pickle.dumps(message, _PROTOCOL)
    payload = _HEADER.pack(len(data)) + data
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]


class _Fencer:
    """EpisodeStore._fence with the lease the submitting store asked for."""

    def __init__(self):
        from forager.store.episodes import EpisodeStore

        class Fencer(EpisodeStore):
            pass

        self.store = Fencer()

    def __call__(self, connection, held: list, lease_seconds: float) -> dict:
        self.store.lease_seconds = lease_seconds
        return self.store._fence(_AsSession(connection), held)


class _AsSession:
    def __init__(self, connection):
        self._connection = connection

    def connection(self):
        return self._connection


class _ChildWriter:
    """The writer process's database side: one connection, held for its life, used through its driver.

    Each batch is one transaction on the driver's connection: every episode's fence (EpisodeStore's own
    UPDATE statement, compiled once per set of fields, run as one executemany), the steps' INSERT (or COPY),
    the commit. When the fence changed fewer rows than it had episodes (a lease lost), the transaction is
    rolled back and written again through SQLAlchemy with EpisodeStore._fence itself, which says which
    episodes are lost, as the thread writer does."""

    def __init__(self, url: str, acks: int):
        from forager.store import _engine_for

        self.acks = acks
        self.engine = _engine_for(url)
        self.dialect = self.engine.dialect
        self.connection = self.engine.connect()
        self.driver = self.connection.connection.driver_connection
        self.plan = _InsertPlan(self.dialect)
        self.fence = _Fencer()
        self.fences: dict[tuple[str, ...], tuple | None] = {}
        self.pipelined = hasattr(self.driver, "pipeline")  # psycopg
        # the error of _FENCED's check when a lease was lost (nothing to catch where there is no such check)
        self.fence_missed = _division_by_zero() if self.pipelined else ()
        self.commits = 0
        if self.dialect.name == "sqlite":
            # this connection is ours alone: set once, not around each commit as the pooled thread writer must
            self.driver.execute("PRAGMA wal_autocheckpoint=0")
            threading.Thread(target=self._checkpoint, name="forager-wal-checkpoint", daemon=True).start()
        self.driver.commit()

    def close(self) -> None:
        try:
            self.connection.close()
            self.engine.dispose()
        except Exception:  # noqa: BLE001 - everything is committed and acknowledged; the exit closes the rest
            pass

    def _checkpoint(self, every: float = 0.5) -> None:
        """writer.StepWriter._checkpoint's loop, on a connection of its own: PASSIVE, when we committed since."""
        seen = 0
        with self.engine.connect() as connection:
            driver = connection.connection.driver_connection
            driver.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT}")
            while True:
                time.sleep(every)
                if self.commits == seen:
                    continue
                seen = self.commits
                try:
                    driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception:  # noqa: BLE001 - a missed checkpoint is caught up by the next
                    pass

    def write(self, batch: list[tuple]) -> None:
        """Commit a batch, or, refused, each episode's steps apart; acknowledge each step once, after its commit."""
        try:
            lost = self._commit(batch)
        except Exception as exc:  # noqa: BLE001 - one episode's bad row must not fail the others
            self._recover()
            groups = _by_episode(batch)
            if len(groups) > 1:
                for group in groups.values():
                    self.write(group)
                return
            refused = _refusal(exc)
            _write_frame(self.acks, ("acks", False, [(item[0], refused) for item in batch]))
            return
        self.commits += 1
        _write_frame(self.acks, ("acks", True, [(item[0], lost.get(item[1])) for item in batch]))

    def _recover(self) -> None:
        """After a refused transaction: roll back, and connect again if the connection itself is gone (a
        server restart), as the thread writer's pool would (pre-ping); a store that cannot be reached ends
        this process, and the steps it had fail with why."""
        self._rollback()
        try:
            cursor = self.driver.cursor()
            try:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            finally:
                cursor.close()
            self.driver.rollback()
            return
        except Exception:  # noqa: BLE001 - broken: a new one below
            pass
        try:
            self.connection.invalidate()
        except Exception:  # noqa: BLE001
            pass
        self.connection = self.engine.connect()
        self.driver = self.connection.connection.driver_connection
        if self.dialect.name == "sqlite":
            self.driver.execute("PRAGMA wal_autocheckpoint=0")
        self.driver.commit()

    def _rollback(self) -> None:
        for rollback in (self.driver.rollback, self.connection.rollback):
            try:
                rollback()
            except Exception:  # noqa: BLE001 - a connection that cannot roll back: the next write says so
                pass

    def _commit(self, batch: list[tuple]) -> dict[int, tuple]:
        groups = _by_episode(batch)
        fences = []
        for episode_id, group in groups.items():
            fields: dict = {}
            for item in group:
                fields.update(item[4])  # the latest running totals win
            fences.append((episode_id, group[-1][2], fields))
        lease_seconds = batch[-1][3]
        if self._write_fast(fences, lease_seconds, [item[5] for item in batch]):
            return {}
        # some episode is not held any more: EpisodeStore._fence, through SQLAlchemy, says which
        self._rollback()
        lost = self.fence(self.connection, fences, lease_seconds)
        rows = [item[5] for item in batch if item[1] not in lost]
        if rows:
            self.plan.execute_driver(self.driver, rows)
        self.connection.commit()
        return {episode_id: ("lost", None, str(exc)) for episode_id, exc in lost.items()}

    def _write_fast(self, fences: list[tuple[int, str, dict]], lease_seconds: float, rows: list) -> bool:
        """EpisodeStore._fence's UPDATEs (one executemany per set of fields), then the steps' INSERT, on the
        driver, and the commit: True once committed. False when some episode was not updated (a lease lost), or a
        statement needs SQLAlchemy's execution (defaults computed in Python): the caller rolls back and writes
        the batch the Store's way, which says which episodes are lost.

        On PostgreSQL it all goes in one pipeline, one round trip: the UPDATEs, the INSERT, a check that
        every episode of the batch now carries this batch's lease (what only its own fence can have set; a
        division by zero otherwise, which aborts the transaction), and the COMMIT. Each round trip is two
        wake-ups of this process and the server's, which on a busy machine is what a step's latency is made of."""
        from forager.store.episodes import RUNNING
        from forager.store.tables import utcnow

        lease = utcnow() + timedelta(seconds=lease_seconds)  # as EpisodeStore._lease
        groups: dict[tuple[str, ...], list] = {}
        for episode_id, holder, fields in fences:
            groups.setdefault(tuple(sorted(fields)), []).append((episode_id, holder, fields))
        statements = [(self._fence_statement(names), group) for names, group in groups.items()]
        if any(statement is None for statement, _group in statements):
            return False
        cursors = []
        lease_param = None
        try:
            with self.driver.pipeline() if self.pipelined else nullcontext():
                for (sql, order, processors, constants), group in statements:
                    params = []
                    for episode_id, holder, fields in group:
                        values = {**constants, "fence_id": episode_id, "fence_holder": holder, "fence_lease": lease,
                                  **{f"set_{name}": value for name, value in fields.items()}}
                        for key, process in processors:
                            values[key] = process(values[key])
                        lease_param = values["fence_lease"]  # as the driver was given it
                        params.append(tuple(values[key] for key in order) if order is not None else values)
                    cursor = self.driver.cursor()
                    cursors.append((cursor, len(group)))
                    cursor.executemany(sql, params)
                self.plan.execute_driver(self.driver, rows)
                if self.pipelined:
                    cursor = self.driver.cursor()
                    cursors.append((cursor, None))
                    cursor.execute(_FENCED, (len(fences), [episode_id for episode_id, _h, _f in fences],
                                             [holder for _e, holder, _f in fences], RUNNING, lease_param))
                    self.driver.commit()  # in the pipeline: sent with the rest, then the one round trip
                    return True
        except self.fence_missed:  # the check: some episode is held by another worker now
            return False
        finally:
            for cursor, _expected in cursors:
                cursor.close()
        # -1 too (a driver that cannot count): the slow way says
        if not all(cursor.rowcount == expected for cursor, expected in cursors):
            return False
        self.driver.commit()
        return True

    def _fence_statement(self, names: tuple[str, ...]) -> tuple | None:
        if names not in self.fences:
            from forager.store.episodes import _fence_statement

            compiled = _fence_statement(names).compile(dialect=self.dialect)
            if compiled.prefetch or compiled.postfetch or compiled.literal_execute_params:
                self.fences[names] = None
            else:
                order = list(compiled.positiontup) if compiled.positional else None
                processors = [(key, process) for key, process in compiled._bind_processors.items()
                              if process is not None]
                # the statement's own values (the status it must have), as SQLAlchemy would pass them
                constants = {key: value for key, value in compiled.params.items()
                             if key not in ("fence_id", "fence_holder", "fence_lease") and not key.startswith("set_")}
                self.fences[names] = (compiled.string, order, processors, constants)
        return self.fences[names]


def _division_by_zero() -> type[Exception]:
    from psycopg.errors import DivisionByZero

    return DivisionByZero


# PostgreSQL: 1 when every episode of the batch (ids, holders) now carries the batch's lease, else a division by
# zero, which aborts the transaction (not a constant expression: the planner cannot fold it into an error)
_FENCED = (f"SELECT 1 / (count(*) = %s)::int FROM {Episode.__tablename__} WHERE (id, worker) IN "
           "(SELECT * FROM unnest(%s::bigint[], %s::text[])) AND status = %s AND lease_expires_at = %s")


def _by_episode(batch: list[tuple]) -> dict[int, list[tuple]]:
    groups: dict[int, list[tuple]] = {}
    for item in batch:
        groups.setdefault(item[1], []).append(item)
    return groups


def _refusal(exc: BaseException) -> tuple:
    text = error_line(exc, None)
    try:
        payload = pickle.dumps(exc, _PROTOCOL)
        pickle.loads(payload)  # why here: one that cannot come back whole goes as its text
    except Exception:  # noqa: BLE001
        payload = None
    return ("error", payload, text)


if __name__ == "__main__":
    sys.exit(_main())
