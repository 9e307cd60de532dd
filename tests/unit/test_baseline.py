from forager.models import FailureCategory, SuiteRun, TestOutcome, TestStatus
from forager.testing.baseline import judge, merge_runs


def run(exit_code=0, timed_out=False, **statuses):
    return SuiteRun(
        exit_code=exit_code,
        timed_out=timed_out,
        outcomes=[TestOutcome(test_id=k, status=TestStatus(v)) for k, v in statuses.items()],
    )


def test_flaky_when_status_differs_or_missing():
    runs = [run(a="passed", b="passed", c="failed"), run(a="passed", b="failed", d="passed")]
    merged = {b.test_id: b for b in merge_runs(runs)}
    assert not merged["a"].flaky
    assert merged["b"].flaky and merged["b"].status == "passed" and merged["b"].statuses == ["passed", "failed"]
    assert merged["c"].flaky and merged["c"].statuses == ["failed", "missing"]
    assert merged["d"].flaky and merged["d"].status == "passed"


def test_ready_when_a_test_passed():
    runs = [run(1, a="passed", b="failed")] * 2
    assert judge(runs, merge_runs(runs)) == (None, "")


def test_categories():
    no_tests = [run(5)]
    assert judge(no_tests, merge_runs(no_tests))[0] == FailureCategory.no_tests
    crashed = [run(3)]
    assert judge(crashed, merge_runs(crashed))[0] == FailureCategory.tests_error
    all_failed = [run(1, a="failed", b="error")]
    category, cause = judge(all_failed, merge_runs(all_failed))
    assert category == FailureCategory.tests_error and "1 failed, 1 errors" in cause
    slow = [run(124, timed_out=True, a="passed")]
    assert judge(slow, merge_runs(slow))[0] == FailureCategory.timeout
