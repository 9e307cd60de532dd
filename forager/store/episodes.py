"""Runs, episodes and steps: claiming work, recording each step as it happens, resuming after a crash.

Many workers (threads, processes, hosts) may collect one run on one store. An episode is claimed by one
worker at a time: its row names the worker (FORAGER_WORKER, default host:pid) and a lease
(FORAGER_LEASE_SECONDS, default 600) that every write of the holder extends. A worker is dead when its
pid is gone on this host, or, on any host, when its lease ran out; the next claim takes its episode and
restarts it from scratch: the steps it had are deleted in the same transaction, so a trajectory is
never half old, half new. Every write of an episode is fenced: it names the worker the episode was
claimed for and changes nothing (LeaseLost) once someone else holds it, so a worker that was only slow
can neither add steps to nor finish an episode that another worker took over.

Claims are compare-and-set UPDATEs, correct on SQLite (one writer at a time) and PostgreSQL (row locks,
re-checked after a concurrent commit); on PostgreSQL, `FOR UPDATE SKIP LOCKED` lets concurrent claims
of pending episodes pass each other instead of queueing on the same row.
"""

from __future__ import annotations

import os
import socket
import weakref
from concurrent.futures import Future
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Integer, String, and_, bindparam, cast, delete, func, update
from sqlalchemy.orm import aliased
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from forager.engine.processes import pid_alive
from forager.store.tables import Episode, Run, Step, utcnow
from forager.store.writer import StepWriter
from forager.store.writer_process import ProcessStepWriter

WORKER = os.environ.get("FORAGER_WORKER") or f"{socket.gethostname()}:{os.getpid()}"
LEASE_SECONDS = float(os.environ.get("FORAGER_LEASE_SECONDS") or 600)
PENDING, RUNNING, FINISHED = "pending", "running", "finished"
# what a claim resets: an episode taken up again starts from nothing
_FRESH = {
    "exit_reason": None, "error": None, "reward": None, "resolved": None, "patch": None, "container": None,
    "finished_at": None, "grade": {}, "flags": [], "messages": [], "tools": [], "turns": 0, "prompt_tokens": 0,
    "completion_tokens": 0, "cached_tokens": 0, "llm_seconds": 0.0, "env_seconds": 0.0, "start_seconds": 0.0,
    "grade_seconds": 0.0, "wall_seconds": 0.0, "token_source": None,
}


@lru_cache(maxsize=64)
def _fence_statement(names: tuple[str, ...]):
    """UPDATE of one episode, only while it runs under the named holder: its lease extended (unless `names`
    sets it) and the columns `names` set; parameters fence_id, fence_holder, fence_lease and set_NAME.
    Built once per set of names: making the statement costs more than running it."""
    table = Episode.__table__
    values = {"lease_expires_at": bindparam("fence_lease"), **{name: bindparam(f"set_{name}") for name in names}}
    return (update(table).where(table.c.id == bindparam("fence_id"), table.c.status == RUNNING,
                                table.c.worker == bindparam("fence_holder")).values(**values))


class LeaseLost(InterruptedError):
    """Another worker holds the episode now; this one must drop it.

    An InterruptedError because that is what the collector already treats as "leave this episode alone".
    """


def worker_alive(worker: str | None, lease_expires_at: datetime | None, now: datetime) -> bool:
    """Whether the worker holding an episode may still be working on it."""
    if worker is None:
        return False
    host, _, pid = worker.rpartition(":")
    if host == socket.gethostname() and not pid_alive(pid):
        return False
    if lease_expires_at is None:
        return True
    if lease_expires_at.tzinfo is None:  # SQLite and PostgreSQL hand datetimes back naive (stored in UTC)
        lease_expires_at = lease_expires_at.replace(tzinfo=now.tzinfo)
    return lease_expires_at > now


class EpisodeStore:
    """Mixed into Store: needs `self.session()`. `worker` and `lease_seconds` may be set per instance."""

    worker = WORKER
    lease_seconds = LEASE_SECONDS

    def _lease(self) -> datetime:
        return utcnow() + timedelta(seconds=self.lease_seconds)

    @property
    def _claimed(self) -> dict[int, str]:
        """Episode id -> the worker name this store claimed it under: the fence its writes name."""
        return self.__dict__.setdefault("_claimed_by", {})

    def _ours(self, episode_id: int, holder: str | None) -> bool:
        """Held under the name this very store claimed it with. Not name equality alone: a restarted
        worker may reuse its predecessor's name (a container's hostname and pid), not its episodes."""
        return holder is not None and self._claimed.get(episode_id) == holder

    # -- runs ----------------------------------------------------------------------------------
    def get_or_create_run(self, run: Run) -> tuple[Run, bool]:
        """The run named `run.name`, created if new; (row, created). Workers starting together agree on one row."""
        for attempt in range(2):
            with self.session() as s:
                existing = s.exec(select(Run).where(Run.name == run.name)).first()
                if existing is not None:
                    return existing, False
                s.add(run)
                try:
                    s.commit()
                except IntegrityError:  # another worker created it first: the next look-up finds theirs
                    if attempt:
                        raise
                    continue
                s.refresh(run)
                return run, True
        raise AssertionError("unreachable")

    def finish_run(self, run_id: int) -> None:
        with self.session() as s:
            run = s.get(Run, run_id)
            run.finished_at = utcnow()
            s.add(run)
            s.commit()

    def runs(self) -> list[Run]:
        with self.session() as s:
            return list(s.exec(select(Run).order_by(Run.id)))

    def run_by_name(self, name: str) -> Run | None:
        with self.session() as s:
            return s.exec(select(Run).where(Run.name == name)).first()

    # -- episodes ------------------------------------------------------------------------------
    def plan_episodes(self, run_id: int, task_ids: list[int], attempts: int) -> int:
        """Make sure an episode row exists for every (task, attempt); returns how many this call added."""
        for retry in range(3):
            with self.session() as s:
                have = set(s.exec(select(Episode.task_id, Episode.attempt).where(Episode.run_id == run_id)))
                missing = [(t, a) for t in task_ids for a in range(attempts) if (t, a) not in have]
                s.add_all(Episode(run_id=run_id, task_id=t, attempt=a) for t, a in missing)
                try:
                    s.commit()
                except IntegrityError:
                    # why: another worker planned some of the same rows meanwhile; the whole batch rolled
                    # back, so look again and add what is still missing (never lose our other rows)
                    if retry == 2:
                        raise
                    continue
                return len(missing)
        raise AssertionError("unreachable")

    def claim_episode(self, run_id: int, task_ids: list[int] | None = None, worker: str | None = None) -> Episode | None:
        """Take the next episode nobody works on: one whose worker died (restarted cleanly) or a pending one."""
        worker = worker or self.worker
        now = utcnow()
        scope = [Episode.run_id == run_id] + ([Episode.task_id.in_(task_ids)] if task_ids is not None else [])
        episode = self._claim_abandoned(scope, worker, now) or self._claim_pending(scope, worker, now)
        if episode is not None:
            self._claimed[episode.id] = worker
        return episode

    def _claim_abandoned(self, scope: list, worker: str, now: datetime) -> Episode | None:
        """A running episode whose worker is dead: compare-and-set on the (worker, lease) we saw, so of two
        workers that both saw it dead, one wins; and a holder that extended its lease meanwhile keeps it."""
        with self.session() as s:
            # few rows (at most the workers' concurrency plus the dead ones): read them all, judge in Python
            held = s.exec(select(Episode.id, Episode.worker, Episode.lease_expires_at)
                          .where(*scope, Episode.status == RUNNING).order_by(Episode.attempt, Episode.id)).all()
        for episode_id, holder, lease in held:
            # why: our own episodes are never taken back, even past their lease (a long step)
            if (self._ours(episode_id, holder) and holder == worker) or worker_alive(holder, lease, now):
                continue
            with self.session() as s:
                taken = s.exec(
                    update(Episode)
                    .where(Episode.id == episode_id, Episode.status == RUNNING,
                           Episode.worker.is_not_distinct_from(holder),
                           Episode.lease_expires_at.is_not_distinct_from(lease))
                    .values(**_FRESH, worker=worker, started_at=now, lease_expires_at=self._lease(),
                            restarts=Episode.restarts + 1)
                ).rowcount
                if taken != 1:
                    continue  # another worker took it first, or its holder came back
                # its partial trajectory goes in the same transaction: never half old, half new
                s.exec(delete(Step).where(Step.episode_id == episode_id))
                s.commit()
                return s.get(Episode, episode_id)
        return None

    def _claim_pending(self, scope: list, worker: str, now: datetime) -> Episode | None:
        while True:
            with self.session() as s:
                # why: on PostgreSQL the row stays locked until our commit and other claims skip it
                episode_id = s.exec(
                    select(Episode.id).where(*scope, Episode.status == PENDING)
                    .order_by(Episode.attempt, Episode.id).limit(1).with_for_update(skip_locked=True)
                ).first()
                if episode_id is None:
                    return None
                taken = s.exec(
                    update(Episode).where(Episode.id == episode_id, Episode.status == PENDING)
                    .values(**_FRESH, status=RUNNING, worker=worker, started_at=now, lease_expires_at=self._lease())
                ).rowcount
                if taken == 1:  # 0 only on SQLite, where another worker won between our read and write
                    s.commit()
                    return s.get(Episode, episode_id)

    def _fence(self, s, held: list[tuple[int, str, dict]]) -> dict[int, LeaseLost]:
        """For each (episode, holder, fields): set the fields and extend the lease, in `s`'s transaction, where the
        episode is still running under that holder; the LeaseLost to raise for each one another worker holds
        now (the UPDATE's condition is the fence: atomic on both databases). Nothing is rolled back here.

        One statement per set of field names, executed for all its episodes at once (the group-commit
        writer fences every episode of a batch); their rows are read back only when the count says some
        UPDATE changed nothing, or when the driver cannot count rows of a batched statement."""
        connection = s.connection()
        lease = self._lease()
        groups: dict[tuple[str, ...], list[tuple[int, str, dict]]] = {}
        for episode_id, holder, fields in held:
            groups.setdefault(tuple(sorted(fields)), []).append((episode_id, holder, fields))
        check = not connection.dialect.supports_sane_multi_rowcount
        for names, group in groups.items():
            params = [{"fence_id": episode_id, "fence_holder": holder, "fence_lease": lease,
                       **{f"set_{name}": value for name, value in fields.items()}}
                      for episode_id, holder, fields in group]
            written = connection.execute(_fence_statement(names), params).rowcount
            check = check or written != len(group)
        if not check:
            return {}
        holders = {episode_id: holder for episode_id, holder, _fields in held}
        now = {row[0]: (row[1], row[2]) for row in connection.execute(
            select(Episode.id, Episode.status, Episode.worker).where(Episode.id.in_(list(holders))))}
        return {episode_id: LeaseLost(f"episode {episode_id} is no longer held by {holder} (now: {now.get(episode_id)}); "
                                      "its lease ran out and another worker took it")
                for episode_id, holder in holders.items() if now.get(episode_id) != (RUNNING, holder)}

    def _write_held(self, s, episode_id: int, **fields) -> None:
        """Set fields of an episode this store holds and extend its lease, in `s`'s transaction; LeaseLost if
        another worker holds it now."""
        lost = self._fence(s, [(episode_id, self._claimed.get(episode_id, self.worker), fields)])
        if lost:
            s.rollback()
            raise lost[episode_id]

    def update_episode(self, episode_id: int, **fields) -> Episode:
        """Set fields of a running episode this store holds and extend its lease."""
        with self.session() as s:
            self._write_held(s, episode_id, **fields)
            s.commit()
            return s.get(Episode, episode_id)

    # "process": the group-commit writer in a child process (store/writer_process.py), off the collector's GIL:
    # 1.0-1.6x the thread's steps per second where the store is the limit (bench/store.py); "thread": in a thread
    # of this process (store/writer.py). The CLI sets it from Settings.step_writer, which checks it
    step_writer_kind = os.environ.get("FORAGER_STEP_WRITER") or "process"

    @property
    def step_writer(self) -> StepWriter | ProcessStepWriter:
        """This store's group-commit writer (started on its first step)."""
        writer = self.__dict__.get("_step_writer")
        if writer is None:
            database = self.engine.url.database
            in_memory = self.engine.dialect.name == "sqlite" and database in (None, "", ":memory:")
            if self.step_writer_kind == "thread" or in_memory:  # why in memory: another process cannot see it
                writer = StepWriter(self.session, self._fence, self.engine.dialect)
            elif self.step_writer_kind == "process":
                ref = weakref.ref(self)  # the lease its fence gives, read at each submit; the store not kept alive

                def lease() -> float:
                    return getattr(ref(), "lease_seconds", LEASE_SECONDS)

                writer = ProcessStepWriter(self.engine.url.render_as_string(hide_password=False),
                                           self.engine.dialect, lease)
            else:
                raise ValueError(f"the step writer must be 'process' or 'thread', not {self.step_writer_kind!r} "
                                 "(fix FORAGER_STEP_WRITER)")
            writer = self.__dict__.setdefault("_step_writer", writer)
        return writer

    def submit_step(self, step: Step, **episode_fields) -> Future:
        """Queue one step (and the episode's running totals) for the group-commit writer; the Future resolves
        once they are committed (durable), or raises LeaseLost when another worker holds the episode now."""
        holder = self._claimed.get(step.episode_id, self.worker)
        return self.step_writer.submit(step, holder, **episode_fields)

    def record_step(self, step: Step, **episode_fields) -> None:
        """Commit one step (and the episode's running totals) and return once it is durable."""
        self.submit_step(step, **episode_fields).result()

    def finish_episode(self, episode_id: int, *, last_step_reward: float | None, **fields) -> Episode:
        """Mark an episode finished and put its reward on its last step, in one transaction; only its holder can."""
        with self.session() as s:
            self._write_held(s, episode_id, **fields, status=FINISHED, finished_at=utcnow(), lease_expires_at=None)
            last = s.exec(select(Step).where(Step.episode_id == episode_id).order_by(Step.index.desc())).first()
            if last is not None:
                last.done = True
                last.reward = last_step_reward if last_step_reward is not None else 0.0
                s.add(last)
            s.commit()
            self._claimed.pop(episode_id, None)
            return s.get(Episode, episode_id)

    def regrade_episode(self, episode_id: int, *, last_step_reward: float | None, **fields) -> Episode:
        """Replace a finished episode's grade (and its last step's reward) in one transaction: a repair of
        data graded by an earlier forager, not a worker's write, so no lease is involved."""
        with self.session() as s:
            s.exec(update(Episode).where(Episode.id == episode_id, Episode.status == FINISHED).values(**fields))
            last = s.exec(select(Step).where(Step.episode_id == episode_id).order_by(Step.index.desc())).first()
            if last is not None:
                last.reward = last_step_reward if last_step_reward is not None else 0.0
                s.add(last)
            s.commit()
            return s.get(Episode, episode_id)

    def finished_episodes_with_error(self, prefix: str, run_id: int | None = None) -> list[Episode]:
        """Finished episodes whose grade's error starts with `prefix`, oldest first."""
        # why a LIKE on the JSON text first: a store holds many finished episodes and few of these; the exact
        # test on the decoded grade follows (SQLite and PostgreSQL query JSON differently)
        query = select(Episode).where(
            Episode.status == FINISHED, Episode.patch.is_not(None),
            cast(Episode.grade, String).like(f'%"error":"{prefix}%'),
        ).order_by(Episode.id)
        if run_id is not None:
            query = query.where(Episode.run_id == run_id)
        with self.session() as s:
            return [e for e in s.exec(query) if str((e.grade or {}).get("error") or "").startswith(prefix)]

    def lease_wait(self, run_id: int, task_ids: list[int] | None = None) -> float | None:
        """Seconds until another worker's episode of this run could be claimed (0: one can be now);
        None when every episode is finished or held by this store: nothing left to wait for."""
        query = select(Episode.id, Episode.worker, Episode.lease_expires_at).where(
            Episode.run_id == run_id, Episode.status != FINISHED)
        if task_ids is not None:
            query = query.where(Episode.task_id.in_(task_ids))
        now = utcnow()
        with self.session() as s:
            others = [(w, lease) for episode_id, w, lease in s.exec(query) if not self._ours(episode_id, w)]
        if not others:
            return None
        if any(lease is None or not worker_alive(w, lease, now) for w, lease in others):
            return 0.0
        return min((lease.replace(tzinfo=now.tzinfo) if lease.tzinfo is None else lease) - now
                   for _w, lease in others).total_seconds()

    def episode(self, episode_id: int) -> Episode | None:
        with self.session() as s:
            return s.get(Episode, episode_id)

    def episodes(self, run_id: int | None = None, status: str | None = None) -> list[Episode]:
        query = select(Episode)
        if run_id is not None:
            query = query.where(Episode.run_id == run_id)
        if status is not None:
            query = query.where(Episode.status == status)
        with self.session() as s:
            return list(s.exec(query.order_by(Episode.id)))

    def steps(self, episode_id: int) -> list[Step]:
        with self.session() as s:
            return list(s.exec(select(Step).where(Step.episode_id == episode_id).order_by(Step.index)))

    def step_timings(self, run_id: int) -> list[dict]:
        """The `timings` records of the steps of a run's finished episodes (where each turn's time went)."""
        with self.session() as s:
            return list(s.exec(select(Step.timings).join(Episode, Episode.id == Step.episode_id)
                               .where(Episode.run_id == run_id, Episode.status == FINISHED)))

    def episode_counts(self) -> list[dict]:
        """Per run: episodes by status, resolved, steps (for `forager status`)."""
        with self.session() as s:
            rows = s.exec(
                select(Run.id, Run.name, Run.policy, Run.model, Episode.status, func.count(Episode.id),
                       func.sum(Episode.turns), func.sum(func.coalesce(Episode.resolved, False).cast(Integer)))
                .where(Episode.run_id == Run.id)
                .group_by(Run.id, Run.name, Run.policy, Run.model, Episode.status)
                .order_by(Run.id)
            )
            return [
                {"run_id": r[0], "run": r[1], "policy": r[2], "model": r[3], "status": r[4], "episodes": r[5],
                 "steps": int(r[6] or 0), "resolved": int(r[7] or 0)}
                for r in rows
            ]

    def prefix_breaks(self, run_id: int) -> int:
        """Model calls of a run whose prompt tokens did not extend the previous call's prompt + completion."""
        with self.session() as s:
            return s.exec(
                select(func.count(Step.id)).where(Step.episode_id == Episode.id, Episode.run_id == run_id,
                                                  Step.prefix_ok.is_(False))
            ).one()

    def cache_totals(self, run_id: int) -> tuple[int, int, int, int]:
        """Over a run's finished model calls: (prompt tokens, cached prompt tokens, tokens repeated from the
        previous call's prompt + completion, calls that reported cached tokens)."""
        previous = aliased(Step)
        with self.session() as s:
            row = s.exec(
                select(func.coalesce(func.sum(Step.prompt_tokens), 0), func.coalesce(func.sum(Step.cached_tokens), 0),
                       func.coalesce(func.sum(previous.prompt_tokens + previous.completion_tokens), 0),
                       func.count(Step.cached_tokens))
                .join(Episode, Episode.id == Step.episode_id)
                .outerjoin(previous, and_(previous.episode_id == Step.episode_id, previous.index == Step.index - 1))
                .where(Episode.run_id == run_id, Episode.status == FINISHED, Step.prompt_tokens > 0)
            ).one()
        return tuple(int(value) for value in row)


__all__ = ["FINISHED", "LEASE_SECONDS", "PENDING", "RUNNING", "WORKER", "EpisodeStore", "LeaseLost", "worker_alive"]
