"""Group commit: the steps of many episodes written in one transaction, each acknowledged once durable.

An episode thread hands its step to `StepWriter.submit` and goes on with its next model call; one writer
thread takes every step that is waiting, writes them together (a fenced UPDATE per episode, then one
multi-row INSERT), commits, and only then resolves each step's acknowledgement (a Future). One commit
(one fsync of SQLite's WAL, one PostgreSQL commit) serves every step that arrived while the previous
commit ran, so the batch grows with the load and a lone step still goes at once. A kill -9 loses no
acknowledged step: a Future is resolved only after its transaction committed. What it can lose (steps
submitted, not yet acknowledged) belongs to a running episode, which the next claim restarts from
nothing anyway.

A batch the database refuses is written again one episode at a time, so one episode's bad row (or its
lost lease) fails that episode alone.

This module's StepWriter does it in a thread of the collector (FORAGER_STEP_WRITER=thread, and always for an
in-memory SQLite store, which another process cannot see); by default the same group commit runs in a process
of its own (writer_process.py: the database work off the collector's GIL). The row conversions (_InsertPlan)
are shared by both.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import JSON, insert

from forager.store.tables import Step

# why a cap: one transaction should stay short enough that a lone step behind it is not kept waiting
MAX_BATCH = 512
_STOP = object()
SQLITE_AUTOCHECKPOINT = 1000  # SQLite's default, what other connections keep
_STEP_COLUMNS = [column.key for column in Step.__table__.columns if column.key != "id"]


@dataclass
class _Pending:
    episode_id: int
    holder: str
    row: tuple | dict  # the step's parameters, converted for the driver (_InsertPlan.row)
    episode_fields: dict
    future: Future
    submitted: float = field(default_factory=time.perf_counter)


def step_values(step: Step) -> dict:
    """A step's column values for the INSERT (no ORM state, no refresh: nothing reads its id back)."""
    held = step.__dict__  # why: an instrumented attribute read per column costs more than the dict's
    return {key: held[key] if key in held else getattr(step, key) for key in _STEP_COLUMNS}


class _InsertPlan:
    """The steps' INSERT compiled once for a database, and its columns' type conversions (JSON text, booleans,
    datetimes) as SQLAlchemy would apply them: rows then go straight to the driver's executemany, which
    spares SQLAlchemy's per-row, per-column work (most of a batch's time before)."""

    def __init__(self, dialect, *, plain: bool = False):
        compiled = insert(Step.__table__).compile(dialect=dialect, column_keys=_STEP_COLUMNS)
        self.sql = compiled.string
        self.positional = compiled.positional
        names = list(compiled.positiontup) if compiled.positional else list(_STEP_COLUMNS)
        processors = dict(compiled._bind_processors)
        if plain:
            # rows that pickle as they are (writer_process.py): JSON columns as their text, where a driver
            # would take a wrapper that serializes later (psycopg's Json); the same text, the same NULL rules
            serializer = getattr(dialect, "_json_serializer", None) or json.dumps
            for column in Step.__table__.columns:
                if isinstance(column.type, JSON) and column.key in processors:
                    processors[column.key] = column.type._make_bind_processor(None, serializer)
        self.columns = [(name, processors.get(name)) for name in names]
        # why COPY on PostgreSQL: psycopg's executemany sends the rows one statement at a time (pipelined);
        # COPY streams them all in one command, several times faster for a batch
        self.copy = dialect.name == "postgresql"
        self.driver_sql = self.sql  # execute_driver's statement: its executemany
        if self.copy:
            quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
            self.sql = f"COPY {Step.__tablename__} ({quoted}) FROM STDIN"
            self.positional = True
            # why not COPY there: in the writer process the INSERTs go in one pipeline with the fence's UPDATEs
            # (one round trip, the statement prepared once), which took less time, client and server, than
            # the UPDATEs then a COPY (bench/store.py)
            marks = ", ".join(["%s"] * len(names))
            self.driver_sql = f"INSERT INTO {Step.__tablename__} ({quoted}) VALUES ({marks})"

    def execute(self, connection, rows: list) -> None:
        if not self.copy:
            connection.exec_driver_sql(self.sql, rows)  # the driver's executemany
            return
        driver = connection.connection.driver_connection  # the same connection, so the same transaction
        with driver.cursor() as cursor, cursor.copy(self.sql) as copy:
            for row in rows:
                copy.write_row(row)

    def execute_driver(self, driver, rows: list) -> None:
        """The rows' INSERT on the driver's own connection (writer_process.py), in its transaction: one
        executemany (in PostgreSQL's pipeline when the caller opened one)."""
        cursor = driver.cursor()
        try:
            cursor.executemany(self.driver_sql, rows)
        finally:
            cursor.close()

    def row(self, values: dict) -> tuple | dict:
        """One step's parameters, converted as the database's driver takes them."""
        converted = [convert(values[name]) if convert is not None else values[name] for name, convert in self.columns]
        if self.positional:
            return tuple(converted)
        return dict(zip([name for name, _convert in self.columns], converted, strict=True))


class WriteStats:
    """Latencies from submit to acknowledgement and batch sizes, of the last `keep` steps (thread-safe)."""

    def __init__(self, keep: int = 200_000):
        self.lock = threading.Lock()
        self.latencies: deque[float] = deque(maxlen=keep)
        self.batches = 0
        self.steps = 0

    def add(self, latencies: list[float]) -> None:
        with self.lock:
            self.latencies.extend(latencies)
            self.batches += 1
            self.steps += len(latencies)

    def snapshot(self) -> dict:
        with self.lock:
            ordered = sorted(self.latencies)
            batches, steps = self.batches, self.steps
        if not ordered:
            return {"steps": steps, "batches": batches}

        def quantile(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

        return {"steps": steps, "batches": batches, "mean_batch": round(steps / batches, 1),
                "write_ms_p50": quantile(0.50), "write_ms_p99": quantile(0.99), "write_ms_max": quantile(1.0)}


class StepWriter:
    """The writer thread of one Store. `fence(session, [(episode_id, holder, fields)])` extends each episode's
    lease and sets its fields where `holder` still holds it, and returns {episode_id: LeaseLost} for the
    others (store/episodes.py EpisodeStore._fence)."""

    def __init__(self, session_factory: Callable, fence: Callable, dialect, *, max_batch: int = MAX_BATCH):
        self.session = session_factory
        self.fence = fence
        # why here, not in the writer thread: each step's row is converted by the thread that submits it, which
        # runs while the writer waits in the database (the driver releases the GIL), so on several cores the
        # conversions no longer queue behind the writes
        self.plan = _InsertPlan(dialect)
        # SQLite: the WAL is copied into the database by a thread of its own, not by whichever commit finds
        # it over 1,000 pages: that commit was the writer's, and a checkpoint in it held every step of the
        # batch (p99 of a step's write 78 ms with them in the writer, 18 ms without; bench/store.py)
        self.checkpoints = dialect.name == "sqlite"
        self.max_batch = max_batch
        self.stats = WriteStats()
        # each writer thread has a queue of its own, ended by the stop close() puts in it; a step queued after
        # that stop goes to the next thread's queue (the lock orders the two), so none waits in a queue
        # nobody reads any more (two collects sharing one Store: one's end closes while the other writes)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, step: Step, holder: str, **episode_fields) -> Future:
        """Queue one step (and the episode's running totals); the Future resolves to None once it is
        committed, or raises (LeaseLost, or the database's error)."""
        future: Future = Future()
        pending = _Pending(step.episode_id, holder, self.plan.row(step_values(step)), episode_fields, future)
        with self._lock:
            self._started_locked().put(pending)
        return future

    def start(self) -> None:
        """Start the writer thread now, not at the first step."""
        with self._lock:
            self._started_locked()

    def _started_locked(self) -> queue.SimpleQueue:
        """The queue of a live writer thread, started here if there is none (under self._lock)."""
        if self._thread is None or not self._thread.is_alive():
            self._queue = queue.SimpleQueue()
            # daemon: a process ending with steps in the queue loses only unacknowledged ones
            self._thread = threading.Thread(target=self._run, args=(self._queue,), name="forager-step-writer",
                                            daemon=True)
            self._thread.start()
            if self.checkpoints:
                threading.Thread(target=self._checkpoint, args=(self._thread,), name="forager-wal-checkpoint",
                                 daemon=True).start()
        return self._queue

    def close(self) -> None:
        """Write what is queued, then stop the thread (a later submit starts another)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None or not thread.is_alive():
                return
            self._queue.put(_STOP)
        thread.join()

    def _run(self, steps: queue.SimpleQueue) -> None:
        while True:
            item = steps.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = steps.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            try:
                self._write(batch)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one batch
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
            if stop:
                return

    def _checkpoint(self, writer: threading.Thread, every: float = 0.5) -> None:
        """While the writer lives: copy the WAL into the database when the writer committed since the last
        time. PASSIVE waits for no one and stops no one (the writer goes on appending meanwhile); the WAL
        starts over from its beginning once a checkpoint has caught up."""
        seen = 0
        while writer.is_alive():
            time.sleep(every)
            if self.stats.batches == seen:
                continue
            seen = self.stats.batches
            try:
                with self.session() as s:
                    s.connection().exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # noqa: BLE001 - a missed checkpoint is caught up by the next (or by SQLite's own)
                pass

    def _write(self, batch: list[_Pending]) -> None:
        try:
            lost = self._commit(batch)
        except Exception as exc:  # noqa: BLE001 - one episode's bad row must not fail the others: write them apart
            groups = _by_episode(batch)
            if len(groups) > 1:
                for group in groups.values():
                    self._write(group)
                return
            for pending in batch:  # this episode's own failure: its writes hear it
                pending.future.set_exception(exc)
            return
        done = time.perf_counter()
        for pending in batch:
            if pending.episode_id in lost:
                pending.future.set_exception(lost[pending.episode_id])
            else:
                pending.future.set_result(None)
        self.stats.add([done - pending.submitted for pending in batch])

    def _commit(self, batch: list[_Pending]) -> dict[int, Exception]:
        """One transaction: each episode's fence, then the INSERT of the steps of episodes still held."""
        groups = _by_episode(batch)
        with self.session() as s:
            fences = []
            for episode_id, group in groups.items():
                fields: dict = {}
                for pending in group:
                    fields.update(pending.episode_fields)  # the latest running totals win
                fences.append((episode_id, group[-1].holder, fields))
            lost = self.fence(s, fences)
            rows = [pending.row for pending in batch if pending.episode_id not in lost]
            if rows:
                self.plan.execute(s.connection(), rows)
            if self.checkpoints:  # this commit leaves the WAL to the checkpoint thread; the connection is pooled
                s.connection().exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            s.commit()
            if self.checkpoints:
                s.connection().exec_driver_sql(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT}")
        return lost


def _by_episode(batch: list[_Pending]) -> dict[int, list[_Pending]]:
    groups: dict[int, list[_Pending]] = {}
    for pending in batch:
        groups.setdefault(pending.episode_id, []).append(pending)
    return groups


__all__ = ["MAX_BATCH", "StepWriter", "WriteStats", "step_values"]
