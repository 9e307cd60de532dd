"""`forager collect`: parsing and output only; the work is in forager/collect/."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from forager.cli_common import DbOption, JsonOption, builder_for, die, err, out, read_refs, settings_for, stage_progress
from forager.models import FailureCategory, ForagerError


def collect(
    repo: Annotated[list[str], typer.Option("--repo", help="git URL or local path, optionally @commit; repeatable")] = [],  # noqa: B006
    tasks: Annotated[int, typer.Option("--tasks", "-n", min=1, help="tasks per repository (mutate-fix tasks are made if there are fewer)")] = 5,
    episodes_per_task: Annotated[int, typer.Option("--episodes-per-task", "-k", min=1, help="attempts per task")] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="episodes at once")] = 2,
    policy: Annotated[str, typer.Option("--policy", help="llm (a model on --llm) or oracle (the gold patch through the same tools)")] = "llm",
    llm: Annotated[str | None, typer.Option("--llm", envvar="FORAGER_LLM_URL", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")] = None,
    model: Annotated[str | None, typer.Option("--model", envvar="FORAGER_MODEL", help="model name the server serves")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="FORAGER_LLM_API_KEY", help="bearer token for the server (not stored)")] = None,
    tool_format: Annotated[str, typer.Option("--format", help="tool-call format: cwm (text, parsed by forager) or openai (native tool_calls)")] = "cwm",
    prompt_mode: Annotated[str, typer.Option("--prompt-mode", help="auto, tokens (exact token ids in, vLLM) or messages (the server renders the chat)")] = "auto",
    kind: Annotated[str | None, typer.Option("--kind", help="only tasks of this kind: mutate-fix or issue-fix")] = None,
    max_turns: Annotated[int, typer.Option("--max-turns", min=1, help="model calls per episode")] = 128,
    max_context: Annotated[int, typer.Option("--max-context", min=256, help="context tokens per episode")] = 131_072,
    time_limit: Annotated[float, typer.Option("--time-limit", min=1, help="wall-clock seconds per episode")] = 2400,
    command_timeout: Annotated[int, typer.Option("--command-timeout", min=1, help="seconds per bash command")] = 120,
    max_format_errors: Annotated[int, typer.Option("--max-format-errors", min=1, help="malformed replies in a row that end an episode")] = 3,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="most tokens per reply")] = 4096,
    temperature: Annotated[float, typer.Option("--temperature", min=0)] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0, max=1)] = 1.0,
    seed: Annotated[int | None, typer.Option("--seed", help="sampling seed sent with every call")] = None,
    regex: Annotated[str | None, typer.Option("--regex", help="constrain replies to this regex (vLLM structured outputs)")] = None,
    reasoning: Annotated[bool, typer.Option("--reasoning", help="CWM's reasoning preamble in the system prompt")] = False,
    fail_reward: Annotated[float, typer.Option("--fail-reward", help="reward of an unresolved episode: -1 (CWM) or 0")] = -1.0,
    memory: Annotated[str, typer.Option("--memory", help="memory limit per sandbox (docker syntax)")] = "4g",
    cpus: Annotated[float, typer.Option("--cpus", min=0.1, help="CPU cores per sandbox")] = 2.0,
    max_output_chars: Annotated[int, typer.Option("--max-output-chars", min=200, help="characters of a command's output the model sees (head + tail)")] = 100_000,
    network: Annotated[bool, typer.Option("--network", help="give sandboxes a network (default: none)")] = False,
    warm: Annotated[int | None, typer.Option("--warm", min=0, help="sandboxes started ahead (default: --concurrency; 0: none)")] = None,
    resume: Annotated[str | None, typer.Option("--run", help="resume this existing run (`forager status` lists them); its unfinished episodes run with these options and today's prompts")] = None,
    new_name: Annotated[str | None, typer.Option("--name", help="name of the run (default: derived from the configuration, tasks and prompts, so a rerun resumes)")] = None,
    registry: Annotated[str | None, typer.Option("--registry", help="HOST:PORT of an image registry (or FORAGER_REGISTRY): images are pulled instead of built, and pushed after a build")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run an agent on tasks in sandboxes and store every step; run it again to resume."""
    from forager.agent.loop import EpisodeLimits
    from forager.agent.prompts import prompt_sha256
    from forager.collect import CollectConfig, Collector
    from forager.llm.types import Sampling
    from forager.sandbox.models import SandboxLimits

    if policy not in ("llm", "oracle"):
        raise die(f"--policy {policy!r}: choose llm or oracle")
    if tool_format not in ("cwm", "openai"):
        raise die(f"--format {tool_format!r}: choose cwm or openai")
    if prompt_mode not in ("auto", "tokens", "messages"):
        raise die(f"--prompt-mode {prompt_mode!r}: choose auto, tokens or messages")
    if kind not in (None, "mutate-fix", "issue-fix"):
        raise die(f"--kind {kind!r}: choose mutate-fix or issue-fix")
    if resume and new_name:
        raise die("--run NAME resumes a run and --name NAME names one: give one of them")
    if policy == "llm" and not (llm and model):
        raise die("--policy llm needs --llm URL and --model NAME (e.g. a vLLM server: --llm http://127.0.0.1:8000/v1); "
                  "or run the scripted --policy oracle")
    refs = read_refs(repo, None)
    try:
        config = CollectConfig(
            policy=policy, llm_url=llm, model=model, api_key=api_key, tool_format=tool_format, prompt_mode=prompt_mode,
            reasoning=reasoning,
            sampling=Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                              extra_body={"structured_outputs": {"regex": regex}} if regex else {}),
            limits=EpisodeLimits(max_turns=max_turns, max_context_tokens=max_context, time_limit=time_limit,
                                 max_format_errors=max_format_errors),
            sandbox=SandboxLimits(memory=memory, cpus=cpus, command_timeout=command_timeout, shown_chars=max_output_chars,
                                  network=network),
            episodes_per_task=episodes_per_task, concurrency=concurrency, warm=warm, fail_reward=fail_reward,
        )
    except ValueError as exc:
        raise die(f"bad option: {str(exc).splitlines()[0]}") from None
    settings = settings_for(db=db, registry=registry)
    store, engine, builder = builder_for(settings)  # also sweeps containers of collectors that were killed
    if resume and store.run_by_name(resume) is None:
        raise die(f"--run {resume!r}: no such run in {settings.db}; `forager status` lists the runs")

    chosen, failed = [], False
    with stage_progress() as progress:
        for ref in refs:
            row = progress.add_task(ref.name, total=None, stage="image")
            try:
                chosen += _tasks_for(ref, tasks, kind, settings, store, engine, builder,
                                     lambda s, row=row: progress.update(row, stage=s))
                progress.update(row, total=1, completed=1, stage="[green]tasks ready")
            except ForagerError as exc:
                failed = True
                progress.update(row, total=1, completed=1, stage=f"[red]{exc.category}")
                err.print(f"[red]failed:[/red] {exc.message}", highlight=False, soft_wrap=True)
    if not chosen:
        raise die("no tasks to run (see the errors above)", code=1)

    try:
        collector = Collector(settings, store, engine, config)
    except ValueError as exc:
        raise die(str(exc)) from None
    run = collector.open_run(chosen, resume or new_name)
    if resume and run.config.get("prompt_sha256") != prompt_sha256():
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
            summary = collector.collect(run, chosen)
        except KeyboardInterrupt:
            collector.stop.set()
            raise die("interrupted: finished episodes are stored; run the same command again to resume", code=130) from None
        finally:
            collector.close()
    if as_json:
        print(json.dumps(summary.model_dump(mode="json"), indent=2))
    else:
        print_summary(summary)
    if summary.cache_warning:
        err.print(f"[yellow]warning:[/yellow] {summary.cache_warning}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _tasks_for(ref, count, kind, settings, store, engine, builder, on_stage):
    """The first `count` valid tasks of a repository; mutate-fix tasks are synthesized when there are too few."""
    from forager.tasks.synthesize import MutateFixSynthesizer

    built = builder.build(ref, on_stage)
    if built.status != "ready":
        raise ForagerError(FailureCategory(built.category or "build"), f"{ref}: no ready image: {built.message}")
    repo_id = store.image(built.image_id).repo_id

    def valid_tasks():
        return [task for task, repo in store.tasks(kind=kind, valid=True) if repo.id == repo_id]

    rows = valid_tasks()
    if len(rows) < count and kind in (None, "mutate-fix"):
        on_stage("synthesize tasks")
        MutateFixSynthesizer(settings, store, engine, builder).synthesize(ref, count=count, seed=0, on_stage=on_stage)
        rows = valid_tasks()
    if not rows:
        raise ForagerError(FailureCategory.no_tests, f"{ref}: no valid tasks{f' of kind {kind}' if kind else ''}")
    return rows[:count]


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
