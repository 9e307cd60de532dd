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


class CallMap(SQLModel, table=True):
    """Which repository functions each baseline test calls, traced once per image (for mutate-fix)."""

    __tablename__ = "call_maps"

    id: int | None = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="images.id", index=True, unique=True)
    # test id -> [[repo-relative path, function qualname], ...]
    calls: dict = Field(default_factory=dict, sa_column=Column(JSON))
    seconds: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)


class Task(SQLModel, table=True):
    """A verifiable job in an image: start state, problem statement, tests that grade it, reference fix."""

    __tablename__ = "tasks"

    id: int | None = Field(default=None, primary_key=True)
    instance_id: str = Field(index=True, unique=True)
    kind: str = Field(index=True)  # mutate-fix | issue-fix
    repo_id: int = Field(foreign_key="repos.id", index=True)
    image_id: int | None = Field(default=None, foreign_key="images.id", index=True)
    base_commit: str | None = None
    problem_statement: str = Field(default="", sa_column=Column(Text))
    # applied at episode start (mutate-fix: the injected bug; empty for issue-fix)
    bug_patch: str = Field(default="", sa_column=Column(Text))
    # the reference solution, relative to the episode's start state
    gold_patch: str = Field(default="", sa_column=Column(Text))
    # tests applied before grading, hidden from the agent (issue-fix)
    test_patch: str = Field(default="", sa_column=Column(Text))
    fail_to_pass: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    pass_to_pass: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    # provenance: the mutation (mutate-fix) or the instance's origin (issue-fix)
    family: str | None = Field(default=None, index=True)
    path: str | None = None
    symbol: str | None = None
    line: int | None = None
    description: str | None = None
    source: str = ""  # e.g. "synthesize seed=0", "import tasks/x.jsonl", "mine"
    repo_name: str = ""  # as the instance named it (SWE-bench "owner/name") or forager's short name
    version: str | None = None
    environment_setup_commit: str | None = None
    instance_created_at: str | None = None
    hints_text: str | None = Field(default=None, sa_column=Column(Text))
    valid: bool = Field(default=False, index=True)
    invalid_reason: str | None = Field(default=None, sa_column=Column(Text))
    validation: dict = Field(default_factory=dict, sa_column=Column(JSON))
    validate_seconds: float | None = None
    forager_version: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
