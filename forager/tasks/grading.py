"""How a patch is graded on a task, as one value (pure): the grading spec.

Validation (issue-fix and mutate-fix), the gold-patch oracle and an agent's reward all grade through a
:class:`GradingSpec` built by :func:`grading_spec` from the task, its image and the settings: the image and
its environment spec, the start state (the image's working tree with the install's changes staged, plus the
task's bug), the hidden tests, which files are graded ground, the tests run, and the deadlines. The shell
that sets a state up is rendered from it (:meth:`GradingSpec.setup`), so one value says what a grade ran;
:mod:`forager.tasks.evaluate` runs it and keeps the script and the log's tail with the grade.

What is graded is the patch's change to the start state. Test files and everything that decides how pytest
runs them (conftest.py, pytest's configuration, `.pth` and site/usercustomize files, plugin modules the suite
loads) are put back as the start state has them before the graded run, so a patch that edits them changes
nothing but a flag.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from forager.config import Settings
from forager.models import EnvSpec
from forager.tasks.patches import changed_files, is_test_path, test_files, touched_files

if TYPE_CHECKING:  # rows are read by their attributes: grading rules load no database code
    from forager.store.tables import Image, Task

PATCH_DIR = "/tmp/forager-in"
# Files that change how pytest collects, runs or reports tests wherever they sit; `.pth` files and
# site/usercustomize run code at interpreter start-up.
TEST_CONFIG_NAMES = frozenset({
    "conftest.py", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml",
    "sitecustomize.py", "usercustomize.py",
})
START_PATCH, PATCH, TEST_PATCH = "start.patch", "0.patch", "tests.patch"


class GradingSpec(BaseModel):
    """Everything that decides how a patch is graded on one task; same value, same grading."""

    model_config = ConfigDict(frozen=True)

    instance_id: str = ""
    image_tag: str
    env: EnvSpec
    repo_path: str
    start_patch: str = Field(default="", description="applied to the image's working tree first: the task's bug")
    test_patch: str = Field(default="", description="hidden tests, applied after the graded ground is restored")
    fail_to_pass: list[str] = Field(default_factory=list)
    pass_to_pass: list[str] = Field(default_factory=list)
    tests: list[str] | None = Field(default=None, description="test files or ids the run runs; None: the suite")
    plugin_files: list[str] = Field(default_factory=list, description="modules the suite loads as pytest plugins")
    timeout: int = Field(description="the suite deadline of one graded run, seconds")
    case_timeout: float = Field(default=0, description="one test's limit inside the run (0: none)")
    tests_version: int = Field(default=1, description="the version of the task's test lists graded with")

    def restored(self, patch: str) -> list[str]:
        """The files `patch` changes that grading puts back (the grade names them)."""
        return protected_in(patch, self.plugin_files)

    def restore(self, patch: str) -> list[str]:
        """Every path set back to the start state before the test patch: the tests run, the graded ground the
        patch touched, and the test patch's own files (so it applies to what it was made against)."""
        files = test_files(self.tests or [])
        return list(dict.fromkeys([*files, *self.restored(patch), *changed_files(self.test_patch)]))

    def staged_files(self, patch: str) -> dict[str, bytes]:
        """The patches, as files copied into the container before the setup runs."""
        return {f"{PATCH_DIR}/{name}": _with_newline(text).encode()
                for name, text in self._patches(patch).items() if text.strip()}

    def setup(self, patch: str) -> str:
        """The shell (run in the repository) that makes the start state, applies `patch`, restores the graded
        ground and applies the hidden tests."""
        names = {name: name if text.strip() else None for name, text in self._patches(patch).items()}
        return setup_script(names[START_PATCH], names[PATCH], names[TEST_PATCH], self.restore(patch))

    def _patches(self, patch: str) -> dict[str, str]:
        # why skipped when blank: git apply rejects an empty patch, and an empty answer is a valid state
        return {START_PATCH: self.start_patch, PATCH: patch, TEST_PATCH: self.test_patch}


def suite_grading(image: Image, settings: Settings) -> GradingSpec:
    """The image's whole suite graded with no task: its start state is the image's working tree."""
    return GradingSpec(
        image_tag=image.tag, env=EnvSpec(**image.spec), repo_path=settings.repo_path,
        plugin_files=list(image.plugin_files or ()), timeout=candidate_timeout(image, settings),
        case_timeout=settings.test_case_timeout,
    )


def grading_spec(task: Task, image: Image, settings: Settings, *, tests: list[str] | None = None) -> GradingSpec:
    """The task graded in its image as the store describes it: `tests` default to the files of its
    FAIL_TO_PASS and PASS_TO_PASS tests (validation of a mined task passes the test modules of its test patch)."""
    return suite_grading(image, settings).model_copy(update={
        "instance_id": task.instance_id, "start_patch": task.bug_patch, "test_patch": task.test_patch,
        "fail_to_pass": list(task.fail_to_pass), "pass_to_pass": list(task.pass_to_pass),
        "tests_version": task.tests_version or 1,
        "tests": tests if tests is not None else test_files([*task.fail_to_pass, *task.pass_to_pass]),
    })


def baseline_run_seconds(image: Image, settings: Settings) -> float:
    return (image.validate_seconds or 0) / max(settings.validation_runs, 1)


def candidate_timeout(image: Image, settings: Settings) -> int:
    """A changed program can loop forever: allow a few times the baseline's own run time, never more than the limit."""
    return int(min(settings.test_timeout, max(30, 3 * baseline_run_seconds(image, settings) + 15)))


def is_protected(path: str, plugin_files: list[str] | tuple[str, ...] = ()) -> bool:
    """A file grading takes from the start state, whatever the patch did to it."""
    name = posixpath.basename(path)
    return is_test_path(path) or name in TEST_CONFIG_NAMES or name.endswith(".pth") or path in plugin_files


def protected_in(patch: str, plugin_files: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The files `patch` changes (both names of a rename) that grading restores."""
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
    ground from the start state and applies the hidden tests (arguments are file names in PATCH_DIR)."""
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


def _with_newline(patch: str) -> str:
    return patch if patch.endswith("\n") else patch + "\n"
