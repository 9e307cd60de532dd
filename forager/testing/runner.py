"""Run a repository's test suite in a fresh container and read per-test results from JUnit XML."""

from __future__ import annotations

import shlex
import time

from forager.build.engine import Engine, tail
from forager.models import EnvSpec, SuiteRun
from forager.testing.junit import JUnitParseError, parse_junit

OUT_DIR = "/tmp/forager-out"
PLUGIN_DIR = "/tmp/forager-plugin"
# A pytest plugin written next to each run: it records every test's exact node id as a JUnit property,
# so ids survive inheritance, nested classes, spaces and brackets (no log parsing, no guessing).
NODEID_PLUGIN = """
def pytest_collection_modifyitems(items):
    for item in items:
        item.user_properties.append(("forager_nodeid", item.nodeid))
"""
# The container's own deadline is shorter than ours, so pytest is stopped and its partial XML kept.
KILL_GRACE = 10
_OWN_FILES = {"junit.xml", "log.txt", "exit_code", "setup_error", "setup.log"}
LOG_TAIL_BYTES = 200_000


def suite_script(
    spec: EnvSpec, repo_path: str, timeout: int, test_ids: list[str] | None = None, setup: str = "",
    plugins: list[str] | tuple[str, ...] = (),
) -> str:
    """Shell that runs pytest with JUnit XML and leaves log, exit code and XML in OUT_DIR.

    `setup` runs first in the repository (applying patches, say): one command list whose status is its
    verdict (chain steps with &&; `set -e` does not apply inside the `if` that tests it). When it fails its output is left
    in OUT_DIR/setup_error and no test runs, so a patch that does not apply is never graded as failing tests.
    """
    argv = [
        *spec.test_command,
        "-p", "forager_nodeids",
        *(arg for module in plugins for arg in ("-p", module)),
        "-p", "no:cacheprovider",  # why: .pytest_cache would show up in git status
        # why: one module that fails to import must not hide every other test from the baseline
        "--continue-on-collection-errors",
        "-o", "junit_family=xunit1",  # why: xunit1 records the file path, so node ids are exact
        f"--junitxml={OUT_DIR}/junit.xml",
        "-q", "-rN",
        *(test_ids if test_ids else spec.test_args),
    ]
    command = " ".join(shlex.quote(a) for a in argv)
    setup_lines = (
        f"if ! ( {setup}\n) > {OUT_DIR}/setup.log 2>&1; then mv {OUT_DIR}/setup.log {OUT_DIR}/setup_error; exit 0; fi\n"
        if setup.strip() else ""
    )
    return (
        f"mkdir -p {OUT_DIR} {PLUGIN_DIR} && cat > {PLUGIN_DIR}/forager_nodeids.py <<'EOF'\n{NODEID_PLUGIN}\nEOF\n"
        f"cd {shlex.quote(repo_path)} || exit 1\n{setup_lines}"
        f"export PYTHONPATH={PLUGIN_DIR}${{PYTHONPATH:+:$PYTHONPATH}}; "
        f"timeout -k {KILL_GRACE} {timeout} {command} > {OUT_DIR}/full.log 2>&1; "
        f"echo $? > {OUT_DIR}/exit_code; "
        # why: a suite can print gigabytes; only the tail is kept, and only it leaves the container
        f"tail -c {LOG_TAIL_BYTES} {OUT_DIR}/full.log > {OUT_DIR}/log.txt; rm -f {OUT_DIR}/full.log"
    )


def run_suite(
    engine: Engine, image: str, spec: EnvSpec, *, repo_path: str, timeout: int, run_index: int = 1,
    test_ids: list[str] | None = None, setup: str = "", files: dict[str, bytes] | None = None,
    plugins: dict[str, str] | None = None,
) -> SuiteRun:
    """One run of the suite (or of `test_ids`) in a fresh container; `files` are copied in first.

    `plugins` (module name -> source) are extra pytest plugins loaded for this run only.
    """
    started = time.monotonic()
    files = dict(files or {})
    for module, source in (plugins or {}).items():
        files[f"{PLUGIN_DIR}/{module}.py"] = source.encode()
    result = engine.run(
        image,
        ["sh", "-c", suite_script(spec, repo_path, timeout, test_ids, setup, list(plugins or {}))],
        files=files,
        timeout=timeout + 3 * KILL_GRACE,
        # FORAGER_RUN_INDEX lets a suite (or a test fixture) know which validation run it is in.
        # PYTHONHASHSEED=0: test ids built from set or dict order must not change between runs,
        # or every such test looks flaky and no task could name it.
        environment={"FORAGER_RUN_INDEX": str(run_index), "PYTHONHASHSEED": "0"},
        collect=OUT_DIR,
        labels={"forager.role": "validate"},
    )
    if "setup_error" in result.files:
        return SuiteRun(
            exit_code=None, seconds=time.monotonic() - started,
            setup_error=tail(result.files["setup_error"].decode("utf-8", errors="replace")) or "setup failed",
        )
    log = result.files.get("log.txt", b"").decode("utf-8", errors="replace") or result.output
    code_text = result.files.get("exit_code", b"").decode().strip()
    exit_code = int(code_text) if code_text.lstrip("-").isdigit() else result.exit_code
    timed_out = result.timed_out or exit_code in (124, 137)
    outcomes = []
    if "junit.xml" in result.files:
        try:
            outcomes = parse_junit(result.files["junit.xml"])
        except JUnitParseError as exc:
            log += f"\nforager: {exc}"
    kept = {name: data for name, data in result.files.items() if name not in _OWN_FILES}
    return SuiteRun(
        exit_code=exit_code, timed_out=timed_out, seconds=time.monotonic() - started, outcomes=outcomes,
        log_tail=tail(log), files=kept,
    )
