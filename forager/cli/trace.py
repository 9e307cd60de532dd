"""`forager trace`: parsing and output only; the work is in forager/traces/."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from forager.cli.common import DbOption, JsonOption, builder_for, die, err, out, read_refs, settings_for


def trace(
    repo: Annotated[str | None, typer.Option("--repo", help="git URL or local path, optionally @commit: its image is"
                                                          " built first if the store has none ready")] = None,
    image: Annotated[int | None, typer.Option("--image", help="a ready image of the store, by id")] = None,
    task: Annotated[str | None, typer.Option("--task", help="a task (instance id or id): its FAIL_TO_PASS tests traced"
                                                          " with the bug and with the fix, as pairs")] = None,
    tests: Annotated[str | None, typer.Option("--tests", help="test ids, files or globs, comma-separated (default: the"
                                                            " baseline's passing tests)")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="tests traced, sampled with --seed")] = 20,
    pairs: Annotated[int, typer.Option("--pairs", min=0, help="with --repo/--image: also trace this many of the"
                                                            " image's valid tasks with the bug and with the fix")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="seed of the test sample")] = 0,
    max_events: Annotated[int, typer.Option("--max-events", min=1, help="a function-level trace past this many line"
                                                                     " events is dropped (CWM: 10000)")] = 10_000,
    depth: Annotated[int, typer.Option("--depth", min=0, help="nested calls traced this deep; deeper ones are"
                                                            " stepped over")] = 1,
    runs: Annotated[int, typer.Option("--runs", min=1, help="times each test is traced; traces that differ are"
                                                          " marked non-deterministic")] = 2,
    include_tests: Annotated[bool, typer.Option("--include-tests", help="functions in test files are entry points"
                                                                     " too")] = False,
    case_timeout: Annotated[float, typer.Option("--case-timeout", min=1, help="seconds one traced test may"
                                                                           " take")] = 120,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="containers at once")] = 1,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trace tests of a ready image line by line (CWM's execution traces): one function-level trace per call of
    a repository function, stored; a rerun skips what is stored. `forager export --format trace` writes them."""
    from forager.traces.run import TraceOptions, Tracer, passing_tests, select_tests, suite_subject, task_subjects

    if sum(x is not None for x in (repo, image, task)) != 1:
        raise die("name what to trace: one of --repo URL-or-path[@commit], --image ID or --task ID")
    if task is not None and (tests is not None or pairs):
        raise die("--task traces that task's own FAIL_TO_PASS tests: drop --tests and --pairs")
    settings = settings_for(db=db)
    store, engine, builder = builder_for(settings)
    options = TraceOptions(depth=depth, limit=limit, seed=seed, max_events=max_events, runs=runs,
                           include_tests=include_tests, case_timeout=case_timeout, jobs=jobs)
    if task is not None:
        row = store.task(task) or (store.task_by_id(int(task)) if task.isdigit() else None)
        if row is None:
            raise die(f"--task {task!r}: no such task (see `forager tasks list`)")
        if not row.fail_to_pass or row.image_id is None:
            raise die(f"--task {task!r}: it has no FAIL_TO_PASS tests or no image; validate it first"
                      " (`forager tasks validate`)")
        subjects = task_subjects(row, _ready(store, row.image_id, f"--task {task!r}"), settings)
    else:
        if repo is not None:
            ref = read_refs([repo], None)[0]
            with err.status(f"image of {ref.name}"):
                built = builder.build(ref)
            if built.status != "ready" or built.image_id is None:
                raise die(f"--repo {repo!r}: no ready image ({built.category}: {built.message[:200]})")
            image = built.image_id
        row = _ready(store, image, f"--image {image}")
        chosen = select_tests(passing_tests(store, row.id), selector=tests, limit=limit, seed=seed)
        if not chosen:
            raise die(f"image {row.id}: no passing test matches {tests!r}" if tests else
                      f"image {row.id}: its baseline has no passing test to trace")
        subjects = [suite_subject(row, settings, chosen)]
        tasks = [t for t, _repo in store.tasks(valid=True) if t.image_id == row.id and t.fail_to_pass][:pairs]
        for one in tasks:
            subjects += task_subjects(one, row, settings)
    tracer = Tracer(settings, store, engine)
    reports = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as progress:
        for subject in subjects:
            bar = progress.add_task(f"trace image {subject.image.id} {subject.key}", total=len(subject.tests))
            reports.append(tracer.trace(subject, options,
                                        lambda done, total, bar=bar: progress.update(bar, completed=done)))
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
        return
    table = Table(title="traces", caption="`forager export --format trace --out FILE` writes them")
    for column in ("repo", "image", "subject", "py", "tests", "traced", "skipped", "traces", "dropped",
                   "non-det", "line events", "seconds"):
        table.add_column(column, overflow="fold")
    for r in reports:
        dropped = " ".join(f"{k}:{v}" for k, v in sorted(r.dropped.items())) or "0"
        table.add_row(r.repo, str(r.image_id), r.subject, r.python or "", str(r.tests), str(r.traced),
                      str(r.skipped), str(r.traces), dropped, str(r.nondeterministic), str(r.line_events),
                      f"{r.seconds:.1f}")
    out.print(table)
    for r in reports:
        if r.tests_dropped:
            out.print(f"image {r.image_id} {r.subject}: tests not fully traced: "
                      + ", ".join(f"{k} {v}" for k, v in r.tests_dropped.items())
                      + " (`forager status --traces` lists why)", highlight=False)
        if r.bug_line_seen is not None:
            out.print(f"image {r.image_id} {r.subject}: the fixed line ran in {r.bug_line_seen} of {r.traced} buggy"
                      " traces", highlight=False)


def _ready(store, image_id: int | None, named: str):
    row = store.image(image_id) if image_id is not None else None
    if row is None or row.status != "ready":
        raise die(f"{named}: image {image_id} is not a ready image of the store (see `forager status`)")
    return row
