"""Rewards that are right, on real repositories whose install changes a tracked file, and grading no patch can game.

- cachetools (two releases from PyPI, their egg-info tracked as some real repositories do): the editable
  install rewrites `src/cachetools.egg-info/PKG-INFO`.
- iniconfig 2.3.1 (from PyPI) with a commit after the release: setuptools-scm rewrites the tracked
  `src/iniconfig/_version.py` at install; the commit also makes the suite load a module of the package as
  a pytest plugin (`pytest_plugins` in testing/conftest.py), the plugin route of tampering.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from forager.collect import CollectConfig, Collector
from forager.models import RepoRef
from forager.sandbox.container import Sandbox
from forager.sandbox.models import ToolCall
from forager.sdist_repos import git_commit_all, repo_from_sdist, repo_from_sdist_history
from forager.store import Store, Task
from forager.tasks.catalog import to_record
from forager.tasks.evaluate import evaluate_in_image
from forager.tasks.grading import PATCH, START_PATCH, grading_spec, setup_script
from forager.testing.runner import run_suite
from forager.tasks.issues import TaskValidator
from forager.tasks.patches import test_files as files_of_tests
from forager.tasks.records import write_records
from forager.tasks.synthesize import MutateFixSynthesizer

from .conftest import cli_env, module_settings, run_cli

SDIST_CACHE = Path.home() / ".cache" / "forager-tests" / "sdists"
PKG_INFO = "src/cachetools.egg-info/PKG-INFO"
VERSION_FILE = "src/iniconfig/_version.py"
PLUGIN = "src/iniconfig/_pytest_plugin.py"

# A hook that turns every failed report into a pass: the classic way to game a pytest-graded reward.
PASS_EVERYTHING = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.outcome = "passed"
"""
# Code under test that rewrites any JUnit report it can find once pytest is done.
REWRITE_REPORTS = """
import atexit as _atexit
import glob as _glob
import re as _re


def _forge():
    for path in _glob.glob("/tmp/**/*.xml", recursive=True):
        with open(path) as handle:
            text = handle.read()
        text = _re.sub(r"<(failure|error)[^>]*>.*?</(failure|error)>", "", text, flags=_re.S)
        text = _re.sub(r"<(failure|error)[^>]*/>", "", text)
        with open(path, "w") as handle:
            handle.write(text)


_atexit.register(_forge)
"""


def _new_file(path: str, text: str) -> str:
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


def _appended(path: str, old_text: str, addition: str) -> str:
    """A patch appending `addition` to a file whose current text is `old_text`."""
    old, new = old_text.splitlines(), addition.splitlines()
    context = old[-3:]
    start = len(old) - len(context) + 1
    body = "".join(f" {line}\n" for line in context) + "".join(f"+{line}\n" for line in new)
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -{start},{len(context)} +{start},{len(context) + len(new)} @@\n{body}")


def _workers(root: Path, engine):
    from forager.images.pipeline import ImageBuilder

    settings = module_settings(root)
    store = Store(settings.db)
    return settings, store, ImageBuilder(settings, store, engine)


@pytest.fixture(scope="module")
def egg_info(tmp_path_factory, engine):
    root = tmp_path_factory.mktemp("egg-info")
    settings, store, builder = _workers(root, engine)
    repo = repo_from_sdist_history(["cachetools==5.4.0", "cachetools==5.5.0"], root / "cachetools", SDIST_CACHE,
                                   keep_build_outputs=True)
    ref = RepoRef(url=str(repo))
    report = MutateFixSynthesizer(settings, store, engine, builder).synthesize(ref, count=2, seed=0)
    assert report.valid == 2, report
    mined = TaskValidator(settings, store, engine, builder).mine(ref, max_commits=5)
    return settings, store, engine, builder, repo, mined


@pytest.fixture(scope="module")
def version_file(tmp_path_factory, engine):
    root = tmp_path_factory.mktemp("version-file")
    settings, store, builder = _workers(root, engine)
    repo = repo_from_sdist("iniconfig==2.3.1", root / "iniconfig", SDIST_CACHE)
    (repo / PLUGIN).write_text('"""Test support the suite loads as a pytest plugin."""\n\n\n'
                               'def pytest_configure(config):\n'
                               '    config.addinivalue_line("markers", "slow: a slow test")\n')
    conftest = repo / "testing/conftest.py"
    conftest.write_text(conftest.read_text() + '\npytest_plugins = ["iniconfig._pytest_plugin"]\n')
    git_commit_all(repo, "Load the package's test support as a plugin")  # one commit past the release tag
    report = MutateFixSynthesizer(settings, store, engine, builder).synthesize(RepoRef(url=str(repo)), count=1, seed=0)
    assert report.valid == 1, report
    return settings, store, engine, builder, repo


def _tasks(store: Store, kind: str | None = None) -> list[Task]:
    return [task for task, _repo in store.tasks(valid=True, kind=kind)]


def test_the_install_s_changes_to_tracked_files_are_recorded_with_the_image(egg_info, version_file):
    for (_settings, store, *_rest), changed in ((egg_info, PKG_INFO), (version_file, VERSION_FILE)):
        image = store.image(_tasks(store)[0].image_id)
        assert changed in image.changed_tracked["install"], image.changed_tracked
        assert image.changed_tracked["tests"] == []
    settings, store, *_ = version_file
    assert store.image(_tasks(store)[0].image_id).plugin_files == [PLUGIN]
    status = json.loads(run_cli("status", "--json", settings=settings, check=True).stdout)
    assert [image["changed_tracked"]["install"] for image in status["images"]] == [[VERSION_FILE]]


@pytest.mark.parametrize("fixture", ["egg_info", "version_file"])
def test_an_episode_starts_clean_and_the_agent_s_own_edit_of_such_a_file_is_in_its_patch(request, fixture):
    settings, store, engine, *_ = request.getfixturevalue(fixture)
    changed = PKG_INFO if fixture == "egg_info" else VERSION_FILE
    for task in _tasks(store):  # mutate-fix (a bug folded in) and issue-fix (ancestors kept)
        with Sandbox(engine, store.image(task.image_id).tag, repo_path=settings.repo_path) as box:
            box.start(task.bug_patch)
            status = box.execute(ToolCall(name="bash", arguments={"command": "git status --porcelain; git diff HEAD"}))
            assert status.output.strip() == "", (task.instance_id, status.output)
            nothing = box.execute(ToolCall(name="submit", arguments={"path": ""}))
            assert nothing.error and "nothing to submit" in nothing.output
            box.execute(ToolCall(name="bash", arguments={"command": f"echo '# the agent' >> {changed}"}))
            submitted = box.execute(ToolCall(name="submit", arguments={"path": ""}))
            assert not submitted.error, submitted.output
            assert f"+++ b/{changed}" in submitted.patch and submitted.patch.count("diff --git") == 1
            assert "+# the agent" in submitted.patch


def test_the_oracle_resolves_every_valid_task_where_the_install_changed_a_tracked_file(egg_info, version_file):
    for settings, store, engine, *_ in (egg_info, version_file):
        tasks = _tasks(store)
        kinds = {task.kind for task in tasks}
        assert "mutate-fix" in kinds
        collector = Collector(settings, store, engine, CollectConfig(policy="oracle", concurrency=2))
        summary = collector.collect(collector.open_run(tasks), tasks)
        assert summary.resolved == len(tasks), summary
        for episode in store.episodes(summary.run_id):
            assert episode.reward == 1.0 and episode.flags == []
    _settings, _store, *_rest, mined = egg_info
    assert any(verdict.valid for verdict in mined.tasks), mined


def test_mined_tasks_whose_fix_changes_the_rewritten_file_validate_and_import_again(egg_info, tmp_path):
    settings, store, *_ = egg_info
    mined = _tasks(store, "issue-fix")
    assert mined and any(PKG_INFO in task.gold_patch for task in mined)  # a release bumps the version there
    path = tmp_path / "mined.jsonl"
    tags = {task.image_id: store.image(task.image_id).tag for task in mined}
    write_records(path, (to_record(task, store.repo(task.repo_id), tags[task.image_id]) for task in mined))
    fresh = settings.model_copy(update={"db": f"sqlite:///{tmp_path / 'imported.db'}"})
    proc = run_cli("tasks", "import", str(path), "--json", settings=fresh)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(verdict["valid"] for verdict in json.loads(proc.stdout))


# -- grading that a patch cannot game -------------------------------------------------------------


def _grade(env, task: Task, patch: str):
    settings, store, engine, *_ = env
    return evaluate_in_image(engine, settings, store.image(task.image_id), task, patch)


def _mutate_task(env) -> Task:
    return _tasks(env[1], "mutate-fix")[0]


def test_a_conftest_that_passes_every_test_earns_nothing_and_is_flagged(egg_info):
    settings, store, engine, *_ = egg_info
    task = _mutate_task(egg_info)
    for path in ("conftest.py", "tests/conftest.py"):
        tamper = _new_file(path, PASS_EVERYTHING) if path == "conftest.py" else _new_file("tests/conftest.py", PASS_EVERYTHING)
        image = store.image(task.image_id)
        # the route is real: graded without the restore, the hook turns the bug's failures into passes
        files = files_of_tests(task.fail_to_pass)
        spec = grading_spec(task, image, settings)
        ungraded = run_suite(engine, image.tag, spec.env, repo_path=settings.repo_path, timeout=120, test_ids=files,
                             setup=setup_script(START_PATCH, PATCH, None, []), files=spec.staged_files(tamper))
        assert all(ungraded.statuses().get(test) == "passed" for test in task.fail_to_pass), path
        grade = _grade(egg_info, task, tamper)
        assert not grade.resolved and grade.fail_to_pass_passed == 0
        assert grade.flags() == [f"restored {path}"]
        # the grade keeps what ran (the restore of the file among it) and how it ended
        assert f"':(literal){path}'" in grade.script and "pytest" in grade.script
        assert "failed" in grade.log_tail
        # with the real fix beside it, the tampering changes nothing: the patch is graded on its change
        both = _grade(egg_info, task, task.gold_patch + tamper)
        assert both.resolved and both.flags() == [f"restored {path}"]


def test_pytest_configuration_that_loads_a_hook_earns_nothing(egg_info, tmp_path):
    task = _mutate_task(egg_info)
    tamper = _new_file("grader_hook.py", PASS_EVERYTHING) + _new_file("pytest.ini", "[pytest]\naddopts = -p grader_hook\n")
    grade = _grade(egg_info, task, tamper)
    assert not grade.resolved and grade.flags() == ["restored pytest.ini"]
    tox = (egg_info[4] / "tox.ini").read_text()
    tamper = _new_file("grader_hook.py", PASS_EVERYTHING) + _appended("tox.ini", tox, "\n[pytest]\naddopts = -p grader_hook")
    grade = _grade(egg_info, task, tamper)
    assert not grade.resolved and grade.flags() == ["restored tox.ini"]


def test_a_plugin_module_the_suite_loads_is_restored(version_file):
    settings, store, engine, _builder, repo = version_file
    task = _mutate_task(version_file)
    tamper = _appended(PLUGIN, (repo / PLUGIN).read_text(), "\n\n" + PASS_EVERYTHING)
    grade = _grade(version_file, task, tamper)
    assert not grade.resolved and grade.fail_to_pass_passed == 0
    assert grade.flags() == [f"restored {PLUGIN}"]


def test_a_report_rewritten_by_the_code_under_test_is_not_read_and_is_flagged(egg_info):
    _settings, store, *_rest, repo, _mined = egg_info
    task = _mutate_task(egg_info)
    init = "src/cachetools/__init__.py"
    from forager.tasks.patches import changed_files

    # the bug's file changes with the bug; the tamper goes in another module the tests import
    target = next(path for path in ("src/cachetools/keys.py", "src/cachetools/func.py", init)
                  if path not in changed_files(task.bug_patch))
    tamper = _appended(target, (repo / target).read_text(), REWRITE_REPORTS)
    grade = _grade(egg_info, task, tamper)
    assert grade.report_altered and "report altered" in grade.flags()
    assert not grade.resolved and grade.fail_to_pass_passed == 0


def test_a_task_whose_gold_patch_only_tampers_is_invalid(egg_info, tmp_path):
    settings, store, *_rest, repo, _mined = egg_info
    head = store.image(_mutate_task(egg_info).image_id).commit
    instance = {
        "instance_id": "tamper-only", "repo": str(repo), "base_commit": head, "problem_statement": "x",
        "patch": _new_file("conftest.py", PASS_EVERYTHING),
        "test_patch": _new_file("tests/test_always_fails.py", "def test_always_fails():\n    assert False\n"),
        "FAIL_TO_PASS": ["tests/test_always_fails.py::test_always_fails"], "PASS_TO_PASS": [],
    }
    path = tmp_path / "tamper.jsonl"
    path.write_text(json.dumps(instance) + "\n")
    proc = run_cli("tasks", "import", str(path), "--json", settings=settings)
    assert proc.returncode == 1
    (verdict,) = json.loads(proc.stdout)
    assert not verdict["valid"] and "only files that grading restores" in verdict["reason"] and "conftest.py" in verdict["reason"]


def test_an_episode_whose_patch_tampers_is_flagged_in_the_store(egg_info):
    settings, store, engine, *_ = egg_info
    task = _mutate_task(egg_info)
    cheat = Task(**{**task.model_dump(exclude={"id"}), "instance_id": task.instance_id + "-cheat",
                    "gold_patch": _new_file("conftest.py", PASS_EVERYTHING)})
    cheat = store.save_task(cheat)
    collector = Collector(settings, store, engine, CollectConfig(policy="oracle", concurrency=1))
    summary = collector.collect(collector.open_run([cheat]), [cheat])
    (episode,) = store.episodes(summary.run_id)
    assert episode.exit_reason == "submitted" and episode.resolved is False and episode.reward == -1.0
    assert episode.flags == ["restored conftest.py"]


# -- a store graded by the previous release is repaired, not thrown away ---------------------------

PREVIOUS_RELEASE = "dd602ca"  # the last release before start states held the install's changes


def test_a_store_graded_by_the_previous_release_is_regraded(egg_info, tmp_path):
    """The previous release, run for real, grades every oracle episode on this repository "patch does not
    apply"; `forager regrade` (on the store it made, migrated when opened) grades them on their change."""
    settings, _store, _engine, _builder, repo, _mined = egg_info
    old = tmp_path / "previous"
    old.mkdir()
    root = Path(__file__).resolve().parents[2]
    archive = subprocess.run(["git", "-C", str(root), "archive", PREVIOUS_RELEASE, "forager", "images"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    fresh = settings.model_copy(update={"db": f"sqlite:///{tmp_path / 'old.db'}"})
    env = {**cli_env(fresh), "PYTHONPATH": str(old)}

    def old_forager(*args: str) -> subprocess.CompletedProcess:
        # cwd: `python -c` puts the working folder first on sys.path, where this checkout's forager would win
        return subprocess.run([sys.executable, "-c", "import forager.cli; forager.cli.app()", *args], env=env, cwd=old,
                              capture_output=True, text=True, timeout=900)

    version = old_forager("version")
    assert version.returncode == 0 and "forager/__init__" not in version.stderr, version.stderr

    made = old_forager("tasks", "synthesize", "--repo", str(repo), "--count", "1", "--seed", "0")
    assert made.returncode == 0, made.stdout + made.stderr
    collected = old_forager("collect", "--repo", str(repo), "--policy", "oracle", "--tasks", "1", "--json")
    summary = json.loads(collected.stdout[collected.stdout.index("{"):])
    assert summary["episodes"] == 1 and summary["resolved"] == 0, collected.stdout + collected.stderr
    before = Store(fresh.db).episodes()[0]
    assert before.grade["error"].startswith("patch does not apply") and PKG_INFO in before.patch
    mined = old_forager("tasks", "mine", "--repo", str(repo), "--max-commits", "5")
    assert mined.returncode == 0, mined.stdout + mined.stderr  # its release commit changes PKG-INFO too:
    (stale,) = [task for task, _repo in Store(fresh.db).tasks(kind="issue-fix")]
    assert not stale.valid and "does not apply" in stale.invalid_reason

    listed = json.loads(run_cli("regrade", "--dry-run", "--json", settings=fresh, check=True).stdout)
    assert listed["episodes"] == 1 and Store(fresh.db).episodes()[0].reward == -1.0  # a dry run changes nothing
    report = json.loads(run_cli("regrade", "--json", settings=fresh, check=True).stdout)
    after = Store(fresh.db).episodes()[0]
    assert after.grade["applied"] and after.grade["error"] is None and after.flags == ["regraded"]
    # the previous release's diff could also miss a same-size edit made in the second its start state was
    # written (fixed since: see test_sandbox); graded on what it holds, the episode resolves iff the fix is in it
    task = Store(fresh.db).task_by_id(after.task_id)
    fixed = all(line in before.patch for line in task.gold_patch.splitlines() if line.startswith("+ "))
    assert after.resolved is fixed and after.reward == (1.0 if fixed else -1.0), (before.patch, task.gold_patch)
    assert report["episodes"] == 1 and report["episodes_resolved"] == int(fixed), report
    assert Store(fresh.db).steps(after.id)[-1].reward == after.reward
    assert report["tasks"] == 1 and report["tasks_valid"] == 1, report
    assert Store(fresh.db).task(stale.instance_id).valid
    again = json.loads(run_cli("regrade", "--json", settings=fresh, check=True).stdout)
    assert again["episodes"] == 0 and again["tasks"] == 0  # nothing left to repair
