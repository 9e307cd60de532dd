"""Merge validation runs into an image baseline and judge the image (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from forager.models import MISSING, BaselineEntry, FailureCategory, SuiteRun, TestStatus
from forager.testing.diagnose import no_results_cause


def merge_runs(runs: list[SuiteRun]) -> list[BaselineEntry]:
    """One row per test id seen in any run; flaky when its status differs between runs."""
    per_run = [run.statuses() for run in runs]
    ids: dict[str, None] = {}
    for statuses in per_run:
        ids.update(dict.fromkeys(statuses))
    merged = []
    for test_id in ids:
        statuses = [run.get(test_id, MISSING) for run in per_run]
        first = next(s for s in statuses if s != MISSING)
        merged.append(BaselineEntry(test_id=test_id, status=first, flaky=len(set(statuses)) > 1, statuses=statuses))
    return merged


def judge(runs: list[SuiteRun], baseline: Sequence[BaselineEntry]) -> tuple[FailureCategory | None, str]:
    """None when the image is ready (the suite ran and a test passed); else the category and a one-line cause."""
    first = runs[0]
    if any(run.timed_out for run in runs):
        return FailureCategory.timeout, "test suite did not finish within the time limit (raise --test-timeout)"
    if any(b.status == TestStatus.passed for b in baseline):
        return None, ""
    if not first.outcomes and first.exit_code == 5:
        return FailureCategory.no_tests, "pytest collected no tests"
    if not first.outcomes:
        cause = no_results_cause(first.log_tail)
        said = f": {cause.line}" if cause else " (its output names no cause; see the log tail)"
        return FailureCategory.tests_error, f"pytest exited {first.exit_code} without reporting tests{said}"
    errors = first.count(TestStatus.error)
    return (
        FailureCategory.tests_error,
        f"no test passed ({first.count(TestStatus.failed)} failed, {errors} errors, "
        f"{first.count(TestStatus.skipped)} skipped)",
    )
