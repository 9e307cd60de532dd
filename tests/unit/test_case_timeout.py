"""The per-test time limit of suite runs and the rerun without a test that took a run down: the script, the
plugin in a real pytest process, and the pure parts (which test was running, the merged run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forager.engine.docker_engine import RunResult
from forager.config import Settings
from forager.models import EnvSpec, SuiteRun, TestOutcome, TestStatus
from forager.testing.junit import parse_junit
from forager.testing.runner import (
    GUARD_MODULE,
    GUARD_PLUGIN,
    RUNNING_PREFIX,
    TAKEN_DOWN,
    RunPaths,
    run_suite,
    stalled_test,
    suite_script,
    taken_down_by,
    without_stalled,
)

SPEC = EnvSpec(python="3.11")
PROJECT = {
    "test_a.py": (
        "import os\nimport time\n\nimport pytest\n\n\n"
        "def test_ok():\n    pass\n\n\n"
        "def test_hang():\n    time.sleep(10**6)\n\n\n"
        "@pytest.fixture\ndef stuck():\n    time.sleep(10**6)\n\n\n"
        "def test_hang_in_setup(stuck):\n    pass\n\n\n"
        "def test_x():\n    pass\n\n\n"
        "def test_x2():\n    pass\n\n\n"
        "@pytest.mark.parametrize('n', [1, 10])\ndef test_p(n):\n    pass\n\n\n"
        "def test_dies():\n    if os.environ.get('DIE'):\n        os._exit(3)\n"
    ),
}


def outcome(test_id: str, status: str = "passed", message: str = "") -> TestOutcome:
    return TestOutcome(test_id=test_id, status=status, message=message)


# --- the script ---------------------------------------------------------------------------------------------

def test_no_limit_loads_no_guard():
    script = suite_script(SPEC, "/testbed", 60, paths=RunPaths.fresh())
    assert GUARD_MODULE not in script


def test_a_limit_writes_and_loads_the_guard_without_naming_the_folder_in_the_environment():
    paths = RunPaths.fresh()
    script = suite_script(SPEC, "/testbed", 900, paths=paths, case_timeout=5, skip=["t.py::test_b", "t.py::test_a"])
    assert f"-p {GUARD_MODULE}" in script
    assert f"cat > /tmp/forager-plugin/{GUARD_MODULE}.py <<'EOF'" in script
    assert "LIMIT = 5.0" in script
    assert f"RUNNING = {repr(paths.out_dir + '/' + RUNNING_PREFIX)}" in script
    assert "SKIP = frozenset(['t.py::test_a', 't.py::test_b'])" in script
    assert "FORAGER_OUT_DIR" not in script  # graded runs still learn no output folder from their environment
    assert "timeout -k 10 900 " in script  # the suite's own deadline stays


def test_the_plugin_source_compiles_with_awkward_ids():
    source = GUARD_PLUGIN.format(limit=2.0, running="/tmp/x/running-", skip=["t.py::test[a'b\"c\\n]", "EOF"])
    compile(source, GUARD_MODULE, "exec")


# --- the plugin in a real pytest process ---------------------------------------------------------------------

def run_pytest(tmp_path: Path, limit: float, skip=(), env: dict[str, str] | None = None, args=()) -> tuple[
        subprocess.CompletedProcess, Path, Path]:
    project, plugins, out = tmp_path / "project", tmp_path / "plugins", tmp_path / "out"
    for folder in (project, plugins, out):
        folder.mkdir(exist_ok=True)
    for name, text in PROJECT.items():
        (project / name).write_text(text)
    (plugins / f"{GUARD_MODULE}.py").write_text(
        GUARD_PLUGIN.format(limit=float(limit), running=f"{out}/{RUNNING_PREFIX}", skip=sorted(skip)))
    report = out / "report.xml"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", GUARD_MODULE, "-p", "no:cacheprovider", "-q", "-rN",
         "-o", "junit_family=xunit1", f"--junitxml={report}", *args],
        cwd=project, env={**clean, "PYTHONPATH": str(plugins), **(env or {})},
        capture_output=True, text=True, timeout=120, check=False,
    )
    return proc, report, out


def collected(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in out.iterdir()}


def test_a_hanging_test_fails_alone_with_the_limit_in_its_message(tmp_path):
    started = time.monotonic()
    proc, report, out = run_pytest(tmp_path, limit=1, args=["-p", "no:timeout"])
    assert time.monotonic() - started < 60, "the hanging tests were not stopped"
    outcomes = {o.test_id: o for o in parse_junit(report.read_bytes())}
    assert outcomes["test_a.py::test_hang"].status == "failed", proc.stdout
    assert "Timeout (>1s)" in outcomes["test_a.py::test_hang"].message
    assert "per-test time limit" in outcomes["test_a.py::test_hang"].message
    assert outcomes["test_a.py::test_hang_in_setup"].status == "error"  # a fixture that never returns
    assert "Timeout (>1s)" in outcomes["test_a.py::test_hang_in_setup"].message
    passed = {t for t, o in outcomes.items() if o.status == "passed"}
    assert passed == {"test_a.py::test_ok", "test_a.py::test_x", "test_a.py::test_x2", "test_a.py::test_p[1]",
                      "test_a.py::test_p[10]", "test_a.py::test_dies"}
    assert stalled_test(collected(out)) is None  # every test ended


def test_skip_leaves_out_exact_ids_only(tmp_path):
    proc, report, _out = run_pytest(
        tmp_path, limit=30, skip=["test_a.py::test_x", "test_a.py::test_p[1]", "test_a.py::test_hang",
                                  "test_a.py::test_hang_in_setup"])
    ids = {o.test_id for o in parse_junit(report.read_bytes())}
    assert ids == {"test_a.py::test_ok", "test_a.py::test_x2", "test_a.py::test_p[10]", "test_a.py::test_dies"}
    assert "4 deselected" in proc.stdout


def test_a_test_that_kills_pytest_is_named_by_the_file_it_leaves(tmp_path):
    proc, report, out = run_pytest(tmp_path, limit=30, env={"DIE": "1"},
                                   skip=["test_a.py::test_hang", "test_a.py::test_hang_in_setup"])
    assert proc.returncode == 3 and not report.exists()
    assert stalled_test(collected(out)) == "test_a.py::test_dies"


def test_a_project_s_own_pytest_timeout_still_loads_beside_the_guard(tmp_path):
    pytest.importorskip("pytest_timeout")  # installed with forager's test extra: it loads through its entry point
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "pytest.ini").write_text("[pytest]\ntimeout = 0.5\n")
    proc, report, _out = run_pytest(tmp_path, limit=30, skip=["test_a.py::test_hang_in_setup"])
    hang = {o.test_id: o for o in parse_junit(report.read_bytes())}["test_a.py::test_hang"]
    assert hang.status == "failed" and "from pytest-timeout" in hang.message, proc.stdout + proc.stderr


# --- the pure parts ------------------------------------------------------------------------------------------

def test_stalled_test_is_the_earliest_one_still_running():
    files = {
        f"{RUNNING_PREFIX}11": b"",  # its test ended
        f"{RUNNING_PREFIX}12": b"1700000050.5\ntests/test_b.py::test_late",
        f"{RUNNING_PREFIX}13": b"1700000010.25\ntests/test_a.py::test_held[x y]",
        "log.txt": b"1\nnot a progress file",
    }
    assert stalled_test(files) == "tests/test_a.py::test_held[x y]"
    assert stalled_test({f"{RUNNING_PREFIX}1": b"", "exit_code": b"0"}) is None
    assert stalled_test({}) is None


def test_taken_down_only_when_a_test_was_running_and_no_results_came_back():
    assert taken_down_by(SuiteRun(exit_code=124, timed_out=True), "t.py::a")
    assert taken_down_by(SuiteRun(exit_code=3), "t.py::a")  # the process died without a report
    assert not taken_down_by(SuiteRun(exit_code=124, timed_out=True), None)  # hung outside any test
    assert not taken_down_by(SuiteRun(exit_code=1, outcomes=[outcome("t.py::b")]), "t.py::a")  # xdist reported it
    assert not taken_down_by(SuiteRun(exit_code=None, setup_error="patch does not apply"), "t.py::a")


def test_the_merged_run_has_the_rerun_s_results_and_the_culprit_failed_with_its_reason():
    first = SuiteRun(exit_code=124, timed_out=True, seconds=900, log_tail="stuck", changed_tracked=["a.txt"])
    rerun = SuiteRun(exit_code=1, seconds=3, outcomes=[outcome("t.py::ok"), outcome("t.py::bad", "failed", "boom")],
                     log_tail="1 failed, 1 passed", changed_tracked=["b.txt", "a.txt"], report_altered=True)
    merged = without_stalled(first, rerun, "t.py::hang")
    assert not merged.timed_out and merged.exit_code == 1 and merged.seconds == 903
    assert merged.statuses() == {"t.py::ok": "passed", "t.py::bad": "failed", "t.py::hang": "failed"}
    message = merged.outcomes[-1].message
    assert message.startswith(TAKEN_DOWN) and "time limit" in message
    assert merged.report_altered and merged.changed_tracked == ["a.txt", "b.txt"]
    assert merged.log_tail.startswith("1 failed, 1 passed") and f"t.py::hang {TAKEN_DOWN}" in merged.log_tail

    died = without_stalled(SuiteRun(exit_code=3), rerun, "t.py::dies")
    assert "pytest exited 3" in died.outcomes[-1].message


def test_a_rerun_that_goes_down_too_stays_timed_out_with_both_culprits_failed():
    first = SuiteRun(exit_code=124, timed_out=True)
    rerun = SuiteRun(exit_code=124, timed_out=True)
    merged = without_stalled(first, rerun, "t.py::one", "t.py::two")
    assert merged.timed_out
    assert merged.statuses() == {"t.py::one": "failed", "t.py::two": "failed"}
    assert "in the rerun without t.py::one" in merged.outcomes[1].message


# --- run_suite with a stand-in engine ------------------------------------------------------------------------

XML = ('<testsuites><testsuite name="pytest">'
       '<testcase classname="t" name="test_ok" file="t.py" time="0.1"/>'
       '<testcase classname="t" name="test_after" file="t.py" time="0.1"/>'
       '</testsuite></testsuites>')


class FakeEngine:
    """Answers each container run from a list: (exit code, the test left running or None, whether a report)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.scripts: list[str] = []

    def run(self, image, command, *, timeout, environment=None, collect=None, labels=None, files=None, network=False):
        script = command[-1]
        self.scripts.append(script)
        code, running, reported = self.answers.pop(0)
        report = re.search(r"--junitxml=\S+/([0-9a-f]+\.xml)", script).group(1)
        out = {"exit_code": f"{code}\n".encode(), "log.txt": b"log", f"{RUNNING_PREFIX}7": b""}
        if running:
            out[f"{RUNNING_PREFIX}8"] = f"{time.time()!r}\n{running}".encode()
        if reported:
            out[report] = XML.encode()
        return RunResult(exit_code=0, timed_out=False, output="", files=out)


def test_run_suite_reruns_once_without_the_test_that_held_the_run():
    engine = FakeEngine([(124, "t.py::test_hang", False), (0, None, True)])
    run = run_suite(engine, "img", SPEC, repo_path="/testbed", timeout=30, case_timeout=5)
    assert len(engine.scripts) == 2
    assert "SKIP = frozenset([])" in engine.scripts[0]
    assert "SKIP = frozenset(['t.py::test_hang'])" in engine.scripts[1]
    assert not run.timed_out
    assert run.statuses() == {"t.py::test_ok": "passed", "t.py::test_after": "passed", "t.py::test_hang": "failed"}
    assert not any(name.startswith(RUNNING_PREFIX) for name in run.files)


def test_run_suite_reruns_at_most_once():
    engine = FakeEngine([(124, "t.py::one", False), (124, "t.py::two", False)])
    run = run_suite(engine, "img", SPEC, repo_path="/testbed", timeout=30, case_timeout=5)
    assert len(engine.scripts) == 2 and run.timed_out
    assert run.statuses() == {"t.py::one": "failed", "t.py::two": "failed"}


def test_run_suite_without_a_limit_runs_once_as_before():
    engine = FakeEngine([(124, "t.py::test_hang", False)])
    run = run_suite(engine, "img", SPEC, repo_path="/testbed", timeout=30)
    assert len(engine.scripts) == 1 and run.timed_out and run.outcomes == []
    assert GUARD_MODULE not in engine.scripts[0]


def test_the_setting_defaults_to_a_minute_and_reads_its_environment_variable(monkeypatch):
    monkeypatch.delenv("FORAGER_TEST_CASE_TIMEOUT", raising=False)
    assert Settings().test_case_timeout == 60
    monkeypatch.setenv("FORAGER_TEST_CASE_TIMEOUT", "0")
    assert Settings().test_case_timeout == 0
