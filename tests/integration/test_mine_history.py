"""Mining real history at an old commit: tenacity's fix of August 2023 (#406, "Preserve function default and
kwdefault through retry decorator"), from the corpus bundle.

The image of its parent is built as of the commit's date; the task is validated with two runs of each state,
its statement reports the tests that fail without the fix (never the changed file or function), the commit
message is kept as hints, and its record carries the cut-off and the Python it was validated with. The oracle
resolves it, and mining again reuses it: no build and no validation.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from forager.build.pipeline import ImageBuilder
from forager.models import RepoRef
from forager.repos import read_files_at
from forager.store import Store
from forager.tasks.catalog import image_world, to_record
from forager.tasks.evaluate import evaluate_in_image
from forager.tasks.issues import TaskValidator
from forager.tasks.patches import changed_files
from forager.tasks.statement import hidden_names

from .conftest import module_settings, run_cli

CORPUS = Path(__file__).parents[2] / ".." / "shared" / "corpus"
FIX = "310058274ed22a345e9c3917c97b4afd6363d5a5"  # committed 2023-08-21, on tenacity's first-parent line
FAIL_TO_PASS = [
    "tests/test_asyncio.py::TestAsync::test_retry_preserves_argument_defaults",
    "tests/test_tenacity.py::TestDecoratorWrapper::test_retry_preserves_argument_defaults",
]


@pytest.fixture(scope="module")
def tenacity(tmp_path_factory) -> Path:
    bundle = CORPUS / "tenacity.bundle"
    if not bundle.is_file():
        pytest.fail(f"the corpus bundle {bundle.resolve()} is missing: these tests need ../shared/corpus next to the "
                    "repository (git bundles of public repositories; see its README)")
    dest = tmp_path_factory.mktemp("corpus") / "tenacity"
    subprocess.run(["git", "clone", "--quiet", str(bundle), str(dest)], check=True)
    return dest


def test_an_old_fix_is_mined_resolved_by_the_oracle_and_reused_by_a_rerun(tmp_path, engine, tenacity, monkeypatch):
    settings = module_settings(tmp_path)
    store = Store(settings.db)
    builder = ImageBuilder(settings, store, engine)
    report = TaskValidator(settings, store, engine, builder).mine(RepoRef(url=str(tenacity), ref=FIX), max_commits=1)
    assert (report.commits_scanned, report.fix_candidates, report.validated, report.reused) == (1, 1, 1, 0)
    assert report.valid == 1 and report.lost_to_builds == 0, report

    task = store.task(f"tenacity__{FIX[:12]}")
    assert task.base_commit != FIX and task.fail_to_pass == FAIL_TO_PASS
    assert len(task.pass_to_pass) > 50
    assert task.validation["runs_per_state"] == 2 and task.validation["flaky"] == 0
    # the statement: the subject (it names behaviour), the failing tests, their messages and traceback tails
    statement = task.problem_statement
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
    assert (record.as_of, record.python) == (image.spec["as_of"], "3.11")

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
