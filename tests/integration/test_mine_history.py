"""Mining real history at an old commit: tenacity's fix of August 2023 (#406, "Preserve function default and
kwdefault through retry decorator"), from the corpus bundle.

The image of its parent is built as of the commit's date; the task is validated with two runs of each state,
its statement reports the tests that fail without the fix (never the changed file or function), the commit
message is kept as hints, and its record carries the cut-off and the Python it was validated with. The oracle
resolves it, and mining again reuses it: no build and no validation.

With `--llm`, the served model (vLLM on the CPU with the tiny random model; a structured-output regex makes
it write the text the test needs) rewrites the statement as an issue; a rewrite naming what the fix changes is
rejected and the test report stays.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from forager.images.pipeline import ImageBuilder
from forager.llm.types import Sampling
from forager.models import RepoRef
from forager.repos import read_files_at
from forager.store import Store
from forager.tasks.catalog import image_world, to_record
from forager.tasks.evaluate import evaluate_in_image
from forager.tasks.issues import TaskValidator
from forager.tasks.patches import changed_files
from forager.tasks.restate import Restater, report_of, restate_stored
from forager.tasks.statement import hidden_names

from .conftest import module_settings, run_cli

CORPUS = Path(__file__).parents[2] / ".." / "shared" / "corpus"
FIX = "310058274ed22a345e9c3917c97b4afd6363d5a5"  # committed 2023-08-21, on tenacity's first-parent line
FAIL_TO_PASS = [
    "tests/test_asyncio.py::TestAsync::test_retry_preserves_argument_defaults",
    "tests/test_tenacity.py::TestDecoratorWrapper::test_retry_preserves_argument_defaults",
]
ISSUE = ("Retrying drops a function's default arguments\n\nA function decorated with retry no longer sees its "
         "own default values when it is called without them.")
NAMING = "The defaults are lost in wrapped_f, which must copy them."


def served(server, text: str) -> Restater:
    """A restater whose model (random weights) can only write `text`."""
    regex = re.escape(text)
    return Restater(server.url, server.model, sampling=Sampling(
        temperature=0.0, max_tokens=400, extra_body={"structured_outputs": {"regex": regex}}))


@pytest.fixture(scope="module")
def tenacity(tmp_path_factory) -> Path:
    bundle = CORPUS / "tenacity.bundle"
    if not bundle.is_file():
        pytest.fail(f"the corpus bundle {bundle.resolve()} is missing: these tests need ../shared/corpus next to the "
                    "repository (git bundles of public repositories; see its README)")
    dest = tmp_path_factory.mktemp("corpus") / "tenacity"
    subprocess.run(["git", "clone", "--quiet", str(bundle), str(dest)], check=True)
    return dest


@pytest.fixture(scope="module")
def mined(tmp_path_factory, engine, tenacity, vllm_server):  # noqa: F811
    """The fix mined with --llm: settings, store and the mining report."""
    settings = module_settings(tmp_path_factory.mktemp("mine-history"))
    store = Store(settings.db)
    builder = ImageBuilder(settings, store, engine)
    restater = served(vllm_server, ISSUE)
    try:
        report = TaskValidator(settings, store, engine, builder).mine(
            RepoRef(url=str(tenacity), ref=FIX), max_commits=1, restater=restater)
    finally:
        restater.close()
    return settings, store, report


def test_an_old_fix_is_mined_resolved_by_the_oracle_and_reused_by_a_rerun(mined, engine, tenacity):
    settings, store, report = mined
    assert (report.commits_scanned, report.fix_candidates, report.validated, report.reused) == (1, 1, 1, 0)
    assert report.valid == 1 and report.lost_to_builds == 0, report

    task = store.task(f"tenacity__{FIX[:12]}")
    assert task.base_commit != FIX and task.fail_to_pass == FAIL_TO_PASS
    assert len(task.pass_to_pass) > 50
    assert task.validation["runs_per_state"] == 2 and task.validation["flaky"] == 0
    # each state's first run is kept as its grade: the script (gold patch applied only with the fix) and log
    grades = task.validation["grades"]
    assert "0.patch" in grades["with_fix"]["script"] and "0.patch" not in grades["without_fix"]["script"]
    assert "failed" in grades["without_fix"]["log_tail"] and "passed" in grades["with_fix"]["log_tail"]
    # the served model's rewrite is the statement; forager's test report is kept beside it
    assert task.problem_statement == ISSUE
    assert task.validation["statement"]["by"] == "llm" and task.validation["statement"]["model"] == "tiny-cwm"
    # the report: the subject (it names behaviour), the failing tests, their messages and traceback tails
    statement = report_of(task)
    assert statement.startswith("Preserve function default and kwdefault through retry decorator\n")
    assert all(test in statement for test in FAIL_TO_PASS)
    assert "AssertionError: (1,) != None" in statement and "Traceback (last lines):" in statement
    changed = [path for path in changed_files(task.gold_patch) if path.endswith(".py")]
    files, functions = hidden_names(task.gold_patch, read_files_at(tenacity, task.base_commit, changed))
    assert "tenacity/_asyncio.py" in files and {"wraps", "wrapped_f", "async_wrapped"} <= set(functions)
    for name in [*files, *functions]:
        assert not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", statement), f"the statement names {name}"
    assert task.hints_text.startswith("Preserve function default and kwdefault through retry decorator (#406)")

    # validated in the world of the commit's date, and the task file says so
    image = store.image(task.image_id)
    assert image.spec["as_of"].startswith("2023-") and image.python_version == "3.11"
    record = to_record(task, store.repo(task.repo_id), image.tag, **image_world(image))
    assert (record.as_of, record.python, record.statement_by) == (image.spec["as_of"], "3.11", "llm:tiny-cwm")

    assert evaluate_in_image(engine, settings, image, task, task.gold_patch).resolved

    # mining again: nothing is built and nothing validated (the CLI, with --since)
    updated = task.updated_at
    proc = run_cli("tasks", "mine", "--repo", f"{tenacity}@{FIX}", "--max-commits", "1", "--since", "2023-08-01",
                   "--json", settings=settings, check=True)
    [again] = json.loads(proc.stdout)
    assert (again["validated"], again["reused"], again["valid"], again["since"]) == (0, 1, 1, "2023-08-01")
    assert [t["reused"] for t in again["tasks"]] == [True]
    assert store.task(task.instance_id).updated_at == updated
    assert [i.id for i, _r in store.images()] == [image.id]
    # and a day after the fix leaves it out
    later = json.loads(run_cli("tasks", "mine", "--repo", f"{tenacity}@{FIX}", "--max-commits", "1", "--since",
                               "2023-08-22", "--json", settings=settings, check=True).stdout)
    assert later[0]["commits_scanned"] == 0 and later[0]["tasks"] == []


def test_a_rewrite_naming_the_fix_is_rejected_and_the_report_stays(mined, tenacity, vllm_server):  # noqa: F811
    settings, store, _report = mined
    instance = f"tenacity__{FIX[:12]}"
    report = report_of(store.task(instance))
    naming = served(vllm_server, NAMING)
    try:
        assert restate_stored(store, settings, naming) == []  # already rewritten: only --force does it again
        [row] = restate_stored(store, settings, naming, force=True)
    finally:
        naming.close()
    assert (row.by, row.rejected) == ("tests", "the rewrite names what the fix changes: wrapped_f")
    task = store.task(instance)
    assert task.problem_statement == report
    assert task.validation["statement"] == {"by": "tests", "model": "tiny-cwm", "rejected": row.rejected}

    # the CLI: a model the server does not serve is one line naming what it serves, and nothing changes
    wrong = run_cli("tasks", "restate", "--llm", vllm_server.url, "--model", "gpt-9", settings=settings)
    assert wrong.returncode == 2 and "--model gpt-9:" in wrong.stderr and "tiny-cwm" in wrong.stderr
    assert store.task(instance).updated_at == task.updated_at
    # and the tiny model's own (random) text goes through the same checks, whatever it writes
    done = run_cli("tasks", "restate", "--llm", vllm_server.url, "--model", vllm_server.model, "--json",
                   settings=settings, check=True)
    [again] = json.loads(done.stdout)
    assert again["instance_id"] == instance
    after = store.task(instance)
    assert (after.problem_statement == report) == (again["by"] == "tests")
    assert report_of(after) == report


def test_a_commit_whose_image_did_not_build_is_validated_again_only_with_retry_builds(mined, tenacity):
    """Last in the module: the retried validation replaces the task's verdict and statement, which the tests
    above read. The verdict is written as a failed build would have left it: the rerun policy is what is tested."""
    settings, store, report = mined
    [verdict] = report.tasks
    failed = store.task(verdict.instance_id)
    image_id = failed.image_id
    failed.valid, failed.invalid_reason = False, f"no image at {failed.base_commit[:12]}: install: pip failed"
    store.save_task(failed)

    def rerun(*flags: str) -> dict:
        return json.loads(run_cli("tasks", "mine", "--repo", f"{tenacity}@{FIX}", "--max-commits", "1", *flags,
                                  "--json", settings=settings, check=True).stdout)[0]

    kept = rerun()
    assert (kept["validated"], kept["reused"], kept["valid"], kept["lost_to_builds"]) == (0, 1, 0, 1)
    assert not store.task(verdict.instance_id).valid
    retried = rerun("--retry-builds")
    assert (retried["validated"], retried["reused"], retried["valid"], retried["lost_to_builds"]) == (1, 0, 1, 0)
    again = store.task(verdict.instance_id)
    assert again.valid and again.invalid_reason is None and again.image_id == image_id
