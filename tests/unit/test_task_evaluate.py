"""grade (pure) and setup_script (run by a real shell in a real git repository)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from forager.models import SuiteRun, TestOutcome, TestStatus
from forager.tasks.evaluate import MISSING, grade
from forager.tasks.grading import PATCH_DIR, is_protected, protected_in, setup_script
from tests.conftest import git, make_repo

F1 = "tests/test_calc.py::test_one"
F2 = "tests/test_calc.py::test_two"
P1 = "tests/test_calc.py::test_old"
P2 = "tests/test_other.py::test_keep"


def suite(outcomes: dict[str, str], *, timed_out: bool = False, setup_error: str | None = None, seconds: float = 3.5):
    return SuiteRun(
        exit_code=None if timed_out else 0,
        timed_out=timed_out,
        seconds=seconds,
        setup_error=setup_error,
        outcomes=[TestOutcome(test_id=t, status=TestStatus(s)) for t, s in outcomes.items()],
    )


# -- grade ------------------------------------------------------------------------------------


def test_grade_all_passed_is_resolved():
    g = grade(suite({F1: "passed", F2: "passed", P1: "passed", P2: "passed"}), [F1, F2], [P1, P2])
    assert g.applied is True
    assert g.error is None
    assert g.resolved is True
    assert (g.fail_to_pass_passed, g.fail_to_pass_total) == (2, 2)
    assert (g.pass_to_pass_passed, g.pass_to_pass_total) == (2, 2)
    assert g.statuses == {F1: "passed", F2: "passed", P1: "passed", P2: "passed"}
    assert g.seconds == 3.5


def test_grade_one_f2p_failed_not_resolved():
    g = grade(suite({F1: "passed", F2: "failed", P1: "passed"}), [F1, F2], [P1])
    assert g.applied
    assert not g.resolved
    assert g.fail_to_pass_passed == 1
    assert g.fail_to_pass_total == 2
    assert g.statuses[F2] == "failed"


def test_grade_one_p2p_failed_not_resolved():
    g = grade(suite({F1: "passed", P1: "passed", P2: "error"}), [F1], [P1, P2])
    assert not g.resolved
    assert g.pass_to_pass_passed == 1
    assert g.pass_to_pass_total == 2
    assert g.statuses[P2] == "error"


def test_grade_skipped_is_not_passed():
    g = grade(suite({F1: "skipped", P1: "passed"}), [F1], [P1])
    assert not g.resolved
    assert g.fail_to_pass_passed == 0


def test_grade_missing_tests_count_as_missing():
    g = grade(suite({F1: "passed", "tests/test_x.py::test_unrelated": "failed"}), [F1, F2], [P1])
    assert not g.resolved
    assert g.statuses == {F1: "passed", F2: MISSING, P1: MISSING}
    assert MISSING == "missing"
    assert g.fail_to_pass_passed == 1
    assert g.pass_to_pass_passed == 0
    # only F2P and P2P tests are reported
    assert "tests/test_x.py::test_unrelated" not in g.statuses


def test_grade_setup_error_not_applied():
    error = "Checking patch src/calc.py...\nerror: patch failed: src/calc.py:1\n\n"
    g = grade(suite({F1: "passed"}, setup_error=error, seconds=1.25), [F1], [])
    assert g.applied is False
    assert not g.resolved
    assert g.error == "patch does not apply: error: patch failed: src/calc.py:1"
    assert g.seconds == 1.25
    assert g.statuses == {}


def test_grade_empty_setup_error_not_applied():
    g = grade(suite({}, setup_error="  \n"), [F1], [])
    assert g.applied is False
    assert not g.resolved
    assert g.error == "patch does not apply: no output"


def test_grade_timed_out_not_resolved():
    g = grade(suite({F1: "passed", P1: "passed"}, timed_out=True), [F1], [P1])
    assert g.applied is True
    assert g.timed_out is True
    assert g.resolved is False
    assert g.error == "tests timed out"
    assert g.fail_to_pass_passed == 1


def test_grade_empty_f2p_never_resolved():
    g = grade(suite({P1: "passed"}), [], [P1])
    assert not g.resolved
    assert g.fail_to_pass_total == 0
    assert g.pass_to_pass_passed == 1


def test_grade_empty_p2p_can_be_resolved():
    g = grade(suite({F1: "passed"}), [F1], [])
    assert g.resolved


# -- setup_script: real shell, real git ----------------------------------------------------

CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
TEST = "from src.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    make_repo(root, {"src/calc.py": CALC, "tests/test_calc.py": TEST, "README": "calc\n"})
    return root


def diff_of(repo: Path, files: dict[str, str | None]) -> str:
    """The `git diff` that takes HEAD's tree to HEAD's with `files` written (None: deleted); the tree is then reset."""
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "add", "-A")
    patch = subprocess.run(["git", "diff", "--cached", "HEAD"], cwd=repo, check=True, capture_output=True, text=True).stdout
    git(repo, "reset", "-q", "--hard", "HEAD")
    assert patch.startswith("diff --git")
    return patch


# How forager.testing.runner tests the setup: its status decides, inside an `if`, where `set -e`
# has no effect; the script must stop at its first failing step on its own.
IN_IF = 'if ! ( {script}\n) > ../setup.log 2>&1; then echo SETUP-FAILED; exit 3; fi\necho SETUP-OK\n'


def run_setup(
    repo: Path,
    folder: Path,
    patches: dict[str, str],
    test_patch: str | None,
    restore: list[str],
    *,
    in_if: bool = False,
):
    """Write the patches into `folder`, then run the script (`set -e` first, or inside an `if`).

    `patches` holds the candidate patch, or the start patch and then the candidate."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in patches.items():
        (folder / name).write_text(text)
    test_name = None
    if test_patch is not None:
        test_name = "tests.patch"
        (folder / test_name).write_text(test_patch)
    names = list(patches)
    start, patch = (names if len(names) == 2 else [None, *names]) if names else (None, None)
    script = setup_script(start, patch, test_name, restore)
    assert PATCH_DIR in script or (not patches and test_name is None)
    script = script.replace(PATCH_DIR, str(folder))
    shell = IN_IF.format(script=script) if in_if else "set -e\n" + script
    return subprocess.run(["sh", "-c", shell], check=False, cwd=repo, capture_output=True, text=True)


def test_setup_script_text_shape():
    script = setup_script("0.patch", "1.patch", "tests.patch", ["tests/test_a.py"])
    staged = script.index("git add -u")
    first = script.index(f"git apply --index --whitespace=nowarn {PATCH_DIR}/0.patch")
    start = script.index("start=$(git write-tree)")
    second = script.index(f"git apply --index --whitespace=nowarn {PATCH_DIR}/1.patch")
    restore = script.index("tests/test_a.py")
    tests = script.index(f"git apply --index --whitespace=nowarn {PATCH_DIR}/tests.patch")
    assert staged < first < start < second < restore < tests
    assert PATCH_DIR not in setup_script(None, None, None, [])


def dependent_patches(repo: Path) -> tuple[str, str]:
    """Two patches of the same line: the second applies only on top of the first."""
    first = diff_of(repo, {"src/calc.py": CALC.replace("a + b", "a + b + 0")})
    (repo / "src/calc.py").write_text(CALC.replace("a + b", "a + b + 0"))
    git(repo, "commit", "-qam", "tmp")
    second = diff_of(repo, {"src/calc.py": CALC.replace("a + b", "a + b + 1").replace("a - b", "a - b - 0")})
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    assert (repo / "src/calc.py").read_text() == CALC
    return first, second


def test_patches_apply_in_order(repo: Path, tmp_path: Path):
    first, second = dependent_patches(repo)
    result = run_setup(repo, tmp_path / "in", {"0.patch": first, "1.patch": second}, None, [])
    assert result.returncode == 0, result.stderr
    text = (repo / "src/calc.py").read_text()
    assert "return a + b + 1" in text
    assert "return a - b - 0" in text


def test_patches_in_wrong_order_fail(repo: Path, tmp_path: Path):
    first, second = dependent_patches(repo)
    # the list order is the apply order: the dependent patch first cannot apply on HEAD
    result = run_setup(repo, tmp_path / "in", {"0.patch": second, "1.patch": first}, None, [])
    assert result.returncode != 0
    # the 3-way fallback found both patches' blobs and met a conflict: it fails, leaving the markers
    assert "<<<<<<<" in (repo / "src/calc.py").read_text()


def test_restore_puts_test_file_back_before_test_patch(repo: Path, tmp_path: Path):
    test_patch = diff_of(repo, {"tests/test_calc.py": TEST + "\n\ndef test_add_more():\n    assert add(2, 2) == 4\n"})
    # the agent's answer edits the source and (not allowed to count) the test file, on the same lines
    agent = diff_of(
        repo,
        {
            "src/calc.py": CALC.replace("a - b", "b - a"),
            "tests/test_calc.py": TEST.replace("== 3", "== 3  # edited") + "\n\ndef test_cheat():\n    pass\n",
        },
    )
    result = run_setup(repo, tmp_path / "in", {"0.patch": agent}, test_patch, ["tests/test_calc.py"])
    assert result.returncode == 0, result.stderr
    tests = (repo / "tests/test_calc.py").read_text()
    assert tests == TEST + "\n\ndef test_add_more():\n    assert add(2, 2) == 4\n"
    assert "test_cheat" not in tests and "# edited" not in tests
    # the source part of the answer stays
    assert "return b - a" in (repo / "src/calc.py").read_text()


def test_without_restore_edited_test_file_breaks_test_patch(repo: Path, tmp_path: Path):
    """Why restore exists: the same inputs without it fail to apply."""
    test_patch = diff_of(repo, {"tests/test_calc.py": TEST + "\n\ndef test_add_more():\n    assert add(2, 2) == 4\n"})
    agent = diff_of(repo, {"tests/test_calc.py": TEST + "\n\ndef test_cheat():\n    pass\n"})
    result = run_setup(repo, tmp_path / "in", {"0.patch": agent}, test_patch, [])
    assert result.returncode != 0


def test_restore_removes_file_head_lacks(repo: Path, tmp_path: Path):
    new_test = "def test_new():\n    assert True\n"
    test_patch = diff_of(repo, {"tests/test_new.py": new_test})
    agent = diff_of(repo, {"tests/test_new.py": "def test_new():\n    pass  # the agent's own\n"})
    result = run_setup(repo, tmp_path / "in", {"0.patch": agent}, test_patch, ["tests/test_new.py"])
    assert result.returncode == 0, result.stderr
    assert (repo / "tests/test_new.py").read_text() == new_test


def test_restore_removes_file_without_test_patch(repo: Path, tmp_path: Path):
    agent = diff_of(repo, {"tests/test_extra.py": "def test_extra():\n    pass\n"})
    result = run_setup(repo, tmp_path / "in", {"0.patch": agent}, None, ["tests/test_extra.py"])
    assert result.returncode == 0, result.stderr
    assert not (repo / "tests/test_extra.py").exists()


def test_restore_brings_back_deleted_test_file(repo: Path, tmp_path: Path):
    agent = diff_of(repo, {"tests/test_calc.py": None})
    result = run_setup(repo, tmp_path / "in", {"0.patch": agent}, None, ["tests/test_calc.py"])
    assert result.returncode == 0, result.stderr
    assert (repo / "tests/test_calc.py").read_text() == TEST


def test_restore_of_absent_path_not_in_head_is_harmless(repo: Path, tmp_path: Path):
    result = run_setup(repo, tmp_path / "in", {}, None, ["tests/never_there.py"])
    assert result.returncode == 0, result.stderr
    assert not (repo / "tests/never_there.py").exists()


def test_restore_path_with_space_is_quoted(tmp_path: Path):
    root = tmp_path / "repo"
    original = "def test_x():\n    pass\n"
    make_repo(root, {"tests/my test.py": original, "src/a.py": "x = 1\n"})
    agent = diff_of(root, {"tests/my test.py": "def test_x():\n    assert 0\n", "src/a.py": "x = 2\n"})
    result = run_setup(root, tmp_path / "in", {"0.patch": agent}, None, ["tests/my test.py"])
    assert result.returncode == 0, result.stderr
    assert (root / "tests/my test.py").read_text() == original
    assert (root / "src/a.py").read_text() == "x = 2\n"


def test_patch_that_does_not_apply_exits_non_zero(repo: Path, tmp_path: Path):
    good_tests = diff_of(repo, {"tests/test_calc.py": TEST + "\n\ndef test_more():\n    pass\n"})
    bad = diff_of(repo, {"src/calc.py": CALC.replace("a + b", "a * b")}).replace("-    return a + b", "-    return a ^ b")
    result = run_setup(repo, tmp_path / "in", {"0.patch": bad}, good_tests, ["tests/test_calc.py"])
    assert result.returncode != 0
    # set -e stops at the failing line: nothing after it ran
    assert (repo / "tests/test_calc.py").read_text() == TEST
    assert (repo / "src/calc.py").read_text() == CALC


def test_test_patch_that_does_not_apply_exits_non_zero(repo: Path, tmp_path: Path):
    fix = diff_of(repo, {"src/calc.py": CALC.replace("a - b", "b - a")})
    bad_tests = diff_of(repo, {"tests/test_calc.py": TEST.replace("== 3", "== 4")}).replace("-    assert add(1, 2) == 3", "-    assert add(9, 9) == 3")
    result = run_setup(repo, tmp_path / "in", {"0.patch": fix}, bad_tests, ["tests/test_calc.py"])
    assert result.returncode != 0


@pytest.mark.parametrize("failing", ["first", "test patch"])
def test_failure_inside_if_stops_and_fails(repo: Path, tmp_path: Path, failing: str):
    """Inside the runner's `if`, `set -e` is off: a failing step must still fail the whole setup."""
    fix = diff_of(repo, {"src/calc.py": CALC.replace("a - b", "b - a")})
    tests = diff_of(repo, {"tests/test_calc.py": TEST + "\n\ndef test_more():\n    pass\n"})
    broken = fix.replace("-    return a - b", "-    return a % b")
    if failing == "first":
        patches, test_patch = {"0.patch": broken, "1.patch": diff_of(repo, {"README": "calc!\n"})}, tests
    else:
        patches, test_patch = {"0.patch": fix}, tests.replace("\n def test_add():", "\n def test_nope():")
    result = run_setup(repo, tmp_path / "in", patches, test_patch, ["tests/test_calc.py"], in_if=True)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "SETUP-FAILED" in result.stdout
    if failing == "first":
        # nothing after the failing patch ran
        assert (repo / "README").read_text() == "calc\n"
        assert (repo / "tests/test_calc.py").read_text() == TEST


def test_success_inside_if(repo: Path, tmp_path: Path):
    fix = diff_of(repo, {"src/calc.py": CALC.replace("a - b", "b - a")})
    tests = diff_of(repo, {"tests/test_calc.py": TEST + "\n\ndef test_more():\n    pass\n"})
    agent = diff_of(repo, {"tests/test_calc.py": TEST + "\n\ndef test_cheat():\n    pass\n"})
    result = run_setup(
        repo, tmp_path / "in", {"0.patch": fix, "1.patch": agent}, tests, ["tests/test_calc.py"], in_if=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SETUP-OK" in result.stdout
    assert (repo / "tests/test_calc.py").read_text() == TEST + "\n\ndef test_more():\n    pass\n"
    assert "return b - a" in (repo / "src/calc.py").read_text()


# -- the start state holds the install's changes; the graded ground comes from the start state ------

INSTALLED = "src/calc.egg-info/SOURCES.txt"


@pytest.fixture
def installed_repo(tmp_path: Path) -> Path:
    """A repository that tracks a file its install rewrites, as an image's working tree has it after the install."""
    root = tmp_path / "installed"
    make_repo(root, {"src/calc.py": CALC, "tests/test_calc.py": TEST, INSTALLED: "src/calc.py\n"})
    (root / INSTALLED).write_text("src/calc.py\nsrc/calc.egg-info/PKG-INFO\n")
    return root


def start_state_diff(repo: Path, files: dict[str, str]) -> str:
    """What an episode submits: the diff from the start state (the install's change committed) to `files` written."""
    scratch = repo.parent / "scratch"
    subprocess.run(["git", "clone", "-q", str(repo), str(scratch)], check=True)
    (scratch / INSTALLED).write_text((repo / INSTALLED).read_text())
    git(scratch, "commit", "-qam", "start state")
    return diff_of(scratch, files)


def test_a_patch_against_the_start_state_applies_where_the_install_changed_a_tracked_file(installed_repo, tmp_path):
    agent = start_state_diff(installed_repo, {"src/calc.py": CALC.replace("a - b", "b - a")})
    assert INSTALLED not in agent
    result = run_setup(installed_repo, tmp_path / "in", {"0.patch": agent}, None, [])
    assert result.returncode == 0, result.stderr
    assert "return b - a" in (installed_repo / "src/calc.py").read_text()
    assert "PKG-INFO" in (installed_repo / INSTALLED).read_text()


def test_a_diff_recorded_against_the_commit_carries_the_install_change_and_still_applies(installed_repo, tmp_path):
    """Episodes stored before start states held the install's changes: their patch carries that change too."""
    old_style = diff_of(installed_repo, {"src/calc.py": CALC.replace("a - b", "b - a"),
                                         INSTALLED: "src/calc.py\nsrc/calc.egg-info/PKG-INFO\n"})
    (installed_repo / INSTALLED).write_text("src/calc.py\nsrc/calc.egg-info/PKG-INFO\n")  # diff_of reset the tree
    assert INSTALLED in old_style
    plain = subprocess.run(["git", "apply", "--check", "-"], input=old_style, cwd=installed_repo, text=True,
                           capture_output=True)
    assert plain.returncode != 0  # what graded every such episode "patch does not apply"
    result = run_setup(installed_repo, tmp_path / "in", {"0.patch": old_style}, None, [])
    assert result.returncode == 0, result.stderr
    assert "return b - a" in (installed_repo / "src/calc.py").read_text()


@pytest.mark.parametrize("path, text", [
    ("conftest.py", "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport():\n    yield\n"),
    ("tests/conftest.py", "collect_ignore = ['test_calc.py']\n"),
    ("pytest.ini", "[pytest]\naddopts = -p no:python\n"),
    ("src/sitecustomize.py", "import builtins\n"),
])
def test_test_configuration_a_patch_adds_is_gone_before_the_graded_run(repo, tmp_path, path, text):
    agent = diff_of(repo, {"src/calc.py": CALC.replace("a - b", "b - a"), path: text})
    restore = protected_in(agent)
    assert restore == [path]
    result = run_setup(repo, tmp_path / "in", {"0.patch": agent}, None, restore)
    assert result.returncode == 0, result.stderr
    assert not (repo / path).exists()
    assert "return b - a" in (repo / "src/calc.py").read_text()  # the real change stays


def test_configuration_a_patch_edits_or_renames_away_comes_back_from_the_start_state(tmp_path):
    root = tmp_path / "repo"
    ini = "[tool:pytest]\ntestpaths = tests\n"
    conftest = "import pytest\n"
    make_repo(root, {"setup.cfg": ini, "tests/conftest.py": conftest, "tests/test_a.py": TEST, "src/calc.py": CALC})
    agent = diff_of(root, {"setup.cfg": ini + "addopts = --deselect tests/test_a.py::test_add\n",
                           "tests/conftest.py": None, "tests/helper.py": conftest})
    git(root, "add", "-A")
    restore = protected_in(agent)
    assert set(restore) == {"setup.cfg", "tests/conftest.py", "tests/helper.py"}
    result = run_setup(root, tmp_path / "in", {"0.patch": agent}, None, restore)
    assert result.returncode == 0, result.stderr
    assert (root / "setup.cfg").read_text() == ini
    assert (root / "tests/conftest.py").read_text() == conftest
    assert not (root / "tests/helper.py").exists()


def test_restore_takes_the_start_state_with_the_bug_not_the_commit(repo, tmp_path):
    """A bug patch that touches a protected file (a plugin module, say) stays in the graded state."""
    bug = diff_of(repo, {"tests/test_calc.py": TEST + "\n# bug\n"})
    agent = diff_of_on(repo, bug, {"tests/test_calc.py": TEST + "\n# bug\n# agent\n"})
    result = run_setup(repo, tmp_path / "in", {"0.patch": bug, "1.patch": agent}, None, ["tests/test_calc.py"])
    assert result.returncode == 0, result.stderr
    assert (repo / "tests/test_calc.py").read_text() == TEST + "\n# bug\n"


def diff_of_on(repo: Path, start: str, files: dict[str, str]) -> str:
    """A diff made against HEAD with `start` applied (then the tree is reset)."""
    subprocess.run(["git", "apply", "--index", "-"], input=start, cwd=repo, text=True, check=True)
    for rel, text in files.items():
        (repo / rel).write_text(text)
    patch = subprocess.run(["git", "diff"], cwd=repo, check=True, capture_output=True, text=True).stdout
    git(repo, "reset", "-q", "--hard", "HEAD")
    return patch


def test_protected_paths():
    assert is_protected("tests/test_a.py") and is_protected("pkg/conftest.py") and is_protected("tox.ini")
    assert is_protected("pyproject.toml") and is_protected("sub/setup.cfg") and is_protected("src/evil.pth")
    assert is_protected("pkg/testing_plugin.py", ["pkg/testing_plugin.py"])
    assert not is_protected("pkg/core.py") and not is_protected("setup.py") and not is_protected("README.md")
