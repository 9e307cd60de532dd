"""The store on SQLite (WAL) and on a real PostgreSQL server (`make test` starts one)."""

import os
import uuid

import pytest
from sqlalchemy import text

from forager.store import BaselineTest, CallMap, Image, Store, Task, Trace, TracedTest



def _round_trip(store: Store) -> None:
    repo = store.upsert_repo(f"/src/{uuid.uuid4().hex}", "demo")
    again = store.upsert_repo(repo.url, "demo", mirror_path="/cache/m.git")
    assert again.id == repo.id and again.mirror_path == "/cache/m.git"
    image = store.save_image(Image(repo_id=repo.id, commit="c" * 40, spec={"python": "3.11"}, spec_hash="h1",
                                   status="ready", tests_passed=2))
    assert store.find_image(repo.id, "h1").spec == {"python": "3.11"}
    tests = [BaselineTest(image_id=0, test_id="t.py::test_a [x y]", status="passed", statuses=["passed", "passed"]),
             BaselineTest(image_id=0, test_id="t.py::test_b", status="failed", flaky=True, statuses=["failed", "passed"])]
    store.replace_baseline(image.id, tests)
    store.replace_baseline(image.id, tests)  # replacing twice leaves one copy
    stored = {b.test_id: b for b in store.baseline(image.id)}
    assert set(stored) == {"t.py::test_a [x y]", "t.py::test_b"}
    assert stored["t.py::test_b"].flaky and stored["t.py::test_b"].statuses == ["failed", "passed"]
    assert any(i.id == image.id and r.id == repo.id for i, r in store.images())

    # tasks: upsert by instance id (a second validation replaces the verdict), JSON lists kept in order
    instance = f"demo__mutate-{uuid.uuid4().hex[:12]}"
    first = store.save_task(Task(instance_id=instance, kind="mutate-fix", repo_id=repo.id, image_id=image.id,
                                 fail_to_pass=["t.py::test_b", "t.py::test_a [x y]"], valid=False, invalid_reason="x"))
    second = store.save_task(Task(instance_id=instance, kind="mutate-fix", repo_id=repo.id, image_id=image.id,
                                  fail_to_pass=["t.py::test_b", "t.py::test_a [x y]"], pass_to_pass=["t.py::c"],
                                  valid=True, family="operators"))
    assert second.id == first.id and second.created_at == first.created_at
    [(task, task_repo)] = store.tasks(instance_ids=[instance])
    assert task.valid and task.invalid_reason is None and task_repo.id == repo.id
    assert task.fail_to_pass == ["t.py::test_b", "t.py::test_a [x y]"] and task.pass_to_pass == ["t.py::c"]
    assert [t.instance_id for t, _r in store.tasks(kind="mutate-fix", valid=True, instance_ids=[instance])] == [instance]
    assert store.tasks(kind="issue-fix", instance_ids=[instance]) == []
    store.save_call_map(CallMap(image_id=image.id, calls={"t.py::test_a": [["pkg/m.py", "f"]]}))
    store.save_call_map(CallMap(image_id=image.id, calls={"t.py::test_b": [["pkg/m.py", "g"]]}))  # replaces
    assert store.call_map(image.id).calls == {"t.py::test_b": [["pkg/m.py", "g"]]}
    _traces_round_trip(store, image, task)


def _traces_round_trip(store: Store, image: Image, task: Task) -> None:
    """Traced tests with their traces: saved once per (image, subject, test, tracer version), counted, paired."""
    def traced(subject: str, variant: str, task_id=None, deterministic=True) -> tuple[TracedTest, list[Trace]]:
        row = TracedTest(image_id=image.id, task_id=task_id, variant=variant, subject=subject,
                         test_id="t.py::test_a [x y]", tracer_version="v1", dropped={"calls per function": 2})
        trace = Trace(image_id=image.id, task_id=task_id, variant=variant, test_id=row.test_id, path="pkg/m.py",
                      qualname="f", sha256="s" + variant, text=f"<|trace_context_start|>{variant}",
                      events=[{"kind": "call", "source": "def f():", "locals": {"x": "'\u00e9'"}}],
                      line_events=3, deterministic=deterministic)
        return row, [trace]

    assert store.save_traced([traced("suite", "suite", deterministic=False)]) == 1
    assert store.save_traced([traced("suite", "suite")]) == 0  # stored already: a rerun adds nothing
    bug, fix = f"task:{task.id}:bug", f"task:{task.id}:fix"
    assert store.save_traced([traced(bug, "bug", task.id), traced(fix, "fix", task.id)]) == 2
    assert store.traced(image.id, "suite", "v1") == {"t.py::test_a [x y]"} and store.traced(image.id, "suite", "v2") == set()
    [counts] = store.trace_counts()[-1:]
    assert counts == {"image_id": image.id, "repo": "demo", "tests": 3, "traces": 0, "dropped": 6,
                      "nondeterministic": 1, "tasks": 1}  # `traces` counts the rows' own tally (0 here)
    rows = {t.variant: t for t, *_ in store.iter_traces(image_id=image.id)}
    assert rows["suite"].events[0]["locals"] == {"x": "'\u00e9'"}
    assert store.trace_pairs() == {rows["bug"].id: rows["fix"].id, rows["fix"].id: rows["bug"].id}
    assert [t.variant for t, *_ in store.iter_traces(task=task.instance_id, min_events=3)] == ["bug", "fix"]
    assert list(store.iter_traces(image_id=image.id, min_events=4)) == []


def test_sqlite_store_uses_wal(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'sub' / 'f.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    _round_trip(store)


def test_postgresql_store(pg_url):
    _round_trip(Store(pg_url))


def test_closing_a_postgresql_store_ends_its_connections_and_its_writer(pg_url):
    """Stores opened and dropped without close() kept their pooled connections (and a writer process each) until
    the garbage collector found them: a benchmark that opened one per run used up the server's connection slots."""
    store = Store(pg_url)
    store.upsert_repo(f"/src/{uuid.uuid4().hex}", "demo")
    with store.session() as s:
        backend = s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
    store.step_writer.start(wait=60)
    writer = store.step_writer.pid
    assert writer is not None

    def alive(pid: int) -> bool:
        with Store(pg_url) as other, other.session() as s:
            return bool(s.connection().exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).scalar())

    assert alive(backend)
    store.close()
    assert not alive(backend), "the store's pooled connection outlived close()"
    with pytest.raises(ProcessLookupError):  # ended and reaped, not only forgotten by the store
        os.kill(writer, 0)
    assert store.upsert_repo(f"/src/{uuid.uuid4().hex}", "demo").id  # and it connects again when used


def test_bad_url_is_one_clear_line():
    with pytest.raises(ValueError, match="cannot open store 'nosuchdb://x'"):
        Store("nosuchdb://x")


def _episodes_round_trip(store: Store) -> None:
    """Claims hand each episode out once; a dead worker's episode is restarted from scratch; nothing duplicates."""
    import socket
    import subprocess
    from datetime import timedelta

    from forager.store import Run, Step
    from forager.store.tables import utcnow

    repo = store.upsert_repo(f"/src/{uuid.uuid4().hex}", "demo")
    tasks = [store.save_task(Task(instance_id=f"demo__t-{uuid.uuid4().hex[:8]}", kind="mutate-fix", repo_id=repo.id,
                                  valid=True)) for _ in range(2)]
    run, created = store.get_or_create_run(Run(name=f"run-{uuid.uuid4().hex[:8]}", policy="oracle"))
    again, created_again = store.get_or_create_run(Run(name=run.name, policy="oracle"))
    assert created and not created_again and again.id == run.id
    task_ids = [t.id for t in tasks]
    assert store.plan_episodes(run.id, task_ids, attempts=2) == 4
    assert store.plan_episodes(run.id, task_ids, attempts=2) == 0  # planning again adds nothing

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs: its worker is dead
    dead_worker = f"{socket.gethostname()}:{gone.pid}"
    first = store.claim_episode(run.id, task_ids, worker=dead_worker)
    store.record_step(Step(episode_id=first.id, index=0, model_text="a", prompt_delta_ids=[1, 2]), turns=1)
    store.record_step(Step(episode_id=first.id, index=1, model_text="b"), turns=2)
    assert [s.index for s in store.steps(first.id)] == [0, 1]

    live = [store.claim_episode(run.id, task_ids) for _ in range(4)]
    claimed = [e.id for e in live if e is not None]
    assert first.id in claimed and len(claimed) == 4 == len(set(claimed))  # the dead worker's episode came back once
    assert store.claim_episode(run.id, task_ids) is None  # all held by this (live) process
    restarted = store.episode(first.id)
    assert restarted.restarts == 1 and restarted.turns == 0 and store.steps(first.id) == []

    # a worker elsewhere whose lease ran out loses its episode too
    other = next(e for e in live if e.id != first.id)
    store.update_episode(other.id, worker="elsewhere:1")
    with store.session() as s:
        row = s.get(type(other), other.id)
        row.lease_expires_at = utcnow() - timedelta(seconds=1)
        s.add(row)
        s.commit()
    assert store.claim_episode(run.id, task_ids).id == other.id

    store.record_step(Step(episode_id=first.id, index=0, model_text="x", prefix_ok=False), turns=1)
    finished = store.finish_episode(first.id, last_step_reward=1.0, exit_reason="submitted", resolved=True, reward=1.0)
    assert finished.status == "finished" and finished.lease_expires_at is None
    [last] = store.steps(first.id)
    assert last.done and last.reward == 1.0
    assert store.prefix_breaks(run.id) == 1
    counts = {row["status"]: row["episodes"] for row in store.episode_counts() if row["run_id"] == run.id}
    assert counts == {"finished": 1, "running": 3}


def test_episodes_on_sqlite(tmp_path):
    _episodes_round_trip(Store(f"sqlite:///{tmp_path / 'e.db'}"))


def test_episodes_on_postgresql(pg_url):
    _episodes_round_trip(Store(pg_url))
