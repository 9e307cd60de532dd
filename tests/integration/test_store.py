"""The store on SQLite (WAL) and on a real PostgreSQL server (`make test` starts one)."""

import os
import uuid

import pytest
from sqlalchemy import text

from forager.store import BaselineTest, Image, Store


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
