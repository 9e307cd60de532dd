"""Grading determinism: K verdicts per patch judged (pure), and what verify does to a task's lists."""

from __future__ import annotations

from forager.integrity.verify import EMPTY, GOLD, Determinism, GradeRun, Verifier, is_verified, judge, plan, resolved_in
from forager.store import Task

F2P, P2P = ["t::fixed", "t::coin"], ["t::kept", "t::order"]


def run(patch: str, shuffled: bool = False, **statuses: str) -> GradeRun:
    base = {"t::fixed": "passed" if patch == GOLD else "failed", "t::coin": "passed" if patch == GOLD else "failed",
            "t::kept": "passed", "t::order": "passed"}
    return GradeRun(patch=patch, shuffled=shuffled, statuses={**base, **{f"t::{k}": v for k, v in statuses.items()}})


def test_the_plan_grades_both_patches_k_times_every_second_run_shuffled():
    assert plan(3, seed=10) == [(GOLD, False, None), (EMPTY, False, None), (GOLD, True, 11), (EMPTY, True, 11),
                                (GOLD, False, None), (EMPTY, False, None)]


def test_a_test_that_flips_in_grading_order_is_dropped_and_one_that_flips_shuffled_is_kept():
    runs = [run(GOLD), run(GOLD, coin="failed"), run(GOLD, shuffled=True, order="failed"),
            run(EMPTY), run(EMPTY), run(EMPTY, shuffled=True)]
    found = judge(runs, F2P, P2P)
    assert found["nondeterministic"] == ["t::coin"] and found["dropped_fail_to_pass"] == ["t::coin"]
    assert found["order_dependent"] == ["t::order"] and found["dropped_pass_to_pass"] == []
    assert found["flips"] == {"t::coin": 1, "t::order": 1}


def test_a_fail_to_pass_test_that_passes_with_the_bug_every_time_is_dropped():
    runs = [run(GOLD), run(GOLD), run(EMPTY, fixed="passed"), run(EMPTY, fixed="passed")]
    found = judge(runs, F2P, P2P)
    assert found["dropped_fail_to_pass"] == ["t::fixed"] and found["nondeterministic"] == []


def test_resolution_with_the_lists():
    assert resolved_in(run(GOLD), F2P, P2P) and not resolved_in(run(EMPTY), F2P, P2P)
    assert not resolved_in(run(GOLD, kept="failed"), F2P, P2P) and not resolved_in(run(GOLD), [], P2P)
    assert not resolved_in(GradeRun(patch=GOLD, shuffled=False, error="patch does not apply"), F2P, P2P)


def record(**fields) -> Determinism:
    return Determinism(runs=2, shuffled_runs=1, gold_resolved=2, bug_failed=2, tests_version=1, verified=False,
                       **fields)


def test_dropping_tests_makes_a_new_version_and_a_task_without_fail_to_pass_is_invalid():
    task = Task(instance_id="x", kind="mutate-fix", repo_id=1, fail_to_pass=["t::coin"], pass_to_pass=["t::kept"],
                valid=True, tests_version=1)
    found = record(dropped_fail_to_pass=["t::coin"])
    Verifier._apply(task, found, [run(GOLD), run(EMPTY)])
    assert task.fail_to_pass == [] and task.tests_version == 2 and found.tests_version == 2
    assert not task.valid and task.invalid_reason.startswith("verify: no FAIL_TO_PASS test") and not found.verified


def test_a_task_is_verified_when_every_plain_run_gives_the_expected_verdict():
    task = Task(instance_id="x", kind="mutate-fix", repo_id=1, fail_to_pass=F2P, pass_to_pass=P2P, valid=True)
    good = record()
    Verifier._apply(task, good, [run(GOLD), run(EMPTY)])
    assert good.verified and task.tests_version == 1
    bad = record()
    Verifier._apply(task, bad, [run(GOLD), run(EMPTY, fixed="passed", coin="passed")])  # the bug resolves it once
    assert not bad.verified
    assert is_verified({"determinism": good.model_dump()}) and not is_verified({"determinism": bad.model_dump()})
    assert not is_verified({}) and not is_verified(None)
