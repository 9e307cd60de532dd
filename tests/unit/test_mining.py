"""Mining's pure parts: which stored tasks a rerun reuses, flaky tests across repeated runs, the verdict on
two runs per state, failure texts for statements, and the history walk's --since filter (a tiny git repo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from forager.models import SuiteRun, TestOutcome, TestStatus
from forager.repos import first_parent_history
from forager.store import Task
from forager.tasks.issues import (
    FAILURES_FILE,
    FAILURES_MODULE,
    FAILURES_PLUGIN,
    _judge_runs,
    failure_texts,
    flaky_tests,
    reusable,
    telling_run,
)


def run(*pairs: tuple[str, str], **extra) -> SuiteRun:
    return SuiteRun(exit_code=0, outcomes=[TestOutcome(test_id=t, status=TestStatus(s)) for t, s in pairs], **extra)


def task(valid: bool, reason: str | None = None) -> Task:
    return Task(instance_id="r__abc", kind="issue-fix", repo_id=1, valid=valid, invalid_reason=reason)


# -- resume -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "reused"),
    [
        (None, False),
        (task(True), True),
        (task(False, "no test fails without the fix and passes with it"), True),
        (task(False, "no image at 0123456789ab: install: pip failed"), True),
        (task(False, "the test patch does not apply (error: patch failed)"), True),
        (task(False, "validation error: DockerException: connection reset"), False),
        (task(False, None), False),  # no verdict recorded: validate it
        (task(False, ""), False),
    ],
)
def test_a_rerun_reuses_stored_verdicts_but_not_machinery_errors(stored, reused):
    assert reusable(stored) is reused


@pytest.mark.parametrize(
    ("stored", "reused"),
    [
        (task(False, "no image at 0123456789ab: install: pip failed"), False),
        (task(False, "no test fails without the fix and passes with it"), True),
        (task(True), True),
        (task(False, "validation error: DockerException: connection reset"), False),
    ],
)
def test_retry_builds_validates_again_only_the_commits_whose_image_did_not_build(stored, reused):
    assert reusable(stored, retry_builds=True) is reused


# -- flaky tests --------------------------------------------------------------------------------


def test_flaky_tests_are_those_whose_status_differs_between_runs_of_one_state():
    first = run(("a", "passed"), ("b", "failed"), ("c", "passed"), ("d", "error"))
    second = run(("a", "passed"), ("b", "passed"), ("d", "error"), ("e", "skipped"))
    assert flaky_tests([first, second]) == {"b", "c", "e"}  # absent in one run counts as a different status
    assert flaky_tests([first]) == set()
    assert flaky_tests([first, first.model_copy()]) == set()


def test_flaky_tests_are_in_neither_list_and_the_rest_stands():
    before = [run(("t::fix", "failed"), ("t::flaky", "failed"), ("t::same", "passed"), ("t::wobbly", "passed")),
              run(("t::fix", "failed"), ("t::flaky", "passed"), ("t::same", "passed"), ("t::wobbly", "passed"))]
    after = [run(("t::fix", "passed"), ("t::flaky", "passed"), ("t::same", "passed"), ("t::wobbly", "passed")),
             run(("t::fix", "passed"), ("t::flaky", "passed"), ("t::same", "passed"), ("t::wobbly", "failed"))]
    flaky = flaky_tests(before) | flaky_tests(after)
    assert flaky == {"t::flaky", "t::wobbly"}
    verdict = _judge_runs(before, after, None, None, flaky)
    assert verdict.valid, verdict.reason
    assert verdict.fail_to_pass == ["t::fix"] and verdict.pass_to_pass == ["t::same"]


def test_a_task_whose_only_fixed_test_is_flaky_is_invalid_and_says_so():
    before = [run(("t::x", "failed")), run(("t::x", "passed"))]
    after = [run(("t::x", "passed")), run(("t::x", "passed"))]
    verdict = _judge_runs(before, after, None, None, flaky_tests(before) | flaky_tests(after))
    assert not verdict.valid
    assert verdict.reason == "no test fails without the fix and passes with it (1 flaky test left out)"


def test_given_lists_must_hold_in_every_run():
    before = [run(("t::x", "failed")), run(("t::x", "passed"))]
    after = [run(("t::x", "passed")), run(("t::x", "passed"))]
    verdict = _judge_runs(before, after, ["t::x"], [], {"t::x"})
    assert not verdict.valid
    assert verdict.reason == "run 2 of each state disagrees: FAIL_TO_PASS tests pass without the fix: t::x"


def test_a_second_run_that_times_out_is_the_one_judged():
    ok, slow = run(("t::x", "passed")), run(("t::x", "passed"), timed_out=True)
    assert telling_run([ok, slow]) is slow and telling_run([ok, ok]) is ok
    verdict = _judge_runs([run(("t::x", "failed")), run(("t::x", "failed"))], [ok, slow], None, None, set())
    assert not verdict.valid and verdict.reason == "tests time out with the fix"


# -- failure texts ------------------------------------------------------------------------------


def test_failure_texts_join_junit_messages_and_the_plugins_tracebacks():
    outcomes = [TestOutcome(test_id="tests/test_a.py::test_x", status=TestStatus.failed, message="assert 1 == 2")]
    tracebacks = {"tests/test_a.py::test_x": ">  assert f() == 2\nE  assert 1 == 2",
                  "tests/test_b.py": "ImportError: cannot import name 'thing'"}
    without_fix = SuiteRun(exit_code=1, outcomes=outcomes, files={FAILURES_FILE: json.dumps(tracebacks).encode()})
    assert failure_texts(without_fix, ["tests/test_a.py::test_x", "tests/test_b.py::test_y", "tests/test_c.py::test_z"]) == [
        ("tests/test_a.py::test_x", "assert 1 == 2", ">  assert f() == 2\nE  assert 1 == 2"),
        ("tests/test_b.py::test_y", "not run: its module could not be collected", "ImportError: cannot import name 'thing'"),
        ("tests/test_c.py::test_z", "not reported by the run", ""),
    ]


def test_failure_texts_without_the_plugins_file_or_with_a_broken_one():
    outcomes = [TestOutcome(test_id="t.py::x", status=TestStatus.error, message="boom")]
    assert failure_texts(SuiteRun(exit_code=1, outcomes=outcomes), ["t.py::x"]) == [("t.py::x", "boom", "")]
    broken = SuiteRun(exit_code=1, outcomes=outcomes, files={FAILURES_FILE: b"{not json"})
    assert failure_texts(broken, ["t.py::x"]) == [("t.py::x", "boom", "")]


def test_the_failures_plugin_keeps_each_failing_tests_traceback(tmp_path):
    plugin_dir, out, suite = tmp_path / "plugin", tmp_path / "out", tmp_path / "suite"
    for folder in (plugin_dir, out, suite):
        folder.mkdir()
    (plugin_dir / f"{FAILURES_MODULE}.py").write_text(FAILURES_PLUGIN)
    (suite / "test_a.py").write_text("def helper():\n    return 1\n\n\ndef test_ok():\n    pass\n\n\n"
                                     "def test_bad():\n    assert helper() == 2, 'helper is off'\n")
    (suite / "test_b.py").write_text("from nowhere import thing\n")
    env = {**os.environ, "PYTHONPATH": str(plugin_dir), "FORAGER_OUT_DIR": str(out)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", FAILURES_MODULE, "-p", "no:cacheprovider",
                    "--continue-on-collection-errors", str(suite)], cwd=suite, env=env, capture_output=True)
    kept = json.loads((out / FAILURES_FILE).read_text())
    assert sorted(kept) == ["test_a.py::test_bad", "test_b.py"]
    assert "AssertionError: helper is off" in kept["test_a.py::test_bad"]
    assert "No module named 'nowhere'" in kept["test_b.py"]


# -- --since ------------------------------------------------------------------------------------


def _commit(repo, day: str, name: str) -> None:
    (repo / f"{name}.txt").write_text(name)
    stamp = f"{day}T12:00:00+00:00"
    env = {**os.environ, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", name], check=True, env=env)


def test_since_keeps_the_commits_committed_on_or_after_that_day(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for day, name in [("2021-01-01", "root"), ("2021-05-31", "old"), ("2021-06-01", "on"), ("2022-01-02", "new")]:
        _commit(repo, day, name)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    every = first_parent_history(repo, head, 10)
    assert [c.message for c in every] == ["new", "on", "old"]  # the root has no parent
    since = first_parent_history(repo, head, 10, since=date(2021, 6, 1))
    assert [c.message for c in since] == ["new", "on"]
    assert [c.files for c in since] == [["new.txt"], ["on.txt"]]
    assert first_parent_history(repo, head, 1, since=date(2021, 6, 1))[0].message == "new"
    assert first_parent_history(repo, head, 10, since=date(2023, 1, 1)) == []


def test_a_merge_on_the_first_parent_line_is_the_change_it_brought(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    _commit(repo, "2022-01-01", "root")
    _commit(repo, "2022-01-02", "base")
    subprocess.run(["git", "-C", str(repo), "checkout", "-qb", "topic", "HEAD~1"], check=True)
    _commit(repo, "2022-01-03", "fix")
    _commit(repo, "2022-01-04", "test")
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "GIT_COMMITTER_DATE": "2022-01-05T12:00:00+00:00"}
    subprocess.run(["git", "-C", str(repo), "merge", "-q", "--no-ff", "-m", "Merge pull request #1", "topic"],
                   check=True, env=env)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD", "HEAD^1"], check=True, capture_output=True,
                          text=True).stdout.split()
    merge, *older = first_parent_history(repo, head[0], 10)
    assert (merge.sha, merge.parent, merge.message) == (head[0], head[1], "Merge pull request #1")
    assert sorted(merge.files) == ["fix.txt", "test.txt"]
    assert [c.message for c in older] == ["base"]  # the branch's own commits are not on the first-parent line
