"""issue-fix tasks: imported from SWE-bench-format files, or mined from a repository's own fix commits.

Either way a task is validated the same way, in the image of the repository at base_commit (built
or reused): its tests run twice without the fix and twice with it (fresh containers each time), and
`verdict.judge_pair` decides; a test whose status differs between two runs of one state is flaky and
is in neither list. A task that fails validation is stored too, invalid, with its reason, so a rerun
or a report can see it; a mining rerun skips the commits whose verdict is stored (see `reusable`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from pydantic import BaseModel, Field

from forager import __version__, repos
from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder
from forager.envspec import as_of
from forager.config import Settings
from forager.models import MISSING, ForagerError, RepoRef, SuiteRun
from forager.store import Image, Store, Task
from forager.tasks.catalog import task_fields
from forager.tasks.evaluate import grade, run_graded
from forager.tasks.grading import grading_spec
from forager.tasks.patches import (
    changed_files,
    is_test_path,
    split_by_tests,
    test_files,
    touched_files,
)
from forager.tasks.records import TaskKind, TaskRecord
from forager.tasks.restate import Restater, apply_restatement
from forager.tasks.statement import commit_subject, hidden_names, issue_statement
from forager.tasks.verdict import PairVerdict, judge_pair, named

StageCallback = Callable[[str], None]
Describe = Callable[[Task, SuiteRun], None]  # writes a valid task's statement from its run without the fix
# A task whose verdict came from the machinery failing (not from the task) is validated again by a rerun.
MACHINERY_ERROR = "validation error: "
NO_IMAGE = "no image at "
RUNS_PER_STATE = 2  # each state (without the fix, with it) runs this often; a test that disagrees is flaky
FLAKY_SHOWN = 20  # flaky test ids kept in a task's validation record (all are counted)
# A pytest plugin loaded in the runs without the fix of a mined task: each failing test's traceback text as
# pytest prints it (JUnit keeps only a short message), for the task's statement. Written by the controller
# only (xdist workers report to it); the last 4,000 characters of at most 500 tests; pytest 4.6+, Python 3.6+.
FAILURES_MODULE = "forager_failures"
FAILURES_FILE = "forager_failures.json"
FAILURES_PLUGIN = """
import json
import os

_FAILED = {}


def _keep(report):
    if report.failed and report.nodeid not in _FAILED and len(_FAILED) < 500:
        try:
            text = report.longreprtext
        except Exception:
            text = str(report.longrepr)
        _FAILED[report.nodeid] = text[-4000:]


def pytest_runtest_logreport(report):
    _keep(report)


def pytest_collectreport(report):
    _keep(report)


def pytest_sessionfinish(session):
    out = os.environ.get("FORAGER_OUT_DIR")
    if out and not hasattr(session.config, "workerinput"):
        with open(os.path.join(out, "%s"), "w") as handle:
            json.dump(_FAILED, handle)
""" % FAILURES_FILE


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
    reused: bool = False  # a mining rerun found its verdict stored and did not validate it again


class MineReport(BaseModel):
    repo: str
    since: str | None = None
    commits_scanned: int = 0
    fix_candidates: int = 0
    validated: int = 0  # candidates validated by this run
    reused: int = 0  # candidates whose stored verdict was taken as it is
    valid: int = 0
    lost_to_builds: int = 0  # candidates invalid because their parent's image did not build
    tasks: list[TaskVerdict] = Field(default_factory=list)
    seconds: float = 0.0


def reusable(task: Task | None, *, retry_builds: bool = False) -> bool:
    """Whether a stored task's verdict stands, so that mining again skips its commit (pure): valid, or invalid
    for a reason of its own. A machinery error ("validation error: ...") is worth another try; so is an image
    that did not build ("no image at ..."), when `retry_builds` asks (a newer forager, or a mended install, may
    build it; without the flag a rerun does not pay for every failed build again)."""
    if task is None:
        return False
    if task.valid:
        return True
    reason = task.invalid_reason or ""
    return bool(reason) and not reason.startswith(MACHINERY_ERROR) and not (retry_builds and reason.startswith(NO_IMAGE))


def flaky_tests(runs: list[SuiteRun]) -> set[str]:
    """Tests whose status is not the same in every one of `runs` (runs of one state), absent counting as a status (pure)."""
    if len(runs) < 2:
        return set()
    statuses = [run.statuses() for run in runs]
    seen = set().union(*statuses)
    return {test for test in seen if len({s.get(test, MISSING) for s in statuses}) > 1}


def telling_run(runs: list[SuiteRun]) -> SuiteRun:
    """The run of a state that judging must see: one whose patches did not apply or that timed out, else the first."""
    return next((run for run in runs if run.setup_error is not None or run.timed_out), runs[0])


def failure_texts(run: SuiteRun, tests: list[str]) -> list[tuple[str, str, str]]:
    """(test id, JUnit message, traceback text) of `tests` in a run (pure); a test that was not reported has the
    collection error of its module, when the run saw one."""
    outcomes = {o.test_id: o for o in run.outcomes}
    try:
        tracebacks = json.loads(run.files.get(FAILURES_FILE, b"{}").decode("utf-8", errors="replace"))
    except ValueError:
        tracebacks = {}
    if not isinstance(tracebacks, dict):
        tracebacks = {}
    texts = []
    for test in tests:
        outcome = outcomes.get(test)
        module = test.split("::", 1)[0]
        traceback = tracebacks.get(test) or ("" if outcome else tracebacks.get(module, ""))
        message = outcome.message if outcome else ("not run: its module could not be collected" if traceback
                                                   else "not reported by the run")
        texts.append((test, message or "", str(traceback)))
    return texts


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
        self.runs_per_state = RUNS_PER_STATE

    def validate_record(
        self, record: TaskRecord, *, source: str, url: str | None = None, on_stage: StageCallback = lambda _s: None
    ) -> TaskVerdict:
        """Build or reuse the image at base_commit, validate, store. Never raises."""
        started = time.monotonic()
        clone_url = url or record.clone_url()
        ref = RepoRef(url=clone_url, ref=record.base_commit)
        try:
            repo_row = self.store.upsert_repo(repos.normalise_url(clone_url), ref.name)
            task = Task(**task_fields(record, repo_id=repo_row.id, source=source))
            task.forager_version = __version__
            return self._validate(ref, task, started, on_stage)
        except Exception as exc:  # noqa: BLE001 - the store failed: report it, let the other instances go on
            return TaskVerdict(instance_id=record.instance_id, repo=ref.safe_url, kind=record.kind.value, valid=False,
                               reason=f"cannot record the task: {type(exc).__name__}: {str(exc)[:200]}",
                               seconds=round(time.monotonic() - started, 2))

    def validate_records(
        self, records: list[TaskRecord], *, source: str, urls: dict[str, str] | None = None, jobs: int = 1,
        on_stage: Callable[[str, str], None] = lambda _id, _s: None,
        on_done: Callable[[TaskVerdict], None] = lambda _v: None,
    ) -> list[TaskVerdict]:
        """`validate_record` for each record, `jobs` at once (`on_stage` hears instance id and stage); verdicts in
        the order they finished. `urls` maps a record's repo (e.g. owner/name) to where to clone it."""
        urls = urls or {}

        def one(record: TaskRecord) -> TaskVerdict:
            verdict = self.validate_record(record, source=source, url=urls.get(record.repo),
                                           on_stage=lambda stage: on_stage(record.instance_id, stage))
            on_done(verdict)
            return verdict

        with ThreadPoolExecutor(max_workers=max(jobs, 1)) as workers:
            return list(workers.map(one, records))

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

    def _validate(
        self, ref: RepoRef, task: Task, started: float, on_stage: StageCallback, describe: Describe | None = None,
    ) -> TaskVerdict:
        try:
            self._judge(ref, task, on_stage, describe)
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

    def _judge(self, ref: RepoRef, task: Task, on_stage: StageCallback, describe: Describe | None = None) -> None:
        on_stage("image")
        built = self.builder.build(ref, on_stage, as_of=_instance_cutoff(task, self.settings.as_of))
        if built.status != "ready" or built.image_id is None:
            task.valid, task.invalid_reason = False, f"{NO_IMAGE}{ref.ref[:12]}: {built.category}: {built.message}"
            return
        image = self.store.image(built.image_id)
        task.image_id = image.id
        given = bool(task.fail_to_pass)
        # the given tests' files; for a mined task (no lists yet) the test modules its test patch touches
        files = test_files([*task.fail_to_pass, *task.pass_to_pass]) or _runnable_test_files(task.test_patch)
        if not files:
            task.valid, task.invalid_reason = False, "no tests to run: FAIL_TO_PASS is empty and the test patch adds no test module"
            return
        grading = grading_spec(task, image, self.settings, tests=files)
        restored = grading.restored(task.gold_patch)
        if task.gold_patch.strip() and len(restored) == len(touched_files(task.gold_patch)):
            task.valid, task.invalid_reason = False, (
                f"the gold patch changes only files that grading restores (tests, test configuration): {named(restored)}")
            return

        def run(label: str, patch: str, index: int) -> SuiteRun:
            on_stage(f"tests {label} ({index}/{self.runs_per_state})")
            return run_graded(self.engine, grading, patch, run_index=index,
                              plugins={FAILURES_MODULE: FAILURES_PLUGIN} if describe is not None and not patch else None)

        before, after = [run("without the fix", "", 1)], [run("with the fix", task.gold_patch, 1)]
        known_flaky = {t.test_id for t in self.store.baseline(image.id) if t.flaky}
        f2p, p2p = (task.fail_to_pass, task.pass_to_pass) if given else (None, None)
        verdict = judge_pair(before[0], after[0], f2p, p2p, excluded=known_flaky)
        # why only then: flaky tests leave the lists, so a pair judged invalid stays invalid whatever runs next
        for index in range(2, self.runs_per_state + 1) if verdict.valid else ():
            before.append(run("without the fix", "", index))
            after.append(run("with the fix", task.gold_patch, index))
        flaky = flaky_tests(before) | flaky_tests(after)
        if len(before) > 1:
            verdict = _judge_runs(before, after, f2p, p2p, known_flaky | flaky)
        if not verdict.valid and any(run.setup_error is not None for run in [*before, *after]):
            verdict.reason = _with_install_conflict(verdict.reason, task, image)
        task.fail_to_pass, task.pass_to_pass = verdict.fail_to_pass, verdict.pass_to_pass
        task.validation = {
            **verdict.validation, "runs_per_state": len(before), "flaky": len(flaky),
            "flaky_tests": sorted(flaky)[:FLAKY_SHOWN],
            # what the first run of each state ran and printed, to read an invalid verdict from the store
            "grades": {"without_fix": _kept(before[0]), "with_fix": _kept(after[0])},
        }
        task.valid, task.invalid_reason = verdict.valid, verdict.reason
        if task.valid and describe is not None:
            describe(task, before[0])

    # -- mining --------------------------------------------------------------------------------
    def mine(
        self, ref: RepoRef, *, max_commits: int = 100, limit: int | None = None, jobs: int = 1,
        since: date | None = None, on_stage: StageCallback = lambda _s: None, restater: Restater | None = None,
        retry_builds: bool = False,
    ) -> MineReport:
        """Fix commits of the history (they change source and tests) made into issue-fix tasks at their parents.

        `since`: only commits committed on or after that day. `restater`: a served model rewrites each valid
        task's statement as an issue (:mod:`forager.tasks.restate`). A commit whose task is stored with a verdict that
        stands (`reusable`; `retry_builds`: not one whose image did not build) is not validated again; its image
        is reused from the store's cache anyway.
        """
        started = time.monotonic()
        on_stage("clone")
        snapshot = repos.fetch(ref, self.settings.cache_dir)
        repo_row = self.store.upsert_repo(snapshot.url, ref.name, str(snapshot.mirror), snapshot.default_branch)
        on_stage("history")
        history = repos.first_parent_history(snapshot.mirror, snapshot.commit, max_commits, since=since)
        report = MineReport(repo=ref.safe_url, commits_scanned=len(history), since=since.isoformat() if since else None)
        candidates = [c for c in history if _is_fix_candidate(c.files)]
        report.fix_candidates = len(candidates)
        candidates = candidates[:limit] if limit else candidates
        total, done, lock = len(candidates), [0], threading.Lock()

        def one(numbered: tuple[int, repos.CommitInfo]) -> TaskVerdict:
            number, commit = numbered

            def stage(text: str) -> None:
                on_stage(f"commit {number}/{total} {commit.sha[:10]}: {text} ({done[0]} done)")

            instance_id = f"{ref.name}__{commit.sha[:12]}"
            stored = self.store.task(instance_id)
            if reusable(stored, retry_builds=retry_builds):
                verdict = _stored_verdict(stored, ref.safe_url)
            else:
                verdict = self._mine_one(snapshot, repo_row.id, ref.name, instance_id, commit, stage, restater)
            with lock:
                done[0] += 1
            stage("reused" if verdict.reused else ("valid" if verdict.valid else "invalid"))
            return verdict

        with ThreadPoolExecutor(max_workers=jobs) as workers:
            report.tasks = list(workers.map(one, enumerate(candidates, start=1)))
        report.validated = sum(not v.reused for v in report.tasks)
        report.reused = sum(v.reused for v in report.tasks)
        report.valid = sum(v.valid for v in report.tasks)
        report.lost_to_builds = sum((v.reason or "").startswith(NO_IMAGE) for v in report.tasks)
        report.seconds = round(time.monotonic() - started, 2)
        return report

    def _mine_one(
        self, snapshot: repos.RepoSnapshot, repo_id: int, name: str, instance_id: str, commit: repos.CommitInfo,
        on_stage: StageCallback, restater: Restater | None = None,
    ) -> TaskVerdict:
        """One fix commit as a task at its parent, validated and stored; a valid one gets its statement from the
        tests that failed without the fix, and the commit message becomes its hints."""
        on_stage("diff")
        diff = repos.diff_between(snapshot.mirror, commit.parent, commit.sha)
        gold, tests = split_by_tests(diff)
        task = Task(
            instance_id=instance_id, kind=TaskKind.issue_fix.value, repo_id=repo_id,
            base_commit=commit.parent, problem_statement=commit.message, gold_patch=gold, test_patch=tests,
            source=f"mine {commit.sha}", repo_name=name, instance_created_at=commit.authored_at,
            hints_text=commit.message, forager_version=__version__,
        )

        def describe(valid: Task, without_fix: SuiteRun) -> None:
            sources = repos.read_files_at(snapshot.mirror, commit.parent,
                                          [p for p in touched_files(gold) if p.endswith(".py")])
            files, functions = hidden_names(gold, sources)
            valid.problem_statement = issue_statement(
                failure_texts(without_fix, valid.fail_to_pass), total=len(valid.fail_to_pass),
                subject=commit_subject(commit.message, files, functions), files=files, functions=functions,
            )
            if restater is not None:
                on_stage("restate")
                report = valid.problem_statement
                apply_restatement(valid, restater.restate(report, files, functions), report)

        parent_ref = RepoRef(url=snapshot.url, ref=commit.parent)
        return self._validate(parent_ref, task, time.monotonic(), on_stage, describe)


def _kept(run: SuiteRun) -> dict:
    """The script and log tail of one validation run, as a grade keeps them."""
    kept = grade(run, [], [])
    return {"script": kept.script, "log_tail": kept.log_tail, "exit_code": run.exit_code, "seconds": round(run.seconds, 2)}


def _stored_verdict(task: Task, repo: str) -> TaskVerdict:
    return TaskVerdict(
        instance_id=task.instance_id, repo=repo, kind=task.kind, valid=task.valid, reason=task.invalid_reason,
        fail_to_pass=len(task.fail_to_pass), pass_to_pass=len(task.pass_to_pass), image_id=task.image_id,
        reused=True,
    )


def _judge_runs(
    before: list[SuiteRun], after: list[SuiteRun], fail_to_pass: list[str] | None, pass_to_pass: list[str] | None,
    excluded: set[str],
) -> PairVerdict:
    """The verdict on every run of both states (pure): the lists are judged (or found, without flaky tests) on the
    first runs (or on one that did not apply or timed out), and every later pair must agree with them."""
    verdict = judge_pair(telling_run(before), telling_run(after), fail_to_pass, pass_to_pass, excluded=excluded)
    if not verdict.valid:
        if fail_to_pass is None and not verdict.fail_to_pass and excluded:
            verdict.reason = f"{verdict.reason} ({len(excluded)} flaky test{'s' if len(excluded) != 1 else ''} left out)"
        return verdict
    for index, (old, new) in enumerate(zip(before[1:], after[1:], strict=True), start=2):
        again = judge_pair(old, new, verdict.fail_to_pass, verdict.pass_to_pass)
        if not again.valid:
            verdict.valid, verdict.reason = False, f"run {index} of each state disagrees: {again.reason}"
            break
    return verdict


def _instance_cutoff(task: Task, mode: str) -> str | None:
    """An imported instance's `created_at` (the day its issue was filed) is its world's cut-off when the
    build resolves as of the commit; mined tasks keep their commit's own date (pure)."""
    created = (task.instance_created_at or "")[:10]
    if mode != as_of.COMMIT or mined(task) or not created:
        return None
    try:
        return as_of.parse_as_of(created)
    except as_of.AsOfError:
        return None  # an unreadable created_at: the commit's date stands


def mined(task: Task) -> bool:
    return task.source.startswith("mine ")


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


