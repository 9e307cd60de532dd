"""Difficulty estimates from rollouts (forager/integrity/stats.py): pass@k, Wilson intervals, the set's shares,
and the pass-rate range a filter takes."""

import math

import pytest

from forager.integrity.stats import (
    TaskOutcomes, default_k, parse_range, pass_at_k, pass_at_k_interval, summarize, task_stats, wilson_interval,
)

Z2 = 1.959963984540054 ** 2  # the 97.5% normal quantile, squared


def outcome(task_id: int, n: int, c: int, **fields) -> TaskOutcomes:
    return TaskOutcomes(task_id=task_id, instance_id=f"t{task_id}", repo="demo", attempts=n, resolved=c, **fields)


def test_pass_at_k_of_three_in_ten():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)  # C(7,5)/C(10,5) = 1/12
    assert pass_at_k(10, 3, 10) == 1.0  # every draw of 10 holds a resolved attempt
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - (7 * 6) / (10 * 9))


def test_pass_at_k_edges():
    assert pass_at_k(5, 0, 1) == 0.0 and pass_at_k(5, 0, 4) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0 and pass_at_k(5, 5, 5) == 1.0
    assert pass_at_k(4, 1, 8) is None and pass_at_k(0, 0, 1) is None  # k > n: no estimate
    assert pass_at_k_interval(4, 1, 8) is None
    for bad in ((5, 6, 1), (5, -1, 1), (-1, 0, 1)):
        with pytest.raises(ValueError, match="resolved"):
            pass_at_k(*bad)
    with pytest.raises(ValueError, match="k must be at least 1"):
        pass_at_k(5, 1, 0)


def test_pass_at_k_is_unbiased_over_every_outcome():
    # E over c ~ Binomial(n, p) of the estimator is the true 1 - (1-p)^k
    n, k, p = 6, 3, 0.35
    expected = sum(math.comb(n, c) * p**c * (1 - p) ** (n - c) * pass_at_k(n, c, k) for c in range(n + 1))
    assert expected == pytest.approx(1 - (1 - p) ** k)


def test_wilson_interval_by_hand():
    lo, hi = wilson_interval(3, 10)
    # (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), p = 0.3
    centre = (0.3 + Z2 / 20) / (1 + Z2 / 10)
    half = math.sqrt(Z2) * math.sqrt(0.3 * 0.7 / 10 + Z2 / 400) / (1 + Z2 / 10)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert (lo, hi) == pytest.approx((0.1078, 0.6032), abs=1e-4)  # the published table value
    assert wilson_interval(1, 2) == pytest.approx((0.0945, 0.9055), abs=1e-4)
    assert wilson_interval(3, 10, confidence=0.5)[1] < hi  # a lower confidence, a narrower interval


def test_wilson_interval_at_zero_and_all():
    assert wilson_interval(0, 10) == pytest.approx((0.0, Z2 / (10 + Z2)))
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + Z2), 1.0))
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) is None


def test_pass_at_k_interval_maps_wilson():
    lo, hi = wilson_interval(3, 10)
    assert pass_at_k_interval(10, 3, 1) == pytest.approx((lo, hi))
    assert pass_at_k_interval(10, 3, 4) == pytest.approx((1 - (1 - lo) ** 4, 1 - (1 - hi) ** 4))
    low, high = pass_at_k_interval(10, 0, 4)
    assert low == 0.0 and high == pytest.approx(1 - (1 - Z2 / (10 + Z2)) ** 4)
    assert pass_at_k_interval(10, 10, 4)[1] == 1.0


def test_default_k_is_the_largest_power_of_two_under_the_fewest_attempts():
    assert default_k([10, 5, 7]) == 4
    assert default_k([8, 16]) == 8
    assert default_k([1, 9]) == 1
    assert default_k([0, 3]) == 2  # tasks without attempts do not pull k down
    assert default_k([]) == 1 and default_k([0]) == 1


def test_task_stats_means_and_no_attempts():
    row = task_stats(outcome(1, 4, 1, turns=10, tokens=1000, exit_reasons={"submitted": 3, "max_turns": 1}), k=2)
    assert row.pass_at_1 == 0.25 and row.pass_at_k == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert row.mean_turns == 2.5 and row.mean_tokens == 250
    assert list(row.exit_reasons) == ["submitted", "max_turns"]  # the most frequent first
    empty = task_stats(outcome(2, 0, 0), k=2)
    assert empty.pass_at_1 is None and empty.pass_at_1_ci is None and empty.pass_at_k is None
    assert empty.mean_turns is None and empty.mean_tokens is None


def test_summary_shares_are_over_tasks_with_attempts():
    outcomes = [outcome(1, 4, 2), outcome(2, 4, 4), outcome(3, 8, 0), outcome(4, 5, 1), outcome(5, 0, 0)]
    report = summarize(outcomes)
    assert (report.tasks, report.tasks_with_attempts) == (5, 4)
    assert (report.mixed, report.always, report.never) == (2, 1, 1)  # 2/4 and 1/5 carry signal
    assert report.mixed_share == 0.5 and report.always_share == 0.25 and report.never_share == 0.25
    assert report.mean_pass_at_1 == pytest.approx((0.5 + 1 + 0 + 0.2) / 4)
    assert report.k == 4 and "fewest attempts (4)" in report.k_rule
    # k = n = 4 with c >= 1 is 1; n = 5, c = 1: 1 - C(4,4)/C(5,4)
    assert [r.pass_at_k for r in report.rows] == [1.0, 1.0, 0.0, pytest.approx(0.8), None]
    given = summarize(outcomes, k=5)
    assert given.k == 5 and given.k_rule == "given"
    assert [r.pass_at_k is None for r in given.rows] == [True, True, False, False, True]


def test_summary_of_nothing():
    report = summarize([])
    assert report.k == 1 and report.tasks == 0 and report.mixed_share is None and report.mean_pass_at_1 is None
    untried = summarize([outcome(1, 0, 0)])
    assert untried.tasks == 1 and untried.tasks_with_attempts == 0 and untried.never_share is None
    with pytest.raises(ValueError, match="k must be at least 1"):
        summarize([outcome(1, 2, 1)], k=0)


def test_parse_range():
    assert parse_range("0.1:0.9") == (0.1, 0.9)
    assert parse_range(" 0:1 ") == (0.0, 1.0)
    assert parse_range("0.25:") == (0.25, 1.0) and parse_range(":0.5") == (0.0, 0.5)
    assert parse_range("0.5:0.5") == (0.5, 0.5)
    for bad in ("0.9:0.1", "0.5", "a:b", "0.1:0.5:0.9", "-0.1:0.5", "0.1:1.5", "nan:1", ""):
        with pytest.raises(ValueError, match=r"LO:HI with 0 <= LO <= HI <= 1") as caught:
            parse_range(bad)
        assert repr(bad) in str(caught.value) and "\n" not in str(caught.value)
