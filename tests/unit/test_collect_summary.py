"""The collect summary's prefix-cache warning (pure)."""

from forager.collect import CollectSummary


def _summary(hit, reusable, steps=20):
    return CollectSummary(run="r", run_id=1, steps=steps, prefix_cache_hit_rate=hit, reusable_rate=reusable)


def test_low_hit_rate_against_what_was_reusable_warns():
    assert "prefix-cache hit rate 10%" in _summary(0.10, 0.90).cache_warning
    assert _summary(0.70, 0.90).cache_warning is None  # most of what could hit, hit


def test_no_warning_without_evidence():
    assert _summary(None, 0.9).cache_warning is None  # the server did not report cached tokens
    assert _summary(0.0, 0.0).cache_warning is None  # nothing was reusable (single-turn episodes)
    assert _summary(0.0, 0.9, steps=3).cache_warning is None  # too few calls to tell


def test_a_turn_splits_into_model_tokenize_command_store_and_the_rest():
    from forager.agent.loop import StepRecord
    from forager.agent.policy import Decision
    from forager.collect.steps import step_timings
    from forager.sandbox.models import ToolResult

    decision = Decision(text="", assistant_message={}, tokenize_seconds=0.02)
    step = StepRecord(index=0, decision=decision, observation_messages=[], observation="", seconds=1.0,
                      decide_seconds=0.52, result=ToolResult(output="", seconds=0.4))
    parts = step_timings(step, store_wait=0.003, bookkeeping=0.001)
    assert parts["model"] == 0.5 and parts["tokenize"] == 0.02 and parts["command"] == 0.4
    assert parts["store"] == 0.003 and round(parts["other"], 6) == 0.081  # 1.0 - 0.52 - 0.4, plus the row's making
    assert parts["total"] == 1.004


def test_time_split_gives_percentiles_shares_and_the_collectors_own_share():
    from forager.collect.summary import time_split

    steps = [{"model": 0.1, "tokenize": 0.001, "command": 0.2, "store": 0.0, "other": 0.002, "total": 0.303}] * 99
    steps += [{"model": 0.1, "tokenize": 0.001, "command": 0.2, "store": 0.5, "other": 0.002, "total": 0.803}]
    episodes = [(20.0, 1.0, 2.0), (20.0, 0.0, 2.0)]  # (wall, sandbox wait, grading)
    parts, own = time_split(steps + [{}], episodes)  # an unsplit step (stored before the split existed) is left out
    assert parts["store"].p50_ms == 0.0 and parts["store"].p99_ms == 500.0
    assert parts["command"].share == round(100 * 0.2 / 40, 4)
    assert parts["sandbox_wait"].mean_ms == 500.0 and parts["grading"].p50_ms == 2000.0
    assert own == round((100 * 0.001 + 0.5 + 100 * 0.002) / 40, 4)
    assert parts["outside_steps"].share == round((40 - 30.8 - 5.0) / 40, 4)
    assert time_split([], episodes) == ({}, None)
