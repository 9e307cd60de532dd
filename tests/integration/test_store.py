"""The store on SQLite (WAL) and on a real PostgreSQL server (`make test` starts one)."""

import os
import uuid

import pytest
from sqlalchemy import text

from forager.store import BaselineTest, CallMap, Image, Store, Task


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


def test_sqlite_store_uses_wal(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'sub' / 'f.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    _round_trip(store)


def test_postgresql_store():
    url = os.environ.get("FORAGER_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("FORAGER_TEST_POSTGRES is not set in CI; `make test` sets it and starts PostgreSQL")
        pytest.skip(reason="FORAGER_TEST_POSTGRES not set: run through `make test` to test the PostgreSQL store")
    _round_trip(Store(url))


def test_bad_url_is_one_clear_line():
    with pytest.raises(ValueError, match="cannot open store 'nosuchdb://x'"):
        Store("nosuchdb://x")
