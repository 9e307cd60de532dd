"""The collector's ceiling: steps per second on one node when the model answers at once, and where each step's
time goes.

A real OpenAI-compatible server (forager/dev/instant_model.py, its own process) answers every call at once
from a script of the commands an agent runs (reads, greps, a test run, edits, a submit), with token ids
and logprobs, so what is measured is forager: the agent loop, the sandboxes, the store, the grading.

1. ceiling: `forager collect`'s Collector on mutate-fix tasks of the bundled example repository and of one
   corpus repository (../shared/corpus), at each concurrency (default 8, 32, 64), each a new run:
   steps/s, episodes/hour, and the split of a step's time (model call, tokenize, command, store, other)
   and of an episode's (sandbox wait, grading), p50 and p99, from what the collector stores for every
   step (collect/steps.py) and the step writer's own latencies (submit to durable acknowledgement).
2. before/after (`--compare`, at the first concurrency on the example repository): the same run with the
   store written as before group commit (a transaction per step, waited on) and prompt tokens from the
   server's /tokenize, beside today's.
3. warm vs cold: the sandbox wait with the warm pool against none, with a model that takes `--warm-delay`
   seconds a call, so the pool can keep up: the mean wait of the episodes after the first wave (nothing
   can be started ahead of the first), and of all.

Prints JSON. Needs Docker, the base image (`make base-image`) and transformers (the serve-cpu extra);
`.venv/bin/python bench/ceiling.py [--concurrency 8,32,64] [--corpus itsdangerous] [--store URL]`.
Images it builds carry the prefix `forager-bench-ceiling` and are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

from forager.agent.loop import EpisodeLimits
from forager.collect import CollectConfig, Collector
from forager.config import Settings
from forager.dev.instant_model import InstantModelServer
from forager.dev.tiny_model import make_tiny_tokenizer
from forager.engine.docker_engine import Engine
from forager.example_repo import materialise
from forager.images.pipeline import ImageBuilder
from forager.llm.types import Sampling
from forager.models import RepoRef
from forager.store import Store
from forager.store.writer import WriteStats
from forager.tasks.synthesize import MutateFixSynthesizer
from store import legacy_record  # bench/store.py (this script's folder is first on sys.path)

IMAGE_PREFIX = "forager-bench-ceiling"
BASE_IMAGE = os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}")
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "mean_ms": round(statistics.mean(ordered) * 1000, 2)}


@contextmanager
def legacy_parts(store: Store):
    """The collector as it was before group commit and local token bookkeeping: each step committed in its
    own transaction and waited on, and prompts tokenized by the server."""
    import forager.collect.scheduler as scheduler

    class Committed(Future):
        """The per-step transaction record_step used to be, run when the episode waits for the step (before
        its next step): on the episode's path, and timed as its `store` part, as before group commit."""

        def __init__(self, step, fields):
            super().__init__()
            self.step, self.fields = step, fields

        def result(self, timeout=None):
            if not self.done():
                legacy_record(store, self.step, **self.fields)
                self.set_result(None)
            return super().result(timeout)

    def submit_step(step, **fields):
        return Committed(step, fields)

    store.submit_step = submit_step
    local = scheduler.local_chat_tokens
    scheduler.local_chat_tokens = lambda _client: (None, "the server's /tokenize (legacy)")
    try:
        yield
    finally:
        del store.submit_step
        scheduler.local_chat_tokens = local


def collect_once(settings: Settings, engine: Engine, tasks_by_repo, server: InstantModelServer, *, label: str,
                 concurrency: int, episodes: int, turns: int, warm: int | None = None, legacy: bool = False) -> dict:
    """One run in a fresh store holding copies of the tasks: its throughput and time split."""
    store = Store(settings.db)
    tasks = tasks_by_repo
    per_task = max(1, math.ceil(episodes / len(tasks)))
    config = CollectConfig(
        policy="llm", llm_url=server.url, model=server.model, concurrency=concurrency, warm=warm,
        episodes_per_task=per_task, limits=EpisodeLimits(max_turns=turns + 4, time_limit=1800),
        sampling=Sampling(temperature=0.0, max_tokens=512),
    )
    store.step_writer.stats = WriteStats()
    context = legacy_parts(store) if legacy else _nothing()
    with context:
        collector = Collector(settings, store, engine, config)
        try:
            run = collector.open_run(tasks, name=f"ceiling-{label}-{time.time_ns()}")
            started = time.perf_counter()
            summary = collector.collect(run, tasks)
            wall = time.perf_counter() - started
        finally:
            collector.close()
    done = [e for e in store.episodes(run.id) if e.status == "finished"]
    steps = sum(e.turns for e in done)
    starts = sorted(done, key=lambda e: e.started_at)  # the order they began in: the first wave first
    return {
        "label": label, "concurrency": concurrency, "episodes": len(done), "steps": steps, "legacy": legacy,
        "warm": concurrency if warm is None else warm,
        "exit_reasons": summary.exit_reasons, "resolved": summary.resolved,
        "token_bookkeeping": store.run_by_name(run.name).config.get("token_bookkeeping"),
        "token_sources": summary.token_sources,
        "run_wall_seconds": round(wall, 2),
        "steps_per_second": round(steps / wall, 2), "episodes_per_hour": round(len(done) / wall * 3600, 1),
        "time_split": {name: part.model_dump() for name, part in summary.time_split.items()},
        "collector_share": summary.collector_share,
        "store_write": store.step_writer.stats.snapshot() if not legacy else None,
        "sandbox_wait": {"all": _quantiles([e.start_seconds for e in starts]),
                         "after_first_wave": _quantiles([e.start_seconds for e in starts[concurrency:]])},
        "grading": _quantiles([e.grade_seconds for e in done if e.grade_seconds]),
    }


@contextmanager
def _nothing():
    yield


def corpus_clone(name: str, into: Path) -> Path:
    bundle = CORPUS / f"{name}.bundle"
    if not bundle.exists():
        raise SystemExit(f"bench/ceiling.py: no corpus bundle {bundle}; pick one of "
                         f"{sorted(p.stem for p in CORPUS.glob('*.bundle'))} with --corpus")
    subprocess.run(["git", "clone", "-q", str(bundle), str(into)], check=True)
    return into


def prepare_tasks(settings: Settings, engine: Engine, repo: Path, count: int) -> list:
    store = Store(settings.db)
    builder = ImageBuilder(settings, store, engine)
    report = MutateFixSynthesizer(settings, store, engine, builder).synthesize(RepoRef(url=str(repo)), count=count, seed=0)
    tasks = [task for task, found in store.tasks(valid=True) if found.url == str(repo) or found.name == repo.name]
    if not tasks:
        raise SystemExit(f"bench/ceiling.py: no valid task on {repo}: {report}")
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="8,32,64")
    parser.add_argument("--episodes", type=float, default=1.5, help="episodes per run, in multiples of the concurrency")
    parser.add_argument("--tasks", type=int, default=4, help="mutate-fix tasks per repository")
    parser.add_argument("--turns", type=int, default=12, help="model calls in the script, the submit last")
    parser.add_argument("--corpus", default="itsdangerous", help="corpus repository (../shared/corpus/NAME.bundle)")
    parser.add_argument("--store", default=None, help="store URL (default: SQLite in a temporary directory)")
    parser.add_argument("--compare", action="store_true", help="also run the collector as it was (before/after)")
    parser.add_argument("--warm-delay", type=float, default=0.5, help="seconds per model call in warm vs cold")
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--parts", default="ceiling,compare,warm", help="which parts to run (comma-separated)")
    args = parser.parse_args()
    levels = [int(n) for n in args.concurrency.split(",")]
    parts = set(args.parts.split(","))
    if args.compare:
        parts.add("compare")
    engine = Engine()
    started = time.perf_counter()
    result: dict = {"benchmark": "ceiling", "cpus": os.cpu_count(), "machine": platform.platform(),
                    "python": platform.python_version(), "turns": args.turns, "runs": []}
    with tempfile.TemporaryDirectory(prefix="forager-ceiling-") as tmp:
        tmp = Path(tmp)
        settings = Settings(
            db=args.store or f"sqlite:///{tmp / 'ceiling.db'}", cache_dir=tmp / "cache", overrides_dir=tmp / "overrides",
            base_image=BASE_IMAGE, python_versions=["3.11"], image_prefix=IMAGE_PREFIX, test_timeout=300,
        )
        result["store"] = settings.db.split("@")[-1]
        tokenizer = make_tiny_tokenizer(tmp / "tokenizer")
        try:
            repos = {"example": materialise(tmp / "example-repo")}
            if not args.skip_corpus and "ceiling" in parts:
                repos[args.corpus] = corpus_clone(args.corpus, tmp / args.corpus)
            tasks = {}
            for name, path in repos.items():
                prepared = time.perf_counter()
                tasks[name] = prepare_tasks(settings, engine, path, args.tasks)
                print(json.dumps({"prepared": name, "tasks": len(tasks[name]),
                                  "seconds": round(time.perf_counter() - prepared, 1)}), file=sys.stderr)
            with InstantModelServer(tokenizer, turns=args.turns, subprocess=True) as server:
                for name, repo_tasks in tasks.items() if "ceiling" in parts else ():
                    for level in levels:
                        episodes = max(level, int(level * args.episodes))
                        run = collect_once(settings, engine, repo_tasks, server, label=f"{name}-c{level}",
                                           concurrency=level, episodes=episodes, turns=args.turns)
                        run["repo"] = name
                        result["runs"].append(run)
                        print(json.dumps({k: run[k] for k in ("label", "steps_per_second", "collector_share")}),
                              file=sys.stderr)
                if "compare" in parts:
                    level = levels[0]
                    pair = []
                    for legacy in (True, False, True, False):  # alternating: neither gets the warmer machine
                        pair.append(collect_once(settings, engine, tasks["example"], server, legacy=legacy,
                                                 label=f"compare-{'before' if legacy else 'after'}", concurrency=level,
                                                 episodes=2 * level, turns=args.turns))
                    before = [r for r in pair if r["legacy"]]
                    after = [r for r in pair if not r["legacy"]]
                    result["compare"] = {
                        "runs": pair,
                        "steps_per_second_after_over_before": round(
                            statistics.mean(r["steps_per_second"] for r in after)
                            / statistics.mean(r["steps_per_second"] for r in before), 2),
                        "collector_share_before": [r["collector_share"] for r in before],
                        "collector_share_after": [r["collector_share"] for r in after],
                    }
            with InstantModelServer(tokenizer, turns=args.turns, delay=args.warm_delay, subprocess=True) as slow:
                if "warm" not in parts:
                    slow = None
                level = levels[0]
                warm_cold = {}
                for label, warm in () if slow is None else (("cold", 0), ("warm", None), ("cold", 0), ("warm", None)):
                    run = collect_once(settings, engine, tasks["example"], slow, label=f"{label}-start",
                                       concurrency=level, episodes=3 * level, turns=args.turns, warm=warm)
                    warm_cold.setdefault(label, []).append(run)
                if warm_cold:
                    result["warm_vs_cold"] = warm_vs_cold(warm_cold, args.warm_delay, level)
        finally:
            remove_bench_images(engine)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


def warm_vs_cold(warm_cold: dict, delay: float, level: int) -> dict:
    mean = {label: statistics.mean(r["sandbox_wait"]["after_first_wave"]["mean_ms"] for r in runs)
            for label, runs in warm_cold.items()}
    overall = {label: statistics.mean(r["sandbox_wait"]["all"]["mean_ms"] for r in runs)
               for label, runs in warm_cold.items()}
    return {
        "model_delay_seconds": delay, "concurrency": level,
        "runs": {label: [r["sandbox_wait"] for r in runs] for label, runs in warm_cold.items()},
        "mean_wait_ms_after_first_wave": {label: round(value, 2) for label, value in mean.items()},
        "mean_wait_ms_all": {label: round(value, 2) for label, value in overall.items()},
        # the store keeps start_seconds to the millisecond: a warm wait under it reads 0, so the ratio is taken
        # against 1 ms and is a lower bound then
        "cold_over_warm_after_first_wave_at_least": round(mean["cold"] / max(mean["warm"], 1.0), 1),
        "cold_over_warm_all": round(overall["cold"] / max(overall["warm"], 1.0), 2),
    }


def remove_bench_images(engine: Engine) -> None:
    """The task images this bench built, and the start-state images made from them."""
    for image in engine.client.images.list():
        base = (image.labels or {}).get("forager.base", "")
        for tag in image.tags:
            if tag.startswith(IMAGE_PREFIX + "/") or base.startswith(IMAGE_PREFIX + "/"):
                engine.remove_image(tag)


if __name__ == "__main__":
    main()
