"""Run a repository's test suite in a fresh container and read per-test results from JUnit XML."""

from __future__ import annotations

import secrets
import shlex
import time

from pydantic import BaseModel

from forager.build.engine import Engine, tail
from forager.models import EnvSpec, SuiteRun
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
) -> str:
    """Shell that runs pytest with JUnit XML and leaves log, exit code and XML in paths.out_dir.

    `setup` runs first in the repository (applying patches, say): one command list whose status is its
    verdict (chain steps with &&; `set -e` does not apply inside the `if` that tests it). When it fails its output is left
    in out_dir/setup_error and no test runs, so a patch that does not apply is never graded as failing tests.
    `record_changes` leaves the tracked files the run changed in out_dir/changed. Plugins given with
    `plugins` find the output folder in $FORAGER_OUT_DIR (graded runs load none, so nothing names it).
    """
    paths = paths or RunPaths.fresh()
    out = paths.out_dir
    argv = [
        *spec.test_command,
        "-p", "forager_nodeids",
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
    return (
        f"mkdir -p {out} {PLUGIN_DIR} && cat > {PLUGIN_DIR}/forager_nodeids.py <<'EOF'\n{plugin}\nEOF\n"
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


def run_suite(
    engine: Engine, image: str, spec: EnvSpec, *, repo_path: str, timeout: int, run_index: int = 1,
    test_ids: list[str] | None = None, setup: str = "", files: dict[str, bytes] | None = None,
    plugins: dict[str, str] | None = None, record_changes: bool = False,
) -> SuiteRun:
    """One run of the suite (or of `test_ids`) in a fresh container; `files` are copied in first.

    `plugins` (module name -> source) are extra pytest plugins loaded for this run only.
    """
    started = time.monotonic()
    paths = RunPaths.fresh()
    files = dict(files or {})
    for module, source in (plugins or {}).items():
        files[f"{PLUGIN_DIR}/{module}.py"] = source.encode()
    script = suite_script(spec, repo_path, timeout, test_ids, setup, list(plugins or {}), paths, record_changes)
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
        )
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
    kept = {name: data for name, data in result.files.items() if name not in paths.own_files()}
    return SuiteRun(
        exit_code=exit_code, timed_out=timed_out, seconds=time.monotonic() - started, outcomes=outcomes,
        log_tail=tail(log), files=kept, report_altered=altered, changed_tracked=[p for p in changed if p],
    )
