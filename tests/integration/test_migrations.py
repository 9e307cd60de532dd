"""A store made by the previous release (dd602ca, before migrations) is upgraded in place, on SQLite and on
PostgreSQL, also when several processes open it at once. The old store is made by the old code itself."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

from forager.store import Episode, Image, Store, migrations

PREVIOUS_RELEASE = "dd602ca"
ROOT = Path(__file__).resolve().parents[2]

# run by the previous release's code: a repo, an image, a task, a run and a graded episode of two steps
MAKE_OLD_STORE = """
import sys
import forager.store
from forager.store import Image, Run, Step, Store, Task

url, release = sys.argv[1:]
assert forager.store.__file__.startswith(release), forager.store.__file__  # the old code, not this checkout
store = Store(url)
repo = store.upsert_repo("/src/ledger", "ledger")
image = store.save_image(Image(repo_id=repo.id, commit="c" * 40, spec={"python": "3.11"}, spec_hash="h1",
                               status="ready", tests_passed=3))
task = store.save_task(Task(instance_id="ledger__mutate-1", kind="mutate-fix", repo_id=repo.id, image_id=image.id,
                            fail_to_pass=["t.py::test_a"], valid=True))
run, _ = store.get_or_create_run(Run(name="old-run", policy="oracle", sampling={"temperature": 0.0}))
store.plan_episodes(run.id, [task.id], attempts=1)
episode = store.claim_episode(run.id, [task.id])
store.record_step(Step(episode_id=episode.id, index=0, model_text="look", prompt_delta_ids=[1, 2, 3]), turns=1)
store.record_step(Step(episode_id=episode.id, index=1, model_text="fix", arguments={"cmd": "ls"}), turns=2)
store.finish_episode(episode.id, last_step_reward=1.0, exit_reason="submitted", resolved=True, reward=1.0,
                     grade={"t.py::test_a": "passed"}, patch="--- a/x\\n+++ b/x\\n")
"""

# run by this checkout's code: wait for the common start time, then open the store
OPEN_AT = """
import sys, time
from forager.store import Store

url, start = sys.argv[1], float(sys.argv[2])
if time.time() > start:
    sys.exit("started late: the openers would not race")
time.sleep(start - time.time())
Store(url)
"""


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory) -> Path:
    """The previous release's `forager` package, exported from git."""
    root = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE, "forager"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("pg_url")  # one database per module: empty it for each test
    engine = create_engine(url)
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return url


def _make_old_store(url: str, release: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", MAKE_OLD_STORE, url, str(release)], cwd=release,
                          env={**os.environ, "PYTHONPATH": str(release)}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def _revisions(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _equals_the_models(store: Store) -> bool:
    with store.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_a_new_store_equals_the_models(url):
    store = Store(url)
    assert _equals_the_models(store) and _revisions(store) == [migrations.HEAD]


def test_a_previous_release_store_is_upgraded_in_place(url, previous_release):
    _make_old_store(url, previous_release)
    store = Store(url)
    assert _revisions(store) == [migrations.HEAD] and _equals_the_models(store)

    run = store.run_by_name("old-run")
    [episode] = store.episodes(run.id)
    assert (episode.status, episode.resolved, episode.reward) == ("finished", True, 1.0)
    assert episode.exit_reason == "submitted"
    assert episode.grade == {"t.py::test_a": "passed"} and episode.patch == "--- a/x\n+++ b/x\n"
    assert episode.flags == [] and run.sampling == {"temperature": 0.0}
    first, last = store.steps(episode.id)
    assert (first.model_text, first.prompt_delta_ids, first.done) == ("look", [1, 2, 3], False)
    assert (last.model_text, last.arguments, last.done, last.reward) == ("fix", {"cmd": "ls"}, True, 1.0)
    [(image, repo)] = store.images()
    assert repo.url == "/src/ledger" and image.spec == {"python": "3.11"}
    assert image.changed_tracked == {} and image.plugin_files == []

    # the new columns take new values
    built = store.save_image(Image(repo_id=repo.id, spec_hash="h2", status="ready",
                                   changed_tracked={"install": ["setup.cfg"]}, plugin_files=["plugins/p.py"]))
    assert store.image(built.id).changed_tracked == {"install": ["setup.cfg"]}
    assert store.image(built.id).plugin_files == ["plugins/p.py"]
    with store.session() as s:
        row = s.get(Episode, episode.id)
        row.flags = ["tamper: conftest.py"]
        s.add(row)
        s.commit()
    assert store.episode(episode.id).flags == ["tamper: conftest.py"]


def test_processes_opening_an_old_store_at_once_upgrade_it_once(url, previous_release):
    """Without the lock, the openers would add the same columns twice (four make that race show nearly always)."""
    _make_old_store(url, previous_release)
    start = time.time() + 8  # after all have imported forager (under a second each when idle)
    openers = [subprocess.Popen([sys.executable, "-c", OPEN_AT, url, str(start)], cwd=ROOT, stderr=subprocess.PIPE,
                                text=True) for _ in range(4)]
    errors = [opener.communicate(timeout=120)[1] for opener in openers]
    assert [opener.returncode for opener in openers] == [0] * 4, errors
    store = Store(url)
    assert _revisions(store) == [migrations.HEAD] and _equals_the_models(store)
    assert [e.status for e in store.episodes(store.run_by_name("old-run").id)] == ["finished"]
