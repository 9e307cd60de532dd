"""`forager tasks stats`: parsing and output only; the estimates are in forager/integrity/stats.py."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from forager.cli.common import DbOption, JsonOption, die, out, settings_for, store_for


def _rate(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else f"{value:.2f}"


def _share(count: int, share: float | None) -> str:
    return f"{count} ({100 * share:.0f}%)" if share is not None else str(count)


def stats(
    run: Annotated[str | None, typer.Option("--run", help="only this run's episodes, by name (default: every run's"
                                                        " but the oracle policy's)")] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="only tasks of this repository (name or URL)")] = None,
    k: Annotated[int | None, typer.Option("--k", min=1, help="the k of pass@k (default: the largest power of 2 not"
                                                           " above the fewest attempts of a task)")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Difficulty from rollouts: per task, attempts, resolved, pass@1 and pass@k with 95% intervals, mean turns
    and tokens, exit reasons; then the share of tasks that are sometimes solved (the signal for group-relative
    RL), always solved and never solved. Counts finished episodes only."""
    from forager.integrity.stats import summarize, task_outcomes

    store = store_for(settings_for(db=db))
    try:
        outcomes = task_outcomes(store, run=run, repo=repo)
    except ValueError as exc:
        raise die(str(exc)) from None  # an unknown run (the store's runs listed) or repository
    report = summarize(outcomes, k, run=run, repo=repo)
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    scope = f"run {run}" if run else "all runs but the oracle's"
    table = Table(title=f"task difficulty ({scope}{f', repo {repo}' if repo else ''})",
                  caption="pass rates with 95% intervals (Wilson; pass@k: Wilson mapped through 1-(1-p)^k)")
    for column in ("id", "instance", "repo", "n", "c", "pass@1", f"pass@{report.k}", "turns", "tokens", "exits"):
        table.add_column(column, overflow="fold")
    for r in report.rows:
        table.add_row(str(r.task_id), r.instance_id, r.repo, str(r.attempts), str(r.resolved),
                      _rate(r.pass_at_1, r.pass_at_1_ci), _rate(r.pass_at_k, r.pass_at_k_ci),
                      "-" if r.mean_turns is None else f"{r.mean_turns:.1f}",
                      "-" if r.mean_tokens is None else f"{r.mean_tokens:.0f}",
                      " ".join(f"{reason}:{count}" for reason, count in r.exit_reasons.items()))
    out.print(table)
    short = sum(0 < r.attempts < report.k for r in report.rows)
    mean = "-" if report.mean_pass_at_1 is None else f"{report.mean_pass_at_1:.3f}"
    line = (f"{report.tasks} tasks, {report.tasks_with_attempts} with attempts; of those, pass rate in (0, 1): "
            f"{_share(report.mixed, report.mixed_share)}, always: {_share(report.always, report.always_share)}, "
            f"never: {_share(report.never, report.never_share)}; mean pass@1 {mean}; k={report.k} ({report.k_rule})")
    if short:
        line += (f"; {short} task{'s' if short != 1 else ''} with fewer than {report.k} attempts"
                 f" ha{'ve' if short != 1 else 's'} no pass@{report.k}")
    out.print(line, highlight=False, soft_wrap=True)  # why soft_wrap: one summary line, never wrapped at 160
