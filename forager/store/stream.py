"""Finished episodes with their steps, streamed for export: a page of episodes at a time, filters in SQL.

Pages are keyset queries (`episode.id > last`), each in its own short transaction, so memory stays
bounded by one page whatever the store holds, and a collector writing at the same time is never
blocked by a long-open read. Steps are read as plain rows holding only the columns the caller asks
for (the JSON columns are the bulk of a store; an SFT export never needs the token ids).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Collection, Iterator, Sequence
from functools import lru_cache
from itertools import repeat

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, String, Text, cast, func, or_, type_coerce
from sqlmodel import select

from forager.jsontext import RawJson, parse
from forager.store.episodes import FINISHED
from forager.store.tables import Episode, Image, Repo, Run, Step, Task


class EpisodeFilters(BaseModel):
    """Which finished episodes an export takes; every field is one SQL condition (None: no condition)."""

    run: str | None = Field(default=None, description="run name")
    repo: str | None = Field(default=None, description="repository name, URL, or the task's repo name")
    kind: str | None = Field(default=None, description="task kind: mutate-fix or issue-fix")
    resolved_only: bool = False
    min_reward: float | None = None
    exit_reasons: list[str] = Field(default_factory=list)
    drop_flagged: bool = Field(default=False, description="leave out episodes with a reward-hacking flag")
    task_ids: list[int] | None = Field(default=None, description="only these tasks (integrity filters pick them)")

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
        if self.drop_flagged:  # why as text: the same test on SQLite's and PostgreSQL's JSON
            found.append(("flagged", or_(Episode.flags.is_(None), cast(Episode.flags, String).in_(("[]", "null")))))
        if self.task_ids is not None:
            found.append(("task", Task.id.in_(self.task_ids)))
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


# why: SQLite copies each page it reads into its own cache; with the file memory-mapped, reading the
# wide step rows (a step's token ids lie before its observation, so a read walks past them) uses the
# OS page cache directly, about half the time. It changes how the pooled connection reads, not what;
# SQLite caps the size at its compile-time limit (2 GB by default).
_SQLITE_MMAP_BYTES = 1 << 34


@lru_cache(maxsize=64)
def _step_row_type(names: tuple[str, ...]) -> type:
    """A plain tuple type with `Step`'s attribute names: one small object per step, no ORM state."""
    return namedtuple("StepRow", names, rename=False)


def _as_text(column, dialect: str):
    # why: PostgreSQL's driver decodes a json column whatever SQLAlchemy's type says; a cast in SQL makes
    # it send the text, which a json (not jsonb) column keeps exactly as written
    return cast(column, Text) if dialect == "postgresql" else type_coerce(column, Text)


def _raw(text: str | None) -> RawJson | None:
    return None if text is None else RawJson(text)


def _parsed(texts: Sequence[str | None]) -> list:
    """A column's JSON texts decoded: orjson straight from C's loop, the careful parse if one fails."""
    try:
        return list(map(orjson.loads, texts))
    except (orjson.JSONDecodeError, TypeError):  # NaN or Infinity that orjson refuses, or NULL
        return list(map(parse, texts))


def _read_steps(connection, ids: list[int], names: tuple[str, ...], raw: frozenset[str]) -> dict[int, list]:
    """The steps of these episodes, in order, as StepRow tuples of `names`: JSON columns decoded, those
    in `raw` left as their stored text (RawJson)."""
    table = Step.__table__
    dialect = connection.dialect.name
    is_json = [isinstance(table.c[name].type, JSON) for name in names]
    # why JSON columns as text: skips SQLAlchemy's per-value JSON processing (decoded below, a column at
    # a time, with orjson); other columns keep their types' processing (SQLite's 0/1 booleans become bools)
    columns = [table.c.episode_id] + [_as_text(table.c[name], dialect).label(name) if json else table.c[name]
                                      for name, json in zip(names, is_json, strict=True)]
    by_episode: dict[int, list] = {episode_id: [] for episode_id in ids}
    query = select(*columns).where(Step.episode_id.in_(ids)).order_by(Step.episode_id, Step.index)
    rows = connection.execute(query).all()  # fetchall: one call, not one per row
    if not rows:
        return by_episode
    # why a column at a time: map() runs each conversion in C's loop, faster than a Python loop over
    # the rows
    episode_ids, *values = zip(*rows, strict=True)
    values = [(list(map(_raw, column)) if name in raw else _parsed(column)) if json else column
              for name, json, column in zip(names, is_json, values, strict=True)]
    make = _step_row_type(names)
    steps = map(make, *values) if values else repeat(make(), len(episode_ids))  # no columns: the steps still count
    for episode_id, step in zip(episode_ids, steps, strict=True):
        by_episode[episode_id].append(step)
    return by_episode


def _bounds(first_id: int, last_id: int | None) -> list:
    return [Episode.id > first_id] + ([Episode.id <= last_id] if last_id is not None else [])


def split_ids(store, filters: EpisodeFilters, matching: int, parts: int, min_per_part: int = 1) -> list[tuple[int, int | None]]:
    """Up to `parts` disjoint, ordered (after id, up to id) ranges of the `matching` episodes the filters
    let through (as `filter_drops` counted them), of about equal counts, for exporting in parallel:
    fewer where a part would hold under `min_per_part`."""
    conditions = [condition for _name, condition in filters.conditions()]
    parts = max(1, min(parts, matching // max(1, min_per_part)))
    with store.session() as s:
        # the last id of each part but the last one: the (matching * part // parts)-th matching episode
        cuts = [s.exec(_joined(select(Episode.id)).where(*conditions).order_by(Episode.id)
                       .offset(matching * part // parts - 1).limit(1)).one() for part in range(1, parts)]
    edges = [0, *cuts]
    return [(after, upto) for after, upto in zip(edges, [*edges[1:], None], strict=True)]


def stream_bundles(store, filters: EpisodeFilters, step_columns: Sequence[str], page: int = 64,
                   first_id: int = 0, last_id: int | None = None, raw_columns: Collection[str] = ()) -> Iterator[EpisodeBundle]:
    """Finished episodes matching `filters`, in id order, each with its steps (only `step_columns`).

    Only episodes with first_id < id <= last_id (no upper bound when None): a range of `split_ids`.
    JSON columns named in `raw_columns` come as their stored text (store.jsontext.RawJson), not decoded.
    """
    raw = frozenset(raw_columns)
    names = tuple(name for name in dict.fromkeys(step_columns) if name != "episode_id")
    conditions = [condition for _name, condition in filters.conditions()]
    runs: dict[int, Run] = {}
    last = first_id
    while True:
        with store.session() as s:
            query = (_joined(select(Episode, Task, Repo.name, Image.tag))
                     .join(Image, Image.id == Task.image_id, isouter=True)
                     .where(*_bounds(last, last_id), *conditions).order_by(Episode.id).limit(page))
            episodes = s.exec(query).all()
            if not episodes:
                return
            ids = [episode.id for episode, *_ in episodes]
            for run_id in {episode.run_id for episode, *_ in episodes} - runs.keys():
                runs[run_id] = s.get(Run, run_id)
            connection = s.connection()
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")
            by_episode = _read_steps(connection, ids, names, raw)
        last = ids[-1]
        for episode, task, repo, tag in episodes:
            yield EpisodeBundle.model_construct(run=runs[episode.run_id], episode=episode, task=task, repo=repo,
                                                image_tag=tag, steps=by_episode[episode.id])


__all__ = ["EpisodeBundle", "EpisodeFilters", "filter_drops", "split_ids", "stream_bundles"]
