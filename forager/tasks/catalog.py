"""Tasks in the store <-> task records in JSONL (SWE-bench fields plus forager's). Pure conversions.

Rows are read by their attributes and written as field dicts, so this module loads no database code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from forager.tasks.records import MutationInfo, TaskKind, TaskRecord

if TYPE_CHECKING:
    from forager.store import Image, Repo, Task


def image_world(image: Image | None) -> dict[str, str | None]:
    """The cut-off (`as_of`: dependencies released before it) and the Python of the image a task was validated in."""
    if image is None:
        return {"as_of": None, "python": None}
    return {"as_of": (image.spec or {}).get("as_of"), "python": image.python_version}


def to_record(
    task: Task, repo: Repo, image_tag: str | None = None, *, as_of: str | None = None, python: str | None = None,
    pass_rate: float | None = None, attempts: int | None = None,
) -> TaskRecord:
    """The task as one shareable line. `patch` is the gold patch: relative to base_commit for issue-fix,
    and to base_commit with `bug_patch` applied for mutate-fix. `as_of` and `python` come from its image
    (`image_world`)."""
    mutation = None
    if task.kind == TaskKind.mutate_fix and task.family:
        mutation = MutationInfo(family=task.family, path=task.path or "?", symbol=task.symbol or "?",
                                line=task.line or 1, description=task.description or "")
    return TaskRecord(
        instance_id=task.instance_id, repo=task.repo_name or repo.name, base_commit=task.base_commit or "0" * 40,
        problem_statement=task.problem_statement, patch=task.gold_patch, test_patch=task.test_patch,
        FAIL_TO_PASS=task.fail_to_pass, PASS_TO_PASS=task.pass_to_pass, version=task.version,
        environment_setup_commit=task.environment_setup_commit, created_at=task.instance_created_at,
        hints_text=task.hints_text, kind=TaskKind(task.kind), bug_patch=task.bug_patch, repo_url=repo.url,
        mutation=mutation, valid=task.valid, invalid_reason=task.invalid_reason, image_tag=image_tag,
        forager_version=task.forager_version, as_of=as_of, python=python, statement_by=statement_by(task),
        integrity=dict(task.integrity or {}), tests_version=task.tests_version or 1, pass_rate=pass_rate,
        attempts=attempts,
    )


def statement_by(task: Task) -> str | None:
    """"llm:MODEL" when a served model's rewrite is the task's statement, else None."""
    statement = (task.validation or {}).get("statement") or {}
    return f"llm:{statement.get('model')}" if statement.get("by") == "llm" else None


def task_fields(record: TaskRecord, *, repo_id: int, source: str) -> dict[str, Any]:
    """A task row's fields for a record to validate (`Task(**task_fields(...))`): its verdict fields start
    empty, whatever the record claimed."""
    mutation = record.mutation
    return dict(
        instance_id=record.instance_id, kind=record.kind.value, repo_id=repo_id, base_commit=record.base_commit,
        problem_statement=record.problem_statement, bug_patch=record.bug_patch, gold_patch=record.patch,
        test_patch=record.test_patch, fail_to_pass=list(record.FAIL_TO_PASS), pass_to_pass=list(record.PASS_TO_PASS),
        family=mutation.family if mutation else None, path=mutation.path if mutation else None,
        symbol=mutation.symbol if mutation else None, line=mutation.line if mutation else None,
        description=mutation.description if mutation else None, source=source, repo_name=record.repo,
        version=record.version, environment_setup_commit=record.environment_setup_commit,
        instance_created_at=record.created_at, hints_text=record.hints_text,
    )


def task_counts(rows: Iterable[tuple[Task, Repo]]) -> list[dict]:
    """Tasks per repository, kind, family and validity (what `forager status` shows), valid first in each group."""
    counts: Counter = Counter()
    for task, repo in rows:
        counts[(repo.name, task.kind, task.family or "", task.valid)] += 1
    return [
        {"repo": repo, "kind": kind, "family": family, "valid": valid, "tasks": n}
        for (repo, kind, family, valid), n in sorted(counts.items(), key=lambda kv: (*kv[0][:3], not kv[0][3]))
    ]
