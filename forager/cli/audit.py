"""`forager audit`: parsing and output only; the work is in forager/integrity/audit/."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import select

from forager.cli.common import DbOption, JsonOption, die, engine_for, err, out, settings_for, store_for
from forager.repos import normalise_url
from forager.store import Repo

SHOWN_FINDINGS = 10  # per probe and start state in the table's listing; --json has them all


def audit(
    repo: Annotated[str | None, typer.Option("--repo", help="a repository of the store, by name or URL (default: "
                                                          "every ready image)")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Audit ready images for leaks of the answer: in the container an agent would get (the image's start state,
    and each valid task's with its bug applied), probes look at git beyond the start commit, copies and bytecode
    of the pre-bug source, the gold patch's lines anywhere on the filesystem, and caches. A task whose start state
    fails a probe becomes invalid; results are stored (images.audit, tasks.integrity.audit). Exit code 1 when a
    probe failed or could not run."""
    from forager.integrity.audit import PROBE_NAMES, audit_image

    settings = settings_for(db=db)
    store = store_for(settings)
    images = [(image, row) for image, row in store.images() if image.status == "ready"]
    if repo is not None:
        wanted = {repo, normalise_url(repo)}
        with store.session() as session:
            named = list(session.exec(select(Repo).where(Repo.name.in_(wanted) | Repo.url.in_(wanted))))
        if not named:
            raise die(f"--repo {repo!r}: no such repository in the store (`forager status` lists them)")
        ids = {row.id for row in named}
        images = [(image, row) for image, row in images if row.id in ids]
        if not images:
            raise die(f"--repo {repo!r}: no ready image to audit (`forager build-images --repo {repo}` builds one)")
    elif not images:
        raise die("the store has no ready image to audit (`forager build-images` builds one)")
    engine = engine_for(settings)
    reports = []
    with err.status("audit") as status:
        for image, row in images:
            reports.append(audit_image(engine, settings, store, image, on_subject=lambda what, name=row.name:
                                       status.update(f"audit {name}: {what}")))
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
    else:
        _print(reports, PROBE_NAMES)
    if not all(r.passed for r in reports):
        raise typer.Exit(1)


def _print(reports, probe_names) -> None:
    table = Table(title="leak audit", caption="a failing task is marked invalid; --json prints every finding")
    table.add_column("image / task", overflow="fold")
    for name in probe_names:
        table.add_column(name, overflow="fold")
    for report in reports:
        for subject in report.subjects:
            label = (f"image {report.image_id} {report.repo}@{(report.commit or '')[:12]}" if subject.subject == "image"
                     else f"  task {subject.subject}")
            if subject.error:
                table.add_row(label, *(["[red]ERROR[/red]"] + [""] * (len(probe_names) - 1)))
                continue
            by_name = {p.name: p for p in subject.probes}
            table.add_row(label, *(_cell(by_name.get(name)) for name in probe_names))
    out.print(table)
    for report in reports:
        for subject in report.subjects:
            where = f"image {report.image_id}" + ("" if subject.subject == "image" else f" task {subject.subject}")
            if subject.error:
                out.print(f"{where}: could not be audited: {subject.error}", highlight=False, markup=False)
            for probe in subject.probes:
                if probe.verdict == "error":
                    out.print(f"{where}: {probe.name}: could not run: {probe.note}", highlight=False, markup=False)
                for finding in probe.findings[:SHOWN_FINDINGS]:
                    mark = "FAIL" if finding.fails else "note"
                    out.print(f"{where}: {probe.name}: [{mark}] {finding.detail}", highlight=False, markup=False)
                if len(probe.findings) > SHOWN_FINDINGS:
                    out.print(f"{where}: {probe.name}: ... and {len(probe.findings) - SHOWN_FINDINGS} more (--json)",
                              highlight=False, markup=False)
        for instance in report.invalidated:
            out.print(f"task {instance}: now invalid (leak audit)", highlight=False, markup=False)
        for instance in report.restored:
            out.print(f"task {instance}: valid again (its start state passes the audit)", highlight=False, markup=False)


def _cell(probe) -> str:
    if probe is None:
        return ""
    text = probe.summary
    if probe.verdict in ("failed", "error"):
        return f"[red]{text}[/red]"
    if probe.verdict == "reported":
        return f"[yellow]{text}[/yellow]"
    return f"[green]{text}[/green]" if probe.verdict == "clean" else text
