"""Is a task valid? Judged from two runs of its tests: without the fix and with it (pure: runs in, verdict out)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from forager.models import MISSING, SuiteRun, TestStatus

PASSED = TestStatus.passed.value
SHOWN = 3  # test ids named in a reason; the rest are counted


class PairVerdict(BaseModel):
    valid: bool
    reason: str | None = None
    fail_to_pass: list[str] = Field(default_factory=list)
    pass_to_pass: list[str] = Field(default_factory=list)
    validation: dict = Field(default_factory=dict)


def named(tests: list[str]) -> str:
    more = f" and {len(tests) - SHOWN} more" if len(tests) > SHOWN else ""
    return ", ".join(tests[:SHOWN]) + more


def judge_pair(
    before: SuiteRun, after: SuiteRun, fail_to_pass: list[str] | None, pass_to_pass: list[str] | None,
    *, excluded: set[str] | frozenset[str] = frozenset(),
) -> PairVerdict:
    """Valid when FAIL_TO_PASS tests do not pass before and all pass after, and PASS_TO_PASS pass in both.

    With no lists given (mining), they are found: FAIL_TO_PASS are the tests that pass only after the
    fix, PASS_TO_PASS those that pass in both; `excluded` (flaky) tests are in neither.
    """
    for label, run in (("without the fix", before), ("with the fix", after)):
        if run.setup_error is not None:
            what = "the test patch" if label == "without the fix" else "the fix or the test patch"
            last = run.setup_error.strip().splitlines()[-1][:200] if run.setup_error.strip() else ""
            return PairVerdict(valid=False, reason=f"{what} does not apply ({last})")
        if run.timed_out:
            return PairVerdict(valid=False, reason=f"tests time out {label}")
    old, new = before.statuses(), after.statuses()
    given = fail_to_pass is not None
    if fail_to_pass is None:
        fail_to_pass = [t for t, s in new.items() if s == PASSED and old.get(t) != PASSED and t not in excluded]
    if pass_to_pass is None:
        pass_to_pass = [t for t, s in new.items() if s == PASSED and old.get(t) == PASSED and t not in excluded]
    validation = {
        "before": {t: old.get(t, MISSING) for t in fail_to_pass},
        "after": {t: new.get(t, MISSING) for t in fail_to_pass},
        "before_seconds": round(before.seconds, 2),
        "after_seconds": round(after.seconds, 2),
    }
    verdict = PairVerdict(valid=False, fail_to_pass=fail_to_pass, pass_to_pass=pass_to_pass, validation=validation)
    if not fail_to_pass:
        verdict.reason = "no test fails without the fix and passes with it" if not given else "FAIL_TO_PASS is empty"
        return verdict
    passing_before = [t for t in fail_to_pass if old.get(t) == PASSED]
    if passing_before:
        verdict.reason = f"FAIL_TO_PASS tests pass without the fix: {named(passing_before)}"
        return verdict
    not_fixed = [t for t in fail_to_pass if new.get(t) != PASSED]
    if not_fixed:
        shown = [f"{t} ({new.get(t, MISSING)})" for t in not_fixed]
        verdict.reason = f"FAIL_TO_PASS tests do not pass with the fix: {named(shown)}"
        return verdict
    broken = [t for t in pass_to_pass if new.get(t) != PASSED or old.get(t) != PASSED]
    if broken:
        verdict.reason = f"PASS_TO_PASS tests do not pass both without and with the fix: {named(broken)}"
        return verdict
    verdict.valid = True
    return verdict
