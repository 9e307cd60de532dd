"""The pure parts of right rewards: which files pytest loads as plugins, what a build recorded as changed, how a
report is read, when a failed grade is forager's fault, and the reward that follows."""

from __future__ import annotations

import pytest

from forager.agent.loop import ExitReason
from forager.images.pipeline import changed_tracked
from forager.collect import episode_reward, graded_exit
from forager.envspec import plugin_files
from forager.models import EnvSpec, RepoTree, SuiteRun
from forager.repos import CHANGED_PREFIX, changed_in_check
from forager.tasks.evaluate import Grade
from forager.tasks.patches import touched_files
from forager.testing.runner import RunPaths, read_report, suite_script


def tree(files: dict[str, str], other: tuple[str, ...] = ()) -> RepoTree:
    return RepoTree(paths=sorted({*files, *other}), files=files)


def test_plugin_files_from_addopts_and_pytest_plugins_resolve_to_tracked_modules():
    found = plugin_files(tree(
        {"pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p pkg.testing_support -pno:cacheprovider -p xdist"\n',
         "tests/conftest.py": 'pytest_plugins = ["helpers.fixtures", "pytest_asyncio"]\n',
         "src/app/conftest.py": "pytest_plugins = 'app.plugin'\n"},
        other=("src/pkg/testing_support.py", "tests/helpers/fixtures/__init__.py", "src/app/plugin.py", "src/app/core.py")))
    assert found == ["src/app/plugin.py", "src/pkg/testing_support.py", "tests/helpers/fixtures/__init__.py"]


def test_plugin_files_none_for_third_party_plugins_only():
    assert plugin_files(tree({"setup.cfg": "[tool:pytest]\naddopts = -p pytest_cov\n",
                              "conftest.py": "pytest_plugins = ['pytester']\n"}, other=("pkg/a.py",))) == []


def test_install_changes_are_read_from_the_history_check_and_baseline_changes_kept_apart():
    output = f"history-ok\n{CHANGED_PREFIX}src/a.egg-info/SOURCES.txt\n{CHANGED_PREFIX}src/a/_version.py\nnoise\n"
    install = changed_in_check(output)
    assert install == ["src/a.egg-info/SOURCES.txt", "src/a/_version.py"]
    runs = [SuiteRun(exit_code=0, changed_tracked=["tests/data/out.json", "src/a/_version.py"]),
            SuiteRun(exit_code=0, changed_tracked=["tests/data/out.json"])]
    assert changed_tracked(install, runs) == {"install": sorted(install), "tests": ["tests/data/out.json"]}


def test_each_run_writes_its_report_where_nothing_could_know_beforehand():
    first, second = RunPaths.fresh(), RunPaths.fresh()
    assert len({first.out_dir, second.out_dir}) == 2 and len({first.report, second.report}) == 2
    script = suite_script(EnvSpec(python="3.11"), "/testbed", 60, paths=first)
    assert f"--junitxml={first.out_dir}/{first.report}" in script and "/tmp/forager-out/" not in script
    assert repr(f"{first.out_dir}/{first.seal}") in script  # the plugin's copy goes to the seal
    assert "FORAGER_OUT_DIR" not in script  # only runs with plugins of forager's own learn the folder
    assert "FORAGER_OUT_DIR" in suite_script(EnvSpec(python="3.11"), "/testbed", 60, plugins=["x"], paths=first)


def test_the_report_read_is_pytest_s_own_copy_and_a_changed_one_is_noticed():
    paths = RunPaths.fresh()
    assert read_report({paths.report: b"<a/>", paths.seal: b"<a/>"}, paths) == (b"<a/>", False)
    assert read_report({paths.report: b"<forged/>", paths.seal: b"<a/>"}, paths) == (b"<a/>", True)
    assert read_report({paths.report: b"<a/>"}, paths) == (b"<a/>", False)  # killed before its last hook
    assert read_report({}, paths) == (None, False)


@pytest.mark.parametrize("applied, from_file, ours", [(False, False, True), (False, True, False), (True, False, False)])
def test_a_diff_forager_made_that_does_not_apply_is_forager_s_failure(applied, from_file, ours):
    reason, error = graded_exit(Grade(applied=applied, error="patch does not apply: x"), from_file)
    assert (reason == ExitReason.env_error) is ours
    assert (error is not None and "forager's diff" in error) is ours


def test_no_reward_when_the_environment_failed():
    assert episode_reward(ExitReason.env_error, False, -1.0) is None
    assert episode_reward(ExitReason.submitted, True, -1.0) == 1.0
    assert episode_reward(ExitReason.submitted, False, -1.0) == -1.0
    assert episode_reward(ExitReason.max_turns, False, 0.0) == 0.0


def test_grade_flags_name_what_was_restored_and_an_altered_report():
    grade = Grade(applied=True, restored=["conftest.py", "tox.ini"], report_altered=True)
    assert grade.flags() == ["restored conftest.py", "restored tox.ini", "report altered"]
    assert Grade(applied=True).flags() == []


def test_touched_files_names_both_sides_of_a_rename_and_deletions():
    diff = ("diff --git a/tests/conftest.py b/helpers.py\nsimilarity index 100%\nrename from tests/conftest.py\n"
            "rename to helpers.py\n"
            "diff --git a/gone.py b/gone.py\ndeleted file mode 100644\nindex 1111111..0000000\n--- a/gone.py\n"
            "+++ /dev/null\n@@ -1 +0,0 @@\n-x\n")
    assert touched_files(diff) == ["helpers.py", "tests/conftest.py", "gone.py"]


def test_which_failures_another_resolution_may_fix():
    from forager.images.pipeline import _other_resolution_may_help
    from forager.models import FailureCategory, ForagerError

    as_of, today = EnvSpec(python="3.11", as_of="2021-06-01", resolver="uv"), EnvSpec(python="3.11")
    install = ForagerError(FailureCategory.install, "greenlet did not build")
    tests = ForagerError(FailureCategory.tests_error, "no test passed")
    silent = SuiteRun(exit_code=1, log_tail="AttributeError: __spec__")
    failing = SuiteRun(exit_code=1, outcomes=[{"test_id": "t.py::a", "status": "failed"}])
    assert _other_resolution_may_help(as_of, install, None)
    assert _other_resolution_may_help(as_of, tests, silent)  # an old pytest on a newer Python
    assert not _other_resolution_may_help(as_of, tests, failing)  # tests ran and failed: not the resolution
    drift = SuiteRun(exit_code=4, log_tail="E   ImportError: cannot import name 'url_quote' from 'werkzeug.urls'")
    assert _other_resolution_may_help(today, tests, drift)
    assert not _other_resolution_may_help(today, install, None) and not _other_resolution_may_help(today, tests, silent)


def test_a_patch_from_history_that_clashes_with_the_install_says_which_file():
    from forager.store import Image, Task
    from forager.tasks.issues import _with_install_conflict

    image = Image(repo_id=1, changed_tracked={"install": ["src/a.egg-info/SOURCES.txt"], "tests": []})
    gold = ("diff --git a/src/a.egg-info/SOURCES.txt b/src/a.egg-info/SOURCES.txt\n--- a/src/a.egg-info/SOURCES.txt\n"
            "+++ b/src/a.egg-info/SOURCES.txt\n@@ -1 +1,2 @@\n src/a/__init__.py\n+src/a/new.py\n")
    reason = _with_install_conflict("the fix or the test patch does not apply (error: ...)",
                                    Task(instance_id="x", kind="issue-fix", repo_id=1, gold_patch=gold), image)
    assert "src/a.egg-info/SOURCES.txt, which the image's install rewrote" in reason
    untouched = Task(instance_id="y", kind="issue-fix", repo_id=1, gold_patch=gold.replace("egg-info", "dist"))
    assert _with_install_conflict("does not apply", untouched, image) == "does not apply"


def test_an_imported_instance_is_built_as_of_its_created_at():
    from forager.store import Task
    from forager.tasks.issues import _instance_cutoff

    imported = Task(instance_id="a__1", kind="issue-fix", repo_id=1, source="import swe.jsonl",
                    instance_created_at="2021-03-04T12:00:00Z")
    assert _instance_cutoff(imported, "commit") == "2021-03-04"
    assert _instance_cutoff(imported, "latest") is None and _instance_cutoff(imported, "2020-01-01") is None
    mined = imported.model_copy(update={"source": "mine abc"})
    assert _instance_cutoff(mined, "commit") is None
    assert _instance_cutoff(imported.model_copy(update={"instance_created_at": "soon"}), "commit") is None
