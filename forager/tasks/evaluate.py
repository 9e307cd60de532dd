"""Grade a state of a repository on a task's tests: patches applied in a fresh container, suite run, per-test verdicts.

The same code validates tasks, runs the gold-patch oracle, and computes an agent's reward, so a task
that validated is graded the same way when an agent submits.

What is graded is the patch's change to the **start state**: the image's working tree (the install's
changes to tracked files included, as an episode's first commit holds them) with the task's bug. The
tests and everything that decides how pytest runs them (test files, conftest.py, pytest's configuration,
plugin modules the suite loads) are put back as the start state has them before the graded run, so a
patch that edits them changes nothing but a flag; the report is read from a folder drawn for the run.
"""

from __future__ import annotations

import posixpath
import shlex

from pydantic import BaseModel, Field

from forager.build.engine import Engine
from forager.config import Settings
from forager.models import MISSING, EnvSpec, SuiteRun, TestStatus
from forager.store import Image, Task
from forager.tasks.patches import changed_files, is_test_path, test_files, touched_files
from forager.testing.runner import run_suite

PATCH_DIR = "/tmp/forager-in"
# Files that change how pytest collects, runs or reports tests wherever they sit; `.pth` files and
# site/usercustomize run code at interpreter start-up.
TEST_CONFIG_NAMES = frozenset({
    "conftest.py", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml",
    "sitecustomize.py", "usercustomize.py",
})
APPLY_FAILED = "patch does not apply"


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
    restored: list[str] = Field(default_factory=list, description="files the patch changed that grading put back")
    report_altered: bool = Field(default=False, description="the JUnit report changed after pytest wrote it")

    def flags(self) -> list[str]:
        """What an episode is flagged with: the patch reached for the grader's own ground."""
        return [f"restored {path}" for path in self.restored] + (["report altered"] if self.report_altered else [])


def baseline_run_seconds(image: Image, settings: Settings) -> float:
    return (image.validate_seconds or 0) / max(settings.validation_runs, 1)


def candidate_timeout(image: Image, settings: Settings) -> int:
    """A changed program can loop forever: allow a few times the baseline's own run time, never more than the limit."""
    return int(min(settings.test_timeout, max(30, 3 * baseline_run_seconds(image, settings) + 15)))


def is_protected(path: str, plugin_files: list[str] | tuple[str, ...] = ()) -> bool:
    """A file grading takes from the start state, whatever the patch did to it (pure)."""
    name = posixpath.basename(path)
    return is_test_path(path) or name in TEST_CONFIG_NAMES or name.endswith(".pth") or path in plugin_files


def protected_in(patch: str, plugin_files: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The files `patch` changes (both names of a rename) that grading restores (pure)."""
    return [path for path in touched_files(patch) if is_protected(path, plugin_files)]


def _apply(name: str) -> str:
    # why the 3-way fallback: a patch made against the commit (a gold patch from history, or a diff
    # recorded before start states held the install's changes) may touch a file the install rewrote;
    # git merges the two changes from the blobs the patch names, and refuses when they conflict
    path = f"{PATCH_DIR}/{name}"
    return (f"{{ git apply --index --whitespace=nowarn {path} 2>/dev/null"
            f" || git apply --index --3way --whitespace=nowarn {path}; }}")


def setup_script(start_patch: str | None, patch: str | None, test_patch: str | None, restore: list[str]) -> str:
    """Shell (run in the repository) that makes the start state, applies the patch, restores the graded
    ground from the start state and applies the hidden tests (pure; arguments are file names in PATCH_DIR)."""
    lines = [
        # the start state is the working tree as the image has it: the install's changes staged
        "{ git update-index -q --refresh >/dev/null 2>&1 || true; }",
        "git add -u",
    ]
    if start_patch:
        lines.append(_apply(start_patch))
    lines.append("start=$(git write-tree)")
    if patch:
        lines.append(_apply(patch))
    for path in restore:
        quoted, spec = shlex.quote(path), shlex.quote(f":(literal){path}")
        lines.append(
            f'if git cat-file -e "$start":{quoted} 2>/dev/null; then git checkout -q "$start" -- {spec}; '
            f"else git rm -rqf --cached --ignore-unmatch -- {spec} >/dev/null && rm -rf -- {quoted}; fi"
        )
    if test_patch:
        lines.append(_apply(test_patch))
    # why: chained with &&, since `set -e` is ignored inside the `if` that tests the setup's outcome
    return " &&\n".join(lines)


def grade(run: SuiteRun, fail_to_pass: list[str], pass_to_pass: list[str], restored: list[str] | None = None) -> Grade:
    """Resolved when the patches applied, the run finished and every F2P and P2P test passed (pure)."""
    if run.setup_error is not None:
        return Grade(applied=False, error=f"{APPLY_FAILED}: {_last_line(run.setup_error)}", seconds=run.seconds,
                     restored=restored or [])
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
        seconds=run.seconds, restored=restored or [], report_altered=run.report_altered,
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
    start_patch: str = "",
    patch: str = "",
    test_patch: str = "",
    restore: list[str] | None = None,
    tests: list[str] | None = None,
    plugins: dict[str, str] | None = None,
    case_timeout: float = 0,
) -> SuiteRun:
    """Run the suite (or `tests`: node ids or files) in the start state (`start_patch` applied to the image's
    working tree) changed by `patch`, with `restore` and the test patch's files put back first, then `test_patch`."""
    files: dict[str, bytes] = {}

    def staged(name: str, text: str) -> str | None:
        if not text.strip():  # why: git apply rejects an empty patch, and an empty answer is a valid state
            return None
        files[f"{PATCH_DIR}/{name}"] = _with_newline(text).encode()
        return name

    names = staged("start.patch", start_patch), staged("0.patch", patch), staged("tests.patch", test_patch)
    restore_paths = list(dict.fromkeys([*(restore or []), *changed_files(test_patch)]))
    return run_suite(
        engine, image, spec, repo_path=repo_path, timeout=timeout, test_ids=tests or None,
        setup=setup_script(*names, restore_paths), files=files, plugins=plugins, case_timeout=case_timeout,
    )


def _with_newline(patch: str) -> str:
    return patch if patch.endswith("\n") else patch + "\n"


def evaluate(
    engine: Engine, image: str, spec: EnvSpec, task: Task, patch: str, *, repo_path: str, timeout: int,
    plugin_files: list[str] | tuple[str, ...] = (), case_timeout: float = 0,
) -> Grade:
    """Grade `patch` (relative to the task's start state) on the task: the reward of an episode, the oracle,
    and a task's validation with its gold patch. Test files, test configuration and plugin files the patch
    changed are restored first and named in the grade."""
    files = test_files([*task.fail_to_pass, *task.pass_to_pass])
    restored = protected_in(patch, plugin_files)
    run = run_state(
        engine, image, spec, repo_path=repo_path, timeout=timeout, start_patch=task.bug_patch, patch=patch,
        test_patch=task.test_patch, restore=list(dict.fromkeys([*files, *restored])), tests=files,
        case_timeout=case_timeout,
    )
    return grade(run, task.fail_to_pass, task.pass_to_pass, restored)


def evaluate_in_image(engine: Engine, settings: Settings, image: Image, task: Task, patch: str) -> Grade:
    """`evaluate` in the task's image as the store describes it (its spec, plugin files and time limit)."""
    return evaluate(engine, image.tag, EnvSpec(**image.spec), task, patch, repo_path=settings.repo_path,
                    timeout=candidate_timeout(image, settings), plugin_files=image.plugin_files or (),
                    case_timeout=settings.test_case_timeout)
