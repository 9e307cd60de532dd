"""Steps written per second through Store.record_step (the collector's path), SQLite vs PostgreSQL, 1 and 8 writers.

Each writer is a process with its own Store and its own claimed episode, as a worker's episode threads
would be; a step carries what a real one does: ~200 completion token ids with their logprobs, ~300
prompt token ids (only the new tokens of the turn), a ~2 KB observation and its raw output.

    .venv/bin/python bench/store.py [--postgres URL] [--steps 150]     # prints JSON
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from sqlalchemy.engine import make_url

from forager.store import Run, Step, Store, Task

WRITERS = (1, 8)


def _step(episode_id: int, index: int, rng: random.Random) -> Step:
    ids = [rng.randrange(150_000) for _ in range(500)]
    observation = "".join(rng.choice("abcdefghij klmnop\n") for _ in range(2048))
    fields = {"prompt_delta_ids" if "prompt_delta_ids" in Step.model_fields else "prompt_token_ids": ids[:300]}
    return Step(
        episode_id=episode_id, index=index, model_text=f"<tool: bash>\nls -la {index}\n</tool>", tool="bash",
        arguments={"command": f"ls -la {index}"}, completion_token_ids=ids[300:], **fields,
        logprobs=[-rng.random() for _ in range(200)], prompt_tokens=300 * (index + 1), completion_tokens=200,
        observation=f"<output>\n{observation}\n</output>", raw_output=observation, output_bytes=len(observation),
        exit_code=0, llm_seconds=0.5, env_seconds=0.1,
    )


def _writer(url: str, run_id: int, steps: int, barrier, results) -> None:
    try:
        store = Store(url)
        episode = store.claim_episode(run_id)
        rng = random.Random(episode.id)
        rows = [_step(episode.id, index, rng) for index in range(steps)]  # built before the clock starts
        barrier.wait(timeout=300)
        started = time.perf_counter()
        for index, row in enumerate(rows):
            store.record_step(row, turns=index + 1, completion_tokens=200 * (index + 1))
        results.put((started, time.perf_counter()))
    except Exception as exc:  # noqa: BLE001 - the parent reports it instead of waiting forever
        barrier.abort()
        results.put(f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}")


def measure(url: str, writers: int, steps: int) -> dict:
    store = Store(url)
    repo = store.upsert_repo(f"/bench/{uuid.uuid4().hex}", "bench")
    task = store.save_task(Task(instance_id=f"bench__{uuid.uuid4().hex[:10]}", kind="mutate-fix", repo_id=repo.id))
    run, _ = store.get_or_create_run(Run(name=f"bench-{uuid.uuid4().hex[:8]}", policy="oracle"))
    store.plan_episodes(run.id, [task.id], attempts=writers)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(writers), context.Queue()
    procs = [context.Process(target=_writer, args=(url, run.id, steps, barrier, results)) for _ in range(writers)]
    for proc in procs:
        proc.start()
    spans = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    if errors := [span for span in spans if isinstance(span, str)]:
        raise SystemExit(f"bench/store.py: a writer on {url.split('@')[-1]} failed: {errors[0]}")
    wall = max(end for _s, end in spans) - min(start for start, _e in spans)
    total = writers * steps
    return {"writers": writers, "steps": total, "seconds": round(wall, 3), "steps_per_second": round(total / wall, 1),
            "ms_per_step_per_writer": round(1000 * wall / steps, 2)}


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new database on the server of `url`, dropped afterwards: the bench never touches existing data."""
    import psycopg

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"forager_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("FORAGER_TEST_POSTGRES"),
                        help="PostgreSQL URL of a role that may CREATEDB (the bench uses a fresh database)")
    parser.add_argument("--steps", type=int, default=150, help="steps per writer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        backends = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        if args.postgres:
            backends["postgresql"] = stack.enter_context(fresh_database(args.postgres))
        sample = _step(1, 0, random.Random(0))
        report = {
            "step_bytes": len(sample.model_dump_json()), "cpus": os.cpu_count(),
            "results": {name: [measure(url, n, args.steps) for n in WRITERS] for name, url in backends.items()},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
