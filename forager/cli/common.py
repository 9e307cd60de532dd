"""Pieces the command-line modules share: consoles, common options, and one-line errors for bad input."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from forager.engine.docker_engine import Engine, EngineUnavailable
from forager.config import Settings
from forager.models import RepoRef
from forager.repos import normalise_url
from forager.store import Store

# why: piped output (CI logs, files) would otherwise wrap tables at 80 columns
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DbOption = Annotated[str | None, typer.Option("--db", help="store URL (default: FORAGER_DB or SQLite in trajectories/)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON instead of tables")]
RegistryOption = Annotated[str | None, typer.Option(
    "--registry", help="HOST:PORT of an image registry (or FORAGER_REGISTRY): built images are pushed, missing ones "
    "pulled instead of rebuilt")]


def settings_for(**overrides) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise die(f"setting {where}: {error['msg']} (check --{where.replace('_', '-')} / FORAGER_{where.upper()})") from None


def die(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)  # why soft: one line, however long
    return typer.Exit(code)


def store_for(settings: Settings) -> Store:
    try:
        store = Store(settings.db)
    except ValueError as exc:
        raise die(f"{exc} (fix --db / FORAGER_DB)") from None
    store.step_writer_kind = settings.step_writer
    return store


def engine_for(settings: Settings) -> Engine:
    try:
        return Engine(timeout=settings.docker_timeout)
    except EngineUnavailable as exc:
        raise die(str(exc)) from None


def read_refs(repos: list[str], repos_file: Path | None) -> list[RepoRef]:
    texts = list(repos)
    if repos_file is not None:
        if not repos_file.is_file():
            raise die(f"--repos-file {repos_file} does not exist; give a file with one repo[@commit] per line")
        for line in repos_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                texts.append(line)
    if not texts:
        raise die("no repositories given; pass --repo URL-or-path[@commit] or --repos-file FILE")
    refs: dict[tuple[str, str | None], RepoRef] = {}
    for text in texts:
        try:
            # a local path that exists is taken whole, even with an '@' in it
            ref = RepoRef(url=text.strip()) if Path(text.strip()).exists() else RepoRef.parse(text)
        except ValueError as exc:
            raise die(f"--repo {text!r}: {exc}") from None
        # why: the same repository named twice (./x and x) would build one image twice at once
        refs.setdefault((normalise_url(ref.url), ref.ref), ref)
    return list(refs.values())


def stage_progress() -> Progress:
    """Progress on stderr: one row per job with its current stage (clone, build, tests...) and elapsed time."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"),
                    TimeElapsedColumn(), console=err)


def builder_for(settings: Settings):
    """Store, engine and image builder for a command that builds or runs images; sweeps what killed runs left."""
    from forager.images.pipeline import ImageBuilder

    store = store_for(settings)
    engine = engine_for(settings)
    try:
        builder = ImageBuilder(settings, store, engine)
    except ValueError as exc:
        raise die(str(exc)) from None
    engine.sweep()  # containers and build contexts of forager processes that were killed
    builder.sweep_contexts()
    return store, engine, builder
