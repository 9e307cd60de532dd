"""The store: SQLModel tables behind a small interface. SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, create_engine, select

from forager.store.tables import BaselineTest, Image, Repo, utcnow

__all__ = ["Store", "Repo", "Image", "BaselineTest"]


def _engine_for(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record):  # why: WAL lets readers and one writer work at once
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


class Store:
    """Everything forager persists goes through here; each method is one short transaction."""

    def __init__(self, url: str):
        try:
            self.engine = _engine_for(url)
            SQLModel.metadata.create_all(self.engine)
        except Exception as exc:  # a bad URL or unreachable server: one clear line
            raise ValueError(f"cannot open store {url!r}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from exc
        self.url = url

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
        for attempt in range(2):
            if image.id is None and image.spec_hash is not None:
                existing = self.find_image(image.repo_id, image.spec_hash)
                image.id = existing.id if existing else None
            with self.session() as s:
                merged = s.merge(image)
                try:
                    s.commit()
                except IntegrityError:  # another worker saved the same spec between our look-up and commit
                    if attempt:
                        raise
                    image.id = None
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

    def replace_baseline(self, image_id: int, tests: list[BaselineTest]) -> None:
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
