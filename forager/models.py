"""Domain models shared by every stage of the pipeline (pure data, no side effects)."""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

# A ref after "@" never contains ":" (that would be part of an scp-style URL such as git@host:a/b);
# "~" and "^" are git's ancestry suffixes (main~3, v1.0^).
_REF_RE = re.compile(r"^[A-Za-z0-9._/\-~^]+$")
_DEBIAN_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?(=[A-Za-z0-9.+~:\-]+)?$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CREDENTIALS_RE = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:]+):[^/@]*@")


def _ref_at_allowed(head: str) -> bool:
    """An '@' splits off a ref only after the host part: never the user@ of ssh://git@host or https://u:t@host."""
    if "://" in head:
        return "/" in head.split("://", 1)[1]
    return True


class RepoRef(BaseModel):
    """A repository as the user names it: a git URL or local path, optionally pinned at a commit or ref."""

    model_config = ConfigDict(frozen=True)

    url: str
    ref: str | None = None

    @classmethod
    def parse(cls, text: str) -> RepoRef:
        text = text.strip()
        if not text:
            raise ValueError("empty repository reference; expected URL-or-path[@commit]")
        head, sep, tail = text.rpartition("@")
        if sep and head and _REF_RE.match(tail) and not head.endswith(("/", ":")) and _ref_at_allowed(head):
            return cls(url=head, ref=tail)
        return cls(url=text)

    @property
    def name(self) -> str:
        """Short name used in image tags and override files: the last path component without .git.

        Made a valid Docker repository component: lower case, separators never doubled.
        """
        last = re.split(r"[/:]", self.url.rstrip("/"))[-1]
        last = last.removesuffix(".git").lower()
        last = re.sub(r"[^a-z0-9]+", lambda m: m.group(0) if m.group(0) in (".", "_", "-") else "-", last)
        last = re.sub(r"[._-]{2,}", "-", last).strip("-._")
        return last or "repo"

    @property
    def safe_url(self) -> str:
        """The URL with any password or token replaced, for messages and logs."""
        return _CREDENTIALS_RE.sub(r"\1***@", self.url)

    def __str__(self) -> str:
        return f"{self.safe_url}@{self.ref}" if self.ref else self.safe_url


class RepoTree(BaseModel):
    """What detection sees of a checked-out repository: every tracked path and the text of the files it asked for."""

    paths: list[str] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)

    def read(self, path: str) -> str | None:
        return self.files.get(path)


class EnvSpec(BaseModel):
    """How to build and test one repository, as data. Rendered into Dockerfiles; its hash tags the image."""

    model_config = ConfigDict(frozen=True)

    python: str = Field(description="Python version X.Y the image runs")
    system_packages: list[str] = Field(default_factory=list, description="Debian packages installed when missing")
    requirements: list[str] = Field(
        default_factory=list,
        description="pip requirement strings known statically; installed in a layer shared across commits",
    )
    requirement_files: list[str] = Field(default_factory=list, description="repo-relative requirements files")
    project_install: str | None = Field(
        default=".", description="pip target for the project itself, e.g. '.[test]'; None to not install it"
    )
    editable: bool = True
    optional_packages: list[str] = Field(
        default_factory=list, description="best-effort installs (imports seen in tests); a failure is logged, not fatal"
    )
    pre_install: list[str] = Field(default_factory=list, description="shell commands run before pip installs")
    post_install: list[str] = Field(default_factory=list, description="shell commands run after pip installs")
    test_command: list[str] = Field(default_factory=lambda: ["python", "-m", "pytest"])
    test_args: list[str] = Field(default_factory=list, description="extra pytest arguments, e.g. test paths")
    env: dict[str, str] = Field(default_factory=dict)
    as_of: str | None = Field(
        default=None, description="dependencies resolve to releases uploaded before this day (YYYY-MM-DD); None: today's")
    resolver: str = Field(default="pip", description="what resolves the dependencies: pip, or uv with --exclude-newer")
    unconstrained: list[str] = Field(
        default_factory=list,
        description="the project's own distributions that the test runner depends on: other packages' requirements "
        "on them are replaced by the repository (uv --overrides), so its development version does not downgrade pytest")
    notes: list[str] = Field(default_factory=list, description="why each choice was made; not part of the hash")

    @field_validator("pre_install", "post_install", "requirements", "requirement_files", "optional_packages")
    @classmethod
    def _one_line_each(cls, values: list[str]) -> list[str]:
        # why: each entry becomes one Dockerfile RUN line; a newline or trailing backslash would
        # start a new instruction or swallow the next one
        for value in values:
            if "\n" in value or "\r" in value or value.rstrip().endswith("\\"):
                raise ValueError(f"{value!r} must be one line and not end with a backslash")
        return values

    @field_validator("system_packages")
    @classmethod
    def _debian_package_names(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _DEBIAN_PACKAGE_RE.match(value):
                raise ValueError(f"{value!r} is not a Debian package name (optionally =version)")
        return values

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not _ENV_NAME_RE.match(key) or "\n" in value:
                raise ValueError(f"env {key!r}: names are letters, digits and _; values are one line")
        return env

    def content_hash(self, *extra: str) -> str:
        """Stable hash of everything that changes the built image (notes excluded)."""
        # why the resolution fields only when set: specs resolved as of today hash as they did before them
        unset = {"as_of"} if self.as_of is None else set()
        unset |= {"resolver"} if self.resolver == "pip" else set()
        unset |= {"unconstrained"} if not self.unconstrained else set()
        payload = self.model_dump(mode="json", exclude={"notes", *unset})
        blob = json.dumps([payload, *extra], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class TestStatus(StrEnum):
    __test__ = False  # not a pytest test class
    passed = "passed"
    failed = "failed"
    error = "error"
    skipped = "skipped"


# A test a run did not report: its module failed to import, it was deleted, or the run stopped early.
MISSING = "missing"


class TestOutcome(BaseModel):
    """One test's result in one run, with a pytest node id."""

    __test__ = False  # not a pytest test class

    test_id: str
    status: TestStatus
    duration: float = 0.0
    message: str = ""


class SuiteRun(BaseModel):
    """One execution of a test suite inside a container."""

    exit_code: int | None
    timed_out: bool = False
    seconds: float = 0.0
    outcomes: list[TestOutcome] = Field(default_factory=list)
    log_tail: str = ""
    setup_error: str | None = Field(default=None, description="why the run's setup (patches) failed; no test ran")
    files: dict[str, bytes] = Field(default_factory=dict, exclude=True, description="other files a plugin left")
    report_altered: bool = Field(default=False, description="the JUnit report changed after pytest wrote it")
    changed_tracked: list[str] = Field(default_factory=list, description="tracked files the run changed (if asked)")
    script: str = Field(default="", description="the shell the container ran (the last run's, after a rerun)")

    def count(self, status: TestStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def statuses(self) -> dict[str, str]:
        """test id -> status; a test it did not report is absent (MISSING to callers that ask for it)."""
        return {o.test_id: str(o.status) for o in self.outcomes}


class BaselineEntry(BaseModel):
    """A test's status in an image's baseline (the domain value; the store's row is `BaselineTest`)."""

    test_id: str
    status: str
    flaky: bool = False
    statuses: list[str] = Field(default_factory=list, description="its status in each validation run")


class FailureCategory(StrEnum):
    clone = "clone"
    detect = "detect"
    install = "install"
    build = "build"
    no_tests = "no-tests"
    tests_error = "tests-error"
    timeout = "timeout"


class ForagerError(Exception):
    """An expected failure with a one-line explanation for the user, tagged with its category."""

    def __init__(self, category: FailureCategory, message: str, log_tail: str = ""):
        super().__init__(message)
        self.category = category
        self.message = message
        self.log_tail = log_tail
