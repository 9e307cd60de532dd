"""`forager collect`: parsing and output only; the work is in forager/collect/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from forager.cli.common import (
    DbOption,
    JsonOption,
    RegistryOption,
    builder_for,
    die,
    err,
    out,
    read_refs,
    settings_for,
    stage_progress,
    store_for,
)
from forager.collect.job import default_of
from forager.models import ForagerError


def collect(
    repo: Annotated[list[str], typer.Option("--repo", help="git URL or local path, optionally @commit; repeatable")] = [],  # noqa: B006
    config_file: Annotated[Path | None, typer.Option("--config", help="a job file (TOML: the fields of `--write-config`); options given here win")] = None,
    write_config: Annotated[Path | None, typer.Option("--write-config", help="write the job these options (and --config, or --run's stored run) describe as TOML, and run nothing")] = None,
    tasks: Annotated[int | None, typer.Option("--tasks", "-n", help="tasks per repository (mutate-fix tasks are made if there are fewer)" + _default("tasks"))] = None,
    episodes_per_task: Annotated[int | None, typer.Option("--episodes-per-task", "-k", help="attempts per task" + _default("collect.episodes_per_task"))] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", help="episodes at once" + _default("collect.concurrency"))] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="llm (a model on --llm) or oracle (the gold patch through the same tools)" + _default("collect.policy"))] = None,
    llm: Annotated[str | None, typer.Option("--llm", envvar="FORAGER_LLM_URL", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")] = None,
    model: Annotated[str | None, typer.Option("--model", envvar="FORAGER_MODEL", help="model name the server serves")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="FORAGER_LLM_API_KEY", help="bearer token for the server (never stored or written)")] = None,
    tool_format: Annotated[str | None, typer.Option("--format", help="tool-call format: cwm (text, parsed by forager) or openai (native tool_calls)" + _default("collect.tool_format"))] = None,
    prompt_mode: Annotated[str | None, typer.Option("--prompt-mode", help="auto, tokens (exact token ids in, vLLM) or messages (the server renders the chat)" + _default("collect.prompt_mode"))] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="only tasks of this kind: mutate-fix or issue-fix")] = None,
    verified_only: Annotated[bool | None, typer.Option("--verified-only", help="only tasks `forager tasks verify` passed")] = None,
    max_turns: Annotated[int | None, typer.Option("--max-turns", help="model calls per episode" + _default("collect.limits.max_turns"))] = None,
    max_context: Annotated[int | None, typer.Option("--max-context", help="context tokens per episode" + _default("collect.limits.max_context_tokens"))] = None,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="wall-clock seconds per episode" + _default("collect.limits.time_limit"))] = None,
    command_timeout: Annotated[int | None, typer.Option("--command-timeout", help="seconds per bash command" + _default("collect.sandbox.command_timeout"))] = None,
    max_format_errors: Annotated[int | None, typer.Option("--max-format-errors", help="malformed replies in a row that end an episode" + _default("collect.limits.max_format_errors"))] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="most tokens per reply" + _default("collect.sampling.max_tokens"))] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help=_default("collect.sampling.temperature"))] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help=_default("collect.sampling.top_p"))] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="sampling seed sent with every call")] = None,
    regex: Annotated[str | None, typer.Option("--regex", help="constrain replies to this regex (vLLM structured outputs)")] = None,
    reasoning: Annotated[bool | None, typer.Option("--reasoning/--no-reasoning", help="CWM's reasoning preamble in the system prompt" + _default("collect.reasoning"))] = None,
    fail_reward: Annotated[float | None, typer.Option("--fail-reward", help="reward of an unresolved episode: -1 (CWM) or 0" + _default("collect.fail_reward"))] = None,
    memory: Annotated[str | None, typer.Option("--memory", help="memory limit per sandbox (docker syntax)" + _default("collect.sandbox.memory"))] = None,
    cpus: Annotated[float | None, typer.Option("--cpus", help="CPU cores per sandbox" + _default("collect.sandbox.cpus"))] = None,
    max_output_chars: Annotated[int | None, typer.Option("--max-output-chars", help="characters of a command's output the model sees (head + tail)" + _default("collect.sandbox.shown_chars"))] = None,
    network: Annotated[bool | None, typer.Option("--network/--no-network", help="give sandboxes a network" + _default("collect.sandbox.network"))] = None,
    warm: Annotated[int | None, typer.Option("--warm", help="sandboxes started ahead (default: --concurrency; 0: none)")] = None,
    resume: Annotated[str | None, typer.Option("--run", help="resume this existing run (`forager status` lists them): its stored job, changed by any option given here")] = None,
    new_name: Annotated[str | None, typer.Option("--name", help="name of the run (default: derived from the configuration, tasks and prompts, so a rerun resumes)")] = None,
    registry: RegistryOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run an agent on tasks in sandboxes and store every step; run it again to resume.

    The job is one typed value (forager/collect/job.py): the defaults of its models, then a --config file, then
    the options given here. `--write-config FILE` writes it out; `--config FILE` runs it again.
    """
    from forager.collect.job import job_toml

    if resume and new_name:
        raise die("--run NAME resumes a run and --name NAME names one: give one of them")
    settings = settings_for(db=db, registry=registry)
    job = _job(settings, config_file, dict(locals()))
    if write_config is not None:
        try:
            write_config.write_text(job_toml(job))
        except OSError as exc:
            raise die(f"--write-config {write_config}: cannot write it ({exc.strerror or exc})") from None
        err.print(f"wrote the job to {write_config}; run it with `forager collect --config {write_config}`",
                  highlight=False)
        return
    if job.collect.policy == "llm" and not (job.collect.llm_url and job.collect.model):
        raise die("--policy llm needs --llm URL and --model NAME (e.g. a vLLM server: --llm http://127.0.0.1:8000/v1); "
                  "or run the scripted --policy oracle")
    store, engine, builder = builder_for(settings)  # also sweeps containers of collectors that were killed
    chosen, failed = _tasks_with_progress(job, settings, store, engine, builder)
    summary = _episodes_with_progress(job, chosen, settings, store, engine)
    if as_json:
        print(json.dumps(summary.model_dump(mode="json"), indent=2))
    else:
        print_summary(summary)
    if summary.cache_warning:
        err.print(f"[yellow]warning:[/yellow] {summary.cache_warning}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _job(settings, config_file: Path | None, options: dict):
    """The job of this invocation: the stored run's (with --run), then the file's, then the options given."""
    from forager.collect.job import JobError, job_from, read_job_file
    from forager.collect.tasks import run_job_values

    base: dict = {}
    if options.get("resume"):
        base = run_job_values(store_for(settings), options["resume"]) or {}
        if not base:
            raise die(f"--run {options['resume']!r}: no such run in {settings.db}; `forager status` lists the runs")
    try:
        if config_file is not None:
            base = _merged(base, read_job_file(config_file))
        return job_from(base, options)
    except JobError as exc:
        raise die(str(exc)) from None


def _tasks_with_progress(job, settings, store, engine, builder) -> tuple[list, bool]:
    """Each repository's tasks (a resumed run keeps its own); and whether a repository failed."""
    from forager.collect.tasks import tasks_for

    chosen, failed = [], False
    with stage_progress() as progress:
        for ref in read_refs(job.repos, None):
            row = progress.add_task(ref.name, total=None, stage="image")
            try:
                chosen += tasks_for(ref, job.tasks, job.kind, settings, store, engine, builder,
                                    lambda s, row=row: progress.update(row, stage=s), verified_only=job.verified_only)
                progress.update(row, total=1, completed=1, stage="[green]tasks ready")
            except ForagerError as exc:
                failed = True
                progress.update(row, total=1, completed=1, stage=f"[red]{exc.category}")
                err.print(f"[red]failed:[/red] {exc.message}", highlight=False, soft_wrap=True)
    resumed = store.run_by_name(job.run) if job.run else None
    if resumed is not None and (resumed.config or {}).get("tasks"):
        # a resumed run keeps its own tasks (their images are built above), not the repositories' first ones today
        chosen = [task for task, _repo in store.tasks(instance_ids=list(resumed.config["tasks"]))]
    if not chosen:
        raise die("no tasks to run (see the errors above)", code=1)
    return chosen, failed


def _episodes_with_progress(job, chosen, settings, store, engine):
    """The run opened (or resumed) and its pending episodes collected, a progress row per running episode."""
    from forager.agent.prompts import prompt_sha256
    from forager.collect import Collector

    try:
        collector = Collector(settings, store, engine, job.collect)
    except ValueError as exc:
        raise die(str(exc)) from None
    run = collector.open_run(chosen, job.run or job.name)
    if job.run and run.config.get("prompt_sha256") != prompt_sha256():
        err.print(f"[yellow]note:[/yellow] run {run.name} was made with other prompts or tool docs (or before "
                  "forager recorded them); its remaining episodes use today's", highlight=False, soft_wrap=True)
    pending = [e for e in store.episodes(run.id) if e.status != "finished"]
    err.print(f"run [bold]{run.name}[/bold] (id {run.id}): {len(pending)} of {len(store.episodes(run.id))} episodes to run",
              highlight=False)
    with stage_progress() as progress:
        overall = progress.add_task("[bold]episodes", total=len(pending), stage="")
        rows: dict[int, int] = {}

        def on_event(episode_id: int, text: str) -> None:
            if episode_id == 0:
                progress.update(overall, stage=text)
                return
            if episode_id not in rows:
                rows[episode_id] = progress.add_task(f"episode {episode_id}", total=None, stage="")
            progress.update(rows[episode_id], stage=text)
            if text.startswith("done"):
                progress.update(rows[episode_id], total=1, completed=1, visible=False)
                progress.advance(overall)

        collector.on_event = on_event
        try:
            return collector.collect(run, chosen)
        except KeyboardInterrupt:
            collector.stop.set()
            raise die("interrupted: finished episodes are stored; run the same command again to resume", code=130) from None
        finally:
            collector.close()


def _default(path: str) -> str:
    return f" (default {default_of(path)})"


def _merged(base: dict, over: dict) -> dict:
    """`over`'s values on top of `base`'s, table by table."""
    merged = dict(base)
    for key, value in over.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _hits(summary) -> str:
    if summary.prefix_cache_hit_rate is None:
        return "-"
    return f"{summary.prefix_cache_hit_rate:.0%} (of {summary.reusable_rate:.0%} reusable)"


def print_summary(summary) -> None:
    table = Table(title=f"collect: run {summary.run}")
    for column in ("episodes", "finished", "resolved", "exit reasons", "steps (mean)", "completion tokens",
                   "prefix cache hits", "LLM s", "env s", "start s", "grade s", "wall s", "prefix breaks"):
        table.add_column(column, overflow="fold")
    table.add_row(
        str(summary.episodes), str(summary.finished), f"{summary.resolved} ({summary.resolved_rate:.0%})",
        " ".join(f"{k}:{v}" for k, v in sorted(summary.exit_reasons.items())),
        f"{summary.steps} ({summary.mean_steps})", str(summary.completion_tokens), _hits(summary),
        f"{summary.llm_seconds:.1f}", f"{summary.env_seconds:.1f}", f"{summary.start_seconds:.1f}",
        f"{summary.grade_seconds:.1f}", f"{summary.wall_seconds:.1f}", str(summary.prefix_breaks),
    )
    out.print(table)
    if summary.time_split:
        split = Table(title="where the time went (per step; sandbox wait, grading and outside steps per episode)")
        for column in ("part", "p50 ms", "p99 ms", "mean ms", "share of episode time"):
            split.add_column(column, justify="left" if column == "part" else "right")
        for name, part in summary.time_split.items():
            split.add_row(name.replace("_", " "), f"{part.p50_ms:.1f}", f"{part.p99_ms:.1f}", f"{part.mean_ms:.1f}",
                          f"{part.share:.1%}")
        out.print(split)
        out.print(f"collector's own time (tokenize + store + other): {summary.collector_share:.1%} of episode time",
                  highlight=False)
    if summary.token_sources:
        sources = ", ".join(f"{source} {count}" for source, count in sorted(summary.token_sources.items()))
        out.print(f"prompt token ids from: {sources}", highlight=False)
    if summary.flagged:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.flags.items()))
        out.print(f"[yellow]{summary.flagged} flagged episode{'s' if summary.flagged != 1 else ''}[/yellow] ({kinds}):"
                  " `forager export --drop-flagged` leaves them out", highlight=False)
