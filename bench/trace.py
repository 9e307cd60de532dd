"""What tracing costs and gives: the same tests run plainly and under forager's tracer, side by side in one run.

For the example repository and corpus repositories (default itsdangerous and markupsafe at their newest
commit; ../shared/corpus), the image is built (or reused), `--limit` of its baseline's passing tests are
sampled (seed 0), and then, in turn for each repository: the tests run once without the tracer and once
under it (one container each, the same test ids). Per repository it prints JSON with:

- `slowdown`: the tests' own time traced over untraced (sum of JUnit test times: what the tracer adds to the
  tests, container start-up left out), and `wall_slowdown` (whole container runs, start-up included);
- `events_per_second`: raw tracer events over the traced tests' time;
- `traces_per_test`, `dropped` (function-level traces dropped, by reason), `line_events` per trace;
- `bytes_per_event_stored` (the CWM text plus the structured events, as the store holds them) and
  `bytes_per_event_exported` (JSONL and Parquet from `forager export --format trace`).

    .venv/bin/python bench/trace.py [--repos example,itsdangerous,markupsafe] [--limit 30] [--depth 1]
        [--workdir DIR]

Needs a Docker engine and the base image (`make base-image`); images are tagged `forager-bench-trace/NAME:HASH`
and left in Docker. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from forager.config import Settings
from forager.engine.docker_engine import Engine
from forager.example_repo import materialise
from forager.export.traces import TraceExportRequest, export_traces
from forager.images.pipeline import ImageBuilder
from forager.models import RepoRef
from forager.store import Store
from forager.tasks.evaluate import run_graded
from forager.traces.run import TraceOptions, Tracer, passing_tests, select_tests, suite_subject

from corpus import DEFAULT_CORPUS, clone_bundle  # bench/corpus.py, beside this script

IMAGE_PREFIX = "forager-bench-trace"


def log(message: str) -> None:
    print(f"[trace bench] {message}", file=sys.stderr, flush=True)


def source_of(name: str, workdir: Path, corpus: Path) -> Path:
    if name == "example":
        return materialise(workdir / "example")
    return clone_bundle(corpus / f"{name}.bundle", workdir / "clones" / name)


def measure(name: str, settings: Settings, store: Store, engine: Engine, limit: int, depth: int,
            workdir: Path, corpus: Path) -> dict:
    built = ImageBuilder(settings, store, engine).build(RepoRef(url=str(source_of(name, workdir, corpus))))
    if built.status != "ready":
        return {"repo": name, "status": built.status, "message": built.message[:300]}
    image = store.image(built.image_id)
    tests = select_tests(passing_tests(store, image.id), selector=None, limit=limit, seed=0)
    subject = suite_subject(image, settings, tests)
    log(f"{name}: {len(tests)} tests, untraced")
    started = time.monotonic()
    plain = run_graded(engine, subject.spec, timeout=settings.test_timeout)
    plain_wall = time.monotonic() - started
    log(f"{name}: traced")
    options = TraceOptions(depth=depth, limit=limit, runs=1, chunk=len(tests))
    report = Tracer(settings, store, engine).trace(subject, options)
    traced_rows = store.traced_tests(image_id=image.id)
    traces = [t for t, *_ in store.iter_traces(image_id=image.id)]
    traced_time = sum(r.seconds for r in traced_rows)  # JUnit times of the traced run, as for the plain one
    plain_time = sum(o.duration for o in plain.outcomes if o.test_id in set(tests))
    events = sum(t.events_count for t in traces)
    stored = sum(len(t.text.encode()) + len(json.dumps(t.events).encode()) for t in traces)
    exported = {}
    for suffix in ("jsonl", "parquet"):
        out = workdir / f"{name}-traces.{suffix}"
        stats = export_traces(store, TraceExportRequest(out=out, image_id=image.id, include_nondeterministic=True))
        exported[suffix] = stats.bytes_per_event
    return {
        "repo": name, "status": "ready", "commit": image.commit, "python": image.python_version, "tests": len(tests),
        "traced": report.traced, "tests_not_traced": report.tests_dropped,
        "plain_test_seconds": round(plain_time, 3), "traced_test_seconds": round(traced_time, 3),
        "slowdown": round(traced_time / plain_time, 1) if plain_time else None,
        "plain_wall_seconds": round(plain_wall, 2), "traced_wall_seconds": report.seconds,
        "wall_slowdown": round(report.seconds / plain_wall, 2) if plain_wall else None,
        "raw_events": report.raw_events, "events_per_second": round(report.raw_events / traced_time) if traced_time else None,
        "traces": report.traces, "traces_per_test": round(report.traces / max(report.traced, 1), 1),
        "dropped": report.dropped,
        "line_events_per_trace": round(sum(t.line_events for t in traces) / len(traces), 1) if traces else 0,
        "bytes_per_event_stored": round(stored / events, 1) if events else None,
        "bytes_per_event_exported": exported,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", default="example,itsdangerous,markupsafe")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="forager-bench-trace-"))
    settings = Settings(db=f"sqlite:///{workdir / 'trace.db'}", cache_dir=workdir / "cache", image_prefix=IMAGE_PREFIX)
    store, engine = Store(settings.db), Engine(timeout=settings.docker_timeout)
    rows = [measure(name.strip(), settings, store, engine, args.limit, args.depth, workdir, args.corpus)
            for name in args.repos.split(",") if name.strip()]
    ready = [r for r in rows if r.get("slowdown")]
    print(json.dumps({
        "limit": args.limit, "depth": args.depth, "repos": rows,
        "max_slowdown": max((r["slowdown"] for r in ready), default=None),
        "goal_slowdown_at_most_20x": all(r["slowdown"] <= 20 for r in ready) if ready else None,
    }, indent=2))


if __name__ == "__main__":
    main()
