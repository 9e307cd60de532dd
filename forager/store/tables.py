"""SQL tables of the store. Column names are what users query; see README "Data model"."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Repo(SQLModel, table=True):
    __tablename__ = "repos"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(index=True, unique=True)
    name: str
    mirror_path: str = ""
    default_branch: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Image(SQLModel, table=True):
    """One (repo, commit, spec) build attempt and, when ready, its test baseline."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("repo_id", "spec_hash", name="uq_image_repo_spec"),)

    id: int | None = Field(default=None, primary_key=True)
    repo_id: int = Field(foreign_key="repos.id", index=True)
    requested_ref: str | None = None
    commit: str | None = Field(default=None, index=True)
    spec: dict | None = Field(default=None, sa_column=Column(JSON))
    spec_hash: str | None = Field(default=None, index=True)
    tag: str | None = None
    image_id: str | None = None
    base_image: str | None = None
    size_bytes: int | None = None
    python_version: str | None = None
    install_commands: str | None = Field(default=None, sa_column=Column(Text))
    test_command: str | None = None
    ca_bundle_sha256: str | None = None
    status: str = Field(default="building", index=True)
    failure_category: str | None = None
    failure_message: str | None = Field(default=None, sa_column=Column(Text))
    log_tail: str | None = Field(default=None, sa_column=Column(Text))
    tests_passed: int = 0
    tests_failed: int = 0
    tests_error: int = 0
    tests_skipped: int = 0
    tests_flaky: int = 0
    build_seconds: float | None = None
    validate_seconds: float | None = None
    history_ok: bool | None = None
    forager_version: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class BaselineTest(SQLModel, table=True):
    """A test's status in an image's baseline; flaky when validation runs disagreed."""

    __tablename__ = "image_tests"
    __table_args__ = (UniqueConstraint("image_id", "test_id", name="uq_image_test"),)

    id: int | None = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="images.id", index=True)
    test_id: str = Field(sa_column=Column(Text, nullable=False))
    status: str
    flaky: bool = False
    statuses: list[str] = Field(default_factory=list, sa_column=Column(JSON))
