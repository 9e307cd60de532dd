"""Grade a state of a repository on a task's tests: patches applied in a fresh container, suite run, per-test verdicts.

The same code validates tasks, runs the gold-patch oracle, and (later) computes an agent's reward, so
a task that validated is graded the same way when an agent submits.
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel, Field

from forager.build.engine import Engine
from forager.models import MISSING, EnvSpec, SuiteRun, TestStatus
from forager.store import Task
from forager.tasks.patches import changed_files, test_files
from forager.testing.runner import run_suite

PATCH_DIR = "/tmp/forager-in"


class Grade(BaseModel):
    """A repository state against a task's FAIL_TO_PASS and PASS_TO_PASS tests."""

    applied: bool = Field(description="every patch applied")
    error: str | None = Field(default=None, description="why the state could not be graded")
    timed_out: bool = False
    statuses: dict[str, str] = Field(default_factory=dict, description="test id -> status, for F2P and P2P tests")
    fail_to_pass_passed: int = 0
    fail_to_pass_total: int = 0
    pass_to_pass_passed: int = 0
    pass_to_pass_total: int = 0
    resolved: bool = False
    seconds: float = 0.0


def setup_script(patch_names: list[str], test_patch_name: str | None, restore: list[str]) -> str:
    """Shell (run in the repository) that applies the patches in order, then the hidden tests.

    Files the tests live in are put back as the commit has them before the test patch applies:
    an agent's edits to the tests must not change the grade (nor make the test patch fail to apply).
    """
    lines = [f"git apply --whitespace=nowarn {PATCH_DIR}/{name}" for name in patch_names]
    for path in restore:
        quoted = shlex.quote(path)
        lines.append(
            f"if git cat-file -e HEAD:{quoted} 2>/dev/null; then git checkout -q HEAD -- {quoted}; else rm -f {quoted}; fi"
        )
    if test_patch_name:
        lines.append(f"git apply --whitespace=nowarn {PATCH_DIR}/{test_patch_name}")
    # why: chained with &&, since `set -e` is ignored inside the `if` that tests the setup's outcome
    return " &&\n".join(lines)


def grade(run: SuiteRun, fail_to_pass: list[str], pass_to_pass: list[str]) -> Grade:
    """Resolved when the patches applied, the run finished and every F2P and P2P test passed (pure)."""
    if run.setup_error is not None:
        return Grade(applied=False, error=f"patch does not apply: {_last_line(run.setup_error)}", seconds=run.seconds)
    seen = run.statuses()
    statuses = {test: seen.get(test, MISSING) for test in [*fail_to_pass, *pass_to_pass]}
    f2p = sum(statuses[t] == TestStatus.passed for t in fail_to_pass)
    p2p = sum(statuses[t] == TestStatus.passed for t in pass_to_pass)
    error = "tests timed out" if run.timed_out else None
    return Grade(
        applied=True, error=error, timed_out=run.timed_out, statuses=statuses,
        fail_to_pass_passed=f2p, fail_to_pass_total=len(fail_to_pass),
        pass_to_pass_passed=p2p, pass_to_pass_total=len(pass_to_pass),
        resolved=not run.timed_out and bool(fail_to_pass) and f2p == len(fail_to_pass) and p2p == len(pass_to_pass),
        seconds=run.seconds,
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def run_state(
    engine: Engine,
    image: str,
    spec: EnvSpec,
    *,
    repo_path: str,
    timeout: int,
    patches: list[str],
    test_patch: str = "",
    restore: list[str] | None = None,
    tests: list[str] | None = None,
    plugins: dict[str, str] | None = None,
) -> SuiteRun:
    """Run the suite (or `tests`: node ids or files) after applying `patches` in order, then `test_patch`."""
    files: dict[str, bytes] = {}
    names: list[str] = []
    for index, patch in enumerate(patches):
        if patch.strip():  # why: git apply rejects an empty patch, and an empty answer is a valid state
            name = f"{index}.patch"
            files[f"{PATCH_DIR}/{name}"] = _with_newline(patch).encode()
            names.append(name)
    test_name = None
    if test_patch.strip():
        test_name = "tests.patch"
        files[f"{PATCH_DIR}/{test_name}"] = _with_newline(test_patch).encode()
    restore_paths = list(dict.fromkeys([*(restore or []), *changed_files(test_patch)]))
    return run_suite(
        engine, image, spec, repo_path=repo_path, timeout=timeout, test_ids=tests or None,
        setup=setup_script(names, test_name, restore_paths), files=files, plugins=plugins,
    )


def _with_newline(patch: str) -> str:
    return patch if patch.endswith("\n") else patch + "\n"


def evaluate(
    engine: Engine, image: str, spec: EnvSpec, task: Task, patch: str, *, repo_path: str, timeout: int
) -> Grade:
    """Grade `patch` (relative to the task's start state) on the task: the reward of an episode, or the oracle."""
    files = test_files([*task.fail_to_pass, *task.pass_to_pass])
    run = run_state(
        engine, image, spec, repo_path=repo_path, timeout=timeout, patches=[task.bug_patch, patch],
        test_patch=task.test_patch, restore=files, tests=files,
    )
    return grade(run, task.fail_to_pass, task.pass_to_pass)
