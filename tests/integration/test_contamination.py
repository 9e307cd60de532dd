"""`forager tasks contamination` on the example repository's tasks: against a SWE-bench-format file written from
those same tasks (`forager tasks write`) every task is flagged by repository, date and patch, and the marks are
stored on the tasks; against instances of another repository, or the reference list, nothing is."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from forager.cli import app
from forager.integrity.contamination import KEY, is_contaminated

from .conftest import example_tasks, run_cli

FLASK_PATCH = """diff --git a/src/flask/helpers.py b/src/flask/helpers.py
--- a/src/flask/helpers.py
+++ b/src/flask/helpers.py
@@ -10,3 +10,3 @@ def url_for(endpoint, **values):
-    return appctx.app.url_map.bind("").build(endpoint, values)
+    return appctx.app.url_map.bind(appctx.app.config["SERVER_NAME"]).build(endpoint, values, force_external=True)
"""
FLASK_INSTANCES = [
    {"instance_id": "pallets__flask-4045", "repo": "pallets/flask", "created_at": "2021-05-13T21:32:41Z",
     "base_commit": "d8c37f43724cd9fb0870f77877b7c4c7e38a19e0", "patch": FLASK_PATCH,
     "problem_statement": "url_for ignores SERVER_NAME when it builds an external URL outside a request"},
    {"instance_id": "pallets__flask-5063", "repo": "https://github.com/pallets/flask.git",
     "created_at": "2023-04-14T16:36:54Z", "patch": FLASK_PATCH.replace("True", "False"),
     "problem_statement": "Flask routes should show which subdomain each rule belongs to"},
]


@pytest.fixture(scope="module")
def tasks_and_file(tmp_path_factory, engine):
    root = tmp_path_factory.mktemp("contamination-env")
    settings, store, _builder, _repo, tasks = example_tasks(root, engine, mutate=2, mine=True)
    own = root / "own.jsonl"
    run_cli("tasks", "write", str(own), settings=settings, check=True)
    return settings, store, tasks, own


def cli(db: str, *args: str):
    """`forager tasks contamination` in-process, through forager's own command line."""
    return CliRunner().invoke(app, ["tasks", "contamination", "--db", db, *args], env={"COLUMNS": "200"})


def report(db: str, *args: str) -> dict:
    result = cli(db, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_tasks_are_flagged_against_a_file_of_themselves(tasks_and_file):
    settings, store, tasks, own = tasks_and_file
    assert sorted(t.kind for t in tasks) == ["issue-fix", "mutate-fix", "mutate-fix"]
    assert len(own.read_text().splitlines()) == len(tasks)
    # another integrity record on a task stays as it was
    kept = store.task(tasks[0].instance_id)
    kept.integrity = {**kept.integrity, "determinism": {"verified": True}}
    store.save_task(kept)

    found = report(settings.db, "--against", str(own))
    assert found["against"] == "own.jsonl" and found["instances"] == len(tasks)
    assert found["sha256"] == hashlib.sha256(own.read_bytes()).hexdigest()
    (row,) = found["repos"]
    assert row == {"repo": "ledger", "tasks": 3, "benchmark_repo": "ledger", "benchmarks": ["own.jsonl"],
                   "on_or_after": 3, "before": 0, "unknown_date": 0, "patch_matches": 3, "statement_matches": 3,
                   "contaminated": 3}
    mined_date = next(t.instance_created_at for t in tasks if t.kind == "issue-fix")
    assert set(found["tasks"]) == {t.instance_id for t in tasks}
    for task in tasks:
        record = found["tasks"][task.instance_id]
        assert record["contaminated"] and record["reasons"] == ["repository", "patch", "statement"], record
        assert record["benchmark_repo"] == "ledger" and record["repo_match"] == "owner/name"
        # its own instance, near-certainly at the top (identical shingles give the same signature)
        assert {"instance_id": task.instance_id, "similarity": 1.0} in record["patch_matches"], record
        assert any(m["instance_id"] == task.instance_id for m in record["statement_matches"]), record
        time = record["time"]
        assert time["relation"] == "on_or_after", time
        # the first instance of the repository is the only dated one: the mined fix
        assert time["first_instance_date"][:19] == mined_date[:19] and time["first_instance_id"].startswith("ledger__")
        assert time["task_date_source"] == ("instance created_at" if task.kind == "issue-fix" else "base commit date")
        stored = store.task(task.instance_id).integrity
        assert stored[KEY] == record and is_contaminated(stored)
    assert store.task(tasks[0].instance_id).integrity["determinism"] == {"verified": True}


def test_instances_of_another_repository_flag_nothing(tasks_and_file):
    settings, store, tasks, own = tasks_and_file
    flask = own.with_name("flask.json")
    flask.write_text(json.dumps(FLASK_INSTANCES, indent=2))
    found = report(settings.db, "--against", str(flask))
    assert found["instances"] == 2
    assert found["repos"][0]["benchmark_repo"] is None and found["repos"][0]["contaminated"] == 0
    for task in tasks:
        record = found["tasks"][task.instance_id]
        assert not record["contaminated"] and record["reasons"] == [] and record["time"] is None, record
        assert record["patch_matches"] == [] and record["statement_matches"] == []
        stored = store.task(task.instance_id).integrity[KEY]
        assert stored["against"] == "flask.json" and not is_contaminated(store.task(task.instance_id).integrity)

    table = cli(settings.db, "--against", str(flask))
    assert table.exit_code == 0, table.output
    assert "contamination against flask.json (2 instances)" in table.stdout
    assert "ledger" in table.stdout and "0 of 3 task(s) contaminated" in table.output


def test_the_reference_list_does_not_hold_the_example(tasks_and_file):
    settings, store, tasks, _own = tasks_and_file
    found = report(settings.db)
    assert found["against"] == "reference list" and found["sha256"] is None and found["instances"] == 0
    assert not any(r["contaminated"] for r in found["tasks"].values())
    assert all(store.task(t.instance_id).integrity[KEY]["against"] == "reference list" for t in tasks)


def test_bad_input_is_one_clear_line(tasks_and_file):
    settings, _store, _tasks, own = tasks_and_file
    missing = cli(settings.db, "--against", str(own.with_name("absent.jsonl")))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    broken = own.with_name("broken.jsonl")
    broken.write_text(own.read_text().splitlines()[0] + "\n{\"instance_id\": \n")
    result = cli(settings.db, "--against", str(broken))
    assert result.exit_code == 2
    assert "broken.jsonl:2: not valid JSON" in result.output and len(result.output.strip().splitlines()) == 1
    assert cli(settings.db, "--threshold", "1.5").exit_code == 2
    assert cli(settings.db, "--repo", "no-such-repo").exit_code == 2
