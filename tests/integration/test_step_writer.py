"""The group-commit step writer on SQLite and on a real PostgreSQL server: many episodes' steps committed
together, each acknowledged only once it is in the database, and one episode's failure its own; both the
writer process Store.submit_step uses (store/writer_process.py) and the writer thread (store/writer.py).
The writer process's life: started by the first step, stopped by close(), gone with its parent (SIGKILL
included), and its death a clear failure of the steps it had not acknowledged, not a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path

import pytest
from sqlalchemy import update

from forager.store import Episode, Run, Step, Store, Task
from forager.store.episodes import LeaseLost
from forager.store.writer import StepWriter, _Pending, step_values
from forager.store.writer_process import ProcessStepWriter, StepWriterDied

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


def _store(url: str, kind: str) -> Store:
    store = Store(url)
    store.step_writer_kind = kind
    assert isinstance(store.step_writer, ProcessStepWriter if kind == "process" else StepWriter)
    return store


def _many_episodes_commit_together_and_every_acknowledged_step_is_there(url: str, kind: str) -> None:
    store = _store(url, kind)
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


def _a_lost_lease_or_a_bad_row_fails_that_episode_alone(url: str, kind: str) -> None:
    store = _store(url, kind)
    _run_id, (kept, taken, broken) = _run_with_episodes(store, 3)
    for episode in (kept, taken, broken):
        store.record_step(_step(episode.id, 0), turns=1)
    with store.session() as s:  # another worker took `taken` over
        s.exec(update(Episode).where(Episode.id == taken.id).values(worker="elsewhere:1"))
        s.commit()
    # one batch holding all three: a duplicate index, a step of the lost episode, a good step
    batch = (("broken", broken, 0), ("taken", taken, 1), ("kept", kept, 1))
    writer = store.step_writer
    futures = {}
    if kind == "thread":  # written here, as the writer thread would
        pending = []
        for name, episode, index in batch:
            futures[name] = Future()
            row = writer.plan.row(step_values(_step(episode.id, index)))
            pending.append(_Pending(episode.id, store._claimed[episode.id], row, {"turns": index + 1}, futures[name]))
        writer._write(pending)
    else:  # the writer process stopped while they are queued: it reads them together, as one batch
        os.kill(writer.pid, signal.SIGSTOP)
        try:
            for name, episode, index in batch:
                futures[name] = store.submit_step(_step(episode.id, index), turns=index + 1)
        finally:
            os.kill(writer.pid, signal.SIGCONT)
    assert futures["kept"].result(timeout=60) is None
    with pytest.raises(LeaseLost, match="no longer held"):
        futures["taken"].result(timeout=60)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        futures["broken"].result(timeout=60)
    assert [s.index for s in store.steps(kept.id)] == [0, 1]
    assert [s.index for s in store.steps(taken.id)] == [0]
    assert [s.index for s in store.steps(broken.id)] == [0]
    assert store.episode(kept.id).turns == 2 and store.episode(taken.id).turns == 1
    store.record_step(_step(broken.id, 1), turns=2)  # the writer goes on after a refused batch
    assert [s.index for s in store.steps(broken.id)] == [0, 1]


def _both_writers(url: str) -> None:
    for kind in ("process", "thread"):
        _many_episodes_commit_together_and_every_acknowledged_step_is_there(url, kind)
        _a_lost_lease_or_a_bad_row_fails_that_episode_alone(url, kind)


def test_group_commit_on_sqlite(tmp_path):
    _both_writers(f"sqlite:///{tmp_path}/store.db")


def test_group_commit_on_postgresql(pg_url):
    _both_writers(pg_url)


def _exited(pid: int, timeout: float = 30) -> bool:
    """Whether the process is gone (or a zombie nobody reaped) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_the_writer_process_starts_on_the_first_step_and_close_flushes_and_stops_it(tmp_path):
    store = _store(f"sqlite:///{tmp_path}/store.db", "process")
    _run_id, episodes = _run_with_episodes(store, 2)
    assert store.step_writer.pid is None  # a store that claims but writes no step starts no process
    first = store.submit_step(_step(episodes[0].id, 0), turns=1)
    pid = store.step_writer.pid
    assert pid is not None and not _exited(pid, timeout=0.2)
    futures = [first] + [store.submit_step(_step(episode.id, index), turns=index + 1)
                         for index in (1, 2, 3) for episode in episodes[:1]]
    futures.append(store.submit_step(_step(episodes[1].id, 0), turns=1))
    store.step_writer.close()  # nothing waited on: close writes what is queued, then stops the process
    assert all(future.done() and future.result() is None for future in futures)
    assert _exited(pid) and store.step_writer.pid is None
    assert [s.index for s in store.steps(episodes[0].id)] == [0, 1, 2, 3]
    assert store.episode(episodes[0].id).turns == 4
    store.record_step(_step(episodes[1].id, 1), turns=2)  # a later step starts another
    assert store.step_writer.pid not in (None, pid)
    assert [s.index for s in store.steps(episodes[1].id)] == [0, 1]
    store.step_writer.close()


def _a_killed_writer_process_fails_its_pending_steps_and_the_next_starts_another(url: str) -> None:
    store = _store(url, "process")
    _run_id, (episode,) = _run_with_episodes(store, 1)
    store.record_step(_step(episode.id, 0), turns=1)
    pid = store.step_writer.pid
    os.kill(pid, signal.SIGSTOP)  # it reads nothing more: these three stay unacknowledged
    pending = [store.submit_step(_step(episode.id, index), turns=index + 1) for index in (1, 2, 3)]
    os.kill(pid, signal.SIGKILL)
    for future in pending:
        with pytest.raises(StepWriterDied) as died:
            future.result(timeout=60)
        message = str(died.value)
        assert "\n" not in message and f"step writer process {pid} was killed by SIGKILL" in message, message
        assert "3 steps unacknowledged" in message, message
    assert _exited(pid)
    store.record_step(_step(episode.id, 1), turns=2)  # a new writer process, the store as it was
    assert store.step_writer.pid not in (None, pid)
    assert [s.index for s in store.steps(episode.id)] == [0, 1]
    store.step_writer.close()


def test_a_killed_writer_process_fails_pending_steps_clearly_then_another_starts(tmp_path, pg_url):
    _a_killed_writer_process_fails_its_pending_steps_and_the_next_starts_another(f"sqlite:///{tmp_path}/store.db")
    _a_killed_writer_process_fails_its_pending_steps_and_the_next_starts_another(pg_url)


COLLECTOR = textwrap.dedent("""
    import sys, time, uuid
    from forager.store import Run, Step, Store, Task
    store = Store(sys.argv[1])
    repo = store.upsert_repo(f"/tests/{uuid.uuid4().hex}", "writer")
    task = store.save_task(Task(instance_id=f"writer__{uuid.uuid4().hex[:10]}", kind="mutate-fix", repo_id=repo.id))
    run, _ = store.get_or_create_run(Run(name=f"writer-{uuid.uuid4().hex[:8]}", policy="oracle"))
    store.plan_episodes(run.id, [task.id], attempts=1)
    episode = store.claim_episode(run.id)
    for index in range(3):
        store.record_step(Step(episode_id=episode.id, index=index, model_text="x"), turns=index + 1)
    print(episode.id, store.step_writer.pid, flush=True)
    while True:  # steps keep coming, unacknowledged, when the collector is killed
        store.submit_step(Step(episode_id=episode.id, index=index + 1, model_text="late"), turns=index + 2)
        index += 1
        time.sleep(0.01)
""")


def test_the_writer_process_ends_when_its_collector_is_killed(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    collector = subprocess.Popen([sys.executable, "-c", COLLECTOR, url], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "FORAGER_STEP_WRITER": "process"})
    try:
        episode_id, pid = (int(word) for word in collector.stdout.readline().split())
        time.sleep(0.3)
        assert not _exited(pid, timeout=0.1)
        collector.send_signal(signal.SIGKILL)
        collector.wait(timeout=60)
    finally:
        collector.kill()
    assert _exited(pid), f"writer process {pid} outlived its collector"
    steps = Store(url).steps(episode_id)
    # every acknowledged step is there, and nothing but whole steps in order
    assert [s.index for s in steps][:3] == [0, 1, 2] and [s.index for s in steps] == list(range(len(steps)))


def _record(index: int, command: str = "ls"):
    from forager.agent.loop import StepRecord
    from forager.agent.policy import Decision

    decision = Decision(text=f"<tool: bash>\n{command}\n</tool>", assistant_message={"role": "assistant", "content": ""})
    return StepRecord(index=index, decision=decision, observation_messages=[], observation="ok")


def test_an_episode_keeps_two_steps_in_flight_and_hears_of_a_refused_one_two_steps_later(tmp_path):
    from forager.collect.episode import STEPS_IN_FLIGHT, StepRecorder

    assert STEPS_IN_FLIGHT == 2
    store = _store(f"sqlite:///{tmp_path}/store.db", "process")
    _run_id, (episode, other) = _run_with_episodes(store, 2)
    recorder = StepRecorder(store, episode.id, on_turn=lambda index: None)
    recorder.record(_record(0))
    pid = store.step_writer.pid
    recorder.flush()
    os.kill(pid, signal.SIGSTOP)  # the writer acknowledges nothing now
    try:
        recorder.record(_record(1))
        recorder.record(_record(2))  # step 1 in flight, not acknowledged: this one still goes
        assert len(recorder.pending) == 2 and not any(future.done() for future in recorder.pending)
        third = threading.Thread(target=recorder.record, args=(_record(3),))
        third.start()
        third.join(timeout=1.0)
        assert third.is_alive(), "a third step went while two were unacknowledged"
    finally:
        os.kill(pid, signal.SIGCONT)
    third.join(timeout=60)
    assert not third.is_alive()
    recorder.flush()
    assert [s.index for s in store.steps(episode.id)] == [0, 1, 2, 3]

    # a refused step (its index taken) raises when it is the oldest in flight: two steps later, or at the flush
    refused = StepRecorder(store, other.id, on_turn=lambda index: None)
    refused.record(_record(0))
    refused.flush()  # durable alone, not in one batch with its duplicate (which would fail both)
    refused.record(_record(0))
    refused.record(_record(1))  # the duplicate is in flight, not yet the oldest past the two: this one goes
    with pytest.raises(Exception, match="(?i)unique"):
        refused.record(_record(2))
    # step 2 never went (step 1 went with the duplicate or after it, in one batch refused whole or not)
    assert [s.index for s in store.steps(other.id)] in ([0], [0, 1])
    store.step_writer.close()


def test_a_step_submitted_while_the_writer_closes_is_written_by_the_next_one(tmp_path):
    """Two collects sharing one Store in one process: one's end closes the writer while the other's episodes
    still write. A step submitted after the close began, while the old writer still drains its queue, is
    written (by the next writer), not left waiting in a queue nobody reads: the writer is held up in the
    database (SQLite's write lock, held by another connection) so that the close and the step overlap."""
    import sqlite3

    for kind in ("thread", "process"):
        path = tmp_path / f"{kind}.db"
        store = _store(f"sqlite:///{path}", kind)
        _run_id, (episode,) = _run_with_episodes(store, 1)
        store.step_writer.start(**({"wait": 60} if kind == "process" else {}))
        blocker = sqlite3.connect(path, timeout=30)
        blocker.execute("BEGIN IMMEDIATE")  # the writer's commit now waits (busy_timeout)
        try:
            first = store.submit_step(_step(episode.id, 0), turns=1)
            closing = threading.Thread(target=store.step_writer.close)
            closing.start()
            time.sleep(0.5)  # the close has begun: its stop is queued behind `first`
            assert closing.is_alive(), f"{kind}: close() returned while a step could not be written"
            second = store.submit_step(_step(episode.id, 1), turns=2)
        finally:
            blocker.rollback()
            blocker.close()
        assert first.result(timeout=60) is None
        assert second.result(timeout=60) is None, f"{kind}: the step submitted during close() was not written"
        closing.join(60)
        assert [s.index for s in store.steps(episode.id)] == [0, 1]
        store.close()
