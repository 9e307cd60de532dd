"""The `forager` command line: argument parsing and output only; the work happens in the modules it calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from forager import __version__
from forager.cli import audit as cli_audit
from forager.cli import collect as cli_collect
from forager.cli import dev as cli_dev
from forager.cli import export as cli_export
from forager.cli import serve as cli_serve
from forager.cli import tasks as cli_tasks
from forager.cli import trace as cli_trace
from forager.cli.common import (
    DbOption,
    JsonOption,
    RegistryOption,
    builder_for,
    die,
    engine_for,
    err,
    out,
    read_refs,
    settings_for,
    stage_progress,
    store_for,
)
from forager.models import RepoRef
from forager.tasks.catalog import task_counts
from forager.store import Store

app = typer.Typer(
    help="Collect agentic software-engineering trajectories in executable repository images.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(cli_tasks.app, name="tasks")
app.command("collect")(cli_collect.collect)
app.add_typer(cli_dev.app, name="dev")
app.command("serve")(cli_serve.serve)
app.command("export")(cli_export.export)
app.command("trace")(cli_trace.trace)
app.command("audit")(cli_audit.audit)


@app.command("build-images")
def build_images(
    repo: Annotated[list[str], typer.Option("--repo", help="git URL or local path, optionally @commit; repeatable")] = [],  # noqa: B006
    repos_file: Annotated[Path | None, typer.Option("--repos-file", help="file with one repo[@commit] per line")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="parallel builds")] = None,
    ca_bundle: Annotated[Path | None, typer.Option("--ca-bundle", help="CA bundle for TLS-intercepting proxies")] = None,
    test_timeout: Annotated[int | None, typer.Option("--test-timeout", help="seconds per test-suite run")] = None,
    registry: RegistryOption = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="resolve dependencies and Python as of: commit (its date, the default), latest, or a day YYYY-MM-DD")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Turn repositories into executable Docker images with a recorded test baseline."""
    from forager.images.bases import stand_in_note
    from forager.images.pipeline import BuildResult

    settings = settings_for(db=db, jobs=jobs, ca_bundle=ca_bundle, test_timeout=test_timeout, registry=registry,
                            as_of=as_of)
    refs = read_refs(repo, repos_file)
    _store, _engine, builder = builder_for(settings)

    noted: set[str] = set()  # a stand-in base is said once, not once per repository
    with stage_progress() as progress:
        overall = progress.add_task("[bold]images", total=len(refs), stage="")
        rows = {ref: progress.add_task(ref.name, total=None, stage="queued") for ref in refs}

        def done(ref: RepoRef, result: BuildResult) -> None:
            mark = "[green]ready" if result.status == "ready" else f"[red]{result.category}"
            mark += " (cached)" if result.cached else " (pulled)" if result.pulled else ""
            progress.update(rows[ref], total=1, completed=1, stage=mark)
            progress.advance(overall)
            if result.status != "ready":
                err.print(f"[red]failed:[/red] {result.message}", highlight=False, soft_wrap=True)
            if result.registry_error:
                err.print(f"[yellow]registry:[/yellow] {result.registry_error}", highlight=False, soft_wrap=True)
            note = result.python and result.base_image and stand_in_note(
                result.python, settings.base_image, result.base_image)
            if note and note not in noted:
                noted.add(note)
                err.print(f"[yellow]note:[/yellow] {note}", highlight=False, soft_wrap=True)

        results = builder.build_many(refs, jobs=settings.jobs, on_done=done,
                                     on_stage=lambda ref, stage: progress.update(rows[ref], stage=stage))
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    else:
        _print_build_table(results)
    if any(r.status != "ready" or r.registry_error for r in results):
        raise typer.Exit(1)


def _print_build_table(results) -> None:
    table = Table(title="build-images", caption="tests: passed/failed/errors/skipped; tags: --json or `forager status --json`")
    for column in ("repo", "commit", "py", "status", "tests", "flaky", "seconds"):
        table.add_column(column, overflow="fold")
    for r in results:
        status = "[green]ready[/green]" if r.status == "ready" else f"[red]{r.category}[/red]"
        table.add_row(
            RepoRef(url=r.repo).name + (f"@{r.requested_ref}" if r.requested_ref else ""), (r.commit or "")[:10],
            r.python or "", status + (" (cached)" if r.cached else " (pulled)" if r.pulled else ""), f"{r.passed}/{r.failed}/{r.errors}/{r.skipped}",
            str(r.flaky), f"{r.seconds:.1f}",
        )
    out.print(table)
    ready = sum(r.status == "ready" for r in results)
    out.print(f"{ready}/{len(results)} ready")


@app.command()
def status(
    db: DbOption = None,
    as_json: JsonOption = False,
    image: Annotated[int | None, typer.Option("--image", help="show one image's per-test baseline")] = None,
    traces: Annotated[bool, typer.Option("--traces", help="list the traced tests (with --image: that image's)")] = False,
) -> None:
    """Show the images in the store; with --image ID, that image's per-test baseline; with --traces, the tests traced."""
    settings = settings_for(db=db)
    store = store_for(settings)
    if traces:
        _print_traced(store, image, as_json)
        return
    if image is not None:
        _print_baseline(store, image, as_json)
        return
    rows = store.images()
    tasks = task_counts(store.tasks())
    episodes = store.episode_counts()
    traced = store.trace_counts()
    disk = _disk_usage(settings, store)
    if as_json:
        payload = {
            "images": [
                {**row.model_dump(mode="json"), "repo": repo.url, "repo_name": repo.name} for row, repo in rows
            ],
            "tasks": tasks,
            "episodes": episodes,
            "traces": traced,
            "disk": disk.model_dump(mode="json"),
        }
        print(json.dumps(payload, indent=2))
        return
    table = Table(title=f"images in {settings.db}")
    for column in ("id", "repo", "commit", "py", "status", "passed", "failed", "flaky", "size", "build s"):
        table.add_column(column, overflow="fold")
    for row, repo in rows:
        state = "[green]ready[/green]" if row.status == "ready" else f"[red]{row.status}: {row.failure_category}[/red]"
        table.add_row(
            str(row.id), repo.name, (row.commit or "")[:10], row.python_version or "", state,
            str(row.tests_passed), str(row.tests_failed), str(row.tests_flaky),
            _size(row.size_bytes), f"{row.build_seconds:.0f}" if row.build_seconds else "",
        )
    if rows:  # the store's sizes count each image whole; the line below the table gives the disk they share
        table.add_section()
        table.add_row("", "total", "", "", f"{disk.images} ready", "", "", "", _bytes(disk.store_bytes), "")
    out.print(table)
    if rows:
        out.print(_disk_line(disk), highlight=False, soft_wrap=True)
    for row, _repo in rows:
        if row.status == "failed" and row.failure_message:
            out.print(f"[red]{row.id}[/red] {row.failure_message}", highlight=False, soft_wrap=True)
        if installed := (row.changed_tracked or {}).get("install"):
            out.print(f"[yellow]{row.id}[/yellow] its install changed tracked files (episodes start from a commit "
                      f"that holds the change): {', '.join(installed[:3])}{' ...' if len(installed) > 3 else ''}",
                      highlight=False, soft_wrap=True)
    if tasks:
        table = Table(title="tasks", caption="`forager tasks list --all` shows each task and why it is invalid")
        for column in ("repo", "kind", "family", "valid", "tasks"):
            table.add_column(column)
        for entry in tasks:
            table.add_row(entry["repo"], entry["kind"], entry["family"],
                          "[green]yes[/green]" if entry["valid"] else "[red]no[/red]", str(entry["tasks"]))
        out.print(table)
    if episodes:
        table = Table(title="episodes", caption="`forager collect` with the same options resumes a run")
        for column in ("run", "policy", "model", "status", "episodes", "resolved", "steps"):
            table.add_column(column, overflow="fold")
        for entry in episodes:
            table.add_row(entry["run"], entry["policy"], entry["model"] or "", entry["status"], str(entry["episodes"]),
                          str(entry["resolved"]), str(entry["steps"]))
        out.print(table)
    if traced:
        table = Table(title="traces", caption="`forager status --traces` lists the tests traced")
        for column in ("image", "repo", "tests traced", "tasks", "traces", "dropped", "non-deterministic"):
            table.add_column(column)
        for entry in traced:
            table.add_row(str(entry["image_id"]), entry["repo"], str(entry["tests"]), str(entry["tasks"]),
                          str(entry["traces"]), str(entry["dropped"]), str(entry["nondeterministic"]))
        out.print(table)


def _print_traced(store: Store, image_id: int | None, as_json: bool) -> None:
    rows = store.traced_tests(image_id=image_id)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    table = Table(title="traced tests" + (f" of image {image_id}" if image_id is not None else ""))
    for column in ("image", "subject", "test", "status", "traces", "dropped", "det.", "why"):
        table.add_column(column, overflow="fold")
    for r in rows:
        det = "" if r.deterministic is None else ("yes" if r.deterministic else "[red]no[/red]")
        dropped = " ".join(f"{k}:{v}" for k, v in sorted((r.dropped or {}).items()))
        table.add_row(str(r.image_id), r.subject, r.test_id, r.status, str(r.traces), dropped, det, r.reason or "")
    out.print(table)


def _print_baseline(store: Store, image_id: int, as_json: bool) -> None:
    tests = store.baseline(image_id)
    if not tests and not any(row.id == image_id for row, _repo in store.images()):
        raise die(f"--image {image_id}: no such image in the store; `forager status` lists their ids")
    if as_json:
        print(json.dumps([t.model_dump(mode="json", exclude={"id"}) for t in tests], indent=2))
        return
    table = Table(title=f"baseline of image {image_id}")
    for column in ("test", "status", "flaky", "runs"):
        table.add_column(column, overflow="fold")
    for t in tests:
        table.add_row(t.test_id, t.status, "yes" if t.flaky else "", " ".join(t.statuses))
    out.print(table)


def _size(n: int | None) -> str:
    return f"{n / 1e6:.0f} MB" if n else ""


@app.command("bootstrap-base")
def bootstrap_base_cmd(
    python: Annotated[str, typer.Option("--python", help="Python version: 3.9, 3.11 or 3.13")] = "3.11",
    tag: Annotated[str | None, typer.Option("--tag", help="image tag (default: forager/bootstrap-python:X.Y, which builds use when FORAGER_BASE_IMAGE's base cannot be had)")] = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild even if the image exists")] = False,
) -> None:
    """Make a base image from Debian packages with no image registry (air-gapped hosts)."""
    from forager.images.bases import bootstrap_tag
    from forager.images.bootstrap import BootstrapError, bootstrap_base

    settings = settings_for()
    # why not FORAGER_BASE_IMAGE's name: a Debian root file system tagged python:X.Y-slim would pass for the
    # official image; under its own name, builds use it only where the configured base cannot be had
    tag = tag or bootstrap_tag(python)
    engine = engine_for(settings)
    try:
        exists = engine.image_exists(tag)
    except ValueError as exc:
        raise die(f"--tag: {exc}") from None
    if exists and not force:
        err.print(f"base image {tag} exists")
        return
    with err.status(f"debootstrap Python {python} into {tag} (about a minute)"):
        try:
            image_id = bootstrap_base(engine, python, tag)
        except BootstrapError as exc:
            raise die(str(exc)) from None
    err.print(f"made {tag} ({image_id[:19]})")


@app.command("example-repo")
def example_repo(
    out: Annotated[Path, typer.Option("--out", help="where to write the example git repository")] = Path(
        ".forager-cache/example-repo"
    ),
) -> None:
    """Write forager's bundled example repository (a tiny library with tests) as a git repo."""
    from forager.example_repo import materialise

    print(materialise(out))


@app.command()
def version() -> None:
    """Print forager's version."""
    print(__version__)


@app.command()
def regrade(
    db: DbOption = None,
    run: Annotated[str | None, typer.Option("--run", help="only this run's episodes (tasks are not revalidated)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be regraded; change nothing")] = False,
    as_json: JsonOption = False,
) -> None:
    """Repair a store graded by an earlier forager: regrade episodes graded "patch does not apply" (the install's
    change to a tracked file rode along in their diff) and revalidate tasks invalid for that reason."""
    from forager.repair import repair

    settings = settings_for(db=db)
    store = store_for(settings)
    run_id = None
    if run is not None:
        found = store.run_by_name(run)
        if found is None:
            raise die(f"--run {run!r}: no such run in {settings.db}; `forager status` lists the runs")
        run_id = found.id
    engine = engine_for(settings)
    with stage_progress() as progress:
        line = progress.add_task("[bold]regrade", total=None, stage="")
        report = repair(settings, store, engine, run_id=run_id, dry_run=dry_run,
                        on_item=lambda item: progress.update(line, stage=f"{item.kind} {item.id}"))
    if as_json:
        print(report.model_dump_json(indent=2))
        return
    table = Table(title=("would regrade" if dry_run else "regraded") + f" in {settings.db}")
    for column in ("kind", "id", "before", "after"):
        table.add_column(column, overflow="fold")
    for item in report.items:
        table.add_row(item.kind, item.id, item.before, item.after or "-")
    out.print(table)
    out.print(f"episodes: {report.episodes} found, {report.episodes_resolved} now resolved, "
              f"{report.episodes_env_error} env_error; tasks: {report.tasks} found, {report.tasks_valid} now valid")


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _disk_usage(settings, store: Store):
    """The disk of the images the store names (`status`); the store's figures only when no engine answers."""
    import requests
    from docker.errors import DockerException

    from forager.engine.docker_engine import Engine, EngineUnavailable
    from forager.images.prune import measure

    try:
        return measure(store, Engine(timeout=settings.docker_timeout))
    except (EngineUnavailable, DockerException, requests.exceptions.RequestException):
        return measure(store, None)


def _disk_line(disk) -> str:
    if not disk.engine:
        return (f"disk: {disk.images} ready images, {_bytes(disk.store_bytes)} as the store records them "
                "(each counted whole); no Docker engine answers, so nothing about this host")
    failed = f", {disk.failed_present} of failed builds" if disk.failed_present else ""
    missing = f", {disk.missing} missing (built again when a task needs them)" if disk.missing else ""
    return (f"disk: {disk.present}/{disk.images} ready images on this host{missing}{failed}: "
            f"{_bytes(disk.docker_bytes)} counted whole, {_bytes(disk.unique_bytes)} on disk (layers they share "
            "counted once, base included); `forager prune --dry-run` lists those no task needs")


@app.command()
def prune(
    db: DbOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be removed and the bytes it would free; remove nothing")] = False,
    keep_runs: Annotated[bool, typer.Option("--keep-runs", help="also keep the images finished runs used (to grade their episodes again)")] = False,
    min_age: Annotated[float, typer.Option("--min-age", min=0, help="keep images created less than this many seconds ago (a build records its image only once validated)")] = 3600.0,
    as_json: JsonOption = False,
) -> None:
    """Remove this prefix's Docker images that no task or run needs: failed builds, images the store does not
    know, ready images no valid task and no unfinished run uses. Store rows stay; a removed ready image is built
    again (from the layer cache) when a task needs it. Base images and other prefixes are never touched."""
    from rich.markup import escape

    from forager.images.prune import plan_prune, remove

    settings = settings_for(db=db)
    store = store_for(settings)
    engine = engine_for(settings)
    report, host, layers = plan_prune(settings, store, engine, keep_runs=keep_runs, min_age=min_age)
    if not dry_run:
        report = remove(engine, report, host, layers)
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        title = ("would remove" if dry_run else "removed") + f" images of {settings.image_prefix}/"
        table = Table(title=title, caption="size: each image whole, as `docker images` shows it")
        for column in ("tag", "image", "repo", "why", "size"):
            table.add_column(column, overflow="fold")
        for item in report.items:
            why = {"failed": "failed build", "unknown": "not in the store", "unused": "no task uses it"}[item.reason]
            why += " (only a tag: another tag holds the image)" if item.untag_only else ""
            table.add_row(item.tag, str(item.image or ""), item.repo or "", why + (f" [red]({escape(item.error)})[/red]" if item.error else ""),
                          _size(item.size_bytes))
        out.print(table)
        whys = {"task": "a valid task uses it", "run": f"episodes of {'a' if keep_runs else 'an unfinished'} run use it",
                "building": "its build is in progress", "base": "a base image", "container": "a container was made from it",
                "recent": f"younger than --min-age {min_age:g} s"}
        kept = ", ".join(f"{n} ({whys[why]})" for why, n in sorted(report.kept.items())) or "none"
        done = f"would free {_bytes(report.bytes)}" if dry_run else f"{report.removed} removed, {_bytes(report.bytes)} freed"
        out.print(f"{len(report.items)} images of {settings.image_prefix}/: {done} (layers no other image holds); "
                  f"kept: {kept}", highlight=False, soft_wrap=True)
    if report.errors:
        raise typer.Exit(1)
