"""Benchmark `forager collect`: episode start with the warm sandbox pool vs cold, and the collector's own
overhead around the model calls and the agent's commands.

1. warm vs cold: the oracle policy on the bundled example repo's mutate-fix tasks, run twice side by side
   in one process (alternating which goes first), once with `warm=0` (each episode starts its sandbox when it begins) and once with the
   default warm pool (sandboxes of the next episodes started while the current ones run). Reported: mean
   `Episode.start_seconds` (the time an episode waited for its sandbox), split into the first wave (the
   first `concurrency` episodes, which nothing could start ahead of) and the rest, and each run's wall time.
2. overhead: the tiny random CWM model served by vLLM on the CPU (same flags as the test fixture),
   `concurrency` episodes at a time, a structured-output regex forcing a cheap bash command every turn.
   Every episode's wall time is split into
     llm    the model calls (HTTP round trips, queueing in the server included)
     env    the agent's commands in the sandbox (`ToolResult.seconds`)
     start  waiting for the sandbox (0 when the warm pool had it ready)
     grade  grading a submitted patch (0 here: the episodes end at max_turns)
     other  everything else: the collector's overhead (store writes, sandbox removal, /tokenize requests
            of exact-token prompts, parsing, bookkeeping)
   and `other` is split further by timing the store's step writes, the sandbox removal and /tokenize.
   Shares are sums over episodes of each part divided by the sum of the episodes' wall times.

Prints JSON. Needs a Docker engine, the base image (`make base-image`) and the serve-cpu extra; run with
`.venv/bin/python bench/collect.py`. Images it builds carry the prefix `forager-bench-env` and are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import forager.collect.episode as episode_module
from forager.agent.loop import EpisodeLimits
from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder
from forager.collect import CollectConfig, Collector
from forager.config import Settings
from forager.example_repo import materialise
from forager.llm.client import ChatClient
from forager.llm.types import Sampling
from forager.models import RepoRef
from forager.sandbox.container import Sandbox
from forager.store import Store
from forager.tasks.synthesize import MutateFixSynthesizer

IMAGE_PREFIX = "forager-bench-env"
BASE_IMAGE = os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}")
# the test fixture's flags (tests/integration/vllm_server.py): one server for the cwm and openai formats
TOOL_FLAGS = ("--enable-auto-tool-choice", "--tool-call-parser", "hermes")
CHEAP_COMMAND = r"<tool: bash>\ntrue\n</tool>"


class Timings:
    """Seconds spent per episode in the store's step writes and in sandbox removal (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.record = defaultdict(float)
        self.close = defaultdict(float)
        self.tokenize = [0.0, 0]  # seconds, calls (all episodes: /tokenize of exact-token prompts)

    def add(self, table: dict, episode: int, seconds: float) -> None:
        with self.lock:
            table[episode] += seconds


def instrument(store: Store, timings: Timings) -> None:
    """Time `store.record_step` and `Sandbox.close` per episode without changing what they do."""
    record_step = store.record_step

    def timed_record(step, **fields):
        started = time.perf_counter()
        try:
            return record_step(step, **fields)
        finally:
            timings.add(timings.record, step.episode_id, time.perf_counter() - started)

    store.record_step = timed_record

    class TimedSandbox(Sandbox):
        def close(self) -> None:
            started = time.perf_counter()
            try:
                super().close()
            finally:
                episode = int(self.labels.get("forager.episode", 0))
                timings.add(timings.close, episode, time.perf_counter() - started)

    episode_module.Sandbox = TimedSandbox  # the episode runner builds its sandboxes through this name

    tokenize = ChatClient.tokenize

    def timed_tokenize(self, messages, **kwargs):
        started = time.perf_counter()
        try:
            return tokenize(self, messages, **kwargs)
        finally:
            with timings.lock:
                timings.tokenize[0] += time.perf_counter() - started
                timings.tokenize[1] += 1

    ChatClient.tokenize = timed_tokenize


def run_collect(settings, store, engine, config: CollectConfig, tasks, name: str):
    collector = Collector(settings, store, engine, config)
    try:
        run = collector.open_run(tasks, name=name)
        started = time.perf_counter()
        summary = collector.collect(run, tasks)
        wall = time.perf_counter() - started
    finally:
        collector.close()
    return run, summary, wall


def first_wave_split(episodes, concurrency: int) -> dict:
    """Mean start wait of the first `concurrency` episodes (nothing warm yet) and of the rest."""
    ordered = sorted(episodes, key=lambda e: e.id)
    first, later = ordered[:concurrency], ordered[concurrency:]
    return {
        "first_wave_mean_start_seconds": round(statistics.mean(e.start_seconds for e in first), 3),
        "later_mean_start_seconds": round(statistics.mean(e.start_seconds for e in later), 3) if later else None,
    }


def warm_vs_cold(settings, store, engine, tasks, episodes_per_task: int, concurrency: int, rounds: int) -> dict:
    """`rounds` pairs of runs, the order alternating (cold, warm), (warm, cold), ... to cancel order effects."""
    episodes: dict[str, list] = {"cold": [], "warm": []}
    walls: dict[str, list[float]] = {"cold": [], "warm": []}
    splits: dict[str, list[dict]] = {"cold": [], "warm": []}
    for round_ in range(rounds):
        order = [("cold", 0), ("warm", None)]
        for label, warm in order if round_ % 2 == 0 else order[::-1]:
            config = CollectConfig(policy="oracle", concurrency=concurrency, warm=warm,
                                   episodes_per_task=episodes_per_task)
            run, summary, wall = run_collect(settings, store, engine, config, tasks, f"bench-oracle-{label}-{round_}")
            run_episodes = store.episodes(run.id)
            assert summary.resolved == len(run_episodes), summary
            episodes[label] += run_episodes
            walls[label].append(wall)
            splits[label].append(first_wave_split(run_episodes, concurrency))
            print(json.dumps({"round": round_, label: round(wall, 2)}), file=sys.stderr)
    results = {}
    for label, warm in (("cold", 0), ("warm", concurrency)):
        starts = [e.start_seconds for e in episodes[label]]
        later = [s["later_mean_start_seconds"] for s in splits[label] if s["later_mean_start_seconds"] is not None]
        results[label] = {
            "warm": warm,
            "episodes": len(starts),
            "mean_start_seconds": round(statistics.mean(starts), 3),
            "median_start_seconds": round(statistics.median(starts), 3),
            "max_start_seconds": round(max(starts), 3),
            "first_wave_mean_start_seconds": round(statistics.mean(s["first_wave_mean_start_seconds"]
                                                                   for s in splits[label]), 3),
            "later_mean_start_seconds": round(statistics.mean(later), 3) if later else None,
            "mean_episode_wall_seconds": round(statistics.mean(e.wall_seconds for e in episodes[label]), 3),
            "mean_grade_seconds": round(statistics.mean(e.grade_seconds for e in episodes[label]), 3),
            "run_wall_seconds": [round(w, 2) for w in walls[label]],
            "mean_run_wall_seconds": round(statistics.mean(walls[label]), 2),
        }
    cold, warm = results["cold"], results["warm"]
    return {
        "policy": "oracle", "tasks": len(tasks), "episodes_per_task": episodes_per_task, "concurrency": concurrency,
        "rounds": rounds, **results,
        "cold_over_warm_mean_start": round(cold["mean_start_seconds"] / max(warm["mean_start_seconds"], 1e-3), 1),
        "cold_over_warm_run_wall": round(cold["mean_run_wall_seconds"] / warm["mean_run_wall_seconds"], 2),
    }


def overhead(settings, store, engine, tasks, timings: Timings, *, episodes_per_task: int, concurrency: int,
             turns: int, prompt_mode: str, tmp: Path) -> dict:
    from forager.dev.tiny_model import make_tiny_model
    from forager.serve import VllmServer

    model = make_tiny_model(tmp / "tiny-model")
    server = VllmServer(model, served_name="tiny-cwm", max_model_len=2048, enforce_eager=True, extra=TOOL_FLAGS,
                        log_path=tmp / "vllm.log", startup_timeout=300)
    server.start()
    try:
        config = CollectConfig(
            policy="llm", llm_url=server.url, model=server.model, concurrency=concurrency, prompt_mode=prompt_mode,
            episodes_per_task=episodes_per_task, limits=EpisodeLimits(max_turns=turns, time_limit=600),
            sampling=Sampling(temperature=1.0, max_tokens=32, seed=0,
                              extra_body={"structured_outputs": {"regex": CHEAP_COMMAND}}),
        )
        run, summary, wall = run_collect(settings, store, engine, config, tasks, "bench-tiny-overhead")
    finally:
        server.stop()
    episodes = store.episodes(run.id)
    assert all(e.exit_reason == "max_turns" for e in episodes), [e.error for e in episodes]
    parts = {name: sum(getattr(e, f"{name}_seconds") for e in episodes) for name in ("llm", "env", "start", "grade")}
    total = sum(e.wall_seconds for e in episodes)
    steps = sum(e.turns for e in episodes)
    parts["other"] = total - sum(parts.values())
    record = sum(timings.record[e.id] for e in episodes)
    close = sum(timings.close[e.id] for e in episodes)
    tokenize_seconds, tokenize_calls = timings.tokenize
    return {
        "policy": "llm (tiny random CWM, vLLM CPU)", "server_startup_seconds": round(server.startup_seconds or 0, 1),
        "episodes": len(episodes), "turns_per_episode": turns, "steps": steps, "concurrency": concurrency,
        "command": "true", "exact_tokens": store.run_by_name(run.name).config.get("exact_tokens"),
        "run_wall_seconds": round(wall, 2),
        "episode_wall_seconds_sum": round(total, 2),
        "seconds": {name: round(value, 2) for name, value in parts.items()},
        "shares": {name: round(value / total, 4) for name, value in parts.items()},
        "other_breakdown_seconds": {
            "store_record_step": round(record, 2),
            "sandbox_close": round(close, 2),
            "tokenize_requests": round(tokenize_seconds, 2),
            "rest": round(parts["other"] - record - close - tokenize_seconds, 2),
        },
        "per_step_ms": {
            "llm": round(parts["llm"] / steps * 1000, 1),
            "env": round(parts["env"] / steps * 1000, 1),
            "store_record_step": round(record / steps * 1000, 1),
            "tokenize_requests": round(tokenize_seconds / steps * 1000, 1),
            "other_excluding_close": round((parts["other"] - close) / steps * 1000, 1),
        },
        "tokenize_calls": tokenize_calls,
        "overhead_share": round(parts["other"] / total, 4),
        **first_wave_split(episodes, concurrency),
        "prefix_breaks": summary.prefix_breaks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3, help="mutate-fix tasks synthesized on the example repo")
    parser.add_argument("--episodes-per-task", type=int, default=3, help="oracle episodes per task (warm vs cold)")
    parser.add_argument("--concurrency", type=int, default=2, help="oracle concurrency (warm vs cold)")
    parser.add_argument("--rounds", type=int, default=2, help="cold/warm pairs, the order alternating")
    parser.add_argument("--llm-episodes-per-task", type=int, default=5)
    parser.add_argument("--llm-concurrency", type=int, default=8)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--prompt-mode", default="auto", choices=("auto", "tokens", "messages"),
                        help="auto: exact token prompts through /tokenize + /completions (vLLM, cwm format)")
    parser.add_argument("--skip-llm", action="store_true", help="only the warm vs cold part")
    args = parser.parse_args()

    engine = Engine()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="forager-bench-") as tmp:
        tmp = Path(tmp)
        settings = Settings(
            db=f"sqlite:///{tmp / 'bench.db'}", cache_dir=tmp / "cache", overrides_dir=tmp / "overrides",
            base_image=BASE_IMAGE, python_versions=["3.11"], image_prefix=IMAGE_PREFIX, test_timeout=300,
        )
        store = Store(settings.db)
        timings = Timings()
        instrument(store, timings)
        try:
            builder = ImageBuilder(settings, store, engine)
            repo = materialise(tmp / "example-repo")
            prepare = time.perf_counter()
            report = MutateFixSynthesizer(settings, store, engine, builder).synthesize(
                RepoRef(url=str(repo)), count=args.tasks, seed=0)
            tasks = [t for t, _r in store.tasks(valid=True)]
            assert tasks, report
            prepare = time.perf_counter() - prepare
            print(json.dumps({"prepared_tasks": len(tasks), "seconds": round(prepare, 1)}), file=sys.stderr)
            result = {"benchmark": "collect", "cpus": os.cpu_count(), "tasks_seconds": round(prepare, 1),
                      "warm_vs_cold": warm_vs_cold(settings, store, engine, tasks, args.episodes_per_task,
                                                   args.concurrency, args.rounds)}
            if not args.skip_llm:
                result["overhead"] = overhead(settings, store, engine, tasks, timings, tmp=tmp, turns=args.turns,
                                              episodes_per_task=args.llm_episodes_per_task, prompt_mode=args.prompt_mode,
                                              concurrency=args.llm_concurrency)
        finally:
            for image in engine.client.images.list():
                for tag in image.tags:
                    if tag.startswith(IMAGE_PREFIX + "/"):
                        engine.remove_image(tag)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
