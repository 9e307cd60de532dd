"""mutate-fix tasks: a synthetic bug in a function the baseline's passing tests call, kept only when tests catch it.

Steps: the repo's image (built or reused) -> a call map (which tests enter which functions, traced
once per image) -> candidate mutations of called functions (pure AST engine) -> a seeded,
family-balanced order -> validation of each candidate in a fresh container: first the tests that
call the function (cheap; most equivalent mutants stop here), then the whole suite for
FAIL_TO_PASS and PASS_TO_PASS. Only candidates with at least one FAIL_TO_PASS test are kept.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from forager import __version__, repos
from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.models import (
    MISSING,
    FailureCategory,
    ForagerError,
    RepoRef,
    SuiteRun,
    TestStatus,
)
from forager.store import CallMap, Image, Store, Task
from forager.tasks.callmap import OUTPUT as CALLMAP_OUTPUT
from forager.tasks.callmap import (
    LINE_NAMED,
    PLUGIN_NAME,
    PLUGIN_SOURCE,
    parse_call_map,
    resolve_line_names,
    tests_by_function,
)
from forager.tasks.evaluate import run_graded
from forager.tasks.grading import GradingSpec, baseline_run_seconds, suite_grading
from forager.tasks.mutations import (
    FAMILIES,
    MODULE_SYMBOL,
    Mutation,
    enumerate_mutations,
    sample_mutations,
)
from forager.tasks.patches import test_files
from forager.tasks.records import TaskKind
from forager.tasks.statement import mutate_fix_statement

StageCallback = Callable[[str], None]
# Passing more ids than this on pytest's command line is slower than running their files.
MAX_SELECTED_IDS = 300
FAILING = {TestStatus.failed.value, TestStatus.error.value}


class CandidateVerdict(BaseModel):
    instance_id: str
    family: str
    valid: bool
    reason: str | None = None
    seconds: float = 0.0
    reused: bool = False


class SynthesisReport(BaseModel):
    """What one `tasks synthesize` run did (one table, one JSON object)."""

    repo: str
    image_id: int | None = None
    commit: str | None = None
    functions_called: int = 0
    candidates: int = 0
    tried: int = 0
    valid: int = 0
    reused: int = 0
    invalid_reasons: dict[str, int] = Field(default_factory=dict)
    families: dict[str, int] = Field(default_factory=dict)
    call_map_seconds: float = 0.0
    validate_seconds: float = 0.0
    seconds: float = 0.0
    tasks: list[CandidateVerdict] = Field(default_factory=list)


@dataclass
class _Image:
    row: Image
    grading: GradingSpec  # the image's suite as graded: no task's patches, the candidate deadline
    eligible: list[str]  # baseline tests that passed in every validation run
    prefilter: bool


def mutation_instance_id(repo_name: str, mutation: Mutation) -> str:
    """Stable id: the same bug in the same repository is the same task, whatever run found it."""
    digest = hashlib.sha256(mutation.bug_patch().encode()).hexdigest()[:12]
    return f"{repo_name}__mutate-{digest}"


# A targeted pre-run costs a container start; it pays only when a whole-suite run is much longer
# (bench/tasks.py: on suites of 0.5-3 s, whole-suite-only validation took 0.48-0.93x the time per task).
PREFILTER_MIN_SUITE_SECONDS = 5.0


class MutateFixSynthesizer:
    def __init__(
        self, settings: Settings, store: Store, engine: Engine, builder: ImageBuilder, *, prefilter: bool | None = None
    ):
        self.settings = settings
        self.store = store
        self.engine = engine
        self.builder = builder
        # why: running only the tests that call the mutated function first rejects mutants no test
        # catches for a fraction of a whole-suite run; None decides by the suite's baseline run time
        self.prefilter = prefilter

    def synthesize(
        self, ref: RepoRef, *, count: int, seed: int, families: tuple[str, ...] = FAMILIES,
        max_candidates: int | None = None, on_stage: StageCallback = lambda _s: None,
    ) -> SynthesisReport:
        started = time.monotonic()
        report = SynthesisReport(repo=ref.safe_url)
        image = self._image(ref, on_stage)
        report.image_id, report.commit = image.row.id, image.row.commit
        repo_row = self.store.repo(image.row.repo_id)

        on_stage("call map")
        map_started = time.monotonic()
        calls = self._call_map(image)
        report.call_map_seconds = round(time.monotonic() - map_started, 2)
        callers = tests_by_function(calls, image.eligible)
        report.functions_called = len(callers)

        on_stage("mutations")
        candidates = self._candidates(repo_row.mirror_path, image.row.commit, callers, families)
        report.candidates = len(candidates)
        pool = sample_mutations(candidates, max_candidates or max(4 * count, count + 10), seed, families)
        if not pool:
            raise ForagerError(
                FailureCategory.no_tests,
                f"{ref}: no mutation candidates (no source function is called by a passing test)",
            )

        validate_started = time.monotonic()
        kept: list[CandidateVerdict] = []
        reasons: Counter[str] = Counter()
        with ThreadPoolExecutor(max_workers=self.settings.jobs) as workers:
            for start in range(0, len(pool), self.settings.jobs):
                if len(kept) >= count:
                    break
                batch = pool[start : start + min(self.settings.jobs, count - len(kept))]
                on_stage(f"validate {report.tried + 1}-{report.tried + len(batch)} ({len(kept)}/{count} valid)")
                jobs = [
                    workers.submit(self._validate, image, repo_row.id, repo_row.name, m, _covering(callers, m), seed)
                    for m in batch
                ]
                for verdict in (job.result() for job in jobs):  # in pool order: the same seed keeps the same tasks
                    report.tried += 1
                    report.tasks.append(verdict)
                    if verdict.valid:
                        kept.append(verdict)
                    else:
                        reasons[_reason_kind(verdict.reason)] += 1
        report.validate_seconds = round(time.monotonic() - validate_started, 2)
        report.valid = len(kept)
        report.reused = sum(v.reused for v in kept)
        report.invalid_reasons = dict(reasons)
        report.families = dict(Counter(v.family for v in kept))
        report.seconds = round(time.monotonic() - started, 2)
        return report

    # -- steps ---------------------------------------------------------------------------------
    def _image(self, ref: RepoRef, on_stage: StageCallback) -> _Image:
        on_stage("image")
        built = self.builder.build(ref, on_stage)
        if built.status != "ready" or built.image_id is None:
            raise ForagerError(FailureCategory(built.category or "build"), f"no ready image: {built.message}")
        return self._image_of(self.store.image(built.image_id), self.prefilter)

    def _image_of(self, row: Image, prefilter: bool | None) -> _Image:
        eligible = [t.test_id for t in self.store.baseline(row.id) if t.status == TestStatus.passed and not t.flaky]
        if prefilter is None:
            prefilter = baseline_run_seconds(row, self.settings) >= PREFILTER_MIN_SUITE_SECONDS
        return _Image(row=row, grading=suite_grading(row, self.settings), eligible=eligible, prefilter=prefilter)

    def revalidate(self, task: Task) -> Task:
        """Validate a stored mutate-fix task again in its image (whole suite), replacing its verdict."""
        started = time.monotonic()
        try:
            self._judge(self._image_of(self.store.image(task.image_id), prefilter=False), task, [])
        except Exception as exc:  # noqa: BLE001 - as in synthesis: the verdict says what went wrong
            task.valid, task.invalid_reason = False, f"validation error: {type(exc).__name__}: {str(exc)[:200]}"
        task.validate_seconds = round(time.monotonic() - started, 2)
        return self.store.save_task(task)

    def _call_map(self, image: _Image) -> dict[str, list[tuple[str, str]]]:
        cached = self.store.call_map(image.row.id)
        if cached is not None:
            return cached.calls
        started = time.monotonic()
        run = run_graded(self.engine, image.grading, plugins={PLUGIN_NAME: PLUGIN_SOURCE},
                         timeout=self.settings.test_timeout)
        calls = parse_call_map(run.files.get(CALLMAP_OUTPUT, b""))
        line_named = sorted({path for pairs in calls.values() for path, name in pairs if name.startswith(LINE_NAMED)})
        if line_named:  # traced on Python < 3.11
            mirror = self.store.repo(image.row.repo_id).mirror_path
            calls = resolve_line_names(calls, repos.read_files_at(Path(mirror), image.row.commit, line_named))
        if not calls:
            raise ForagerError(
                FailureCategory.tests_error,
                f"tracing the suite of image {image.row.id} gave no call map (exit {run.exit_code})",
                run.log_tail,
            )
        self.store.save_call_map(CallMap(image_id=image.row.id, calls=calls, seconds=time.monotonic() - started))
        return calls

    def _candidates(
        self, mirror: str, commit: str, callers: dict[tuple[str, str], list[str]], families: tuple[str, ...]
    ) -> list[Mutation]:
        """Mutations of the called functions (and import removals) of every file the tests reach."""
        symbols: dict[str, set[str]] = {}
        for path, qualname in callers:
            symbols.setdefault(path, {MODULE_SYMBOL}).add(qualname)
        sources = repos.read_files_at(Path(mirror), commit, sorted(symbols))
        return [
            mutation
            for path, source in sources.items()
            for mutation in enumerate_mutations(path, source, symbols=symbols[path], families=families)
        ]

    def _validate(
        self, image: _Image, repo_id: int, repo_name: str, mutation: Mutation, covering: list[str], seed: int
    ) -> CandidateVerdict:
        """Run the candidate's callers, then the whole suite; record the task, valid or not."""
        instance_id = mutation_instance_id(repo_name, mutation)
        existing = self.store.task(instance_id)
        # a verdict is reused, unless it was an error of the machinery rather than of the mutant
        retry = existing is not None and (existing.invalid_reason or "").startswith("validation error")
        if existing is not None and existing.image_id == image.row.id and not retry:
            return CandidateVerdict(instance_id=instance_id, family=mutation.family, valid=existing.valid,
                                    reason=existing.invalid_reason, reused=True)
        started = time.monotonic()
        task = Task(
            instance_id=instance_id, kind=TaskKind.mutate_fix.value, repo_id=repo_id, image_id=image.row.id,
            base_commit=image.row.commit, bug_patch=mutation.bug_patch(), gold_patch=mutation.gold_patch(),
            family=mutation.family, path=mutation.path, symbol=mutation.symbol, line=mutation.line,
            description=mutation.description, source=f"synthesize seed={seed}", repo_name=repo_name,
            forager_version=__version__,
        )
        try:
            self._judge(image, task, covering)
        except Exception as exc:  # noqa: BLE001 - one candidate's surprise (a daemon hiccup) must not stop the run
            task.valid, task.invalid_reason = False, f"validation error: {type(exc).__name__}: {str(exc)[:200]}"
        task.validate_seconds = round(time.monotonic() - started, 2)
        self.store.save_task(task)
        return CandidateVerdict(instance_id=instance_id, family=mutation.family, valid=task.valid,
                                reason=task.invalid_reason, seconds=task.validate_seconds)

    def _judge(self, image: _Image, task: Task, covering: list[str]) -> None:
        if image.prefilter:
            targeted = self._run_with_bug(image, task, covering)
            caught = any(_failing(targeted.statuses().get(test)) for test in covering)
            reason = _unusable(targeted) or (None if caught else "no test catches the bug (an equivalent mutant)")
            if reason:
                task.valid, task.invalid_reason = False, reason
                return
        full = self._run_with_bug(image, task, None)
        reason = _unusable(full)
        if reason:
            task.valid, task.invalid_reason = False, reason
            return
        statuses = full.statuses()
        fail_to_pass = [t for t in image.eligible if _failing(statuses.get(t))]
        pass_to_pass = [t for t in image.eligible if statuses.get(t) == TestStatus.passed]
        task.fail_to_pass, task.pass_to_pass = fail_to_pass, pass_to_pass
        task.validation = {
            "fail_to_pass_statuses": {t: statuses.get(t, MISSING) for t in fail_to_pass},
            "became_skipped": [t for t in image.eligible if statuses.get(t) == TestStatus.skipped],
            "suite_seconds": round(full.seconds, 2),
        }
        if not fail_to_pass:
            task.valid, task.invalid_reason = False, "no test catches the bug (an equivalent mutant)"
            return
        messages = {o.test_id: o.message for o in full.outcomes}
        failures = [(t, messages[t] if t in messages else "(not reported: its module failed to import)") for t in fail_to_pass]
        task.problem_statement = mutate_fix_statement(failures, total=len(fail_to_pass))
        task.valid, task.invalid_reason = True, None

    def _run_with_bug(self, image: _Image, task: Task, tests: list[str] | None) -> SuiteRun:
        if tests is not None and len(tests) > MAX_SELECTED_IDS:
            tests = test_files(tests)
        return run_graded(self.engine, image.grading.model_copy(update={"start_patch": task.bug_patch, "tests": tests}))


def _covering(callers: dict[tuple[str, str], list[str]], mutation: Mutation) -> list[str]:
    """The tests that call the mutated function; for an import removal, every test that calls into the file."""
    if mutation.symbol != MODULE_SYMBOL:
        return callers[(mutation.path, mutation.symbol)]
    return list(dict.fromkeys(t for (path, _name), tests in callers.items() if path == mutation.path for t in tests))


def _unusable(run: SuiteRun) -> str | None:
    """Why a run with the bug tells nothing about the tests, if it does not."""
    if run.setup_error is not None:
        return "bug patch does not apply"
    if run.timed_out:
        return "tests time out with the bug"
    return None


def _failing(status: str | None) -> bool:
    """Failed, errored, or not reported at all (its module no longer imports)."""
    return status is None or status in FAILING


def _reason_kind(reason: str | None) -> str:
    return (reason or "unknown").split(":")[0].split(" (")[0]
