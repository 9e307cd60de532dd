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
