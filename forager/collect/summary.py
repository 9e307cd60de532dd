"""The summary of a collect run, read back from the store: what finished, how it ended, where time went."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field

from forager.store import Run, Store


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
    summary.prefix_breaks = store.prefix_breaks(run.id)
    prompt, cached, reusable, reported = store.cache_totals(run.id)
    summary.prompt_tokens = prompt
    if prompt:
        summary.prefix_cache_hit_rate = round(cached / prompt, 4) if reported else None
        summary.reusable_rate = round(reusable / prompt, 4)
    return summary
