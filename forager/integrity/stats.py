"""Difficulty from rollouts: per task, how often a policy's finished episodes resolved it.

```python
outcomes = task_outcomes(store, run="my-run")        # the store's counts per task (the one read)
report = summarize(outcomes)                         # estimates per task and over the set (pure)
pass_rates(store)                                    # {task id: pass@1}, for filters and task files
```

The estimates, per task with n finished attempts of which c resolved:
- pass@1 = c/n, with the Wilson score interval (95%): it stays inside [0, 1] and is not empty at c = 0 or c = n,
  where the normal approximation collapses to a point.
- pass@k with the unbiased estimator 1 - C(n-c, k)/C(n, k) (Chen et al. 2021, "Evaluating Large Language Models
  Trained on Code"); none when n < k. Its interval maps the Wilson interval [lo, hi] of the per-attempt rate p
  through pass@k(p) = 1 - (1-p)^k: that function increases with p, so the mapped interval covers the task's true
  pass@k exactly as often as Wilson's covers p. No sampling, no seed, and defined at c = 0 and c = n (where a
  bootstrap over the attempts collapses to a point). The unbiased point estimate is not the plug-in 1-(1-c/n)^k
  and, for k close to n, can sit just above the interval's top (at k = n it is 1 as soon as c >= 1).
- k: as given, or the largest power of 2 not above the fewest attempts of any task with attempts (at least 1),
  so every such task has an estimate with the same k.

Which episodes count: finished ones (`status` "finished"), resolved when `resolved` is true (an episode that
ended without a grade, e.g. env_error, counts as an unresolved attempt). With a run, only that run's; without,
every run's except those of the oracle policy (it applies the gold patch: it measures the task, not its
difficulty). Which tasks: with a run, those it planned episodes of; without, every valid task and any other task
with a counted episode. The shares over the set (signal: pass rate strictly between 0 and 1, the tasks that
give group-relative RL a non-zero advantage; always; never) and the mean pass@1 are over tasks with attempts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import NormalDist

from pydantic import BaseModel, Field
from sqlalchemy import case, func, or_
from sqlmodel import select

from forager.store.tables import Episode, Repo, Run, Task

FINISHED = "finished"
ORACLE = "oracle"
CONFIDENCE = 0.95

Interval = tuple[float, float]


class TaskOutcomes(BaseModel):
    """What the store holds of one task's counted attempts: the input of every estimate."""

    task_id: int
    instance_id: str
    repo: str
    attempts: int = 0  # n: finished episodes
    resolved: int = 0  # c: of them resolved
    turns: int = 0  # summed over the attempts
    tokens: int = 0  # prompt (the last call's context) + completion tokens, summed over the attempts
    exit_reasons: dict[str, int] = Field(default_factory=dict)


class TaskStats(BaseModel):
    """One task's estimates (pass rates in [0, 1]; None where the attempts cannot give one)."""

    task_id: int
    instance_id: str
    repo: str
    attempts: int
    resolved: int
    pass_at_1: float | None
    pass_at_1_ci: Interval | None
    k: int
    pass_at_k: float | None
    pass_at_k_ci: Interval | None
    mean_turns: float | None
    mean_tokens: float | None
    exit_reasons: dict[str, int]  # the most frequent first


class StatsReport(BaseModel):
    """Per-task estimates and what they say of the set together."""

    run: str | None = None
    repo: str | None = None
    k: int
    k_rule: str
    confidence: float = CONFIDENCE
    tasks: int
    tasks_with_attempts: int
    mixed: int  # pass rate strictly between 0 and 1
    always: int
    never: int
    mixed_share: float | None  # of tasks with attempts
    always_share: float | None
    never_share: float | None
    mean_pass_at_1: float | None
    rows: list[TaskStats]


# -- estimators (pure) -----------------------------------------------------------------------------

def _check(n: int, c: int) -> None:
    if n < 0 or not 0 <= c <= n:
        raise ValueError(f"need 0 <= resolved <= attempts, got resolved={c}, attempts={n}")


def wilson_interval(c: int, n: int, confidence: float = CONFIDENCE) -> Interval | None:
    """The Wilson score interval of a success rate from c successes in n trials; None when n = 0."""
    _check(n, c)
    if n == 0:
        return None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = c / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # why the exact ends: rounding would leave 1e-17 at c = 0 (or just under 1 at c = n)
    return (0.0 if c == 0 else max(0.0, centre - half)), (1.0 if c == n else min(1.0, centre + half))


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Unbiased pass@k from n attempts with c resolved: 1 - C(n-c, k)/C(n, k); None when n < k."""
    _check(n, c)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n < k:
        return None
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)  # exact integers; comb is 0 when n - c < k


def pass_at_k_interval(n: int, c: int, k: int, confidence: float = CONFIDENCE) -> Interval | None:
    """The Wilson interval of the per-attempt rate mapped through 1 - (1-p)^k; None when n < k (no estimate)."""
    if pass_at_k(n, c, k) is None:
        return None
    lo, hi = wilson_interval(c, n, confidence)
    return 1.0 - (1.0 - lo) ** k, 1.0 - (1.0 - hi) ** k


def default_k(attempts: Iterable[int]) -> int:
    """The largest power of 2 not above the fewest attempts of a task with attempts (1 when none has any)."""
    fewest = min((n for n in attempts if n > 0), default=1)
    return 1 << (fewest.bit_length() - 1)


def task_stats(outcome: TaskOutcomes, k: int, confidence: float = CONFIDENCE) -> TaskStats:
    n, c = outcome.attempts, outcome.resolved
    return TaskStats(
        task_id=outcome.task_id, instance_id=outcome.instance_id, repo=outcome.repo, attempts=n, resolved=c,
        pass_at_1=c / n if n else None, pass_at_1_ci=wilson_interval(c, n, confidence),
        k=k, pass_at_k=pass_at_k(n, c, k), pass_at_k_ci=pass_at_k_interval(n, c, k, confidence),
        mean_turns=outcome.turns / n if n else None, mean_tokens=outcome.tokens / n if n else None,
        exit_reasons=dict(sorted(outcome.exit_reasons.items(), key=lambda item: (-item[1], item[0]))),
    )


def summarize(outcomes: list[TaskOutcomes], k: int | None = None, *, run: str | None = None,
              repo: str | None = None, confidence: float = CONFIDENCE) -> StatsReport:
    """Estimates per task and over the set; k None picks `default_k` of the attempts."""
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    tried = [o for o in outcomes if o.attempts]
    if k is None:
        k = default_k(o.attempts for o in tried)
        fewest = min((o.attempts for o in tried), default=0)
        rule = f"largest power of 2 <= fewest attempts ({fewest})" if tried else "no attempts: 1"
    else:
        rule = "given"
    rows = [task_stats(o, k, confidence) for o in outcomes]
    mixed = sum(0 < o.resolved < o.attempts for o in tried)
    always = sum(o.resolved == o.attempts for o in tried)
    never = sum(o.resolved == 0 for o in tried)

    def share(count: int) -> float | None:
        return count / len(tried) if tried else None

    return StatsReport(
        run=run, repo=repo, k=k, k_rule=rule, confidence=confidence, tasks=len(outcomes),
        tasks_with_attempts=len(tried), mixed=mixed, always=always, never=never, mixed_share=share(mixed),
        always_share=share(always), never_share=share(never),
        mean_pass_at_1=sum(o.resolved / o.attempts for o in tried) / len(tried) if tried else None, rows=rows,
    )


def parse_range(text: str) -> tuple[float, float]:
    """'LO:HI' -> (lo, hi), inclusive bounds with 0 <= lo <= hi <= 1; an empty side is 0 (LO) or 1 (HI)."""
    usage = f"{text!r}: a pass-rate range is LO:HI with 0 <= LO <= HI <= 1, e.g. 0.1:0.9 (an empty side is 0 or 1)"
    parts = text.strip().split(":")
    if len(parts) != 2:
        raise ValueError(usage)
    try:
        lo = float(parts[0]) if parts[0].strip() else 0.0
        hi = float(parts[1]) if parts[1].strip() else 1.0
    except ValueError:
        raise ValueError(usage) from None
    if not 0.0 <= lo <= hi <= 1.0:  # also refuses nan
        raise ValueError(usage)
    return lo, hi


# -- the store (the one read) ----------------------------------------------------------------------

def _names(values: list[str], most: int = 20) -> str:
    shown = ", ".join(values[:most]) or "none"
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")


def task_outcomes(store, run: str | None = None, repo: str | None = None) -> list[TaskOutcomes]:
    """Per task (by id), its counted attempts (see the module's docstring); ValueError for an unknown run or repo."""
    with store.session() as s:
        if run is not None:
            run_id = s.exec(select(Run.id).where(Run.name == run)).first()
            if run_id is None:
                names = list(s.exec(select(Run.name).order_by(Run.id)))
                raise ValueError(f"no run named {run!r}; the store's runs: {_names(names)}")
            counted = Episode.run_id == run_id
        else:
            counted = Episode.run_id.in_(select(Run.id).where(Run.policy != ORACLE))
        in_repo = []
        if repo is not None:
            in_repo = [or_(Repo.name == repo, Repo.url == repo, Task.repo_name == repo)]
            known = s.exec(select(Repo.id).outerjoin(Task, Task.repo_id == Repo.id).where(*in_repo).limit(1)).first()
            if known is None:
                names = list(s.exec(select(Repo.name).order_by(Repo.name).distinct()))
                raise ValueError(f"no repository {repo!r} in the store (by name or URL); it has: {_names(names)}")
        finished = [counted, Episode.status == FINISHED]
        if run is not None:
            chosen = Task.id.in_(select(Episode.task_id).where(counted))
        else:
            chosen = or_(Task.valid.is_(True), Task.id.in_(select(Episode.task_id).where(*finished)))
        tasks = s.exec(select(Task.id, Task.instance_id, Repo.name).join(Repo, Repo.id == Task.repo_id)
                       .where(chosen, *in_repo).order_by(Task.id)).all()
        totals = s.exec(
            select(Episode.task_id, func.count(Episode.id),
                   func.sum(case((Episode.resolved.is_(True), 1), else_=0)),
                   func.sum(Episode.turns), func.sum(Episode.prompt_tokens + Episode.completion_tokens))
            .where(*finished).group_by(Episode.task_id)
        ).all()
        reasons = s.exec(select(Episode.task_id, Episode.exit_reason, func.count(Episode.id))
                         .where(*finished).group_by(Episode.task_id, Episode.exit_reason)).all()
    by_task = {t: (int(n), int(c or 0), int(turns or 0), int(tokens or 0)) for t, n, c, turns, tokens in totals}
    exits: dict[int, dict[str, int]] = {}
    for task_id, reason, count in reasons:
        exits.setdefault(task_id, {})[reason or "none"] = int(count)
    result = []
    for task_id, instance_id, repo_name in tasks:
        n, c, turns, tokens = by_task.get(task_id, (0, 0, 0, 0))
        result.append(TaskOutcomes(task_id=task_id, instance_id=instance_id, repo=repo_name, attempts=n, resolved=c,
                                   turns=turns, tokens=tokens, exit_reasons=exits.get(task_id, {})))
    return result


def pass_rates(store, run: str | None = None) -> dict[int, float]:
    """Task id -> pass@1 over the counted attempts (see the module's docstring); tasks without attempts are absent."""
    return {o.task_id: o.resolved / o.attempts for o in task_outcomes(store, run) if o.attempts}


__all__ = [
    "StatsReport", "TaskOutcomes", "TaskStats", "default_k", "parse_range", "pass_at_k", "pass_at_k_interval",
    "pass_rates", "summarize", "task_outcomes", "task_stats", "wilson_interval",
]
