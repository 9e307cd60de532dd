"""Many `forager collect` workers on one PostgreSQL store: each episode claimed and finished exactly once, a
killed worker's episodes taken up again once its lease ran out, leases and fences through the Store API.

Uses the real PostgreSQL server `make test` starts (FORAGER_TEST_POSTGRES); this module works in a
database of its own, created here and dropped afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.example_repo import materialise
from forager.models import RepoRef
from forager.store import Run, Step, Store, Task
from forager.store.episodes import LeaseLost, worker_alive
from forager.store.tables import utcnow
from forager.tasks.synthesize import MutateFixSynthesizer

from .conftest import BASE_IMAGE, FORAGER, TEST_IMAGE_PREFIX, cli_env, wait_for_steps


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, engine, pg_url):
    """The example repository's image and two mutate-fix tasks in the PostgreSQL store, made once: workers
    started on the same options then see the same tasks, hence the same run."""
    root = tmp_path_factory.mktemp("workers")
    settings = Settings(db=pg_url, cache_dir=root / "cache", base_image=BASE_IMAGE, python_versions=["3.11"],
                        test_timeout=300, overrides_dir=root / "overrides", image_prefix=TEST_IMAGE_PREFIX)
    store = Store(pg_url)
    repo = materialise(root / "ledger")
    ref = RepoRef(url=str(repo))
    report = MutateFixSynthesizer(settings, store, engine, ImageBuilder(settings, store, engine)).synthesize(
        ref, count=2, seed=0)
    assert report.valid == 2, report
    return settings, store, repo


def _start(settings: Settings, args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen([FORAGER, "collect", *args], env=cli_env(settings, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _assert_trajectories_whole(store: Store, run_id: int) -> list:
    episodes = store.episodes(run_id)
    assert len({(e.task_id, e.attempt) for e in episodes}) == len(episodes)
    for episode in episodes:
        steps = store.steps(episode.id)
        assert episode.status == "finished" and episode.lease_expires_at is None, episode
        assert [s.index for s in steps] == list(range(len(steps))) and steps and steps[-1].done
        assert episode.turns == len(steps)
    return episodes


def test_three_workers_share_one_run_each_episode_once(prepared):
    settings, store, repo = prepared
    args = ["--repo", str(repo), "--tasks", "2", "--episodes-per-task", "4", "--policy", "oracle",
            "--concurrency", "1", "--warm", "0", "--json"]
    workers = [_start(settings, args) for _ in range(3)]
    outputs = [proc.communicate(timeout=600) for proc in workers]
    for proc, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert proc.returncode == 0, stderr[-2000:]
    [run_name] = {json.loads(stdout)["run"] for stdout, _ in outputs}  # one run, planned by three workers
    run = store.run_by_name(run_name)
    episodes = _assert_trajectories_whole(store, run.id)
    assert len(episodes) == 8 and all(e.resolved and e.restarts == 0 for e in episodes)
    by_worker = {e.worker for e in episodes}
    assert by_worker == {f"{socket.gethostname()}:{proc.pid}" for proc in workers}, by_worker  # each did some
    assert store.run_by_name(run_name).finished_at is not None


def test_killed_worker_loses_its_episodes_when_its_lease_runs_out(prepared, vllm_server):
    settings, store, repo = prepared
    args = ["--repo", str(repo), "--tasks", "2", "--episodes-per-task", "2", "--concurrency", "2", "--warm", "0",
            "--llm", vllm_server.url, "--model", vllm_server.model, "--max-turns", "4", "--max-tokens", "32",
            "--regex", r"<tool: bash>\nsleep 1\n</tool>", "--name", "workers-killed"]
    lease = {"FORAGER_LEASE_SECONDS": "4"}
    # other "hosts": the same-host dead-pid shortcut does not apply, only the lease
    first = _start(settings, args, FORAGER_WORKER="host-a:1", **lease)
    run = wait_for_steps(store, "workers-killed", 2, alive=lambda: first.poll() is None)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert run is not None, first.stderr.read()[-2000:]
    interrupted = {e.id: e for e in store.episodes(run.id) if e.status == "running"}
    assert interrupted and all(e.worker == "host-a:1" for e in interrupted.values())

    # within its lease a worker on another host counts as alive though it is dead; after it, it does not
    assert all(worker_alive(e.worker, e.lease_expires_at, utcnow()) for e in interrupted.values())
    latest = max(e.lease_expires_at for e in interrupted.values())
    time.sleep(max(0.0, (latest.replace(tzinfo=utcnow().tzinfo) - utcnow()).total_seconds()) + 0.5)
    second = _start(settings, args, FORAGER_WORKER="host-b:1", **lease)
    _stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr[-2000:]
    episodes = _assert_trajectories_whole(store, run.id)
    assert len(episodes) == 4 and all(e.exit_reason == "max_turns" and e.turns == 4 for e in episodes)
    for episode in episodes:
        restarted = episode.id in interrupted
        assert episode.restarts == int(restarted) and (episode.worker == "host-b:1" or not restarted)


def _tasks(store: Store, count: int) -> list[int]:
    repo = store.upsert_repo(f"/src/{uuid.uuid4().hex}", "demo")
    return [store.save_task(Task(instance_id=f"demo__w-{uuid.uuid4().hex[:8]}", kind="mutate-fix", repo_id=repo.id,
                                 valid=True)).id for _ in range(count)]


def _store(url: str, worker: str, lease: float = 600) -> Store:
    store = Store(url)
    store.worker, store.lease_seconds = worker, lease
    return store


def test_concurrent_planning_and_claims_hand_out_each_episode_once(pg_url):
    stores = [_store(pg_url, f"host-{i}:1") for i in range(6)]
    task_ids = _tasks(stores[0], 5)
    name = f"race-{uuid.uuid4().hex[:8]}"
    runs, added, claimed = [], [], []
    barrier = threading.Barrier(len(stores))

    def worker(store: Store) -> None:
        barrier.wait()
        run, _ = store.get_or_create_run(Run(name=name, policy="oracle"))
        runs.append(run.id)
        added.append(store.plan_episodes(run.id, task_ids, attempts=4))
        while (episode := store.claim_episode(run.id, task_ids)) is not None:
            claimed.append((store.worker, episode.id))

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(set(runs)) == 1 and sum(added) == 20
    ids = [episode_id for _w, episode_id in claimed]
    assert len(ids) == 20 == len(set(ids))
    assert {e.worker for e in stores[0].episodes(runs[0])} == {w for w, _id in claimed}


def test_lease_extends_on_writes_expires_without_them_and_fences_the_old_holder(pg_url):
    a, b = _store(pg_url, "host-a:1", lease=1.5), _store(pg_url, "host-b:1", lease=1.5)
    task_ids = _tasks(a, 1)
    run, _ = a.get_or_create_run(Run(name=f"lease-{uuid.uuid4().hex[:8]}", policy="oracle"))
    a.plan_episodes(run.id, task_ids, attempts=1)
    episode = a.claim_episode(run.id)
    assert episode.worker == "host-a:1" and b.claim_episode(run.id) is None

    for index in range(4):  # writes every 0.5 s keep a 1.5 s lease alive for 2 s
        a.record_step(Step(episode_id=episode.id, index=index, model_text="x"), turns=index + 1)
        assert b.claim_episode(run.id) is None
        time.sleep(0.5)
    assert 0 < b.lease_wait(run.id) <= 1.5

    time.sleep(1.7)  # no writes: the lease runs out and b restarts the episode from scratch
    assert b.lease_wait(run.id) == 0.0
    taken = b.claim_episode(run.id)
    assert taken.id == episode.id and taken.worker == "host-b:1" and taken.restarts == 1 and taken.turns == 0
    assert b.steps(episode.id) == [] and b.claim_episode(run.id) is None

    # the old holder was only slow: it can neither add a step, nor update, nor finish the episode now
    with pytest.raises(LeaseLost, match="no longer held by host-a:1"):
        a.record_step(Step(episode_id=episode.id, index=4, model_text="late"), turns=5)
    with pytest.raises(LeaseLost):
        a.update_episode(episode.id, container="late")
    with pytest.raises(LeaseLost):
        a.finish_episode(episode.id, last_step_reward=1.0, exit_reason="submitted")
    b.record_step(Step(episode_id=episode.id, index=0, model_text="fresh"), turns=1)
    done = b.finish_episode(episode.id, last_step_reward=0.0, exit_reason="max_turns")
    assert done.status == "finished" and done.worker == "host-b:1" and done.container is None
    assert [s.model_text for s in b.steps(episode.id)] == ["fresh"]
    assert a.lease_wait(run.id) is None and a.claim_episode(run.id) is None
