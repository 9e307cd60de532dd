"""SQL tables of the store. Column names are what users query; see docs/data.md."""

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
    # build results (not inputs, so not in the spec hash): tracked files the install ("install") or a baseline
    # run of the suite ("tests") changed; episodes start from a commit that holds the install's changes
    changed_tracked: dict = Field(default_factory=dict, sa_column=Column(JSON))
    # repository files pytest loads as plugins (-p, pytest_plugins): grading restores them like conftest.py
    plugin_files: list = Field(default_factory=list, sa_column=Column(JSON))
    # the leak audit of the image's working tree as an agent gets it (forager audit): probes and their findings
    audit: dict = Field(default_factory=dict, sa_column=Column(JSON))
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
    # what forager measured of the task beyond its validation (docs/integrity.md): "determinism" (tasks verify),
    # "audit" (forager audit), "contamination" (tasks contamination); each a JSON object with its own fields
    integrity: dict = Field(default_factory=dict, sa_column=Column(JSON))
    # the version of fail_to_pass/pass_to_pass: 1 as validated, +1 each time `tasks verify` drops tests; each
    # grade names the version it graded with
    tests_version: int = 1
    forager_version: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Run(SQLModel, table=True):
    """One collection run: its whole configuration, so every step can be traced to how it was made."""

    __tablename__ = "runs"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    policy: str  # llm | oracle
    model: str | None = None
    model_revision: str | None = None
    llm_url: str | None = None
    tool_format: str = "cwm"
    sampling: dict = Field(default_factory=dict, sa_column=Column(JSON))
    config: dict = Field(default_factory=dict, sa_column=Column(JSON))
    versions: dict = Field(default_factory=dict, sa_column=Column(JSON))  # forager, vllm, python
    chat_template_sha256: str | None = None
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class Episode(SQLModel, table=True):
    """One attempt of one task by a run's policy; its steps are the trajectory."""

    __tablename__ = "episodes"
    __table_args__ = (UniqueConstraint("run_id", "task_id", "attempt", name="uq_episode_run_task_attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    task_id: int = Field(foreign_key="tasks.id", index=True)
    attempt: int = 0
    status: str = Field(default="pending", index=True)  # pending | running | finished
    worker: str | None = None  # host:pid of the process that holds it
    lease_expires_at: datetime | None = None
    restarts: int = 0  # times it was taken up again after its worker died
    exit_reason: str | None = Field(default=None, index=True)
    error: str | None = Field(default=None, sa_column=Column(Text))
    reward: float | None = None
    resolved: bool | None = Field(default=None, index=True)
    patch: str | None = Field(default=None, sa_column=Column(Text))
    grade: dict = Field(default_factory=dict, sa_column=Column(JSON))  # per-test statuses and counts
    # what grading noticed about the patch, e.g. "tamper: conftest.py" (a file restored before the graded run)
    flags: list = Field(default_factory=list, sa_column=Column(JSON))
    messages: list = Field(default_factory=list, sa_column=Column(JSON))  # system + user messages it started with
    tools: list = Field(default_factory=list, sa_column=Column(JSON))  # tool schemas shown to the model
    turns: int = 0
    prompt_tokens: int = 0  # of the last model call: the context used
    completion_tokens: int = 0  # summed over calls
    cached_tokens: int = 0  # summed over calls
    llm_seconds: float = 0.0
    env_seconds: float = 0.0
    start_seconds: float = 0.0  # waiting for the sandbox (0 when the warm pool had it ready)
    # exact-token prompts: "local" (ids built here, checked against the server on the first calls), "server", or
    # "server (local differed at token N)" when the check failed and the episode fell back to /tokenize
    token_source: str | None = None
    grade_seconds: float = 0.0
    wall_seconds: float = 0.0
    container: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Step(SQLModel, table=True):
    """One turn: the model's reply, the tool call parsed from it, and what the environment answered."""

    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("episode_id", "index", name="uq_step_episode_index"),)

    id: int | None = Field(default=None, primary_key=True)
    episode_id: int = Field(foreign_key="episodes.id", index=True)
    index: int
    # the model's side
    model_text: str = Field(default="", sa_column=Column(Text))  # raw completion text
    assistant_message: dict = Field(default_factory=dict, sa_column=Column(JSON))  # as appended to the history
    tool: str | None = None
    arguments: dict = Field(default_factory=dict, sa_column=Column(JSON))
    format_error: str | None = Field(default=None, sa_column=Column(Text))
    # the call's prompt: its first `prompt_offset` tokens are the previous call's prompt + completion, then
    # these (llm/tokens.py full_prompts rebuilds whole prompts); the offset is 0 when the prompt is stored whole
    prompt_offset: int = 0
    prompt_delta_ids: list = Field(default_factory=list, sa_column=Column(JSON))
    completion_token_ids: list = Field(default_factory=list, sa_column=Column(JSON))
    logprobs: list = Field(default_factory=list, sa_column=Column(JSON))
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    llm_seconds: float = 0.0
    # prompt ids extend the previous call's prompt + completion (None on the first call or without ids)
    prefix_ok: bool | None = None
    prefix_divergence: int | None = None  # first token index where they differ
    # the environment's side
    # as appended to the history: one message, or one per tool call a malformed OpenAI reply made
    observation_messages: list = Field(default_factory=list, sa_column=Column(JSON))
    observation: str = Field(default="", sa_column=Column(Text))  # the text shown to the model
    raw_output: str = Field(default="", sa_column=Column(Text))  # up to the stored cap
    output_bytes: int = 0
    truncated: bool = False
    exit_code: int | None = None
    timed_out: bool = False
    tool_error: bool = False
    env_seconds: float = 0.0
    # where the turn's wall time went, seconds: model, tokenize, command, store, other, total (collect/steps.py)
    timings: dict = Field(default_factory=dict, sa_column=Column(JSON))
    reward: float = 0.0
    done: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class TracedTest(SQLModel, table=True):
    """One test traced in an image (or in a task's buggy or fixed state) by one tracer version: what a rerun
    skips. Its function-level traces are rows of `traces`."""

    __tablename__ = "traced_tests"
    __table_args__ = (UniqueConstraint("image_id", "subject", "test_id", "tracer_version", name="uq_traced_test"),)

    id: int | None = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="images.id", index=True)
    task_id: int | None = Field(default=None, foreign_key="tasks.id", index=True)
    variant: str = "suite"  # suite | bug | fix
    subject: str = "suite"  # "suite", or "task:ID:bug" / "task:ID:fix": what the uniqueness is over
    test_id: str = Field(sa_column=Column(Text, nullable=False))
    tracer_version: str
    python_version: str | None = None
    seed: int | None = None
    depth: int = 1
    status: str = Field(default="traced", index=True)  # traced | cut | dropped | failed
    reason: str | None = Field(default=None, sa_column=Column(Text))
    test_status: str | None = None  # the test's own outcome in the traced run
    raw_events: int = 0
    line_events: int = 0
    traces: int = 0  # function-level traces kept
    dropped: dict = Field(default_factory=dict, sa_column=Column(JSON))  # function-level traces dropped, by reason
    deterministic: bool | None = None  # all its traces the same in a second run (None: not checked)
    bug_line_seen: bool | None = None  # variant bug: a line the fix touches ran in this test's buggy trace
    seconds: float = 0.0  # the traced test's own time (JUnit: setup, call and teardown) in the first run
    created_at: datetime = Field(default_factory=utcnow)


class Trace(SQLModel, table=True):
    """One function-level execution trace: an activation of a repository function with its nested calls, as CWM
    text and as structured events."""

    __tablename__ = "traces"

    id: int | None = Field(default=None, primary_key=True)
    traced_test_id: int = Field(foreign_key="traced_tests.id", index=True)
    image_id: int = Field(foreign_key="images.id", index=True)
    task_id: int | None = Field(default=None, foreign_key="tasks.id", index=True)
    variant: str = "suite"
    test_id: str = Field(sa_column=Column(Text, nullable=False))
    path: str
    qualname: str
    ordinal: int = 0
    depth: int = 1
    line_events: int = 0
    events_count: int = 0
    bytes: int = 0  # of the CWM text, UTF-8
    sha256: str = Field(index=True)  # of the CWM text
    text: str = Field(sa_column=Column(Text, nullable=False))  # the CWM serialisation: context, then frames
    context: str = Field(default="", sa_column=Column(Text))
    events: list = Field(default_factory=list, sa_column=Column(JSON))  # structured TraceEvent dicts
    return_value: str | None = Field(default=None, sa_column=Column(Text))
    raised: str | None = Field(default=None, sa_column=Column(Text))
    return_checked: bool | None = None
    deterministic: bool | None = None
    created_at: datetime = Field(default_factory=utcnow)
