"""Runs, episodes and steps: claiming work, recording each step as it happens, resuming after a crash.

An episode is claimed by one worker at a time: its row names the worker (host:pid) and a lease that
every recorded step extends. A worker that died (its pid is gone on this host, or its lease ran out)
loses the episode, and the next claim restarts it from scratch: the steps it had are deleted in the
same transaction, so a trajectory is never half old, half new, and never duplicated.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import Integer, delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from forager.build.engine import pid_alive
from forager.store.tables import Episode, Run, Step, utcnow

WORKER = f"{socket.gethostname()}:{os.getpid()}"
PENDING, RUNNING, FINISHED = "pending", "running", "finished"


def worker_alive(worker: str | None, lease_expires_at: datetime | None, now: datetime) -> bool:
    """Whether the worker holding an episode may still be working on it."""
    if worker is None:
        return False
    host, _, pid = worker.rpartition(":")
    if host == socket.gethostname() and not pid_alive(pid):
        return False
    if lease_expires_at is None:
        return True
    if lease_expires_at.tzinfo is None:  # SQLite hands datetimes back naive (they were stored in UTC)
        lease_expires_at = lease_expires_at.replace(tzinfo=now.tzinfo)
    return lease_expires_at > now


class EpisodeStore:
    """Mixed into Store: needs `self.session()`."""

    lease_seconds = 600

    # -- runs ----------------------------------------------------------------------------------
    def get_or_create_run(self, run: Run) -> tuple[Run, bool]:
        """The run named `run.name`, created if new; (row, created)."""
        for attempt in range(2):
            with self.session() as s:
                existing = s.exec(select(Run).where(Run.name == run.name)).first()
                if existing is not None:
                    return existing, False
                s.add(run)
                try:
                    s.commit()
                except IntegrityError:  # another worker created it first
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
        """Make sure an episode row exists for every (task, attempt); returns how many were added."""
        with self.session() as s:
            have = {
                (task_id, attempt)
                for task_id, attempt in s.exec(select(Episode.task_id, Episode.attempt).where(Episode.run_id == run_id))
            }
            added = 0
            for task_id in task_ids:
                for attempt in range(attempts):
                    if (task_id, attempt) not in have:
                        s.add(Episode(run_id=run_id, task_id=task_id, attempt=attempt))
                        added += 1
            try:
                s.commit()
            except IntegrityError:  # another worker planned the same run at the same moment
                s.rollback()
                return 0
            return added

    def claim_episode(self, run_id: int, task_ids: list[int] | None = None, worker: str = WORKER) -> Episode | None:
        """Take the next episode nobody works on: pending, or running under a dead worker (restarted cleanly)."""
        now = utcnow()
        with self.session() as s:
            query = (
                select(Episode)
                .where(Episode.run_id == run_id, Episode.status != FINISHED)
                .order_by(Episode.attempt, Episode.id)
                # why: on PostgreSQL, concurrent workers skip rows another one is claiming
                .with_for_update(skip_locked=True)
            )
            if task_ids is not None:
                query = query.where(Episode.task_id.in_(task_ids))
            for episode in s.exec(query):
                if episode.status == RUNNING and worker_alive(episode.worker, episode.lease_expires_at, now):
                    continue
                if episode.status == RUNNING:  # interrupted: its partial trajectory goes, the episode starts over
                    s.exec(delete(Step).where(Step.episode_id == episode.id))
                    episode.restarts += 1
                self._reset(episode)
                episode.status, episode.worker = RUNNING, worker
                episode.started_at = now
                episode.lease_expires_at = now + timedelta(seconds=self.lease_seconds)
                s.add(episode)
                s.commit()
                s.refresh(episode)
                return episode
        return None

    @staticmethod
    def _reset(episode: Episode) -> None:
        for name in ("exit_reason", "error", "reward", "resolved", "patch", "container", "finished_at"):
            setattr(episode, name, None)
        episode.grade, episode.messages, episode.tools = {}, [], []
        for name in ("turns", "prompt_tokens", "completion_tokens", "cached_tokens"):
            setattr(episode, name, 0)
        for name in ("llm_seconds", "env_seconds", "start_seconds", "grade_seconds", "wall_seconds"):
            setattr(episode, name, 0.0)

    def update_episode(self, episode_id: int, **fields) -> Episode:
        """Set fields of an episode and extend its lease."""
        with self.session() as s:
            episode = s.get(Episode, episode_id)
            for name, value in fields.items():
                setattr(episode, name, value)
            if episode.status == RUNNING:
                episode.lease_expires_at = utcnow() + timedelta(seconds=self.lease_seconds)
            s.add(episode)
            s.commit()
            s.refresh(episode)
            return episode

    def record_step(self, step: Step, **episode_fields) -> Step:
        """Commit one step (and the episode's running totals) in one transaction, before the next model call."""
        with self.session() as s:
            s.add(step)
            episode = s.get(Episode, step.episode_id)
            for name, value in episode_fields.items():
                setattr(episode, name, value)
            episode.lease_expires_at = utcnow() + timedelta(seconds=self.lease_seconds)
            s.add(episode)
            s.commit()
            s.refresh(step)
            return step

    def finish_episode(self, episode_id: int, *, last_step_reward: float | None, **fields) -> Episode:
        """Mark an episode finished and put its reward on its last step, in one transaction."""
        with self.session() as s:
            episode = s.get(Episode, episode_id)
            for name, value in fields.items():
                setattr(episode, name, value)
            episode.status, episode.finished_at, episode.lease_expires_at = FINISHED, utcnow(), None
            last = s.exec(select(Step).where(Step.episode_id == episode_id).order_by(Step.index.desc())).first()
            if last is not None:
                last.done = True
                last.reward = last_step_reward if last_step_reward is not None else 0.0
                s.add(last)
            s.add(episode)
            s.commit()
            s.refresh(episode)
            return episode

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


__all__ = ["EpisodeStore", "WORKER", "PENDING", "RUNNING", "FINISHED", "worker_alive"]
