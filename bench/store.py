"""Steps written per second to the store, SQLite vs PostgreSQL: three ways to write a step, side by side and
alternated in one run:

- `legacy`: the per-step transaction collect used before group commit (fence, ORM add, commit, refresh);
- `thread`: the group-commit writer in a thread of the collector (store/writer.py StepWriter,
  FORAGER_STEP_WRITER=thread);
- `process`: the group-commit writer in a child process (store/writer_process.py), what collect uses by default.

Each episode is a thread of one collector process, with its own claimed episode, writing as the collector
does: `legacy` commits each step in its own transaction before going on; `thread` and `process` hand the
step to the store's writer (Store.submit_step) and keep at most STEPS_IN_FLIGHT steps unacknowledged
(collect/episode.py StepRecorder). The episodes do nothing between two steps, so the store is the limit:
that is the measure. A writer is started before the clock (collect starts it before its first episode).
Reported: steps per second, and each step's write latency (call to return for legacy; submit to durable
acknowledgement for the others) p50/p99 in ms. Several collector processes on one store are measured too
(`--processes`, each with 32 episodes; the group-commit variants only).

At full speed every episode always has a step waiting, so the latency is mostly the queue (Little's law:
32 episodes x 2 steps / steps per second). `--paced` measures the latency at a set rate instead (the
issue's goals, 32 episodes): each step is due at a set time, and its latency runs from then to its
acknowledgement (a step held up behind a slow one counts that too); reported beside the write latency (submit
to acknowledgement), with the slowest 1% split into the episode thread waking late (the collector's own CPU),
its wait for a step in flight, and the store's part. On PostgreSQL a `floor` runs beside them in each round:
a plain loop on one driver connection writing the same rows at the same pace in group commits, no forager
write path (server_floor): the server's own tail, which no writer can go under.

Each configuration runs `--rounds` times, the variants' order rotated each round; `summary` gives each
variant's median over the rounds and the ratios between them. The load average before and after is
printed, and each run says how busy the machine's CPUs were on its clock (`machine_busy_pct`: the collector,
its writer, the server and anything else): on a busy machine read the ratios, not the absolute figures, and a
paced run's tail says little about the store where the machine had no room to spare. The PostgreSQL server's
settings that bear on a commit's latency are printed too (`backend_flush_after` above all: docs/scale-out.md).
Several rates for one database (`postgresql=1000/2000`) give the tail against the load.

A step carries what a real one does: ~200 completion token ids with their logprobs, ~300 prompt token
ids (only the turn's new tokens), a ~2 KB observation and its raw output.

    .venv/bin/python bench/store.py [--postgres URL] [--steps 100] [--episodes 1,8,32] [--processes 2] [--rounds 3]
        [--modes legacy,thread,process] [--paced sqlite=5000,postgresql=1000/2000] [--paced-steps 300]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from forager.collect.episode import STEPS_IN_FLIGHT
from forager.store import Run, Step, Store, Task

def _step(episode_id: int, index: int, rng: random.Random) -> Step:
    ids = [rng.randrange(150_000) for _ in range(500)]
    observation = "".join(rng.choice("abcdefghij klmnop\n") for _ in range(2048))
    return Step(
        episode_id=episode_id, index=index, model_text=f"<tool: bash>\nls -la {index}\n</tool>", tool="bash",
        arguments={"command": f"ls -la {index}"}, completion_token_ids=ids[300:], prompt_delta_ids=ids[:300],
        logprobs=[-rng.random() for _ in range(200)], prompt_tokens=300 * (index + 1), completion_tokens=200,
        observation=f"<output>\n{observation}\n</output>", raw_output=observation, output_bytes=len(observation),
        exit_code=0, llm_seconds=0.5, env_seconds=0.1,
        timings={"model": 0.5, "tokenize": 0.001, "command": 0.1, "store": 0.0, "other": 0.001, "total": 0.602},
    )


def legacy_record(store: Store, step: Step, **episode_fields) -> None:
    """The per-step transaction collect used before group commit: fence, ORM add, commit, refresh."""
    with store.session() as s:
        store._write_held(s, step.episode_id, **episode_fields)
        s.add(step)
        s.commit()
        s.refresh(step)


def _episode_thread(store: Store, run_id: int, steps: int, mode: str, barrier, latencies: list, errors: list,
                    rate: float | None = None, late: list | None = None) -> None:
    try:
        episode = store.claim_episode(run_id)
        rng = random.Random(episode.id)
        rows = [_step(episode.id, index, rng) for index in range(steps)]  # built before the clock starts
        barrier.wait(timeout=300)
        # paced (`rate`: this episode's steps per second): step i is due at a set time, whatever came before;
        # its latency runs from then to its acknowledgement, so a step held up behind a slow one counts that too
        started = time.perf_counter() + (rng.random() / rate if rate else 0.0)  # the episodes out of phase
        pending: deque = deque()
        for index, row in enumerate(rows):
            fields = {"turns": index + 1, "completion_tokens": 200 * (index + 1)}
            due = started + index / rate if rate else None
            if due is not None and (ahead := due - time.perf_counter()) > 0:
                time.sleep(ahead)
            woke = time.perf_counter()
            if mode == "legacy":
                began = time.perf_counter()
                legacy_record(store, row, **fields)
                latencies.append(time.perf_counter() - began)
                continue
            # thread, process: as StepRecorder, at most STEPS_IN_FLIGHT steps not yet durable
            while len(pending) >= STEPS_IN_FLIGHT:
                pending.popleft().result()
            submitted = time.perf_counter()
            future = store.submit_step(row, **fields)
            if due is not None:
                future.add_done_callback(_paced(late, due, woke, submitted))
            pending.append(future)
        while pending:
            pending.popleft().result()
    except Exception as exc:  # noqa: BLE001 - reported, not hung on
        errors.append(f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        barrier.abort()


def _paced(late: list, due: float, woke: float, submitted: float):
    """A paced step's callback: its latency from when it was due, and the three parts of it: how late its episode
    thread woke, how long it then waited for a step in flight, and the store's part (submit to acknowledgement)."""
    def done(_future) -> None:
        now = time.perf_counter()
        late.append((now - due, woke - due, submitted - woke, now - submitted))
    return done


def _collector(url: str, run_id: int, episodes: int, steps: int, mode: str, start=None, results=None,
               rate: float | None = None) -> dict:
    """One collector process: `episodes` threads writing `steps` steps each (paced: `rate` steps per second
    in all); its span and latencies."""
    store = Store(url)
    if mode != "legacy":
        store.step_writer_kind = mode
        # before the clock, and connected: a collector starts it once, at its first step
        store.step_writer.start(**({"wait": 60} if mode == "process" else {}))
    latencies: list[float] = []
    errors: list[str] = []
    late: list[float] = []
    barrier = threading.Barrier(episodes + 1, action=_freeze_heap)
    threads = [threading.Thread(target=_episode_thread, args=(store, run_id, steps, mode, barrier, latencies, errors,
                                                              rate / episodes if rate else None, late))
               for _ in range(episodes)]
    for thread in threads:
        thread.start()
    if start is not None:
        start.wait(timeout=300)  # every process ready: they start together
    child = getattr(store.step_writer, "pid", None) if mode == "process" else None
    try:
        barrier.wait(timeout=300)
    except threading.BrokenBarrierError:  # an episode failed before the clock: say why, not only that it broke
        for thread in threads:
            thread.join()
        store.close()
        result = {"errors": errors or ["the start barrier broke (an episode thread ended early)"]}
        if results is not None:
            results.put(result)
        return result
    started, cpu, child_cpu, machine = time.perf_counter(), time.process_time(), _cpu_seconds(child), _machine_cpu()
    for thread in threads:
        thread.join()
    ended, cpu, child_cpu = time.perf_counter(), time.process_time() - cpu, _cpu_seconds(child) - child_cpu
    busy = _busy_pct(machine, _machine_cpu())
    if mode != "legacy":
        latencies = list(store.step_writer.stats.latencies)
        batch = store.step_writer.stats.snapshot().get("mean_batch")
    else:
        batch = 1
    store.close()  # its connections too: a bench of many runs would use up PostgreSQL's connection slots
    gc.unfreeze()  # what _freeze_heap froze may be collected again (this run's stores, rows, futures)
    result = {"seconds": ended - started, "latencies": latencies, "late": late, "errors": errors, "mean_batch": batch,
              "cpu_seconds": cpu + child_cpu, "child_cpu_seconds": child_cpu, "machine_busy_pct": busy}
    if results is not None:
        results.put(result)
    return result


def server_floor(url: str, run_id: int, steps: int, rate: float) -> dict:
    """PostgreSQL's own floor at a paced load: what an ideal group-commit writer would see. One plain loop on
    one psycopg connection (the store's connection settings, no forager write path: no fence, no pipe to a
    writer process, no futures, no episode threads) writes the run's episodes' rows, paced as the episodes
    would offer them, each transaction taking every row due by then (the same INSERT, the same rows, the
    INSERT and the COMMIT in one pipeline). Each row's latency runs from its due time to its commit: in this
    loop a row is handed over at its due time, so it is both its write latency and its latency from due.

    Why: a step's acknowledgement waits for the server's durable commit, and the server's commits have a tail
    of their own (its WAL fsync: see docs/benchmarks.md). Measured in the same round, beside the writers, it
    says how much of their p99 is the server's and how much is forager's."""
    from sqlalchemy import select

    from forager.store import Episode
    from forager.store.writer import MAX_BATCH, _InsertPlan, step_values

    store = Store(url)
    with store.session() as s:
        episodes = list(s.execute(select(Episode.id).where(Episode.run_id == run_id)).scalars())
    per_episode = rate / len(episodes)
    plan = _InsertPlan(store.engine.dialect, plain=True)
    due, rows = [], []
    for episode_id in episodes:
        rng = random.Random(episode_id)
        phase = rng.random() / per_episode  # out of phase, as the episode threads are
        for index in range(steps):
            due.append(phase + index / per_episode)
            rows.append(plan.row(step_values(_step(episode_id, index, rng))))
    order = sorted(range(len(due)), key=due.__getitem__)
    latencies: list[float] = []
    with store.engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.commit()
        gc.collect()
        gc.freeze()  # as _freeze_heap: the rows built above are not scanned on the clock
        started, machine = time.perf_counter(), _machine_cpu()
        taken = 0
        while taken < len(order):
            if (ahead := started + due[order[taken]] - time.perf_counter()) > 0:
                time.sleep(ahead)
            now = time.perf_counter() - started
            batch = []
            while taken < len(order) and due[order[taken]] <= now and len(batch) < MAX_BATCH:
                batch.append(order[taken])
                taken += 1
            with driver.pipeline():  # the INSERT and the COMMIT in one round trip, as the writer process sends them
                plan.execute_driver(driver, [rows[i] for i in batch])
                driver.commit()
            committed = time.perf_counter() - started
            latencies.extend(committed - due[i] for i in batch)
        seconds = time.perf_counter() - started
        busy = _busy_pct(machine, _machine_cpu())
    store.close()
    gc.unfreeze()
    return {"mode": "floor", "processes": 1, "episodes": len(episodes), "steps": len(rows),
            "offered_steps_per_second": rate, "seconds": round(seconds, 3),
            "steps_per_second": round(len(rows) / seconds, 1), "write_ms_p50": _ms(latencies, 0.5),
            "write_ms_p99": _ms(latencies, 0.99), "due_ms_p50": _ms(latencies, 0.5), "due_ms_p99": _ms(latencies, 0.99),
            "machine_busy_pct": busy}


def _freeze_heap() -> None:
    """Every row built, before the clock: what is on the heap now is left out of the garbage collector's scans.
    Why: the rows (all of a run's steps at once, ~24 tracked objects each, which no collector ever holds) made a
    full collection take 100-200 ms here, a pause of every episode thread that is the bench's, not the store's."""
    gc.collect()
    gc.freeze()


def _cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of another process of ours so far: the writer process (Linux /proc)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[int, int] | None:
    """The whole machine's CPU time so far, busy and in all, in ticks of every CPU (Linux /proc/stat)."""
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def _busy_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """How busy the machine's CPUs were between two _machine_cpu readings, in %: everything that ran (the
    collector, its writer, the database server, anything else), so a run at a set pace says whether the machine
    had room to spare, which a tail latency depends on."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def _plan(url: str, episodes: int) -> int:
    with Store(url) as store:
        repo = store.upsert_repo(f"/bench/{uuid.uuid4().hex}", "bench")
        task = store.save_task(Task(instance_id=f"bench__{uuid.uuid4().hex[:10]}", kind="mutate-fix", repo_id=repo.id))
        run, _ = store.get_or_create_run(Run(name=f"bench-{uuid.uuid4().hex[:8]}", policy="oracle"))
        store.plan_episodes(run.id, [task.id], attempts=episodes)
        return run.id


def _ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def measure(url: str, mode: str, episodes: int, steps: int, processes: int = 1, rate: float | None = None) -> dict:
    run_id = _plan(url, episodes * processes)
    if mode == "floor":
        return server_floor(url, run_id, steps, rate)
    if processes == 1:
        results = [_collector(url, run_id, episodes, steps, mode, rate=rate)]
    else:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no inherited connections
        start, queue = context.Barrier(processes), context.Queue()
        procs = [context.Process(target=_collector, args=(url, run_id, episodes, steps, mode, start, queue))
                 for _ in range(processes)]
        for proc in procs:
            proc.start()
        results = [queue.get(timeout=900) for _ in procs]
        for proc in procs:
            proc.join()
    if errors := [error for result in results for error in result["errors"]]:
        raise SystemExit(f"bench/store.py: a writer on {url.split('@')[-1]} failed: {errors[0]}")
    wall = max(result["seconds"] for result in results)
    latencies = [value for result in results for value in result["latencies"]]
    total = processes * episodes * steps
    paced = {}
    if rate:
        split = sorted((value for result in results for value in result["late"]), reverse=True)
        due = [value[0] for value in split]
        worst = split[:max(1, len(split) // 100)]
        paced = {"offered_steps_per_second": rate, "due_ms_p50": _ms(due, 0.5), "due_ms_p99": _ms(due, 0.99),
                 # the slowest 1% of steps from their due time, on average: how late their episode thread woke
                 # (the collector's own CPU and GIL), how long it then waited for a step still in flight, and
                 # the store's part (submit to acknowledgement)
                 "worst_1pct_ms": {name: round(statistics.mean(value[i] for value in worst) * 1000, 2)
                                   for i, name in enumerate(("from_due", "thread_late", "in_flight_wait", "store"))}}
    return {"mode": mode, "processes": processes, "episodes": episodes * processes, "steps": total, **paced,
            "seconds": round(wall, 3), "steps_per_second": round(total / wall, 1),
            "write_ms_p50": _ms(latencies, 0.5), "write_ms_p99": _ms(latencies, 0.99),
            "mean_batch": round(statistics.mean(r["mean_batch"] or 1 for r in results), 1),
            # the collector's CPU and its writer process's, not the database server's, per step
            "cpu_us_per_step": round(sum(r["cpu_seconds"] for r in results) / total * 1e6, 1),
            "writer_process_cpu_us_per_step": round(sum(r["child_cpu_seconds"] for r in results) / total * 1e6, 1),
            "machine_busy_pct": _median([r["machine_busy_pct"] for r in results])}


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
        # why retried: an autovacuum worker in it (after the bench's inserts) is the server's, which FORCE may
        # not end for a role without pg_signal_backend; it finishes within seconds
        for attempt in range(30):
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                break
            except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse) as exc:
                if attempt == 29:
                    print(f"bench/store.py: could not drop {name}: {exc}", file=sys.stderr)
                time.sleep(1)


# the server settings a step's commit latency depends on (docs/scale-out.md): printed with the figures
SERVER_SETTINGS = ("server_version", "backend_flush_after", "shared_buffers", "wal_sync_method", "synchronous_commit",
                   "max_wal_size")


def server_settings(url: str) -> dict:
    """The PostgreSQL server's settings that bear on commit latency, as `SHOW` prints them."""
    import psycopg

    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SERVER_SETTINGS}


def _median(values: list) -> float | None:
    values = [value for value in values if value is not None]
    return round(statistics.median(values), 2) if values else None


def summarize(rows: list[dict], modes: list[str]) -> list[dict]:
    """Per configuration: each variant's median steps/s and p99 over the rounds, and the ratios."""
    out = []

    def key_of(row: dict) -> tuple:
        return row["processes"], row["episodes"], row.get("offered_steps_per_second")

    for key in dict.fromkeys(key_of(row) for row in rows):
        entry: dict = {"processes": key[0], "episodes": key[1]}
        if key[2]:
            entry["offered_steps_per_second"] = key[2]
        for mode in [*modes, "floor"]:
            mine = [row for row in rows if key_of(row) == key and row["mode"] == mode]
            if mine and key[2] and mode == "floor":
                entry[mode] = {"steps_per_second": _median([row["steps_per_second"] for row in mine]),
                               "write_ms_p50": _median([row["write_ms_p50"] for row in mine]),
                               "write_ms_p99": _median([row["write_ms_p99"] for row in mine]),
                               "rounds_write_ms_p99": [row["write_ms_p99"] for row in mine],
                               "rounds_machine_busy_pct": [row["machine_busy_pct"] for row in mine]}
            elif mine and key[2]:  # paced: what the rate was, and each step's latency from when it was due
                entry[mode] = {"steps_per_second": _median([row["steps_per_second"] for row in mine]),
                               "write_ms_p50": _median([row["write_ms_p50"] for row in mine]),
                               "write_ms_p99": _median([row["write_ms_p99"] for row in mine]),
                               "due_ms_p50": _median([row["due_ms_p50"] for row in mine]),
                               "due_ms_p99": _median([row["due_ms_p99"] for row in mine]),
                               "rounds_write_ms_p99": [row["write_ms_p99"] for row in mine],
                               "rounds_due_ms_p99": [row["due_ms_p99"] for row in mine],
                               "rounds_worst_1pct_ms": [row["worst_1pct_ms"] for row in mine],
                               "rounds_machine_busy_pct": [row["machine_busy_pct"] for row in mine]}
            elif mine:
                entry[mode] = {"steps_per_second": _median([row["steps_per_second"] for row in mine]),
                               "write_ms_p99": _median([row["write_ms_p99"] for row in mine]),
                               "write_ms_p50": _median([row["write_ms_p50"] for row in mine]),
                               "cpu_us_per_step": _median([row["cpu_us_per_step"] for row in mine]),
                               "rounds_steps_per_second": [row["steps_per_second"] for row in mine],
                               "rounds_write_ms_p99": [row["write_ms_p99"] for row in mine]}
        for new, old in (("process", "thread"), ("process", "legacy"), ("thread", "legacy")):
            if new in entry and old in entry and not key[2]:
                entry[f"{new}/{old}"] = round(entry[new]["steps_per_second"] / entry[old]["steps_per_second"], 2)
        out.append(entry)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("FORAGER_TEST_POSTGRES"),
                        help="PostgreSQL URL of a role that may CREATEDB (the bench uses a fresh database)")
    parser.add_argument("--steps", type=int, default=100, help="steps per episode")
    parser.add_argument("--episodes", default="1,8,32", help="episodes (threads) of one collector, comma-separated")
    parser.add_argument("--processes", type=int, default=2, help="collector processes of 32 episodes on one store")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration, variants alternated")
    parser.add_argument("--modes", default="legacy,thread,process", help="variants, comma-separated")
    parser.add_argument("--paced", default="sqlite=5000,postgresql=2000",
                        help="also 32 episodes offering this many steps per second in all, per database (issue 17's "
                             "goals): the latency at that rate, from each step's due time; several rates joined by / "
                             "(postgresql=1000/2000) give the latency against the load; empty: none")
    parser.add_argument("--paced-steps", type=int, default=300,
                        help="steps per episode of a paced run (300: about 2 s on SQLite, 5 s on PostgreSQL; a p99 "
                             "over a longer run weighs one stall of the server less)")
    args = parser.parse_args()
    # a rate of 0 is none (sqlite=0,postgresql=2000: PostgreSQL alone), as it was before rates could be several
    paced = {name: [float(rate) for rate in rates.split("/") if float(rate) > 0]
             for name, _, rates in (item.partition("=") for item in args.paced.split(",") if item)}
    counts = [int(n) for n in args.episodes.split(",")]
    modes = args.modes.split(",")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        backends = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        if args.postgres:
            backends["postgresql"] = stack.enter_context(fresh_database(args.postgres))
        sample = _step(1, 0, random.Random(0))
        results: dict[str, list] = {}
        for name, url in backends.items():
            rows = results.setdefault(name, [])
            for round_ in range(args.rounds):
                order = modes[round_ % len(modes):] + modes[:round_ % len(modes)]  # each variant first in turn
                for episodes in counts:
                    for mode in order:  # side by side, same store, same machine state
                        rows.append({"round": round_, **measure(url, mode, episodes, args.steps)})
                if args.processes > 1:
                    for mode in order:
                        if mode != "legacy":
                            rows.append({"round": round_, **measure(url, mode, 32, args.steps, processes=args.processes)})
                if paced.get(name):  # legacy cannot keep such a pace: it would only measure its backlog
                    # PostgreSQL: the server's floor beside the writers, each first in turn. Not on SQLite, where
                    # there is no server: a plain loop's commits there run SQLite's checkpoints inline, which the
                    # writers move to a thread of their own, so it would measure a worse writer, not a floor
                    kinds = [mode for mode in modes if mode != "legacy"] + (["floor"] if name == "postgresql" else [])
                    turn = round_ % len(kinds) if kinds else 0
                    for rate in paced[name]:
                        for mode in kinds[turn:] + kinds[:turn]:
                            rows.append({"round": round_, **measure(url, mode, 32, args.paced_steps, rate=rate)})
        report = {"step_bytes": len(sample.model_dump_json()), "cpus": os.cpu_count(),
                  "load_average_before": [round(x, 2) for x in load_before],
                  "load_average_after": [round(x, 2) for x in os.getloadavg()],
                  **({"postgresql_server": server_settings(backends["postgresql"])} if args.postgres else {}),
                  "summary": {name: summarize(rows, modes) for name, rows in results.items()}, "results": results}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
