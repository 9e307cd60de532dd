"""Run a repository's test suite in a fresh container and read per-test results from JUnit XML."""

from __future__ import annotations

import secrets
import shlex
import time

from pydantic import BaseModel

from forager.engine.docker_engine import Engine

from forager.engine.processes import tail
from forager.models import EnvSpec, SuiteRun, TestOutcome, TestStatus
from forager.testing.junit import JUnitParseError, parse_junit

PLUGIN_DIR = "/tmp/forager-plugin"
# A pytest plugin written next to each run: it records every test's exact node id as a JUnit property,
# so ids survive inheritance, nested classes, spaces and brackets (no log parsing, no guessing). Last
# of all it copies the report as pytest wrote it (SEAL): exit handlers of the code under test run after
# this, so a report they rewrite no longer matches its copy.
NODEID_PLUGIN = """
import os
import shutil

import pytest

SEAL = {seal!r}


def pytest_collection_modifyitems(items):
    for item in items:
        item.user_properties.append(("forager_nodeid", item.nodeid))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    report = getattr(config.option, "xmlpath", None)
    if report and os.path.isfile(report):
        shutil.copyfile(report, SEAL)
"""
# A second plugin, loaded when a run has a per-test time limit (case_timeout): SIGALRM around each test's
# setup, call and teardown raises a pytest failure that names the limit, so one test that never returns fails
# alone instead of holding the whole suite to its deadline. Our own rather than a copy of pytest-timeout:
# pytest-timeout 2.3+ needs pytest 7 (pytest.StashKey), and a copy registers --timeout, its ini keys and its
# hook specs, which clash with a project's own pytest-timeout or a conftest's --timeout option (pytest stops
# with an error). This one adds no option, no ini key and no marker, and runs on pytest 4.6 to 9, Python 3.6+.
# It is outermost (tryfirst): a project's own pytest-timeout, armed inside it, takes over for its tests.
# Each process also writes the test it is running to RUNNING + pid and empties it when the test ends: a file
# left non-empty names the test that was running when pytest was killed or died. SKIP: exact node ids left
# out of the run (the rerun without such a test; --deselect would match them as prefixes).
GUARD_MODULE = "forager_case_guard"
GUARD_PLUGIN = """
import os
import signal
import threading
import time

import pytest

LIMIT = {limit!r}
RUNNING = {running!r}
SKIP = frozenset({skip!r})
MESSAGE = "Timeout (>%gs): the test ran past forager's per-test time limit (FORAGER_TEST_CASE_TIMEOUT)"


def _running(text):
    try:
        with open(RUNNING + str(os.getpid()), "w") as handle:
            handle.write(text)
    except OSError:
        pass


def _alarm(signum, frame):
    __tracebackhide__ = True
    pytest.fail(MESSAGE % LIMIT)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    left = [item for item in items if item.nodeid in SKIP]
    if left:
        items[:] = [item for item in items if item.nodeid not in SKIP]
        config.hook.pytest_deselected(items=left)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    _running("%r\\n%s" % (time.time(), item.nodeid))
    armed = LIMIT > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if armed:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, LIMIT)
    yield
    if armed:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
    _running("")
"""
RUNNING_PREFIX = "running-"  # RUNNING's files in the output folder, one per pytest process
TAKEN_DOWN = "took the test run down"
# The container's own deadline is shorter than ours, so pytest is stopped and its partial XML kept.
KILL_GRACE = 10
LOG_TAIL_BYTES = 200_000
CHANGED = "changed"  # tracked files a run changed (baseline runs), one per line


class RunPaths(BaseModel):
    """Where one run leaves its results: a folder and report names drawn afresh for each run, so code
    under test cannot know beforehand where to write a report of its own."""

    out_dir: str
    report: str
    seal: str

    @classmethod
    def fresh(cls) -> RunPaths:
        return cls(out_dir=f"/tmp/forager-{secrets.token_hex(8)}", report=f"{secrets.token_hex(8)}.xml",
                   seal=secrets.token_hex(8))

    def own_files(self) -> set[str]:
        return {self.report, self.seal, "log.txt", "exit_code", "setup_error", "setup.log", CHANGED}


def suite_script(
    spec: EnvSpec, repo_path: str, timeout: int, test_ids: list[str] | None = None, setup: str = "",
    plugins: list[str] | tuple[str, ...] = (), paths: RunPaths | None = None, record_changes: bool = False,
    case_timeout: float = 0, skip: list[str] | tuple[str, ...] = (),
) -> str:
    """Shell that runs pytest with JUnit XML and leaves log, exit code and XML in paths.out_dir.

    `setup` runs first in the repository (applying patches, say): one command list whose status is its
    verdict (chain steps with &&; `set -e` does not apply inside the `if` that tests it). When it fails its output is left
    in out_dir/setup_error and no test runs, so a patch that does not apply is never graded as failing tests.
    `record_changes` leaves the tracked files the run changed in out_dir/changed. Plugins given with
    `plugins` find the output folder in $FORAGER_OUT_DIR (graded runs load none, so nothing names it).
    `case_timeout` (seconds, 0: none) loads GUARD_PLUGIN: a test fails alone past it, the test running when
    pytest stops is left in out_dir/running-PID, and the tests in `skip` (exact node ids) are left out.
    """
    paths = paths or RunPaths.fresh()
    out = paths.out_dir
    argv = [
        *spec.test_command,
        "-p", "forager_nodeids",
        *(("-p", GUARD_MODULE) if case_timeout > 0 else ()),
        *(arg for module in plugins for arg in ("-p", module)),
        "-p", "no:cacheprovider",  # why: .pytest_cache would show up in git status
        # why: one module that fails to import must not hide every other test from the baseline
        "--continue-on-collection-errors",
        "-o", "junit_family=xunit1",  # why: xunit1 records the file path, so node ids are exact
        f"--junitxml={out}/{paths.report}",
        "-q", "-rN",
        *(test_ids if test_ids else spec.test_args),
    ]
    command = " ".join(shlex.quote(a) for a in argv)
    setup_lines = (
        f"if ! ( {setup}\n) > {out}/setup.log 2>&1; then mv {out}/setup.log {out}/setup_error; exit 0; fi\n"
        if setup.strip() else ""
    )
    plugin = NODEID_PLUGIN.format(seal=f"{out}/{paths.seal}")
    out_env = f"export FORAGER_OUT_DIR={out}; " if plugins else ""
    changes = f"git diff --name-only > {out}/{CHANGED} 2>/dev/null; " if record_changes else ""
    guard = (
        f"cat > {PLUGIN_DIR}/{GUARD_MODULE}.py <<'EOF'\n"
        f"{GUARD_PLUGIN.format(limit=float(case_timeout), running=f'{out}/{RUNNING_PREFIX}', skip=sorted(skip))}\nEOF\n"
        if case_timeout > 0 else ""
    )
    return (
        f"mkdir -p {out} {PLUGIN_DIR} && cat > {PLUGIN_DIR}/forager_nodeids.py <<'EOF'\n{plugin}\nEOF\n{guard}"
        f"cd {shlex.quote(repo_path)} || exit 1\n{setup_lines}"
        f"export PYTHONPATH={PLUGIN_DIR}${{PYTHONPATH:+:$PYTHONPATH}}; {out_env}"
        f"timeout -k {KILL_GRACE} {timeout} {command} > {out}/full.log 2>&1; "
        f"echo $? > {out}/exit_code; {changes}"
        # why: a suite can print gigabytes; only the tail is kept, and only it leaves the container
        f"tail -c {LOG_TAIL_BYTES} {out}/full.log > {out}/log.txt; rm -f {out}/full.log"
    )


def read_report(files: dict[str, bytes], paths: RunPaths) -> tuple[bytes | None, bool]:
    """(the report to read, whether the one left in place differs from pytest's own copy) (pure).

    Without a copy (pytest was killed before it ended) the report is read as it is.
    """
    report, sealed = files.get(paths.report), files.get(paths.seal)
    if sealed is None:
        return report, False
    return sealed, report != sealed


def stalled_test(files: dict[str, bytes]) -> str | None:
    """The test that was running when pytest was killed or died, from GUARD_PLUGIN's files (pure).

    With several processes (xdist) more than one test may have been running: the one that started first,
    which has run longest, is the one that held the run.
    """
    running = []
    for name, data in files.items():
        if not name.startswith(RUNNING_PREFIX):
            continue
        started, _, test_id = data.decode("utf-8", errors="replace").partition("\n")
        try:
            running.append((float(started), test_id))
        except ValueError:  # empty: its test ended
            continue
    return min(running)[1] if running else None


def taken_down_by(run: SuiteRun, stalled: str | None) -> bool:
    """Whether a run is to be rerun without `stalled`: a test was running when the run ended without results
    (the suite deadline stopped pytest, or its process died) (pure). A run whose report came back (xdist
    replaces a crashed worker and reports its test) has its results already."""
    return bool(stalled) and run.setup_error is None and (run.timed_out or not run.outcomes)


def without_stalled(first: SuiteRun, rerun: SuiteRun, stalled: str, rerun_stalled: str | None = None) -> SuiteRun:
    """`first` (taken down by `stalled`) and its rerun without that test as one run (pure): the rerun's results,
    with `stalled` failed and its reason, and the rerun's own culprit likewise if it went down too."""
    why = "the run passed its time limit" if first.timed_out else f"pytest exited {first.exit_code} without a report"
    culprits = {stalled: f"{TAKEN_DOWN} ({why} while it ran); the rest of the suite ran again without it"}
    if rerun_stalled and taken_down_by(rerun, rerun_stalled) and rerun_stalled != stalled:
        again = "the run passed its time limit" if rerun.timed_out else f"pytest exited {rerun.exit_code} without a report"
        culprits[rerun_stalled] = f"{TAKEN_DOWN} ({again} while it ran, in the rerun without {stalled})"
    outcomes = [o for o in rerun.outcomes if o.test_id not in culprits]
    outcomes += [TestOutcome(test_id=t, status=TestStatus.failed, message=m) for t, m in culprits.items()]
    note = "\n".join(f"forager: {t} {m}" for t, m in culprits.items())
    return rerun.model_copy(update={
        "seconds": first.seconds + rerun.seconds,
        "outcomes": outcomes,
        "log_tail": tail(f"{rerun.log_tail}\n{note}"),
        "report_altered": first.report_altered or rerun.report_altered,
        "changed_tracked": list(dict.fromkeys([*first.changed_tracked, *rerun.changed_tracked])),
    })


def run_suite(
    engine: Engine, image: str, spec: EnvSpec, *, repo_path: str, timeout: int, run_index: int = 1,
    test_ids: list[str] | None = None, setup: str = "", files: dict[str, bytes] | None = None,
    plugins: dict[str, str] | None = None, record_changes: bool = False, case_timeout: float = 0,
) -> SuiteRun:
    """One run of the suite (or of `test_ids`) in a fresh container; `files` are copied in first.

    `plugins` (module name -> source) are extra pytest plugins loaded for this run only. With `case_timeout`
    (seconds) each test fails alone past it, and a run that a test still takes down (the suite deadline hits
    while it runs, or the process dies) is run once more without that test, which is recorded as failed.
    """
    started = time.monotonic()
    run, stalled = _run_once(engine, image, spec, repo_path, timeout, run_index, test_ids, setup, files, plugins,
                             record_changes, case_timeout, ())
    if case_timeout > 0 and taken_down_by(run, stalled):
        rerun, rerun_stalled = _run_once(engine, image, spec, repo_path, timeout, run_index, test_ids, setup, files,
                                         plugins, record_changes, case_timeout, (stalled,))
        run = without_stalled(run, rerun, stalled, rerun_stalled)
    return run.model_copy(update={"seconds": time.monotonic() - started})


def _run_once(
    engine: Engine, image: str, spec: EnvSpec, repo_path: str, timeout: int, run_index: int,
    test_ids: list[str] | None, setup: str, files: dict[str, bytes] | None, plugins: dict[str, str] | None,
    record_changes: bool, case_timeout: float, skip: tuple[str, ...],
) -> tuple[SuiteRun, str | None]:
    """One container run; also the test that was running when it ended, if one was (see GUARD_PLUGIN)."""
    started = time.monotonic()
    paths = RunPaths.fresh()
    files = dict(files or {})
    for module, source in (plugins or {}).items():
        files[f"{PLUGIN_DIR}/{module}.py"] = source.encode()
    script = suite_script(spec, repo_path, timeout, test_ids, setup, list(plugins or {}), paths, record_changes,
                          case_timeout, skip)
    result = engine.run(
        image,
        ["sh", "-c", script],
        files=files,
        timeout=timeout + 3 * KILL_GRACE,
        # FORAGER_RUN_INDEX lets a suite (or a test fixture) know which validation run it is in.
        # PYTHONHASHSEED=0: test ids built from set or dict order must not change between runs,
        # or every such test looks flaky and no task could name it.
        environment={"FORAGER_RUN_INDEX": str(run_index), "PYTHONHASHSEED": "0"},
        collect=paths.out_dir,
        labels={"forager.role": "validate"},
    )
    if "setup_error" in result.files:
        return SuiteRun(
            exit_code=None, seconds=time.monotonic() - started,
            setup_error=tail(result.files["setup_error"].decode("utf-8", errors="replace")) or "setup failed",
            script=script,
        ), None
    log = result.files.get("log.txt", b"").decode("utf-8", errors="replace") or result.output
    code_text = result.files.get("exit_code", b"").decode().strip()
    exit_code = int(code_text) if code_text.lstrip("-").isdigit() else result.exit_code
    timed_out = result.timed_out or exit_code in (124, 137)
    outcomes = []
    report, altered = read_report(result.files, paths)
    if report is not None:
        try:
            outcomes = parse_junit(report)
        except JUnitParseError as exc:
            log += f"\nforager: {exc}"
    changed = result.files.get(CHANGED, b"").decode("utf-8", errors="replace").splitlines()
    kept = {name: data for name, data in result.files.items()
            if name not in paths.own_files() and not (case_timeout > 0 and name.startswith(RUNNING_PREFIX))}
    return SuiteRun(
        exit_code=exit_code, timed_out=timed_out, seconds=time.monotonic() - started, outcomes=outcomes,
        log_tail=tail(log), files=kept, report_altered=altered, changed_tracked=[p for p in changed if p],
        script=script,
    ), stalled_test(result.files) if case_timeout > 0 else None
