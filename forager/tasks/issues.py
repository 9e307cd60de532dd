"""issue-fix tasks: imported from SWE-bench-format files, or mined from a repository's own fix commits.

Either way a task is validated the same way, in the image of the repository at base_commit (built
or reused): its tests run once without the fix and once with it, and `verdict.judge_pair` decides.
A task that fails validation is stored too, invalid, with its reason, so a rerun or a report can see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel, Field

from forager import __version__, repos
from forager.build.engine import Engine
from forager.build.pipeline import ImageBuilder
from forager.config import Settings
from forager.models import EnvSpec, ForagerError, RepoRef
from forager.store import Image, Store, Task
from forager.tasks.catalog import task_from_record
from forager.tasks.evaluate import candidate_timeout, protected_in, run_state
from forager.tasks.patches import (
    changed_files,
    is_test_path,
    split_by_tests,
    test_files,
    touched_files,
)
from forager.tasks.records import TaskKind, TaskRecord
from forager.tasks.verdict import named, judge_pair

StageCallback = Callable[[str], None]


class TaskVerdict(BaseModel):
    """One instance's outcome (one table row, one JSON object)."""

    instance_id: str
    repo: str
    kind: str
    valid: bool
    reason: str | None = None
    fail_to_pass: int = 0
    pass_to_pass: int = 0
    image_id: int | None = None
    seconds: float = 0.0


class MineReport(BaseModel):
    repo: str
    commits_scanned: int = 0
    fix_candidates: int = 0
    tasks: list[TaskVerdict] = Field(default_factory=list)
    seconds: float = 0.0


def _is_test_module(path: str) -> bool:
    """A file pytest can take as an argument and collect tests from (conftest.py is a test path, not a module of tests)."""
    return path.endswith(".py") and is_test_path(path) and Path(path).name != "conftest.py"


def _runnable_test_files(test_patch: str) -> list[str]:
    """Test modules a test patch adds or changes."""
    return [path for path in changed_files(test_patch) if _is_test_module(path)]


class TaskValidator:
    """Validates tasks in their images; safe to call from several threads, one task per call."""

    def __init__(self, settings: Settings, store: Store, engine: Engine, builder: ImageBuilder):
        self.settings = settings
        self.store = store
        self.engine = engine
        self.builder = builder

    def validate_record(
        self, record: TaskRecord, *, source: str, url: str | None = None, on_stage: StageCallback = lambda _s: None
    ) -> TaskVerdict:
        """Build or reuse the image at base_commit, validate, store. Never raises."""
        started = time.monotonic()
        clone_url = url or record.clone_url()
        ref = RepoRef(url=clone_url, ref=record.base_commit)
        try:
            repo_row = self.store.upsert_repo(repos.normalise_url(clone_url), ref.name)
            task = task_from_record(record, repo_id=repo_row.id, source=source)
            task.forager_version = __version__
            return self._validate(ref, task, started, on_stage)
        except Exception as exc:  # noqa: BLE001 - the store failed: report it, let the other instances go on
            return TaskVerdict(instance_id=record.instance_id, repo=ref.safe_url, kind=record.kind.value, valid=False,
                               reason=f"cannot record the task: {type(exc).__name__}: {str(exc)[:200]}",
                               seconds=round(time.monotonic() - started, 2))

    def record_unreadable(self, instance_id: str, repo: str, reason: str, *, source: str, url: str | None = None) -> None:
        """An instance whose fields are missing or malformed, kept as invalid so reports and reruns see it."""
        clone_url = url or TaskRecord.model_construct(repo=repo, repo_url=None).clone_url()
        repo_row = self.store.upsert_repo(repos.normalise_url(clone_url), RepoRef(url=clone_url).name)
        existing = self.store.task(instance_id)
        if existing is not None and existing.valid:
            return  # why: a later malformed copy must not overwrite a task that validated
        self.store.save_task(Task(
            instance_id=instance_id, kind=TaskKind.issue_fix.value, repo_id=repo_row.id, repo_name=repo,
            source=source, valid=False, invalid_reason=reason, forager_version=__version__,
        ))

    def revalidate(self, task: Task, repo_url: str) -> TaskVerdict:
        """Validate a stored issue-fix task again at its base commit, replacing its verdict."""
        return self._validate(RepoRef(url=repo_url, ref=task.base_commit), task, time.monotonic(), lambda _s: None)

    def _validate(self, ref: RepoRef, task: Task, started: float, on_stage: StageCallback) -> TaskVerdict:
        try:
            self._judge(ref, task, on_stage)
        except ForagerError as exc:
            task.valid, task.invalid_reason = False, exc.message
        except Exception as exc:  # noqa: BLE001 - one instance's surprise must not stop the others
            task.valid, task.invalid_reason = False, f"validation error: {type(exc).__name__}: {str(exc)[:200]}"
        task.validate_seconds = round(time.monotonic() - started, 2)
        saved = self.store.save_task(task)
        return TaskVerdict(
            instance_id=saved.instance_id, repo=ref.safe_url, kind=saved.kind, valid=saved.valid,
            reason=saved.invalid_reason, fail_to_pass=len(saved.fail_to_pass), pass_to_pass=len(saved.pass_to_pass),
            image_id=saved.image_id, seconds=task.validate_seconds,
        )

    def _judge(self, ref: RepoRef, task: Task, on_stage: StageCallback) -> None:
        on_stage("image")
        built = self.builder.build(ref, on_stage)
        if built.status != "ready" or built.image_id is None:
            task.valid, task.invalid_reason = False, f"no image at {ref.ref[:12]}: {built.category}: {built.message}"
            return
        image = self.store.image(built.image_id)
        task.image_id = image.id
        spec = EnvSpec(**image.spec)
        given = bool(task.fail_to_pass)
        # the given tests' files; for a mined task (no lists yet) the test modules its test patch touches
        files = test_files([*task.fail_to_pass, *task.pass_to_pass]) or _runnable_test_files(task.test_patch)
        if not files:
            task.valid, task.invalid_reason = False, "no tests to run: FAIL_TO_PASS is empty and the test patch adds no test module"
            return
        plugin_files = image.plugin_files or ()
        restored = protected_in(task.gold_patch, plugin_files)
        if task.gold_patch.strip() and len(restored) == len(touched_files(task.gold_patch)):
            task.valid, task.invalid_reason = False, (
                f"the gold patch changes only files that grading restores (tests, test configuration): {named(restored)}")
            return
        timeout = candidate_timeout(image, self.settings)
        runs = []
        for label, patch in (("without the fix", ""), ("with the fix", task.gold_patch)):
            on_stage(f"tests {label}")
            runs.append(run_state(
                self.engine, image.tag, spec, repo_path=self.settings.repo_path, timeout=timeout,
                start_patch=task.bug_patch, patch=patch, test_patch=task.test_patch,
                restore=list(dict.fromkeys([*files, *restored])), tests=files,
                case_timeout=self.settings.test_case_timeout,
            ))
        flaky = {t.test_id for t in self.store.baseline(image.id) if t.flaky}
        verdict = judge_pair(
            runs[0], runs[1], task.fail_to_pass if given else None, task.pass_to_pass if given else None, excluded=flaky,
        )
        if not verdict.valid and any(run.setup_error is not None for run in runs):
            verdict.reason = _with_install_conflict(verdict.reason, task, image)
        task.fail_to_pass, task.pass_to_pass = verdict.fail_to_pass, verdict.pass_to_pass
        task.validation = verdict.validation
        task.valid, task.invalid_reason = verdict.valid, verdict.reason

    # -- mining --------------------------------------------------------------------------------
    def mine(
        self, ref: RepoRef, *, max_commits: int = 100, limit: int | None = None, jobs: int = 1,
        on_stage: StageCallback = lambda _s: None,
    ) -> MineReport:
        """Fix commits of the history (they change source and tests) made into issue-fix tasks at their parents."""
        started = time.monotonic()
        on_stage("clone")
        snapshot = repos.fetch(ref, self.settings.cache_dir)
        repo_row = self.store.upsert_repo(snapshot.url, ref.name, str(snapshot.mirror), snapshot.default_branch)
        on_stage("history")
        history = repos.first_parent_history(snapshot.mirror, snapshot.commit, max_commits)
        report = MineReport(repo=ref.safe_url, commits_scanned=len(history))
        candidates = [c for c in history if _is_fix_candidate(c.files)]
        report.fix_candidates = len(candidates)
        candidates = candidates[:limit] if limit else candidates

        def one(commit: repos.CommitInfo) -> TaskVerdict:
            diff = repos.diff_between(snapshot.mirror, commit.parent, commit.sha)
            gold, tests = split_by_tests(diff)
            task = Task(
                instance_id=f"{ref.name}__{commit.sha[:12]}", kind=TaskKind.issue_fix.value, repo_id=repo_row.id,
                base_commit=commit.parent, problem_statement=commit.message, gold_patch=gold, test_patch=tests,
                source=f"mine {commit.sha}", repo_name=ref.name, instance_created_at=commit.authored_at,
                forager_version=__version__,
            )
            parent_ref = RepoRef(url=snapshot.url, ref=commit.parent)
            return self._validate(parent_ref, task, time.monotonic(), on_stage)

        with ThreadPoolExecutor(max_workers=jobs) as workers:
            report.tasks = list(workers.map(one, candidates))
        report.seconds = round(time.monotonic() - started, 2)
        return report


def _with_install_conflict(reason: str | None, task: Task, image: Image) -> str | None:
    """A patch from history that does not apply because the install rewrote a file it changes says so."""
    rewritten = set((image.changed_tracked or {}).get("install", []))
    clashing = [path for path in touched_files(task.gold_patch + task.test_patch) if path in rewritten]
    if not clashing:
        return reason
    return (f"{reason}; it changes {named(clashing)}, which the image's install rewrote, and the two changes "
            "do not merge (give the task a patch made against the installed file, or fix the install)")


def _is_fix_candidate(files: list[str]) -> bool:
    """Changes Python source and a test module: the shape of a fix that comes with its regression test."""
    source = [f for f in files if f.endswith(".py") and not is_test_path(f) and Path(f).name != "setup.py"]
    return any(_is_test_module(f) for f in files) and bool(source)


