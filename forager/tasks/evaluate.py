"""Grade a state of a repository on a task's tests: a grading spec run in a fresh container, per-test verdicts.

The same code validates tasks, runs the gold-patch oracle, and computes an agent's reward, so a task
that validated is graded the same way when an agent submits. What a grade runs is described by one value,
the task's :class:`~forager.tasks.grading.GradingSpec`; every grade keeps the script that ran and the tail
of its log, so an unresolved episode can be read from the store. The report is read from a folder drawn
for the run (see :mod:`forager.testing.runner`).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from forager.engine.docker_engine import Engine
from forager.config import Settings
from forager.models import MISSING, SuiteRun, TestStatus
from forager.store import Image, Task
from forager.tasks.grading import GradingSpec, grading_spec
from forager.testing.runner import run_suite

APPLY_FAILED = "patch does not apply"
LOG_TAIL_CHARS = 4000  # per grade: enough for pytest's summary and the last traceback, small per episode


class Grade(BaseModel):
    """A repository state against a task's FAIL_TO_PASS and PASS_TO_PASS tests."""

    applied: bool = Field(description="every patch applied")
    error: str | None = Field(default=None, description="why the state could not be graded")
    timed_out: bool = False
    statuses: dict[str, str] = Field(default_factory=dict, description="test id -> status, for F2P and P2P tests")
    fail_to_pass_passed: int = 0
    fail_to_pass_total: int = 0
    pass_to_pass_passed: int = 0
    pass_to_pass_total: int = 0
    resolved: bool = False
    seconds: float = 0.0
    restored: list[str] = Field(default_factory=list, description="files the patch changed that grading put back")
    report_altered: bool = Field(default=False, description="the JUnit report changed after pytest wrote it")
    script: str = Field(default="", description="the shell the grading container ran (setup, then the suite)")
    log_tail: str = Field(default="", description="the end of that run's output, or of its setup's error")
    tests_version: int | None = Field(default=None, description="the version of the task's test lists it graded"
                                                                " with (tasks verify may drop tests later)")

    def flags(self) -> list[str]:
        """What an episode is flagged with: the patch reached for the grader's own ground."""
        return [f"restored {path}" for path in self.restored] + (["report altered"] if self.report_altered else [])


def grade(run: SuiteRun, fail_to_pass: list[str], pass_to_pass: list[str], restored: list[str] | None = None) -> Grade:
    """Resolved when the patches applied, the run finished and every F2P and P2P test passed (pure)."""
    kept = {"restored": restored or [], "script": run.script,
            "log_tail": (run.setup_error if run.setup_error is not None else run.log_tail)[-LOG_TAIL_CHARS:]}
    if run.setup_error is not None:
        return Grade(applied=False, error=f"{APPLY_FAILED}: {_last_line(run.setup_error)}", seconds=run.seconds,
                     **kept)
    seen = run.statuses()
    statuses = {test: seen.get(test, MISSING) for test in [*fail_to_pass, *pass_to_pass]}
    f2p = sum(statuses[t] == TestStatus.passed for t in fail_to_pass)
    p2p = sum(statuses[t] == TestStatus.passed for t in pass_to_pass)
    error = "tests timed out" if run.timed_out else None
    return Grade(
        applied=True, error=error, timed_out=run.timed_out, statuses=statuses,
        fail_to_pass_passed=f2p, fail_to_pass_total=len(fail_to_pass),
        pass_to_pass_passed=p2p, pass_to_pass_total=len(pass_to_pass),
        resolved=not run.timed_out and bool(fail_to_pass) and f2p == len(fail_to_pass) and p2p == len(pass_to_pass),
        seconds=run.seconds, report_altered=run.report_altered, **kept,
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def run_graded(
    engine: Engine, spec: GradingSpec, patch: str = "", *, run_index: int = 1, plugins: dict[str, str] | None = None,
    timeout: int | None = None,
) -> SuiteRun:
    """Run `spec`'s tests (the whole suite when it names none) in its start state changed by `patch`, the graded
    ground and the test patch's files put back first, then the test patch applied. `timeout` overrides the spec's
    deadline (a baseline-like run of the whole suite)."""
    return run_suite(
        engine, spec.image_tag, spec.env, repo_path=spec.repo_path, timeout=timeout or spec.timeout,
        run_index=run_index, test_ids=spec.tests or None, setup=spec.setup(patch), files=spec.staged_files(patch),
        plugins=plugins, case_timeout=spec.case_timeout,
    )


def evaluate(engine: Engine, spec: GradingSpec, patch: str) -> Grade:
    """Grade `patch` (relative to the task's start state): the reward of an episode, the oracle, and a task's
    validation with its gold patch. Graded ground the patch changed is restored first and named in the grade."""
    run = run_graded(engine, spec, patch)
    result = grade(run, spec.fail_to_pass, spec.pass_to_pass, spec.restored(patch))
    result.tests_version = spec.tests_version
    return result


def evaluate_in_image(engine: Engine, settings: Settings, image: Image, task: Task, patch: str) -> Grade:
    """`evaluate` in the task's image as the store describes it (its spec, plugin files and time limit)."""
    return evaluate(engine, grading_spec(task, image, settings), patch)
