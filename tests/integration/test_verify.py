"""`forager tasks verify` on a task with a planted order-dependent test, in real containers; and a patch that edits
a FAIL_TO_PASS test earns nothing."""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from forager.images.pipeline import ImageBuilder
from forager.models import RepoRef
from forager.store import Store, Task
from forager.tasks.evaluate import evaluate_in_image

from .conftest import module_settings, run_cli, small_repo

SOURCE = "def add(a, b):\n    return a + b\n"
TESTS = '''\
from calc import add

STATE = []


def test_a_sets_state():
    STATE.append(1)
    assert add(2, 3) == 5


def test_b_needs_state():
    assert STATE == [1]


def test_c():
    assert add(1, 1) == 2
'''
IDS = [f"tests/test_calc.py::{name}" for name in ("test_a_sets_state", "test_b_needs_state", "test_c")]


def _git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def planted(tmp_path_factory, engine):
    root = tmp_path_factory.mktemp("verify")
    repo = small_repo(root / "calc", "calc", SOURCE, TESTS)
    (repo / "src" / "calc" / "__init__.py").write_text(SOURCE.replace("a + b", "a - b"))
    bug = _git(repo, "diff")
    gold = _git(repo, "diff", "-R")
    _git(repo, "checkout", "--", ".")
    settings = module_settings(root)
    store = Store(settings.db)
    built = ImageBuilder(settings, store, engine).build(RepoRef(url=str(repo)))
    assert built.status == "ready" and built.passed == 3, built.message
    task = store.save_task(Task(
        instance_id="calc__planted", kind="mutate-fix", repo_id=store.image(built.image_id).repo_id,
        image_id=built.image_id, bug_patch=bug, gold_patch=gold, fail_to_pass=[IDS[0], IDS[2]],
        pass_to_pass=[IDS[1]], valid=True, family="operators", problem_statement="add subtracts"))
    return settings, store, engine, task


def _seed_that_reverses() -> int:
    """A verify seed whose shuffled run (seed + 1, the second run) puts test_b before test_a."""
    for seed in range(100):
        order = list(IDS)
        random.Random(seed + 1).shuffle(order)
        if order.index(IDS[1]) < order.index(IDS[0]):
            return seed
    raise AssertionError("no seed reverses the two tests")


def test_an_order_dependent_test_is_recorded_and_kept(planted):
    settings, store, _engine, task = planted
    proc = run_cli("tasks", "verify", "--runs", "2", "--seed", str(_seed_that_reverses()), "--json",
                   settings=settings, check=True)
    (record,) = json.loads(proc.stdout)
    assert record["gold_resolved"] == 1 and record["bug_failed"] == 2, record  # shuffled, test_b ran first and failed
    assert record["order_dependent"] == [IDS[1]] and record["nondeterministic"] == [], record
    assert record["flips"] == {IDS[1]: 2} and record["verified"] is True and record["tests_version"] == 1
    stored = store.task("calc__planted")
    assert stored.pass_to_pass == [IDS[1]] and stored.integrity["determinism"]["order_dependent"] == [IDS[1]]


def test_a_patch_that_edits_a_fail_to_pass_test_earns_nothing(planted, tmp_path):
    """Rewriting the failing test into one that passes with the bug still in place: grading puts the test file back
    from the start state, and names what it restored."""
    settings, store, engine, task = planted
    cheat = ("diff --git a/tests/test_calc.py b/tests/test_calc.py\n--- a/tests/test_calc.py\n"
             "+++ b/tests/test_calc.py\n@@ -7,3 +7,3 @@ def test_a_sets_state():\n     STATE.append(1)\n"
             "-    assert add(2, 3) == 5\n+    assert add(2, 3) == -1\n \n")
    grade = evaluate_in_image(engine, settings, store.image(task.image_id), store.task("calc__planted"), cheat)
    assert grade.applied and not grade.resolved and grade.restored == ["tests/test_calc.py"], grade
    assert grade.statuses[IDS[0]] == "failed" and grade.tests_version == 1


def test_what_an_agent_reaches_for_is_flagged_and_export_can_drop_it(planted, tmp_path, monkeypatch):
    """An oracle that first reads the reflog, searches the filesystem and tries the network: the episode is
    resolved, and flagged for each; the summary counts it, and `export --drop-flagged` leaves it out."""
    from forager.agent import policy as policies
    from forager.collect import episode as episode_module
    from forager.collect.config import CollectConfig
    from forager.collect.scheduler import Collector
    from forager.sandbox.models import ToolCall

    settings, store, engine, _task = planted
    task = store.task("calc__planted")
    snooping = ["git reflog", "find / -name '__init__.py' -path '*calc*' 2>/dev/null | head -3",
                "curl -s http://example.com || true"]

    class SnoopingOracle(policies.OraclePolicy):
        def __init__(self, gold_patch: str):
            super().__init__(gold_patch)
            self.plan[:0] = [ToolCall(name="bash", arguments={"command": c}) for c in snooping]

    monkeypatch.setattr(episode_module, "OraclePolicy", SnoopingOracle)
    collector = Collector(settings, store, engine, CollectConfig(policy="oracle", concurrency=1, warm=0))
    run = collector.open_run([task], name="snooping")
    summary = collector.collect(run, [task])
    assert summary.resolved == 1 and summary.flagged == 1, summary
    assert summary.flags == {"git history": 1, "searched outside the repository": 1, "network": 1}
    (episode,) = store.episodes(run.id)
    assert [flag.split(":")[0] for flag in episode.flags] == ["git history", "searched outside the repository",
                                                              "network"]
    assert episode.grade["tests_version"] == task.tests_version
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    run_cli("export", "--format", "sft", "--run", "snooping", "--out", str(kept), settings=settings, check=True)
    row = json.loads(kept.read_text().splitlines()[0])
    assert json.loads(row["provenance"]["flags"]) == episode.flags
    verified = (task.integrity.get("determinism") or {}).get("verified")  # True once the verify test above ran
    assert json.loads(row["provenance"]["task_integrity"])["verified"] == verified
    run_cli("export", "--format", "sft", "--run", "snooping", "--drop-flagged", "--out", str(dropped),
            settings=settings, check=True)
    assert dropped.read_text() == ""
