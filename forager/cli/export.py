"""`forager export`: parsing and output only; the work is in forager/export/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.table import Table

from forager.cli.common import DbOption, JsonOption, die, out, settings_for, store_for

EXIT_REASONS = ("submitted", "max_turns", "context_exceeded", "time_limit", "format_errors", "env_error", "llm_error")


def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="sft, rl, cwm, steps, swebench-preds or trace")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="output file: .jsonl or .parquet")],
    run: Annotated[str | None, typer.Option("--run", help="only this run (by name)")] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="only this repository (name or URL)")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="only tasks of this kind: mutate-fix or issue-fix")] = None,
    resolved_only: Annotated[bool, typer.Option("--resolved-only", help="only resolved episodes")] = False,
    min_reward: Annotated[float | None, typer.Option("--min-reward", help="only episodes with at least this reward")] = None,
    exit_reason: Annotated[list[str], typer.Option("--exit-reason", help="only these exit reasons; repeatable")] = [],  # noqa: B006
    dedup: Annotated[bool, typer.Option("--dedup", help="drop near-duplicate trajectories per repo (MinHash, Jaccard 0.5)")] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="at most this many episodes")] = None,
    openai_tool_calls: Annotated[bool, typer.Option("--openai-tool-calls", help="sft: CWM-text calls as OpenAI tool_calls")] = False,
    train_format_errors: Annotated[bool, typer.Option("--train-format-errors/--no-train-format-errors",
                                                      help="sft: train on replies that were format errors")] = True,
    mask_observations: Annotated[float, typer.Option("--mask-observations", min=0.0, max=1.0,
                                                     help="cwm: share of observations kept out of the loss (CWM: 0.5)")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="cwm: seed of the observation mask")] = 0,
    workers: Annotated[int | None, typer.Option("--workers", min=1,
                                                help="processes for a JSONL export (default: one per core, up to 8)")] = None,
    image: Annotated[int | None, typer.Option("--image", help="trace: only this image (by id)")] = None,
    task: Annotated[str | None, typer.Option("--task", help="trace: only this task's bug/fix traces (instance id)")] = None,
    min_events: Annotated[int | None, typer.Option("--min-events", min=0, help="trace: at least this many line events")] = None,
    max_events: Annotated[int | None, typer.Option("--max-events", min=0, help="trace: at most this many line events")] = None,
    drop_flagged: Annotated[bool, typer.Option("--drop-flagged", help="leave out episodes with a reward-hacking flag")] = False,
    verified_only: Annotated[bool, typer.Option("--verified-only", help="only tasks `forager tasks verify` passed")] = False,
    exclude_contaminated: Annotated[bool, typer.Option(
        "--exclude-contaminated", help="leave out tasks `forager tasks contamination` marked")] = False,
    pass_rate: Annotated[str | None, typer.Option(
        "--pass-rate", help="only tasks whose pass@1 (over --run's episodes, else every non-oracle run) is in LO:HI,"
        " e.g. 0.1:0.9")] = None,
    include_nondeterministic: Annotated[bool, typer.Option(
        "--include-nondeterministic", help="trace: keep traces that differed between two runs of their test")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write finished episodes (or, with --format trace, execution traces) as training data (JSONL or Parquet by the
    --out suffix) and print what went in."""
    from forager.export.cwm import CwmOptions
    from forager.export.run import ExportRequest, FormatName
    from forager.export.run import export as run_export
    from forager.export.sft import SftOptions
    from forager.export.writer import SUFFIXES
    from forager.store.stream import EpisodeFilters

    formats = (*get_args(FormatName), "trace")
    if fmt not in formats:
        raise die(f"--format {fmt!r}: choose {', '.join(formats)}")
    if out_path.suffix not in SUFFIXES:
        raise die(f"--out {out_path}: the file name must end in {' or '.join(SUFFIXES)}")
    if kind not in (None, "mutate-fix", "issue-fix"):
        raise die(f"--kind {kind!r}: choose mutate-fix or issue-fix")
    unknown = [reason for reason in exit_reason if reason not in EXIT_REASONS]
    if unknown:
        raise die(f"--exit-reason {unknown[0]!r}: choose from {', '.join(EXIT_REASONS)}")
    store = store_for(settings_for(db=db))
    if fmt == "trace":
        _export_traces(store, out_path, repo, image, task, min_events, max_events, dedup, include_nondeterministic,
                       limit, as_json)
        return
    if run is not None and store.run_by_name(run) is None:
        names = ", ".join(r.name for r in store.runs()) or "none yet"
        raise die(f"--run {run!r}: no such run (runs: {names})")
    task_ids = _kept_tasks(store, verified_only, exclude_contaminated, pass_rate, run)
    request = ExportRequest(
        format=fmt, out=out_path, limit=limit, dedup=dedup, workers=workers,
        filters=EpisodeFilters(run=run, repo=repo, kind=kind, resolved_only=resolved_only, min_reward=min_reward,
                               exit_reasons=exit_reason, drop_flagged=drop_flagged, task_ids=task_ids),
        sft_options=SftOptions(openai_tool_calls=openai_tool_calls, train_format_errors=train_format_errors),
        cwm_options=CwmOptions(mask_observations=mask_observations, seed=seed),
    )
    stats = _exported(lambda: run_export(store, request), out_path, as_json)
    if stats is None:
        return
    table = Table(title=f"export {stats.format} -> {stats.out}")
    for column in ("rows", "episodes", "steps", "tokens", "resolved", "dropped", "bytes", "seconds", "steps/s"):
        table.add_column(column, overflow="fold")
    table.add_row(
        str(stats.rows), str(stats.episodes), str(stats.steps), str(stats.tokens),
        f"{stats.resolved} ({stats.resolved_share:.0%})",
        " ".join(f"{name}:{count}" for name, count in stats.dropped.items()) + f" (of {stats.finished} finished)",
        str(stats.bytes), f"{stats.seconds:.2f}", f"{stats.steps_per_second:.0f}",
    )
    out.print(table)


def _export_traces(store, out_path: Path, repo, image, task, min_events, max_events, dedup, include_nondeterministic,
                   limit, as_json: bool) -> None:
    from forager.export.traces import TraceExportRequest, export_traces

    if task is not None and store.task(task) is None:
        raise die(f"--task {task!r}: no such task (see `forager tasks list`)")
    request = TraceExportRequest(out=out_path, repo=repo, image_id=image, task=task, min_events=min_events,
                                 max_events=max_events, dedup=dedup, include_nondeterministic=include_nondeterministic,
                                 limit=limit)
    stats = _exported(lambda: export_traces(store, request), out_path, as_json)
    if stats is None:
        return
    table = Table(title=f"export trace -> {stats.out}")
    for column in ("rows", "pairs", "line events", "dropped", "bytes", "bytes/event", "seconds"):
        table.add_column(column, overflow="fold")
    table.add_row(str(stats.rows), str(stats.pairs), str(stats.line_events),
                  " ".join(f"{k}:{v}" for k, v in stats.dropped.items()) or "0", str(stats.bytes),
                  f"{stats.bytes_per_event:.0f}", f"{stats.seconds:.2f}")
    out.print(table)


def _exported(write, out_path: Path, as_json: bool):
    """The stats of `write()`, an export; None when --json printed them. A file that cannot be written is one line."""
    try:
        stats = write()
    except OSError as exc:
        raise die(f"--out {out_path}: {exc.strerror or exc}") from None
    if as_json:
        print(json.dumps(stats.model_dump(mode="json"), indent=2))
        return None
    return stats


def _kept_tasks(store, verified_only: bool, exclude_contaminated: bool, pass_rate: str | None, run: str | None):
    from forager.integrity.filters import TaskFilters, kept_task_ids
    from forager.integrity.stats import parse_range

    try:
        bounds = parse_range(pass_rate) if pass_rate is not None else None
    except ValueError as exc:
        raise die(f"--pass-rate {exc}") from None
    return kept_task_ids(store, TaskFilters(verified_only=verified_only, exclude_contaminated=exclude_contaminated,
                                            pass_rate=bounds, pass_rate_run=run))
