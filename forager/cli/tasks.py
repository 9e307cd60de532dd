"""`forager tasks ...`: make, import, mine, list, write and check tasks. Parsing and output only."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from forager.cli import contamination as cli_contamination
from forager.cli import stats as cli_stats
from forager.cli.common import (
    DbOption,
    JsonOption,
    builder_for,
    die,
    err,
    out,
    read_refs,
    settings_for,
    stage_progress,
    store_for,
)
from forager.models import ForagerError
from forager.tasks.mutations import FAMILIES
from forager.text import first_line

app = typer.Typer(help="Make verifiable tasks in images: mutate-fix (synthetic bugs) and issue-fix (real fixes).",
                  no_args_is_help=True)

KindOption = Annotated[str | None, typer.Option("--kind", help="mutate-fix or issue-fix")]
RepoFilter = Annotated[str | None, typer.Option("--repo", help="only tasks of this repository (name or URL)")]
LlmOption = Annotated[str | None, typer.Option(
    "--llm", help="OpenAI-compatible server (its /v1 address) whose model rewrites mined statements as issues")]
ModelOption = Annotated[str | None, typer.Option("--model", help="the served model's name (with --llm)")]


def _workers(db, jobs):
    settings = settings_for(db=db, jobs=jobs)
    return (settings, *builder_for(settings))


def _families(text: str | None) -> tuple[str, ...]:
    if not text:
        return FAMILIES
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown or not chosen:
        raise die(f"--families {text!r}: unknown {', '.join(unknown) or 'empty list'}; choose from {','.join(FAMILIES)}")
    return chosen


@app.command()
def synthesize(
    repo: Annotated[list[str], typer.Option("--repo", help="git URL or local path, optionally @commit; repeatable")] = [],  # noqa: B006
    kind: Annotated[str, typer.Option("--kind", help="only mutate-fix is synthesized; issue-fix comes from import or mine")] = "mutate-fix",
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="valid tasks wanted per repository")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="same seed, same candidates in the same order")] = 0,
    families: Annotated[str | None, typer.Option("--families", help=f"comma-separated subset of {','.join(FAMILIES)}")] = None,
    max_candidates: Annotated[int | None, typer.Option("--max-candidates", min=1, help="candidates validated at most (default: 4 x count, at least count + 10)")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="candidates validated at once")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Inject bugs into functions that passing tests call; keep those that tests catch (mutate-fix)."""
    from forager.tasks.synthesize import MutateFixSynthesizer

    if kind != "mutate-fix":
        raise die(f"--kind {kind!r}: synthesize makes mutate-fix tasks; issue-fix tasks come from "
                  "`forager tasks import FILE` or `forager tasks mine --repo X`")
    chosen = _families(families)
    refs = read_refs(repo, None)
    settings, store, engine, builder = _workers(db, jobs)
    synthesizer = MutateFixSynthesizer(settings, store, engine, builder)
    reports, failed = [], False
    with stage_progress() as progress:
        for ref in refs:
            task = progress.add_task(ref.name, total=None, stage="queued")
            try:
                report = synthesizer.synthesize(
                    ref, count=count, seed=seed, families=chosen, max_candidates=max_candidates,
                    on_stage=lambda stage, task=task: progress.update(task, stage=stage),
                )
            except ForagerError as exc:
                failed = True
                progress.update(task, total=1, completed=1, stage=f"[red]{exc.category}")
                err.print(f"[red]failed:[/red] {exc.message}", highlight=False, soft_wrap=True)
                continue
            reports.append(report)
            progress.update(task, total=1, completed=1, stage=f"{report.valid}/{count} valid of {report.tried} tried")
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
    else:
        table = Table(title="tasks synthesize (mutate-fix)")
        for column in ("repo", "commit", "functions", "candidates", "tried", "valid", "families", "invalid", "seconds"):
            table.add_column(column, overflow="fold")
        for r in reports:
            table.add_row(
                r.repo.rstrip("/").rsplit("/", 1)[-1], (r.commit or "")[:10], str(r.functions_called), str(r.candidates),
                str(r.tried), f"{r.valid}" + (f" ({r.reused} reused)" if r.reused else ""),
                " ".join(f"{k}:{v}" for k, v in sorted(r.families.items())),
                " ".join(f"{k}:{v}" for k, v in sorted(r.invalid_reasons.items())), f"{r.seconds:.0f}",
            )
        out.print(table)
    if failed or any(r.valid < count for r in reports):
        raise typer.Exit(1)


def _print_verdicts(title: str, verdicts, as_json: bool, *, invalid_fails: bool = True) -> None:
    verdicts = sorted(verdicts, key=lambda v: v.instance_id)
    if as_json:
        print(json.dumps([v.model_dump(mode="json") for v in verdicts], indent=2))
    else:
        table = Table(title=title)
        for column in ("instance", "kind", "valid", "F2P", "P2P", "seconds", "reason"):
            table.add_column(column, overflow="fold")
        for v in verdicts:
            table.add_row(v.instance_id, v.kind, "[green]yes[/green]" if v.valid else "[red]no[/red]",
                          str(v.fail_to_pass), str(v.pass_to_pass), f"{v.seconds:.0f}", v.reason or "")
        out.print(table)
        out.print(f"{sum(v.valid for v in verdicts)}/{len(verdicts)} valid")
    if invalid_fails and any(not v.valid for v in verdicts):
        raise typer.Exit(1)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="SWE-bench-format instances, JSON or JSONL (forager's task files too)")],
    repo_url: Annotated[list[str], typer.Option("--repo-url", help="NAME=URL-or-path: where to clone a repo named NAME (e.g. a local mirror of owner/name); repeatable")] = [],  # noqa: B006
    instance: Annotated[list[str], typer.Option("--instance", help="only these instance ids; repeatable")] = [],  # noqa: B006
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="instances validated at once")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import instances, build or reuse each repo's image at base_commit, and validate with the gold patch."""
    from forager.tasks.issues import TaskValidator
    from forager.tasks.records import read_records

    try:
        reads = read_records(file)
    except ValueError as exc:
        raise die(str(exc)) from None
    urls = {}
    for mapping in repo_url:
        name, sep, url = mapping.partition("=")
        if not sep or not name or not url:
            raise die(f"--repo-url {mapping!r}: expected NAME=URL-or-path, e.g. pallets/flask=/srv/mirrors/flask")
        urls[name] = url
    if instance:
        reads = [r for r in reads if r.record is None or r.record.instance_id in instance]
    settings, store, engine, builder = _workers(db, jobs)
    validator = TaskValidator(settings, store, engine, builder)
    bad = [r for r in reads if r.record is None]
    for r in bad:
        err.print(f"[red]skipped:[/red] {r.error}", highlight=False, soft_wrap=True)
    good = [(r.record.instance_id, r.record) for r in reads if r.record is not None]
    readable = {instance_id for instance_id, _record in good}
    for r in bad:  # recorded as invalid too, when the entry names its instance and repository
        if r.instance_id and r.repo and r.instance_id not in readable:
            validator.record_unreadable(r.instance_id, r.repo, r.error, source=f"import {file.name}", url=urls.get(r.repo))
    if not good and not bad:
        raise die(f"{file}: no instances found (expected JSON objects with instance_id, repo, base_commit, patch)")

    title = f"tasks import {file.name}"
    try:
        with stage_progress() as progress:
            overall = progress.add_task(f"[bold]{title}", total=len(good), stage="")
            rows = {instance_id: progress.add_task(instance_id, total=None, stage="queued") for instance_id, _r in good}

            def done(verdict) -> None:
                mark = "[green]valid" if verdict.valid else "[red]invalid"
                progress.update(rows[verdict.instance_id], total=1, completed=1, stage=mark)
                progress.advance(overall)
                if not verdict.valid:
                    err.print(f"[red]invalid:[/red] {verdict.instance_id}: {verdict.reason}", highlight=False,
                              soft_wrap=True)

            verdicts = validator.validate_records(
                [record for _id, record in good], source=f"import {file.name}", urls=urls, jobs=settings.jobs,
                on_stage=lambda instance_id, stage: progress.update(rows[instance_id], stage=stage), on_done=done)
        _print_verdicts(title, verdicts, as_json)
    finally:
        if bad:
            err.print(f"{len(bad)} entr{'y' if len(bad) == 1 else 'ies'} of {file} could not be read (see above)")
    if bad:
        raise typer.Exit(1)


def _since(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise die(f"--since {text!r}: expected a day as YYYY-MM-DD, e.g. 2023-01-01") from None


@app.command()
def mine(
    repo: Annotated[list[str], typer.Option("--repo", help="git URL or local path, optionally @ref to start from; repeatable")] = [],  # noqa: B006
    max_commits: Annotated[int, typer.Option("--max-commits", min=1, help="first-parent commits scanned, newest first")] = 100,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="fix commits validated at most per repository")] = None,
    since: Annotated[str | None, typer.Option("--since", help="only commits committed on or after this day (YYYY-MM-DD)")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="commits validated at once")] = None,
    retry_builds: Annotated[bool, typer.Option(
        "--retry-builds", help="validate again the stored commits whose image did not build (after an upgrade of "
                               "forager or a mended install); a rerun skips them otherwise")] = False,
    llm: LlmOption = None,
    model: ModelOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find fix commits (source and tests changed; new tests fail on the parent, pass on the commit) as issue-fix tasks.

    A rerun skips the commits whose task is stored with a verdict (valid, or invalid for a reason of its own);
    with --retry-builds it validates again those whose image did not build.
    With --llm and --model, each new valid task's statement is rewritten as an issue (see `tasks restate`).
    """
    from forager.tasks.issues import TaskValidator

    day = _since(since)
    refs = read_refs(repo, None)
    restater = _restater(llm, model)
    settings, store, engine, builder = _workers(db, jobs)
    validator = TaskValidator(settings, store, engine, builder)
    verdicts, reports = [], []
    with stage_progress() as progress:
        for ref in refs:
            row = progress.add_task(ref.name, total=None, stage="queued")
            try:
                report = validator.mine(ref, max_commits=max_commits, limit=limit, jobs=settings.jobs, since=day,
                                        on_stage=lambda s, row=row: progress.update(row, stage=s), restater=restater,
                                        retry_builds=retry_builds)
            except ForagerError as exc:
                progress.update(row, total=1, completed=1, stage=f"[red]{exc.category}")
                raise die(exc.message, code=1) from None
            reports.append(report)
            verdicts.extend(report.tasks)
            progress.update(row, total=1, completed=1,
                            stage=f"{report.commits_scanned} scanned, {report.fix_candidates} fix-shaped, {report.valid} valid")
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
        return
    for r in reports:
        err.print(f"{r.repo}: {r.commits_scanned} commit(s) with a parent scanned"
                  f"{f' since {r.since}' if r.since else ''}, {r.fix_candidates} change source and tests; "
                  f"{r.validated} validated, {r.reused} reused from the store, {r.valid} valid, "
                  f"{r.lost_to_builds} lost to failed builds", highlight=False, soft_wrap=True)
    # why: most fix-shaped commits are not verifiable fixes; an invalid one is a finding, not an error
    _print_verdicts("tasks mine", verdicts, False, invalid_fails=False)


def _restater(llm: str | None, model: str | None):
    """The served model that rewrites statements, checked before any work; None without --llm."""
    if llm is None and model is None:
        return None
    if not llm or not model:
        raise die("--llm and --model go together: the server's /v1 address and the model it serves")
    from forager.tasks.restate import Restater

    restater = Restater(llm, model)
    problem = restater.problem()
    if problem:
        raise die(problem)
    return restater


@app.command()
def restate(
    llm: LlmOption = None,
    model: ModelOption = None,
    repo: RepoFilter = None,
    force: Annotated[bool, typer.Option("--force", help="rewrite again the statements a model already rewrote")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rewrite the statements of valid mined tasks as the issues a user would file, with a served model.

    The model sees only forager's test report, never the fix. A rewrite that names a file, module or function
    the fix changes is rejected and the report stays the statement, with the reason kept in the task. The
    report is kept too: --force rewrites from it again (e.g. with another model).
    """
    from forager.tasks.restate import restate_stored

    if not llm or not model:
        raise die("tasks restate needs --llm URL (the server's /v1 address) and --model NAME")
    restater = _restater(llm, model)
    settings = settings_for(db=db)
    store = store_for(settings)
    with stage_progress() as progress:
        row = progress.add_task("restate", total=None, stage="tasks")
        try:
            rows = restate_stored(store, settings, restater, repo_name=repo, force=force,
                                  on_task=lambda done: progress.update(row, advance=1, stage=done.instance_id))
        except ForagerError as exc:
            raise die(exc.message, code=1) from None
        finally:
            restater.close()
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    table = Table(title=f"statements rewritten by {model}")
    for column in ("instance", "statement", "why not the rewrite"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.instance_id, "rewrite" if r.by == "llm" else "test report", r.rejected or "")
    out.print(table)
    accepted = sum(r.by == "llm" for r in rows)
    err.print(f"{accepted} of {len(rows)} mined task(s) now have the model's rewrite as their statement"
              + ("" if rows else " (no valid mined task left to rewrite; --force rewrites them again)"), highlight=False)


def _image_worlds(store, rows, image_world) -> dict:
    """image id -> the cut-off and Python its tasks were validated with (from the image; None for none)."""
    worlds: dict = {None: image_world(None)}
    for t, _r in rows:
        if t.image_id not in worlds:
            worlds[t.image_id] = image_world(store.image(t.image_id))
    return worlds


@app.command("list")
def list_(
    repo: RepoFilter = None,
    kind: KindOption = None,
    include_invalid: Annotated[bool, typer.Option("--all", help="include invalid tasks")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List tasks in the store."""
    from forager.tasks.catalog import image_world

    settings = settings_for(db=db)
    store = store_for(settings)
    rows = store.tasks(repo_name=repo, kind=kind, valid=None if include_invalid else True)
    if as_json:
        worlds = _image_worlds(store, rows, image_world)
        print(json.dumps([{**t.model_dump(mode="json", exclude={"bug_patch", "gold_patch", "test_patch", "validation"}),
                           "repo": r.url, **worlds[t.image_id]} for t, r in rows], indent=2))
        return
    table = Table(title=f"tasks in {settings.db}")
    for column in ("id", "instance", "kind", "family", "where", "F2P", "P2P", "valid"):
        table.add_column(column, overflow="fold")
    for t, _r in rows:
        where = f"{t.path}:{t.line} {t.symbol}" if t.path else (t.base_commit or "")[:10]
        table.add_row(str(t.id), t.instance_id, t.kind, t.family or "", where, str(len(t.fail_to_pass)),
                      str(len(t.pass_to_pass)), "yes" if t.valid else f"no: {t.invalid_reason}")
    out.print(table)


@app.command()
def write(
    out_file: Annotated[Path, typer.Argument(help="JSONL file to write, e.g. tasks/mine.jsonl")],
    repo: RepoFilter = None,
    kind: KindOption = None,
    include_invalid: Annotated[bool, typer.Option("--all", help="include invalid tasks")] = False,
    db: DbOption = None,
) -> None:
    """Write tasks as JSONL (SWE-bench fields plus forager's), to share them without the database."""
    from forager.integrity.stats import task_outcomes
    from forager.tasks.catalog import image_world, to_record
    from forager.tasks.records import write_records

    settings = settings_for(db=db)
    store = store_for(settings)
    rows = store.tasks(repo_name=repo, kind=kind, valid=None if include_invalid else True)
    tags, worlds = {}, _image_worlds(store, rows, image_world)
    for t, _r in rows:
        if t.image_id is not None and t.image_id not in tags:
            image = store.image(t.image_id)
            tags[t.image_id] = image.tag if image else None
    outcomes = {o.task_id: o for o in task_outcomes(store)}  # pass rates travel with the tasks
    records = []
    for t, r in rows:
        seen = outcomes.get(t.id)
        rate = round(seen.resolved / seen.attempts, 4) if seen and seen.attempts else None
        try:
            records.append(to_record(t, r, tags.get(t.image_id), **worlds[t.image_id], pass_rate=rate,
                                     attempts=seen.attempts if seen else 0))
        except ValueError as exc:  # e.g. an invalid task whose gold patch is empty: say so, write the others
            err.print(f"[yellow]left out:[/yellow] {t.instance_id}: {first_line(str(exc))}", highlight=False)
    try:
        written = write_records(out_file, records)
    except (OSError, ValueError) as exc:
        raise die(f"cannot write {out_file}: {exc}") from None
    err.print(f"wrote {written} task{'s' if written != 1 else ''} to {out_file}")


@app.command()
def oracle(
    repo: RepoFilter = None,
    kind: KindOption = None,
    instance: Annotated[list[str], typer.Option("--instance", help="only these instance ids; repeatable")] = [],  # noqa: B006
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="tasks graded at once")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply each valid task's gold patch in a fresh container and grade it: every one must resolve."""
    from forager.tasks.oracle import run_oracle

    settings, store, engine, _builder = _workers(db, jobs)
    rows = store.tasks(repo_name=repo, kind=kind, valid=True, instance_ids=instance or None)
    if not rows:
        raise die("no valid tasks match; make some with `forager tasks synthesize` / `import` / `mine`")
    with stage_progress() as progress:
        overall = progress.add_task("[bold]oracle", total=len(rows), stage="")
        results = run_oracle(engine, settings, store, [t for t, _r in rows], jobs=settings.jobs,
                             on_done=lambda _r: progress.advance(overall))
    resolved = sum(r.resolved for r in results)
    if as_json:
        print(json.dumps({"resolved": resolved, "total": len(results), "results": [r.row() for r in results]},
                         indent=2))
    else:
        table = Table(title="oracle: gold patches graded")
        for column in ("instance", "resolved", "F2P passed", "P2P passed", "seconds", "error"):
            table.add_column(column, overflow="fold")
        for r in results:
            g = r.grade
            table.add_row(r.instance_id, "[green]yes[/green]" if r.resolved else "[red]no[/red]",
                          f"{g.fail_to_pass_passed}/{g.fail_to_pass_total}" if g else "0/0",
                          f"{g.pass_to_pass_passed}/{g.pass_to_pass_total}" if g else "0/0",
                          f"{g.seconds:.1f}" if g else "0.0", r.error or "")
        out.print(table)
        out.print(f"{resolved}/{len(results)} resolved ({100 * resolved / len(results):.1f}%)")
    if resolved < len(results):
        raise typer.Exit(1)


@app.command()
def verify(
    repo: RepoFilter = None,
    kind: KindOption = None,
    instance: Annotated[list[str], typer.Option("--instance", help="only these instance ids; repeatable")] = [],  # noqa: B006
    runs: Annotated[int, typer.Option("--runs", "-k", min=2, help="graded runs per patch (gold and empty)")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="seed of the shuffled orders")] = 0,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="containers at once")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Grade each valid task's gold patch and its empty patch K times (every second run with the tests in a
    shuffled order); drop the tests whose verdict flips, and record the result on the task."""
    from forager.integrity.verify import Verifier

    settings, store, engine, _builder = _workers(db, jobs)
    rows = store.tasks(repo_name=repo, kind=kind, valid=True, instance_ids=instance or None)
    if not rows:
        raise die("no valid tasks match; make some with `forager tasks synthesize` / `import` / `mine`")
    verifier = Verifier(settings, store, engine)
    results = []
    with stage_progress() as progress:
        overall = progress.add_task("[bold]verify", total=len(rows) * runs * 2, stage="")
        for task, _repo in rows:
            progress.update(overall, stage=task.instance_id)
            record = verifier.verify(task, runs=runs, seed=seed, jobs=settings.jobs,
                                     on_run=lambda: progress.advance(overall))
            results.append((task, record))
    if as_json:
        print(json.dumps([{"instance_id": t.instance_id, "valid": t.valid, "invalid_reason": t.invalid_reason,
                           **r.model_dump(mode="json")} for t, r in results], indent=2))
        return
    table = Table(title=f"verify: gold and empty patches graded {runs} times each")
    for column in ("instance", "gold resolved", "bug failed", "dropped", "order-dependent", "version", "verified",
                   "seconds"):
        table.add_column(column, overflow="fold")
    for t, r in results:
        dropped = [*r.dropped_fail_to_pass, *r.dropped_pass_to_pass]
        table.add_row(t.instance_id, f"{r.gold_resolved}/{r.runs}", f"{r.bug_failed}/{r.runs}",
                      "\n".join(dropped) or "0", "\n".join(r.order_dependent) or "0", str(r.tests_version),
                      "[green]yes[/green]" if r.verified else f"[red]no[/red] {t.invalid_reason or ''}",
                      f"{r.seconds:.1f}")
    out.print(table)
    verified = sum(r.verified for _t, r in results)
    out.print(f"{verified}/{len(results)} verified")


app.command("stats")(cli_stats.stats)
app.command("contamination")(cli_contamination.contamination)
