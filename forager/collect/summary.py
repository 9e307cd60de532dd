"""The summary of a collect run, read back from the store: what finished, how it ended, where time went."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field

from forager.store import Run, Store


STEP_PARTS = ("model", "tokenize", "command", "store", "other")
# the collector's own part of a turn: everything between two model calls but the command itself
COLLECTOR_PARTS = ("tokenize", "store", "other")


class TimePart(BaseModel):
    """One part of the time split: per step (or per episode for sandbox wait, grading and the time outside
    the turns), its median and 99th percentile in milliseconds, and its share of the episodes' wall time."""

    p50_ms: float
    p99_ms: float
    mean_ms: float
    share: float


class CollectSummary(BaseModel):
    run: str
    run_id: int
    episodes: int = 0
    finished: int = 0
    resolved: int = 0
    resolved_rate: float = 0.0
    exit_reasons: dict[str, int] = Field(default_factory=dict)
    steps: int = 0
    mean_steps: float = 0.0
    completion_tokens: int = 0
    cached_tokens: int = 0
    llm_seconds: float = 0.0
    env_seconds: float = 0.0
    start_seconds: float = 0.0
    grade_seconds: float = 0.0
    wall_seconds: float = 0.0
    flagged: int = Field(default=0, description="finished episodes with a reward-hacking flag")
    flags: dict[str, int] = Field(default_factory=dict, description="episodes per flag kind (what precedes the ':')")
    prefix_breaks: int = Field(default=0, description="model calls whose prompt did not extend the previous call")
    prompt_tokens: int = Field(default=0, description="prompt tokens over all model calls")
    prefix_cache_hit_rate: float | None = Field(default=None, description="cached / prompt tokens, as the server reported")
    reusable_rate: float | None = Field(
        default=None, description="share of prompt tokens that were the previous call's prompt + reply: the best "
        "hit rate an append-only history allows")

    time_split: dict[str, TimePart] = Field(default_factory=dict, description=(
        "per step: model, tokenize, command, store, other; per episode: sandbox_wait, grading, outside_steps"))
    token_sources: dict[str, int] = Field(default_factory=dict, description=(
        "finished episodes by where their prompt token ids came from (exact-token runs)"))
    collector_share: float | None = Field(default=None, description=(
        "tokenize + store + other over the episodes' wall time: the collector's own time between model calls"))

    @property
    def cache_warning(self) -> str | None:
        """A line when the server reused much less of the prompts than it could have."""
        if self.prefix_cache_hit_rate is None or not self.reusable_rate or self.steps < 10:
            return None
        if self.prefix_cache_hit_rate >= 0.5 * self.reusable_rate:
            return None
        return (f"prefix-cache hit rate {self.prefix_cache_hit_rate:.0%} of prompt tokens, though "
                f"{self.reusable_rate:.0%} repeated the previous call: check the server has prefix caching on "
                "(forager serve does), that sliding-window models keep --prefix-cache-retention-interval 0, "
                "and that prompts go as token ids (--prompt-mode tokens)")


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _part(values: list[float], wall: float) -> TimePart:
    ordered = sorted(values)
    return TimePart(p50_ms=round(_quantile(ordered, 0.5) * 1000, 2), p99_ms=round(_quantile(ordered, 0.99) * 1000, 2),
                    mean_ms=round(sum(ordered) / len(ordered) * 1000, 2), share=round(sum(ordered) / wall, 4) if wall else 0.0)


def time_split(step_timings: list[dict], episodes: list[tuple[float, float, float]]) -> tuple[dict[str, TimePart], float | None]:
    """Where the episodes' time went (pure): `step_timings` are the steps' `timings` records (collect/steps.py),
    `episodes` the finished episodes' (wall, sandbox wait, grading) seconds. Returns the parts, and the
    collector's own share (None without split steps)."""
    steps = [timings for timings in step_timings if timings]
    wall = sum(total for total, _start, _grade in episodes)
    if not steps or not episodes:
        return {}, None
    parts = {name: _part([float(t.get(name, 0.0)) for t in steps], wall) for name in STEP_PARTS}
    parts["sandbox_wait"] = _part([start for _wall, start, _grade in episodes], wall)
    parts["grading"] = _part([grade for _wall, _start, grade in episodes], wall)
    in_steps = sum(float(t.get("total", 0.0)) for t in steps)
    outside = wall - in_steps - sum(start + grade for _wall, start, grade in episodes)
    parts["outside_steps"] = TimePart(p50_ms=0.0, p99_ms=0.0, mean_ms=round(max(0.0, outside) / len(episodes) * 1000, 2),
                                      share=round(max(0.0, outside) / wall, 4) if wall else 0.0)
    own = sum(parts[name].share for name in COLLECTOR_PARTS)
    return parts, round(own, 4)


def summarize(store: Store, run: Run) -> CollectSummary:
    episodes = store.episodes(run.id)
    done = [e for e in episodes if e.status == "finished"]
    summary = CollectSummary(run=run.name, run_id=run.id, episodes=len(episodes), finished=len(done))
    summary.resolved = sum(bool(e.resolved) for e in done)
    summary.resolved_rate = round(summary.resolved / len(done), 4) if done else 0.0
    summary.exit_reasons = dict(Counter(e.exit_reason for e in done))
    summary.steps = sum(e.turns for e in done)
    summary.mean_steps = round(summary.steps / len(done), 2) if done else 0.0
    for name in ("completion_tokens", "cached_tokens"):
        setattr(summary, name, sum(getattr(e, name) for e in done))
    for name in ("llm_seconds", "env_seconds", "start_seconds", "grade_seconds", "wall_seconds"):
        setattr(summary, name, round(sum(getattr(e, name) for e in done), 2))
    summary.flagged = sum(1 for e in done if e.flags)
    summary.flags = dict(Counter(kind for e in done for kind in {flag.split(":", 1)[0] for flag in e.flags or []}))
    summary.token_sources = dict(Counter(e.token_source for e in done if e.token_source))
    summary.time_split, summary.collector_share = time_split(
        store.step_timings(run.id), [(e.wall_seconds, e.start_seconds, e.grade_seconds) for e in done])
    summary.prefix_breaks = store.prefix_breaks(run.id)
    prompt, cached, reusable, reported = store.cache_totals(run.id)
    summary.prompt_tokens = prompt
    if prompt:
        summary.prefix_cache_hit_rate = round(cached / prompt, 4) if reported else None
        summary.reusable_rate = round(reusable / prompt, 4)
    return summary
