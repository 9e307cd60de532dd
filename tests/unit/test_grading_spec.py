"""The grading spec: one value per task and image from which the grading shell is rendered (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from forager.config import Settings
from forager.models import EnvSpec, SuiteRun, TestOutcome, TestStatus
from forager.store.tables import Image, Task
from forager.tasks.evaluate import LOG_TAIL_CHARS, grade
from forager.tasks.grading import PATCH_DIR, grading_spec, suite_grading

BUG = "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
FIX = "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-x = 2\n+x = 1\n"
TAMPER = "--- /dev/null\n+++ b/conftest.py\n@@ -0,0 +1 @@\n+import os\n"
TESTS = "--- a/tests/test_new.py\n+++ b/tests/test_new.py\n@@ -1 +1 @@\n-a\n+b\n"
F2P = ["tests/test_calc.py::test_one", "tests/test_calc.py::test_two[a::b]"]
P2P = ["tests/test_other.py::test_keep"]


def _image(**fields) -> Image:
    spec = EnvSpec(python="3.11", test_command=["python", "-m", "pytest"]).model_dump(mode="json")
    return Image(id=1, repo_id=1, tag="forager-env/calc:abc", spec=spec, validate_seconds=20.0,
                 plugin_files=["tests/plugin_mod.py"], **fields)


def _task(**fields) -> Task:
    fields = {"bug_patch": BUG, **fields}
    return Task(instance_id="calc__1", kind="mutate-fix", repo_id=1, gold_patch=FIX, fail_to_pass=F2P,
                pass_to_pass=P2P, **fields)


def test_a_task_in_its_image_is_one_value():
    settings = Settings(test_timeout=900, test_case_timeout=60, validation_runs=2)
    spec = grading_spec(_task(), _image(), settings)
    assert (spec.instance_id, spec.image_tag, spec.env.python) == ("calc__1", "forager-env/calc:abc", "3.11")
    assert spec.tests == ["tests/test_calc.py", "tests/test_other.py"]  # the files of F2P and P2P
    assert (spec.timeout, spec.case_timeout) == (45, 60)  # 3 x the baseline run (20 s / 2 runs) + 15, at least 30
    assert spec.plugin_files == ["tests/plugin_mod.py"]
    assert spec == grading_spec(_task(), _image(), settings)  # same inputs, same value
    with pytest.raises(ValidationError):
        spec.timeout = 1  # frozen: what graded one episode grades the next


def test_the_setup_restores_what_the_patch_touched_of_the_graded_ground():
    spec = grading_spec(_task(test_patch=TESTS), _image(), Settings())
    assert spec.restored(FIX + TAMPER) == ["conftest.py"]
    assert spec.restore(FIX + TAMPER) == ["tests/test_calc.py", "tests/test_other.py", "conftest.py",
                                          "tests/test_new.py"]
    script = spec.setup(FIX + TAMPER)
    assert script.index("start.patch") < script.index("start=$(git write-tree)") < script.index("0.patch")
    assert script.index("0.patch") < script.index("':(literal)conftest.py'") < script.index("tests.patch")
    assert set(spec.staged_files(FIX + TAMPER)) == {f"{PATCH_DIR}/start.patch", f"{PATCH_DIR}/0.patch",
                                                     f"{PATCH_DIR}/tests.patch"}


def test_blank_patches_are_neither_staged_nor_applied():
    spec = grading_spec(_task(bug_patch=""), _image(), Settings())
    assert spec.staged_files("  \n") == {}
    script = spec.setup("")
    assert "git apply" not in script and "start=$(git write-tree)" in script


def test_the_suite_of_an_image_has_no_task():
    spec = suite_grading(_image(), Settings())
    assert (spec.tests, spec.start_patch, spec.fail_to_pass) == (None, "", [])
    bugged = spec.model_copy(update={"start_patch": BUG, "tests": F2P})
    assert bugged.restore("") == ["tests/test_calc.py"]  # node ids name their file, never a path with "::"


def test_a_grade_keeps_its_script_and_the_end_of_its_log():
    run = SuiteRun(exit_code=1, script="cd /testbed && pytest", log_tail="x" * 5000 + "1 failed",
                   outcomes=[TestOutcome(test_id=F2P[0], status=TestStatus.failed)])
    kept = grade(run, F2P[:1], [])
    assert kept.script == "cd /testbed && pytest"
    assert len(kept.log_tail) == LOG_TAIL_CHARS and kept.log_tail.endswith("1 failed")
    failed_setup = grade(SuiteRun(exit_code=None, setup_error="error: patch failed: calc.py:1", script="s"), F2P, [])
    assert (failed_setup.applied, failed_setup.log_tail, failed_setup.script) == (
        False, "error: patch failed: calc.py:1", "s")
