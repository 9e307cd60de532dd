"""Benchmark the episode sandbox: a trivial bash step through the persistent shell vs a `docker exec` per
command, and the cold start of an episode (container create + start + start patch + shell).

Prints JSON. Needs a Docker engine and the base image (`make base-image`); run with
`.venv/bin/python bench/sandbox.py [-n 50]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from forager.engine.docker_engine import Engine
from forager.example_repo import BEFORE_FIX, materialise
from forager.sandbox.container import Sandbox
from forager.sandbox.models import SandboxLimits, ToolCall

BASE_IMAGE = os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}").replace("{python}", "3.11")


def build_image(engine: Engine, tmp: Path) -> str:
    """The bundled example repository at /testbed on the base image (no install: the shell is what is measured)."""
    materialise(tmp / "repo")
    (tmp / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\n"
        "RUN git config --system user.email forager@localhost && git config --system user.name forager\n"
        "COPY repo /testbed\n"
    )
    tag = f"forager-bench/sandbox:{uuid.uuid4().hex[:8]}"
    engine.build(tmp, tag, timeout=300)
    return tag


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=50, help="steps per method")
    parser.add_argument("--starts", type=int, default=5, help="cold episode starts")
    args = parser.parse_args()
    engine = Engine()
    patch = BEFORE_FIX.read_text()
    with tempfile.TemporaryDirectory(prefix="forager-bench-") as tmp:
        image = build_image(engine, Path(tmp))
    try:
        starts, closes = [], []
        for _ in range(args.starts):
            box = Sandbox(engine, image, limits=SandboxLimits(), labels={"forager.run": "bench"})
            started = time.perf_counter()
            box.start(patch)
            starts.append(time.perf_counter() - started)
            started = time.perf_counter()
            box.close()
            closes.append(time.perf_counter() - started)

        with Sandbox(engine, image, labels={"forager.run": "bench"}) as box:
            box.start(patch)
            call = ToolCall(name="bash", arguments={"command": "echo hi"})
            for _ in range(5):  # warm-up
                box.execute(call)
            shell = []
            for _ in range(args.n):
                started = time.perf_counter()
                assert box.execute(call).output == "hi\n"
                shell.append(time.perf_counter() - started)
            cli = []
            for _ in range(args.n):
                started = time.perf_counter()
                proc = subprocess.run(["docker", "exec", box.container.id, "bash", "-lc", "echo hi"],
                                      capture_output=True, check=True)
                cli.append(time.perf_counter() - started)
                assert proc.stdout == b"hi\n"
    finally:
        engine.remove_image(image)
    print(json.dumps({
        "benchmark": "sandbox",
        "steps_per_method": args.n,
        "persistent_shell_step_ms": median_ms(shell),
        "docker_exec_subprocess_step_ms": median_ms(cli),
        "speedup": round(statistics.median(cli) / statistics.median(shell), 1),
        "cold_start_seconds": round(statistics.median(starts), 3),
        "cold_start_seconds_each": [round(s, 3) for s in starts],
        "close_seconds": round(statistics.median(closes), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
