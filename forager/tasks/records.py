"""Task records as JSON/JSONL: SWE-bench's instance fields plus forager's own.

A task file is read by people and by other tools (SWE-bench harnesses, dataset viewers), so
the field names are SWE-bench's and the file is one JSON object per line. Reading is forgiving
where public data is messy (FAIL_TO_PASS stored as a JSON-encoded string, ``version`` as a
number, extra columns) and strict where a wrong value would only fail much later inside a
container (a base commit that is not a sha, a patch that is not a diff).

One bad line never hides the good ones: :func:`read_records` returns one entry per line or
item, each either a record or a one-line error that names the place and the fix.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from forager.text import one_line

REQUIRED_FIELDS: tuple[str, ...] = ("instance_id", "repo", "base_commit", "patch")
_REQUIRED_HINT = "every instance needs instance_id, repo, base_commit and patch"
_MAX_ID_CHARS = 200
_SHA_RE = re.compile(r"[0-9a-f]{7,40}")
# why: a unified diff is recognised by its file headers; "diff --git" alone covers git's
# header-only sections (mode changes, binary files, empty files)
_GIT_DIFF_RE = re.compile(r"^diff --git ", re.MULTILINE)
_OLD_FILE_RE = re.compile(r"^--- ", re.MULTILINE)
_NEW_FILE_RE = re.compile(r"^\+\+\+ ", re.MULTILINE)
_PATH_PREFIXES = ("/", "./", "../", "~")


class TaskKind(StrEnum):
    """How a task was made: an injected bug (mutate-fix) or a real issue and its fix."""

    mutate_fix = "mutate-fix"
    issue_fix = "issue-fix"


class MutationInfo(BaseModel):
    """Where a synthetic bug was injected; kept for analysis, never shown to the agent."""

    model_config = ConfigDict(extra="ignore")

    family: str
    path: str
    symbol: str
    line: int
    description: str

    @field_validator("path")
    @classmethod
    def _non_empty_path(cls, path: str) -> str:
        if not path.strip() or "\n" in path:
            raise ValueError(f"mutation path {path!r} must be a one-line repository-relative path")
        return path

    @field_validator("line")
    @classmethod
    def _one_based(cls, line: int) -> int:
        if line < 1:
            raise ValueError(f"mutation line {line} must be 1 or more (line numbers start at 1)")
        return line


class TaskRecord(BaseModel):
    """One task as one JSONL line: SWE-bench's instance fields plus forager's."""

    # why: SWE-bench variants add their own columns; a task file from one of them must load
    model_config = ConfigDict(extra="ignore")

    # SWE-bench fields
    instance_id: str
    repo: str  # "owner/name" as SWE-bench writes it, or a git URL, or a local path
    base_commit: str
    problem_statement: str = ""
    patch: str  # the gold patch: the reference fix
    test_patch: str = ""  # tests added by the fix, applied before grading (empty for mutate-fix)
    FAIL_TO_PASS: list[str] = []
    PASS_TO_PASS: list[str] = []
    version: str | None = None
    environment_setup_commit: str | None = None
    created_at: str | None = None
    hints_text: str | None = None
    # forager fields
    kind: TaskKind = TaskKind.issue_fix
    bug_patch: str = ""  # mutate-fix: applied at episode start to make the bug
    repo_url: str | None = None  # where forager cloned the repo when `repo` is a short owner/name
    mutation: MutationInfo | None = None
    valid: bool | None = None
    invalid_reason: str | None = None
    image_tag: str | None = None
    forager_version: str | None = None
    # the world the task was validated in, from its image: dependencies as of this day (None: today's
    # releases) and this Python; optional, so task files written before them still load
    as_of: str | None = None
    python: str | None = None
    # who wrote problem_statement when it is not the instance's own text: "llm:MODEL" for a served model's
    # rewrite of forager's test report (`tasks mine --llm`, `tasks restate`)
    statement_by: str | None = None
    # what forager measured of the task (docs/integrity.md): determinism (`tasks verify`), the leak audit
    # (`forager audit`), contamination marks; the version of the test lists; pass rates from rollouts
    integrity: dict = Field(default_factory=dict)
    tests_version: int = 1
    pass_rate: float | None = None  # pass@1 over the store's finished episodes (oracle runs left out)
    attempts: int | None = None

    @field_validator("instance_id")
    @classmethod
    def _one_line_id(cls, instance_id: str) -> str:
        instance_id = instance_id.strip()
        if not instance_id or "\n" in instance_id or "\r" in instance_id:
            raise ValueError("instance_id must be one non-empty line, such as astropy__astropy-12907")
        if len(instance_id) > _MAX_ID_CHARS:
            raise ValueError(f"instance_id is {len(instance_id)} characters, more than the {_MAX_ID_CHARS} allowed")
        return instance_id

    @field_validator("repo")
    @classmethod
    def _one_line_repo(cls, repo: str) -> str:
        repo = repo.strip()
        if not repo or "\n" in repo or "\r" in repo:
            raise ValueError("repo must be one non-empty line: owner/name, a git URL or a path")
        return repo

    @field_validator("base_commit")
    @classmethod
    def _sha(cls, base_commit: str) -> str:
        return _commit_sha(base_commit, "base_commit")

    @field_validator("environment_setup_commit", mode="before")
    @classmethod
    def _optional_sha(cls, value: Any) -> Any:
        # why: some exports write "" for "none"; treat it as absent rather than a bad sha
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return _commit_sha(value, "environment_setup_commit") if isinstance(value, str) else value

    @field_validator("patch")
    @classmethod
    def _gold_is_diff(cls, patch: str) -> str:
        if not looks_like_diff(patch):
            raise ValueError("patch is not a unified diff (give the reference fix as `git diff` output)")
        return patch

    @field_validator("test_patch")
    @classmethod
    def _tests_are_diff(cls, test_patch: str) -> str:
        if test_patch and not looks_like_diff(test_patch):
            raise ValueError("test_patch is not a unified diff (give `git diff` output or leave it empty)")
        return test_patch

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _decode_test_list(cls, value: Any, info: ValidationInfo) -> Any:
        # why: the public SWE-bench datasets store these lists as JSON-encoded strings
        if not isinstance(value, str):
            return value
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{info.field_name} is a string but not a JSON list of test ids ({exc.msg})") from None
        if not isinstance(decoded, list):
            # why: pydantic turns only ValueError (not TypeError) into a validation error
            raise ValueError(f"{info.field_name} is a string but not a JSON list of test ids")  # noqa: TRY004
        return decoded

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS")
    @classmethod
    def _one_line_ids(cls, test_ids: list[str], info: ValidationInfo) -> list[str]:
        for index, test_id in enumerate(test_ids):
            if not test_id.strip() or "\n" in test_id or "\r" in test_id:
                raise ValueError(f"{info.field_name}[{index}] {test_id!r} must be one non-empty line (a pytest node id)")
        return test_ids

    @field_validator("version", "created_at", mode="before")
    @classmethod
    def _number_to_text(cls, value: Any) -> Any:
        # why: SWE-bench has "0.12" next to 3.0, and pandas exports write dates as numbers
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @model_validator(mode="after")
    def _kind_matches_bug_patch(self) -> TaskRecord:
        if self.kind is TaskKind.mutate_fix and not looks_like_diff(self.bug_patch):
            raise ValueError("a mutate-fix task needs bug_patch, the unified diff that injects the bug")
        if self.kind is TaskKind.issue_fix and self.bug_patch:
            raise ValueError("bug_patch is only for mutate-fix tasks (set kind to mutate-fix or drop bug_patch)")
        return self

    def clone_url(self) -> str:
        """Where to clone from: repo_url, else `repo` itself when it is a URL or a path, else GitHub."""
        if self.repo_url:
            return self.repo_url
        if _is_url_or_path(self.repo):
            return self.repo
        return f"https://github.com/{self.repo}"


class RecordRead(BaseModel):
    """One line (JSONL) or item (JSON list) of a task file: its record, or why it has none."""

    where: str  # "tasks.jsonl:3" or "tasks.json[2]"
    record: TaskRecord | None = None
    error: str | None = None
    # what could be read of a bad entry, so the instance can still be recorded as invalid
    instance_id: str | None = None
    repo: str | None = None


def looks_like_diff(text: str) -> bool:
    """True when `text` has unified diff file headers (``diff --git``, or ``---`` and ``+++``)."""
    if _GIT_DIFF_RE.search(text):
        return True
    return bool(_OLD_FILE_RE.search(text) and _NEW_FILE_RE.search(text))


def read_records(path: Path) -> list[RecordRead]:
    """Every record of a JSONL file, a JSON list or a single JSON object, one entry per item.

    A bad line or item becomes an entry with a one-line error and does not stop the others;
    blank lines are skipped. Only a file that cannot be read at all raises ValueError.
    """
    path = Path(path)
    text = _read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        items = _json_list_items(path, text)
    elif stripped.startswith("{") and isinstance(single := _json_object(text), dict):
        # why: "where" is the starting line, so a one-line JSONL file reads the same both ways
        first_line = text[: len(text) - len(stripped)].count("\n") + 1
        items = [(f"{path.name}:{first_line}", single, None)]
    else:
        items = _jsonl_items(path, text)
    return _validate_all(items)


def write_records(path: Path, records: Iterable[TaskRecord]) -> int:
    """Write records as JSONL, atomically; returns how many were written.

    The text goes to a temporary file in the same directory that then replaces `path` in one
    rename, so a reader (or a crash) sees the old file or the new one, never half of one.
    Duplicate instance_ids raise ValueError before anything is replaced: read_records would
    reject the second one anyway.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # why: mkstemp creates files 0600; keep the old file's mode, or the usual 0644 for a new one
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            count = _write_lines(out, records, path)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return count


def _write_lines(out: Any, records: Iterable[TaskRecord], path: Path) -> int:
    first_at: dict[str, int] = {}
    count = 0
    for count, record in enumerate(records, start=1):
        if record.instance_id in first_at:
            raise ValueError(
                f"cannot write {path}: duplicate instance_id {record.instance_id} "
                f"(records {first_at[record.instance_id]} and {count}); give each task a unique id"
            )
        first_at[record.instance_id] = count
        out.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False) + "\n")
    return count


def _fsync_dir(directory: Path) -> None:
    # why: the rename itself is durable only once the directory entry is on disk
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_text(path: Path) -> str:
    try:
        # why: utf-8-sig drops the byte order mark some editors and Windows tools write
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"task file {path} does not exist; pass the path of a .jsonl or .json task file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"task file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ValueError(f"cannot read task file {path} ({exc.strerror or exc}); check the path and its permissions") from None


_Item = tuple[str, Any, str | None]  # (where, parsed value, error instead of a value)


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _json_list_items(path: Path, text: str) -> list[_Item]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        # why: a broken list cannot be cut into items; report the whole file as one bad entry
        return [(path.name, None, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")]
    if not isinstance(items, list):
        return [(path.name, None, "not a JSON list of task objects")]
    return [(f"{path.name}[{index}]", item, None) for index, item in enumerate(items)]


def _jsonl_items(path: Path, text: str) -> list[_Item]:
    items: list[_Item] = []
    # why: split on "\n" only; str.splitlines would also cut at U+2028 and friends, which
    # json.dumps(ensure_ascii=False) leaves raw inside strings
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            items.append((where, json.loads(line), None))
        except json.JSONDecodeError as exc:
            items.append((where, None, f"not valid JSON ({exc.msg} at column {exc.colno})"))
    return items


def _validate_all(items: list[_Item]) -> list[RecordRead]:
    reads: list[RecordRead] = []
    first_at: dict[str, str] = {}
    for where, value, problem in items:
        if problem is not None:
            reads.append(RecordRead(where=where, error=f"{where}: {problem}"))
            continue
        read = _validate_one(where, value)
        record = read.record
        if record is not None:
            if record.instance_id in first_at:
                read = RecordRead(
                    where=where,
                    error=(
                        f"{where} ({record.instance_id}): duplicate instance_id {record.instance_id} "
                        f"(first at {first_at[record.instance_id]}); give each task a unique instance_id or drop one"
                    ),
                )
            else:
                first_at[record.instance_id] = where
        reads.append(read)
    return reads


def _validate_one(where: str, value: Any) -> RecordRead:
    if not isinstance(value, dict):
        kind = type(value).__name__ if value is not None else "null"
        return RecordRead(where=where, error=f"{where}: expected a JSON object with the task's fields, got {kind}")
    place = _place(where, value.get("instance_id"))
    try:
        return RecordRead(where=where, record=TaskRecord.model_validate(value))
    except ValidationError as exc:
        instance_id, repo = value.get("instance_id"), value.get("repo")
        return RecordRead(
            where=where, error=f"{place}: {_describe(exc)}",
            instance_id=instance_id.strip() if isinstance(instance_id, str) and instance_id.strip() else None,
            repo=repo.strip() if isinstance(repo, str) and repo.strip() else None,
        )


def _place(where: str, instance_id: Any) -> str:
    """'tasks.jsonl:3 (astropy__astropy-12907)' when the id is readable, else just the place."""
    if isinstance(instance_id, str) and instance_id.strip() and "\n" not in instance_id:
        return f"{where} ({instance_id.strip()[:_MAX_ID_CHARS]})"
    return where


def _describe(exc: ValidationError) -> str:
    """All of a record's validation errors as one line, missing fields first."""
    missing: list[str] = []
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = _loc(error["loc"])
        if error["type"] == "missing":
            missing.append(loc)
            continue
        message = error["msg"].removeprefix("Value error, ")
        # why: our own messages already name their field; pydantic's generic ones do not
        problems.append(message if not loc or message.startswith(loc.split(".")[0]) else f"{loc}: {message}")
    parts: list[str] = []
    if missing:
        parts.append(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    parts.extend(problems)
    if any(name in REQUIRED_FIELDS for name in missing):
        parts.append(_REQUIRED_HINT)
    return one_line("; ".join(parts))


def _loc(parts: tuple[int | str, ...]) -> str:
    """A field path as a reader writes it: mutation.line, FAIL_TO_PASS[0]."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _commit_sha(value: str, field: str) -> str:
    sha = value.strip().lower()
    if not _SHA_RE.fullmatch(sha):
        raise ValueError(f"{field} {value[:60]!r} is not a commit sha (give 7 to 40 hex characters)")
    return sha


def _is_url_or_path(repo: str) -> bool:
    return "://" in repo or repo.startswith("git@") or repo.startswith(_PATH_PREFIXES) or repo in (".", "..")
