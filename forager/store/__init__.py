"""The store: SQLModel tables behind a small interface. SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, create_engine, select

from forager.models import BaselineEntry
from forager.store import migrations
from forager.store.episodes import EpisodeStore
from forager.store.traces import TraceStore
from forager.jsontext import parse
from forager.text import error_line
from forager.store.tables import (
    BaselineTest, CallMap, Episode, Image, Repo, Run, Step, Task, Trace, TracedTest, utcnow,
)

__all__ = [
    "Store", "Repo", "Image", "BaselineTest", "CallMap", "Task", "Run", "Episode", "Step", "TracedTest", "Trace",
]


def _json_text(value) -> str:
    """JSON columns' stored text: compact (token-id lists are the bulk of a store), ASCII-only (a lone
    surrogate in a tool's output is kept as an escape, not refused by the database's UTF-8).

    orjson writes the common case (token ids, logprobs: ASCII, no null) about ten times faster than json;
    anything else, text it would write differently (non-ASCII, NaN as null) or refuse, goes to json."""
    try:
        text = orjson.dumps(value)
    except TypeError:  # a lone surrogate, a non-string key: json's answer (or its error)
        return json.dumps(value, separators=(",", ":"))
    if b"null" in text or not text.isascii():
        return json.dumps(value, separators=(",", ":"))
    return text.decode()


# why orjson to read JSON columns: several times faster than json for the messages an export loads
JSON_CODEC = {"json_serializer": _json_text, "json_deserializer": parse}


def _engine_for(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **JSON_CODEC)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **JSON_CODEC)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record):  # why: WAL lets readers and one writer work at once
        cur = dbapi_conn.cursor()
        # why 16 KiB pages (a new file only; an existing one keeps its size): a step row is ~10-20 KB,
        # and fewer overflow pages per row made the export benchmark's reads ~15% faster
        cur.execute("PRAGMA page_size=16384")
        cur.execute("PRAGMA journal_mode=WAL")
        # why NORMAL: in WAL mode a commit is then written to the log without an fsync of its own (the log is
        # synced at checkpoints). A committed transaction survives the process being killed (kill -9) as
        # FULL's does; a power cut or OS crash may undo the last commits, never corrupt the file. It is what
        # lets one commit take ~1 ms and the group-commit writer reach thousands of steps a second; a store
        # that must survive power loss belongs on PostgreSQL (docs/limits.md).
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


class Store(EpisodeStore, TraceStore):
    """Everything forager persists goes through here; each method is one short transaction."""

    def __init__(self, url: str):
        try:
            self.engine = _engine_for(url)
            migrations.upgrade(self.engine)  # a store made by an earlier forager is upgraded in place
        except migrations.Refused as exc:
            raise ValueError(f"store {url!r} {exc}") from exc
        except Exception as exc:  # a bad URL or unreachable server: one clear line
            raise ValueError(f"cannot open store {url!r}: {error_line(exc, None)}") from exc
        self.url = url

    def close(self) -> None:
        """Write the steps still queued and stop the step writer (a writer process ends), then close the pooled
        connections. Why: a program that opens many stores (a notebook, a benchmark, a test session) would
        otherwise hold their connections until the garbage collector found them, and PostgreSQL refuses new
        ones past its max_connections. A store used after close() connects again as it needs."""
        writer = self.__dict__.get("_step_writer")
        if writer is not None:
            writer.close()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    # -- repos ---------------------------------------------------------------------------------
    def upsert_repo(self, url: str, name: str, mirror_path: str = "", default_branch: str | None = None) -> Repo:
        for attempt in range(2):
            with self.session() as s:
                repo = s.exec(select(Repo).where(Repo.url == url)).first()
                if repo is None:
                    repo = Repo(url=url, name=name)
                repo.mirror_path = mirror_path or repo.mirror_path
                repo.default_branch = default_branch or repo.default_branch
                s.add(repo)
                try:
                    s.commit()
                except IntegrityError:  # another worker inserted the same url first: update theirs
                    if attempt:
                        raise
                    continue
                s.refresh(repo)
                return repo
        raise AssertionError("unreachable")

    # -- images --------------------------------------------------------------------------------
    def save_image(self, image: Image) -> Image:
        """Insert or update; a row for the same (repo, spec hash) is updated, never duplicated."""
        image.updated_at = utcnow()

        def same_spec() -> Image | None:
            return self.find_image(image.repo_id, image.spec_hash) if image.spec_hash is not None else None

        if image.id is None:
            earlier = same_spec()
            image.id = earlier.id if earlier else None
        return self._save(image, same_spec)

    def _save(self, row, find_same):
        """Insert or update `row`. When another worker inserted the same key between our look-up and
        commit, `find_same` finds its row and ours updates it (once)."""
        for attempt in range(2):
            with self.session() as s:
                merged = s.merge(row)
                try:
                    s.commit()
                except IntegrityError:
                    if attempt:
                        raise
                    earlier = find_same()
                    row.id = earlier.id if earlier else None
                    continue
                s.refresh(merged)
                return merged
        raise AssertionError("unreachable")

    def delete_failures_without_spec(self, repo_id: int, requested_ref: str | None) -> None:
        """Once a ref builds, its earlier clone/detect failures are history, not status."""
        with self.session() as s:
            for row in s.exec(self._failures_without_spec(repo_id, requested_ref)):
                s.delete(row)
            s.commit()

    def find_image(self, repo_id: int, spec_hash: str) -> Image | None:
        with self.session() as s:
            return s.exec(select(Image).where(Image.repo_id == repo_id, Image.spec_hash == spec_hash)).first()

    @staticmethod
    def _failures_without_spec(repo_id: int, requested_ref: str | None):
        """Attempts that failed before a spec existed (clone, detect) for one requested ref."""
        return select(Image).where(
            Image.repo_id == repo_id, Image.requested_ref == requested_ref, Image.spec_hash.is_(None)
        )

    def find_failure(self, repo_id: int, requested_ref: str | None) -> Image | None:
        """An earlier failed attempt that never got as far as a spec: a retry updates it in place."""
        with self.session() as s:
            return s.exec(self._failures_without_spec(repo_id, requested_ref)).first()

    def replace_baseline(self, image_id: int, tests: Sequence[BaselineEntry | BaselineTest]) -> None:
        with self.session() as s:
            for old in s.exec(select(BaselineTest).where(BaselineTest.image_id == image_id)):
                s.delete(old)
            s.flush()
            for test in tests:  # fresh rows: the caller's objects may already belong to a session
                s.add(BaselineTest(**test.model_dump(exclude={"id", "image_id"}), image_id=image_id))
            s.commit()

    def baseline(self, image_id: int) -> list[BaselineTest]:
        with self.session() as s:
            return list(s.exec(select(BaselineTest).where(BaselineTest.image_id == image_id)))

    def images(self) -> list[tuple[Image, Repo]]:
        with self.session() as s:
            rows = s.exec(select(Image, Repo).where(Image.repo_id == Repo.id).order_by(Image.id))
            return [(image, repo) for image, repo in rows]

    def image(self, image_id: int) -> Image | None:
        with self.session() as s:
            return s.get(Image, image_id)

    def repo(self, repo_id: int) -> Repo | None:
        with self.session() as s:
            return s.get(Repo, repo_id)

    # -- call maps -----------------------------------------------------------------------------
    def call_map(self, image_id: int) -> CallMap | None:
        with self.session() as s:
            return s.exec(select(CallMap).where(CallMap.image_id == image_id)).first()

    def save_call_map(self, call_map: CallMap) -> None:
        with self.session() as s:
            for old in s.exec(select(CallMap).where(CallMap.image_id == call_map.image_id)):
                s.delete(old)
            s.flush()
            s.add(CallMap(**call_map.model_dump(exclude={"id"})))
            s.commit()

    # -- tasks ---------------------------------------------------------------------------------
    def save_task(self, task: Task) -> Task:
        """Insert or update by instance_id: validating an instance again replaces its earlier verdict."""
        task.updated_at = utcnow()
        existing = self.task(task.instance_id)
        task.id = existing.id if existing else None
        if existing:
            task.created_at = existing.created_at
        return self._save(task, lambda: self.task(task.instance_id))

    def task_by_id(self, task_id: int) -> Task | None:
        with self.session() as s:
            return s.get(Task, task_id)

    def task(self, instance_id: str) -> Task | None:
        with self.session() as s:
            return s.exec(select(Task).where(Task.instance_id == instance_id)).first()

    def tasks(
        self, *, repo_name: str | None = None, kind: str | None = None, valid: bool | None = None,
        instance_ids: list[str] | None = None,
    ) -> list[tuple[Task, Repo]]:
        query = select(Task, Repo).where(Task.repo_id == Repo.id)
        if repo_name is not None:
            query = query.where((Repo.name == repo_name) | (Repo.url == repo_name) | (Task.repo_name == repo_name))
        if kind is not None:
            query = query.where(Task.kind == kind)
        if valid is not None:
            query = query.where(Task.valid == valid)
        if instance_ids is not None:
            query = query.where(Task.instance_id.in_(instance_ids))
        with self.session() as s:
            return [(task, repo) for task, repo in s.exec(query.order_by(Task.id))]

    def image_uses(self) -> list[tuple[int, bool, int, int]]:
        """What uses each image through tasks (for `forager prune`): rows of (images.id, task valid, episodes,
        open episodes: not finished, or of a run not finished)."""
        from sqlalchemy import and_, case, func, or_

        from forager.store.episodes import FINISHED

        open_episode = case((and_(Episode.id.is_not(None), or_(Episode.status != FINISHED, Run.finished_at.is_(None))), 1),
                            else_=0)
        query = (
            select(Task.image_id, Task.valid, func.count(Episode.id), func.coalesce(func.sum(open_episode), 0))
            .select_from(Task)
            .outerjoin(Episode, Episode.task_id == Task.id)
            .outerjoin(Run, Run.id == Episode.run_id)
            .where(Task.image_id.is_not(None))
            .group_by(Task.image_id, Task.valid)
        )
        with self.session() as s:
            return [(image_id, bool(valid), int(episodes), int(open_)) for image_id, valid, episodes, open_ in s.exec(query)]
