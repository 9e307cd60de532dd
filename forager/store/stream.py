"""Finished episodes with their steps, streamed for export: a page of episodes at a time, filters in SQL.

Pages are keyset queries (`episode.id > last`), each in its own short transaction, so memory stays
bounded by one page whatever the store holds, and a collector writing at the same time is never
blocked by a long-open read. Steps are read as plain rows holding only the columns the caller asks
for (the JSON columns are the bulk of a store; an SFT export never needs the token ids).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Text, TypeDecorator, func, or_, type_coerce
from sqlmodel import select

from forager.store.episodes import FINISHED
from forager.store.tables import Episode, Image, Repo, Run, Step, Task


class _FastJson(TypeDecorator):
    """A JSON column read with orjson: decoding token ids and logprobs is most of an export's time."""

    impl = Text
    cache_ok = True

    def process_result_value(self, value, dialect):
        if not isinstance(value, str):  # PostgreSQL's driver has decoded it already
            return value
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:  # NaN or Infinity, which Python's json writes and orjson refuses
            return json.loads(value)


class EpisodeFilters(BaseModel):
    """Which finished episodes an export takes; every field is one SQL condition (None: no condition)."""

    run: str | None = Field(default=None, description="run name")
    repo: str | None = Field(default=None, description="repository name, URL, or the task's repo name")
    kind: str | None = Field(default=None, description="task kind: mutate-fix or issue-fix")
    resolved_only: bool = False
    min_reward: float | None = None
    exit_reasons: list[str] = Field(default_factory=list)

    def conditions(self) -> list[tuple[str, object]]:
        """(filter name, WHERE clause) in the order their drops are counted."""
        found = []
        if self.run is not None:
            found.append(("run", Run.name == self.run))
        if self.repo is not None:
            found.append(("repo", or_(Repo.name == self.repo, Repo.url == self.repo, Task.repo_name == self.repo)))
        if self.kind is not None:
            found.append(("kind", Task.kind == self.kind))
        if self.resolved_only:
            found.append(("resolved_only", Episode.resolved.is_(True)))
        if self.min_reward is not None:
            found.append(("min_reward", Episode.reward >= self.min_reward))
        if self.exit_reasons:
            found.append(("exit_reason", Episode.exit_reason.in_(self.exit_reasons)))
        return found


class EpisodeBundle(BaseModel):
    """One finished episode and everything an export row is made from.

    `steps` are in order. From the store they are SQL rows carrying only the columns the export
    asked for, read by the same attribute names as `Step` (building 100k ORM objects a second
    would cost more than the export itself); tests may pass real `Step` objects.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    run: Run
    episode: Episode
    task: Task
    repo: str
    image_tag: str | None = None
    steps: Sequence[Step]


def _joined(query):
    return (query.join(Run, Run.id == Episode.run_id).join(Task, Task.id == Episode.task_id)
            .join(Repo, Repo.id == Task.repo_id).where(Episode.status == FINISHED))


def filter_drops(store, filters: EpisodeFilters) -> tuple[int, dict[str, int]]:
    """Finished episodes in the store, and how many each filter removed from what the ones before it left."""
    drops: dict[str, int] = {}
    applied: list = []
    with store.session() as s:
        before = s.exec(_joined(select(func.count(Episode.id)))).one()
        finished = before
        for name, condition in filters.conditions():
            applied.append(condition)
            after = s.exec(_joined(select(func.count(Episode.id))).where(*applied)).one()
            drops[name], before = before - after, after
    return finished, drops


def _fast(column):
    return type_coerce(column, _FastJson).label(column.name) if isinstance(column.type, JSON) else column


def stream_bundles(store, filters: EpisodeFilters, step_columns: Sequence[str], page: int = 64) -> Iterator[EpisodeBundle]:
    """Finished episodes matching `filters`, in id order, each with its steps (only `step_columns`)."""
    columns = [_fast(Step.__table__.c[name]) for name in dict.fromkeys(["episode_id", *step_columns])]
    conditions = [condition for _name, condition in filters.conditions()]
    runs: dict[int, Run] = {}
    last = 0
    while True:
        with store.session() as s:
            query = (_joined(select(Episode, Task, Repo.name, Image.tag))
                     .join(Image, Image.id == Task.image_id, isouter=True)
                     .where(Episode.id > last, *conditions).order_by(Episode.id).limit(page))
            episodes = s.exec(query).all()
            if not episodes:
                return
            ids = [episode.id for episode, *_ in episodes]
            for run_id in {episode.run_id for episode, *_ in episodes} - runs.keys():
                runs[run_id] = s.get(Run, run_id)
            by_episode: dict[int, list] = {episode_id: [] for episode_id in ids}
            rows = s.connection().execute(
                select(*columns).where(Step.episode_id.in_(ids)).order_by(Step.episode_id, Step.index)).all()
            for row in rows:
                by_episode[row.episode_id].append(row)
        last = ids[-1]
        for episode, task, repo, tag in episodes:
            yield EpisodeBundle.model_construct(run=runs[episode.run_id], episode=episode, task=task, repo=repo,
                                                image_tag=tag, steps=by_episode[episode.id])


__all__ = ["EpisodeFilters", "EpisodeBundle", "filter_drops", "stream_bundles"]
