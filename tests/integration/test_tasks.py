"""Tasks on a real third-party repository: cachetools' own history (three releases from PyPI) and its own suite.

mutate-fix tasks are synthesized at the newest release; issue-fix tasks are mined from the two
release commits; both are validated in images, graded by the oracle, shared as JSONL and re-imported.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.models import RepoRef
from forager.sdist_repos import repo_from_sdist_history
from forager.store import Store
from forager.tasks.catalog import to_record
from forager.tasks.evaluate import evaluate_in_image
from forager.tasks.issues import TaskValidator
from forager.tasks.mutations import FAMILIES
from forager.tasks.patches import changed_files
from forager.tasks.records import read_records, write_records
from forager.tasks.synthesize import MutateFixSynthesizer

from .conftest import BASE_IMAGE, FORAGER, TEST_IMAGE_PREFIX, run_cli

SDIST_CACHE = Path.home() / ".cache" / "forager-tests" / "sdists"
RELEASES = ["cachetools==5.3.3", "cachetools==5.4.0", "cachetools==5.5.0"]


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    return repo_from_sdist_history(RELEASES, tmp_path_factory.mktemp("repos") / "cachetools", SDIST_CACHE)


@pytest.fixture(scope="module")
def env(tmp_path_factory, engine):
    """One store for the module: images built once are reused by every test here."""
    root = tmp_path_factory.mktemp("tasks-env")
    settings = Settings(
        db=f"sqlite:///{root / 'store.db'}", cache_dir=root / "cache", base_image=BASE_IMAGE, python_versions=["3.11"],
        test_timeout=300, overrides_dir=root / "overrides", image_prefix=TEST_IMAGE_PREFIX, jobs=2,
    )
    store = Store(settings.db)
    builder = ImageBuilder(settings, store, engine)
    return settings, store, engine, builder


@pytest.fixture(scope="module")
def synthesized(env, history):
    settings, store, engine, builder = env
    synthesizer = MutateFixSynthesizer(settings, store, engine, builder)
    report = synthesizer.synthesize(RepoRef(url=str(history)), count=4, seed=7)
    return synthesizer, report


@pytest.fixture(scope="module")
def mined(env, history):
    settings, store, engine, builder = env
    return TaskValidator(settings, store, engine, builder).mine(RepoRef(url=str(history)), jobs=2)


def _oracle(env, task, patch):
    settings, store, engine, _builder = env
    return evaluate_in_image(engine, settings, store.image(task.image_id), task, patch)


def test_mutate_fix_tasks_are_valid_and_their_bugs_are_caught(env, synthesized):
    _settings, store, _engine, _builder = env
    _synthesizer, report = synthesized
    assert report.valid == 4, report
    assert report.functions_called > 20 and report.candidates > report.tried >= 4
    assert sum(report.invalid_reasons.values()) == report.tried - report.valid
    baseline = {t.test_id: t for t in store.baseline(report.image_id)}
    tasks = [store.task(v.instance_id) for v in report.tasks if v.valid]
    assert len({t.family for t in tasks}) >= 3, "families are drawn in turn"
    for task in tasks:
        assert task.kind == "mutate-fix" and task.family in FAMILIES and task.image_id == report.image_id
        assert task.fail_to_pass and not set(task.fail_to_pass) & set(task.pass_to_pass)
        for test in task.fail_to_pass + task.pass_to_pass:  # only tests that passed in every baseline run
            assert baseline[test].status == "passed" and not baseline[test].flaky
        assert changed_files(task.bug_patch) == changed_files(task.gold_patch) == [task.path]
        # the statement names the symptom, never the place of the bug
        assert task.fail_to_pass[0] in task.problem_statement
        assert task.path not in task.problem_statement and task.symbol.split(".")[-1] + "(" not in task.problem_statement


def test_oracle_resolves_every_valid_mutate_fix_task_and_no_patch_resolves_none(env, synthesized):
    _settings, store, _engine, _builder = env
    _synthesizer, report = synthesized
    for verdict in report.tasks:
        if not verdict.valid:
            continue
        task = store.task(verdict.instance_id)
        gold = _oracle(env, task, task.gold_patch)
        assert gold.resolved, (task.instance_id, gold)
        unchanged = _oracle(env, task, "")
        assert unchanged.applied and not unchanged.resolved
        assert unchanged.fail_to_pass_passed == 0 and unchanged.pass_to_pass_passed == unchanged.pass_to_pass_total


def test_same_seed_gives_the_same_tasks_and_families_can_be_chosen(env, history, synthesized):
    _settings, store, _engine, _builder = env
    synthesizer, first = synthesized
    again = synthesizer.synthesize(RepoRef(url=str(history)), count=4, seed=7)
    assert [v.instance_id for v in again.tasks if v.valid] == [v.instance_id for v in first.tasks if v.valid]
    assert again.reused == 4

    # the targeted pre-run (off by default for a suite this fast) must keep the same verdicts' shape
    settings, _store, engine, builder = env
    prefiltered = MutateFixSynthesizer(settings, store, engine, builder, prefilter=True)
    only = prefiltered.synthesize(RepoRef(url=str(history)), count=2, seed=11, families=("operators",))
    assert only.valid == 2
    assert {store.task(v.instance_id).family for v in only.tasks} == {"operators"}
    for verdict in only.tasks:
        if verdict.valid:
            assert _oracle(env, store.task(verdict.instance_id), store.task(verdict.instance_id).gold_patch).resolved


def test_mined_release_commits_are_valid_issue_fix_tasks(env, mined):
    _settings, store, _engine, _builder = env
    report = mined
    assert report.commits_scanned == 2 and report.fix_candidates == 2
    assert all(v.valid for v in report.tasks), report
    for verdict in report.tasks:
        task = store.task(verdict.instance_id)
        # the statement reports what fails; the commit message ("Release 5.4.0") is a hint, not the statement
        assert task.kind == "issue-fix" and task.hints_text.startswith("Release ")
        assert "Release " not in task.problem_statement and "fail" in task.problem_statement
        assert all(path.startswith("tests/") for path in changed_files(task.test_patch))
        assert not any(path.startswith("tests/") for path in changed_files(task.gold_patch))
        assert set(task.validation["before"].values()) <= {"failed", "error", "missing"}
        assert set(task.validation["after"].values()) == {"passed"}
        assert _oracle(env, task, task.gold_patch).resolved
        assert not _oracle(env, task, "").resolved  # the tests alone do not pass on the parent


def test_tasks_round_trip_through_jsonl_and_import_validates_them_again(env, tmp_path, synthesized, mined):
    settings, store, _engine, _builder = env
    rows = store.tasks(valid=True)
    tags = {t.image_id: store.image(t.image_id).tag for t, _r in rows}
    path = tmp_path / "tasks.jsonl"
    assert write_records(path, (to_record(t, r, tags[t.image_id]) for t, r in rows)) == len(rows) >= 6
    reads = read_records(path)
    assert all(r.error is None for r in reads)
    assert [r.record.model_dump() for r in reads] == [to_record(t, r, tags[t.image_id]).model_dump() for t, r in rows]

    # why one of each kind, not all: importing validates each task in containers again (both states, twice),
    # which is the same work for every task of a kind
    chosen = [next(t for t, _r in rows if t.kind == kind) for kind in ("mutate-fix", "issue-fix")]
    some = tmp_path / "some.jsonl"
    some.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if any(f'"{t.instance_id}"' in line for t in chosen)))
    fresh = settings.model_copy(update={"db": f"sqlite:///{tmp_path / 'other.db'}"})
    proc = run_cli("tasks", "import", str(some), "--json", settings=fresh)
    assert proc.returncode == 0, proc.stderr
    verdicts = json.loads(proc.stdout)
    assert sorted(v["instance_id"] for v in verdicts) == sorted(t.instance_id for t in chosen)
    originals = {t.instance_id: t for t, _r in rows}
    for verdict in verdicts:
        assert verdict["valid"], verdict
        assert verdict["fail_to_pass"] == len(originals[verdict["instance_id"]].fail_to_pass)


def test_bad_instances_are_recorded_invalid_with_a_reason_and_do_not_stop_the_others(env, tmp_path, mined):
    settings, store, _engine, _builder = env
    first = store.task(next(v.instance_id for v in mined.tasks if v.valid))
    good = to_record(first, store.repo(first.repo_id)).model_dump(mode="json")
    unknown_commit = {**good, "instance_id": "bad-commit", "base_commit": "0123456789" * 4}
    removed = next(line for line in good["patch"].splitlines() if line.startswith("-") and not line.startswith("---")
                   and line[1:].strip())
    wrong = good["patch"].replace(f"\n{removed}\n", f"\n{removed} # not in the file\n", 1)
    assert wrong != good["patch"]
    no_apply = {**good, "instance_id": "bad-patch", "patch": wrong}
    swapped = {**good, "instance_id": "bad-lists", "FAIL_TO_PASS": good["PASS_TO_PASS"][:2]}
    missing = {key: value for key, value in good.items() if key != "base_commit"} | {"instance_id": "bad-fields"}
    path = tmp_path / "swe.jsonl"
    path.write_text("\n".join(json.dumps(item) for item in (good, unknown_commit, no_apply, swapped, missing)) + "\n{oops\n")

    fresh = settings.model_copy(update={"db": f"sqlite:///{tmp_path / 'bad.db'}"})
    proc = run_cli("tasks", "import", str(path), "--json", settings=fresh)
    assert proc.returncode == 1
    verdicts = {v["instance_id"]: v for v in json.loads(proc.stdout)}
    assert verdicts[good["instance_id"]]["valid"]
    assert "not found" in verdicts["bad-commit"]["reason"] and "0123456789" in verdicts["bad-commit"]["reason"]
    assert "does not apply" in verdicts["bad-patch"]["reason"]
    assert "FAIL_TO_PASS tests pass without the fix" in verdicts["bad-lists"]["reason"]
    assert "swe.jsonl:5 (bad-fields): missing field base_commit" in proc.stderr
    assert "swe.jsonl:6: not valid JSON" in proc.stderr
    # invalid instances are in the store with their reasons, for reports and reruns
    invalid = {t.instance_id: t.invalid_reason for t, _r in Store(fresh.db).tasks(valid=False)}
    assert set(invalid) == {"bad-commit", "bad-patch", "bad-lists", "bad-fields"}
    assert "missing field base_commit" in invalid["bad-fields"]
    status = json.loads(run_cli("status", "--json", settings=fresh, check=True).stdout)
    counts = {(e["kind"], e["valid"]): e["tasks"] for e in status["tasks"]}
    assert counts == {("issue-fix", True): 1, ("issue-fix", False): 4}


def test_cli_makes_and_grades_tasks_of_the_example_repo(settings, tmp_path):
    from forager.example_repo import materialise

    repo = str(materialise(tmp_path / "ledger"))
    proc = run_cli("tasks", "synthesize", "--repo", repo, "--count", "2", "--seed", "3", "--json", settings=settings)
    assert proc.returncode == 0, proc.stderr
    [report] = json.loads(proc.stdout)
    assert report["valid"] == 2 and report["tried"] >= 2

    mined = json.loads(run_cli("tasks", "mine", "--repo", repo, "--json", settings=settings, check=True).stdout)
    [fix] = mined[0]["tasks"]
    assert fix["valid"] and fix["fail_to_pass"] == 2  # test_format_amount and test_round_trip

    graded = json.loads(run_cli("tasks", "oracle", "--json", settings=settings, check=True).stdout)
    assert graded["resolved"] == graded["total"] == 3

    listed = json.loads(run_cli("tasks", "list", "--json", settings=settings, check=True).stdout)
    assert {t["kind"] for t in listed} == {"mutate-fix", "issue-fix"} and all(t["valid"] for t in listed)


@pytest.mark.parametrize(
    "args, message",
    [
        (["synthesize", "--repo", ".", "--kind", "issue-fix"], "issue-fix tasks come from"),
        (["synthesize", "--repo", ".", "--families", "operators,nope"], "unknown nope"),
        (["import", "/no/such/file.jsonl"], "/no/such/file.jsonl"),
        (["import", "tasks.jsonl", "--repo-url", "owner-name"], "expected NAME=URL-or-path"),
    ],
)
def test_cli_bad_task_arguments_get_one_clear_line(settings, tmp_path, args, message):
    (tmp_path / "tasks.jsonl").write_text("")
    proc = subprocess.run([FORAGER, "tasks", *args], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "FORAGER_DB": settings.db})
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
