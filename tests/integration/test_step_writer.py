"""The group-commit step writer on SQLite and on a real PostgreSQL server: many episodes' steps committed
together, each acknowledged only once it is in the database, and one episode's failure its own."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future

import pytest
from sqlalchemy import update

from forager.store import Episode, Run, Step, Store, Task
from forager.store.episodes import LeaseLost
from forager.store.writer import _Pending, step_values

EPISODES = 32
STEPS = 12


def _run_with_episodes(store: Store, episodes: int) -> tuple[int, list[Episode]]:
    repo = store.upsert_repo(f"/tests/{uuid.uuid4().hex}", "writer")
    task = store.save_task(Task(instance_id=f"writer__{uuid.uuid4().hex[:10]}", kind="mutate-fix", repo_id=repo.id))
    run, _ = store.get_or_create_run(Run(name=f"writer-{uuid.uuid4().hex[:8]}", policy="oracle"))
    store.plan_episodes(run.id, [task.id], attempts=episodes)
    return run.id, [store.claim_episode(run.id) for _ in range(episodes)]


def _step(episode_id: int, index: int) -> Step:
    return Step(episode_id=episode_id, index=index, model_text=f"<tool: bash>\nls {index}\n</tool>", tool="bash",
                arguments={"command": f"ls {index}"}, prompt_delta_ids=list(range(index, index + 50)),
                completion_token_ids=[7] * 20, logprobs=[-0.25] * 20, observation="x" * 500,
                timings={"model": 0.01, "store": 0.0}, prefix_ok=True)


def _many_episodes_commit_together_and_every_acknowledged_step_is_there(url: str) -> None:
    store = Store(url)
    run_id, episodes = _run_with_episodes(store, EPISODES)
    errors: list[BaseException] = []

    def episode_thread(episode: Episode) -> None:
        try:
            pending = None
            for index in range(STEPS):  # as the collector: the previous step durable before the next goes
                if pending is not None:
                    pending.result(timeout=60)
                pending = store.submit_step(_step(episode.id, index), turns=index + 1)
            pending.result(timeout=60)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=episode_thread, args=(episode,)) for episode in episodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    stats = store.step_writer.stats.snapshot()
    assert stats["steps"] == EPISODES * STEPS
    assert stats["batches"] < EPISODES * STEPS, "every step had a transaction of its own: nothing was grouped"

    fresh = Store(url)  # another connection sees exactly what was acknowledged
    for episode in episodes:
        steps = fresh.steps(episode.id)
        assert [s.index for s in steps] == list(range(STEPS))
        assert steps[-1].prompt_delta_ids == list(range(STEPS - 1, STEPS + 49))
        assert steps[-1].timings == {"model": 0.01, "store": 0.0} and steps[-1].prefix_ok is True
        assert fresh.episode(episode.id).turns == STEPS  # the running totals rode along


def _a_lost_lease_or_a_bad_row_fails_that_episode_alone(url: str) -> None:
    store = Store(url)
    _run_id, (kept, taken, broken) = _run_with_episodes(store, 3)
    for episode in (kept, taken, broken):
        store.record_step(_step(episode.id, 0), turns=1)
    with store.session() as s:  # another worker took `taken` over
        s.exec(update(Episode).where(Episode.id == taken.id).values(worker="elsewhere:1"))
        s.commit()
    # one batch holding all three (written here, as the writer thread would): a duplicate index, a step of the
    # lost episode, a good step
    writer = store.step_writer
    futures = {}
    batch = []
    for name, episode, index in (("broken", broken, 0), ("taken", taken, 1), ("kept", kept, 1)):
        futures[name] = Future()
        row = writer.plan.row(step_values(_step(episode.id, index)))
        batch.append(_Pending(episode.id, store._claimed[episode.id], row, {"turns": index + 1}, futures[name]))
    writer._write(batch)
    assert futures["kept"].result(timeout=60) is None
    with pytest.raises(LeaseLost, match="no longer held"):
        futures["taken"].result(timeout=60)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        futures["broken"].result(timeout=60)
    assert [s.index for s in store.steps(kept.id)] == [0, 1]
    assert [s.index for s in store.steps(taken.id)] == [0]
    assert [s.index for s in store.steps(broken.id)] == [0]
    store.record_step(_step(broken.id, 1), turns=2)  # the writer goes on after a refused batch
    assert [s.index for s in store.steps(broken.id)] == [0, 1]


def test_group_commit_on_sqlite(tmp_path):
    _many_episodes_commit_together_and_every_acknowledged_step_is_there(f"sqlite:///{tmp_path}/store.db")
    _a_lost_lease_or_a_bad_row_fails_that_episode_alone(f"sqlite:///{tmp_path}/store.db")


def test_group_commit_on_postgresql(pg_url):
    _many_episodes_commit_together_and_every_acknowledged_step_is_there(pg_url)
    _a_lost_lease_or_a_bad_row_fails_that_episode_alone(pg_url)
