"""judge_pair: is a task valid, from a run without the fix and a run with it."""

from __future__ import annotations

from forager.models import SuiteRun, TestOutcome, TestStatus
from forager.tasks.verdict import judge_pair

A = "tests/test_a.py::test_a"
B = "tests/test_a.py::test_b"
C = "tests/test_a.py::test_c"
NEW = "tests/test_a.py::test_new"
FLAKY = "tests/test_a.py::test_flaky"


def run(seconds: float = 1.0, timed_out: bool = False, setup_error: str | None = None, **statuses: str) -> SuiteRun:
    """A run whose outcomes are given as name=status, the name being a test of tests/test_a.py."""
    outcomes = [TestOutcome(test_id=f"tests/test_a.py::{name}", status=TestStatus(status)) for name, status in statuses.items()]
    return SuiteRun(exit_code=0, seconds=seconds, timed_out=timed_out, setup_error=setup_error, outcomes=outcomes)


# -- given lists -------------------------------------------------------------------------------


def test_given_lists_valid():
    before = run(seconds=1.234, test_a="failed", test_b="passed")
    after = run(seconds=2.345, test_a="passed", test_b="passed")
    verdict = judge_pair(before, after, [A], [B])
    assert verdict.valid is True
    assert verdict.reason is None
    assert verdict.fail_to_pass == [A]
    assert verdict.pass_to_pass == [B]
    assert verdict.validation == {
        "before": {A: "failed"},
        "after": {A: "passed"},
        "before_seconds": 1.23,
        "after_seconds": 2.35,
    }


def test_given_f2p_missing_before_is_valid():
    """A new test (absent without the fix) counts as not passing before."""
    before = run(test_b="passed")
    after = run(test_a="passed", test_b="passed")
    verdict = judge_pair(before, after, [A], [B])
    assert verdict.valid
    assert verdict.validation["before"] == {A: "missing"}


def test_f2p_passing_before_is_invalid_and_named():
    before = run(test_a="passed", test_b="failed")
    after = run(test_a="passed", test_b="passed")
    verdict = judge_pair(before, after, [A, B], [])
    assert not verdict.valid
    assert verdict.reason is not None
    assert "pass without the fix" in verdict.reason
    assert A in verdict.reason
    assert B not in verdict.reason


def test_f2p_failing_after_is_invalid_with_status():
    before = run(test_a="failed")
    after = run(test_a="failed")
    verdict = judge_pair(before, after, [A], [])
    assert not verdict.valid
    assert "do not pass with the fix" in verdict.reason
    assert f"{A} (failed)" in verdict.reason


def test_f2p_error_after_is_invalid_with_status():
    before = run(test_a="failed")
    after = run(test_a="error")
    verdict = judge_pair(before, after, [A], [])
    assert not verdict.valid
    assert f"{A} (error)" in verdict.reason


def test_f2p_missing_after_is_invalid_with_missing():
    before = run(test_a="failed")
    after = run(test_b="passed")
    verdict = judge_pair(before, after, [A], [])
    assert not verdict.valid
    assert f"{A} (missing)" in verdict.reason
    assert verdict.validation["after"] == {A: "missing"}


def test_p2p_failing_after_is_invalid():
    before = run(test_a="failed", test_b="passed")
    after = run(test_a="passed", test_b="failed")
    verdict = judge_pair(before, after, [A], [B])
    assert not verdict.valid
    assert "PASS_TO_PASS" in verdict.reason
    assert B in verdict.reason


def test_p2p_failing_before_is_invalid():
    before = run(test_a="failed", test_b="failed")
    after = run(test_a="passed", test_b="passed")
    verdict = judge_pair(before, after, [A], [B])
    assert not verdict.valid
    assert "PASS_TO_PASS" in verdict.reason
    assert B in verdict.reason


def test_p2p_missing_after_is_invalid():
    before = run(test_a="failed", test_b="passed")
    after = run(test_a="passed")
    verdict = judge_pair(before, after, [A], [B])
    assert not verdict.valid
    assert B in verdict.reason


def test_given_empty_f2p_is_invalid():
    before = run(test_a="failed")
    after = run(test_a="passed")
    verdict = judge_pair(before, after, [], [])
    assert not verdict.valid
    assert verdict.reason == "FAIL_TO_PASS is empty"


# -- setup errors and time-outs ---------------------------------------------------------------


def test_setup_error_before_names_test_patch():
    before = run(setup_error="Checking patch tests/test_a.py...\nerror: patch failed: tests/test_a.py:3\n")
    after = run(test_a="passed")
    verdict = judge_pair(before, after, [A], [])
    assert not verdict.valid
    assert verdict.reason.startswith("the test patch does not apply")
    assert "test patch does not apply" in verdict.reason
    assert "error: patch failed: tests/test_a.py:3" in verdict.reason  # the last line of the error
    assert "Checking patch" not in verdict.reason


def test_setup_error_after_names_fix_or_test_patch():
    before = run(test_a="failed")
    after = run(setup_error="error: corrupt patch at line 7")
    verdict = judge_pair(before, after, [A], [])
    assert not verdict.valid
    assert "the fix or the test patch" in verdict.reason
    assert "does not apply" in verdict.reason
    assert "corrupt patch at line 7" in verdict.reason


def test_empty_setup_error_still_invalid():
    verdict = judge_pair(run(setup_error=""), run(test_a="passed"), [A], [])
    assert not verdict.valid
    assert "test patch does not apply" in verdict.reason


def test_timed_out_before_is_invalid():
    verdict = judge_pair(run(timed_out=True, test_a="failed"), run(test_a="passed"), [A], [])
    assert not verdict.valid
    assert "time out" in verdict.reason
    assert "without the fix" in verdict.reason


def test_timed_out_after_is_invalid():
    verdict = judge_pair(run(test_a="failed"), run(timed_out=True, test_a="passed"), [A], [])
    assert not verdict.valid
    assert "time out" in verdict.reason
    assert "with the fix" in verdict.reason


def test_timed_out_mining_is_invalid():
    verdict = judge_pair(run(test_a="failed"), run(timed_out=True, test_a="passed"), None, None)
    assert not verdict.valid
    assert "time out" in verdict.reason


# -- mining (no lists) ----------------------------------------------------------------------


def test_mining_finds_f2p_and_p2p():
    before = run(test_a="failed", test_b="passed", test_c="passed", test_flaky="failed")
    after = run(test_a="passed", test_b="passed", test_c="failed", test_new="passed", test_flaky="passed")
    verdict = judge_pair(before, after, None, None, excluded={FLAKY})
    assert verdict.valid, verdict.reason
    assert verdict.fail_to_pass == [A, NEW]
    assert verdict.pass_to_pass == [B]
    assert C not in verdict.fail_to_pass and C not in verdict.pass_to_pass
    assert verdict.validation["before"] == {A: "failed", NEW: "missing"}
    assert verdict.validation["after"] == {A: "passed", NEW: "passed"}


def test_mining_excluded_kept_out_of_p2p():
    before = run(test_a="failed", test_b="passed", test_flaky="passed")
    after = run(test_a="passed", test_b="passed", test_flaky="passed")
    verdict = judge_pair(before, after, None, None, excluded=frozenset({FLAKY}))
    assert verdict.valid
    assert verdict.fail_to_pass == [A]
    assert verdict.pass_to_pass == [B]
    assert FLAKY not in verdict.fail_to_pass + verdict.pass_to_pass


def test_mining_excluded_only_newly_passing_is_invalid():
    before = run(test_b="passed", test_flaky="failed")
    after = run(test_b="passed", test_flaky="passed")
    verdict = judge_pair(before, after, None, None, excluded={FLAKY})
    assert not verdict.valid
    assert verdict.reason == "no test fails without the fix and passes with it"
    assert verdict.fail_to_pass == []


def test_mining_nothing_newly_passing_is_invalid():
    before = run(test_a="passed", test_b="failed")
    after = run(test_a="passed", test_b="failed")
    verdict = judge_pair(before, after, None, None)
    assert not verdict.valid
    assert verdict.reason == "no test fails without the fix and passes with it"
    assert verdict.pass_to_pass == [A]


def test_mining_with_given_p2p_only():
    """F2P mined, P2P given: a given P2P failing after makes it invalid."""
    before = run(test_a="failed", test_b="passed")
    after = run(test_a="passed", test_b="failed")
    verdict = judge_pair(before, after, None, [B])
    assert not verdict.valid
    assert verdict.fail_to_pass == [A]
    assert B in verdict.reason


# -- reasons name at most three tests -----------------------------------------------------


def test_reason_names_three_and_counts_the_rest():
    names = [f"t{i}" for i in range(5)]
    ids = [f"tests/test_a.py::{n}" for n in names]
    before = run(**{n: "passed" for n in names})
    after = run(**{n: "passed" for n in names})
    verdict = judge_pair(before, after, ids, [])
    assert not verdict.valid
    assert verdict.reason.endswith("and 2 more")
    for shown in ids[:3]:
        assert shown in verdict.reason
    for hidden in ids[3:]:
        assert hidden not in verdict.reason


def test_reason_with_exactly_three_has_no_more():
    names = ["t0", "t1", "t2"]
    ids = [f"tests/test_a.py::{n}" for n in names]
    verdict = judge_pair(run(**{n: "failed" for n in names}), run(**{n: "failed" for n in names}), ids, [])
    assert not verdict.valid
    assert "more" not in verdict.reason
    assert all(f"{i} (failed)" in verdict.reason for i in ids)


def test_not_fixed_reason_counts_extra():
    names = [f"t{i}" for i in range(7)]
    ids = [f"tests/test_a.py::{n}" for n in names]
    verdict = judge_pair(run(**{n: "failed" for n in names}), run(), ids, [])
    assert not verdict.valid
    assert verdict.reason.endswith("and 4 more")
    assert f"{ids[0]} (missing)" in verdict.reason
    assert ids[3] not in verdict.reason
