"""`forager tasks contamination`: how the store's tasks overlap a benchmark, marked on each task. Parsing and output
only; the checks are `forager.integrity.contamination`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from forager.cli.common import DbOption, JsonOption, die, err, out, settings_for, stage_progress, store_for


def _threshold(value: float | None, flag: str) -> float | None:
    if value is not None and not 0 < value <= 1:
        raise die(f"{flag} {value}: give an estimated Jaccard similarity above 0 and at most 1, e.g. 0.5")
    return value


def contamination(
    against: Annotated[Path | None, typer.Option(
        "--against", help="the benchmark's instances: SWE-bench-format JSON (a list) or JSONL; without it, the "
        "built-in list of the SWE-bench family's repositories (repository check only)")] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="only tasks of this repository (name or URL)")] = None,
    threshold: Annotated[float, typer.Option(
        "--threshold", help="estimated Jaccard similarity (MinHash) at or above which a patch or statement matches",
    )] = 0.5,
    statement_threshold: Annotated[float | None, typer.Option(
        "--statement-threshold", help="the same for problem statements (default: --threshold)")] = None,
    include_invalid: Annotated[bool, typer.Option("--all", help="include invalid tasks")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check tasks against a benchmark (repository, date, near-identical patch or statement) and mark each one.

    Each task's record goes to its integrity["contamination"]. A task is contaminated when its patch or statement
    matches an instance, or its repository is a benchmark's and its date is not known to be before the benchmark's
    first instance of that repository.
    """
    from forager.integrity.contamination import check_store, read_benchmark, reference_benchmark, summarise

    _threshold(threshold, "--threshold")
    _threshold(statement_threshold, "--statement-threshold")
    if against is None:
        benchmark = reference_benchmark()
    else:
        try:
            benchmark = read_benchmark(against)
        except ValueError as exc:
            raise die(str(exc)) from None
    settings = settings_for(db=db)
    store = store_for(settings)
    with stage_progress() as progress:
        row = progress.add_task(f"contamination against {benchmark.against}", total=None, stage="tasks")
        results = check_store(store, benchmark, repo_name=repo, valid=None if include_invalid else True,
                              patch_threshold=threshold, statement_threshold=statement_threshold,
                              on_task=lambda instance_id: progress.update(row, advance=1, stage=instance_id))
    if not results:
        raise die("no tasks match; make some with `forager tasks synthesize` / `import` / `mine`"
                  + (" (or drop --repo)" if repo else ""))
    summary = summarise(results.values())
    if as_json:
        print(json.dumps({
            "against": benchmark.against, "sha256": benchmark.sha256, "instances": len(benchmark.instances),
            "repos": [s.model_dump(mode="json") for s in summary],
            "tasks": {instance_id: r.model_dump(mode="json") for instance_id, r in results.items()},
        }, indent=2))
        return
    title = benchmark.against + (f" ({len(benchmark.instances)} instances)" if benchmark.instances else "")
    table = Table(title=f"contamination against {title}")
    for column in ("repo", "tasks", "in benchmark", "after its first instance", "patch matches", "statement matches",
                   "contaminated"):
        table.add_column(column, overflow="fold")
    for s in summary:
        where = "[dim]no[/dim]" if not s.benchmark_repo else (
            s.benchmark_repo + (f" ({', '.join(s.benchmarks)})" if benchmark.sha256 is None else ""))
        dated = "" if not s.benchmark_repo else (
            f"{s.on_or_after} of {s.tasks}" + (f" ({s.before} before, {s.unknown_date} unknown)"
                                               if s.before or s.unknown_date else ""))
        table.add_row(s.repo, str(s.tasks), where, dated, str(s.patch_matches), str(s.statement_matches),
                      f"[red]{s.contaminated}[/red]" if s.contaminated else "0")
    out.print(table)
    contaminated = sum(r.contaminated for r in results.values())
    err.print(f"{contaminated} of {len(results)} task(s) contaminated; marked in each task's integrity record",
              highlight=False)
