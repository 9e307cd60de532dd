"""`forager dev`: helpers for development and tests (a tiny local model to serve with vLLM)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from forager.cli.common import die, out
from forager.serve import INSTALL_HINT

app = typer.Typer(
    help="Development helpers: a tiny local model for tests and demos.", no_args_is_help=True, add_completion=False
)


@app.callback()
def _group() -> None:
    """Development helpers: a tiny local model for tests and demos."""  # why: keeps `dev` a group of commands

@app.command("tiny-model")
def tiny_model(
    out_dir: Annotated[Path, typer.Option("--out", help="directory to write the model to")],
    seed: Annotated[int, typer.Option("--seed", help="seed of the random weights")] = 0,
) -> None:
    """Write a tiny random-weight model with CWM's architecture and chat format (servable by vLLM)."""
    try:
        from forager.dev.tiny_model import make_tiny_model

        path = make_tiny_model(out_dir, seed=seed)
    except ImportError as exc:
        raise die(escape(f"{exc.name or exc} is missing; {INSTALL_HINT}")) from None
    out.print(str(path), highlight=False, soft_wrap=True)
