import shutil
import subprocess
from pathlib import Path

import pytest

# imported under another name: pytest would collect a module-level `test_files` as a test
from forager.tasks.patches import changed_files, is_test_path, split_by_tests
from forager.tasks.patches import test_files as files_of_tests
from tests.conftest import make_repo

# A real `git diff --cached` (git 2.39), one string per file section, in git's order. It has an
# empty new file with a space in its name (header only), a modified file with a space (git
# leaves it unquoted and adds a tab after the name), a C-quoted UTF-8 name, a plain source
# change, a deletion, a new file, an empty new test file, a quoted name with '"', and a test change.
SECTIONS = {
    "docs/empty notes.txt": (
        "diff --git a/docs/empty notes.txt b/docs/empty notes.txt\n"
        "new file mode 100644\n"
        "index 0000000..e69de29\n"
    ),
    "docs/release notes.txt": (
        "diff --git a/docs/release notes.txt b/docs/release notes.txt\n"
        "index e9da5a2..e27ae12 100644\n"
        "--- a/docs/release notes.txt\t\n"
        "+++ b/docs/release notes.txt\t\n"
        "@@ -1 +1 @@\n"
        "-old notes\n"
        "+new notes\n"
    ),
    "src/money/café.py": (
        'diff --git "a/src/money/caf\\303\\251.py" "b/src/money/caf\\303\\251.py"\n'
        "index 587be6b..975fbec 100644\n"
        '--- "a/src/money/caf\\303\\251.py"\n'
        '+++ "b/src/money/caf\\303\\251.py"\n'
        "@@ -1 +1 @@\n"
        "-x\n"
        "+y\n"
    ),
    "src/money/core.py": (
        "diff --git a/src/money/core.py b/src/money/core.py\n"
        "index 4693ad3..071d5fc 100644\n"
        "--- a/src/money/core.py\n"
        "+++ b/src/money/core.py\n"
        "@@ -1,2 +1,3 @@\n"
        " def add(a, b):\n"
        '+    """Sum."""\n'
        "     return a + b\n"
    ),
    "src/money/legacy.py": (
        "diff --git a/src/money/legacy.py b/src/money/legacy.py\n"
        "deleted file mode 100644\n"
        "index 7c66a64..0000000\n"
        "--- a/src/money/legacy.py\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-legacy = True\n"
    ),
    "src/money/rates.py": (
        "diff --git a/src/money/rates.py b/src/money/rates.py\n"
        "new file mode 100644\n"
        "index 0000000..3b18573\n"
        "--- /dev/null\n"
        "+++ b/src/money/rates.py\n"
        "@@ -0,0 +1 @@\n"
        "+RATE = 2\n"
    ),
    "tests/__init__.py": (
        "diff --git a/tests/__init__.py b/tests/__init__.py\n"
        "new file mode 100644\n"
        "index 0000000..e69de29\n"
    ),
    'tests/data/q"t.txt': (
        'diff --git "a/tests/data/q\\"t.txt" "b/tests/data/q\\"t.txt"\n'
        "new file mode 100644\n"
        "index 0000000..b680253\n"
        "--- /dev/null\n"
        '+++ "b/tests/data/q\\"t.txt"\n'
        "@@ -0,0 +1 @@\n"
        "+z\n"
    ),
    "tests/test_core.py": (
        "diff --git a/tests/test_core.py b/tests/test_core.py\n"
        "index 7c49c15..37acee5 100644\n"
        "--- a/tests/test_core.py\n"
        "+++ b/tests/test_core.py\n"
        "@@ -3,3 +3,7 @@ from money.core import add\n"
        " \n"
        " def test_add():\n"
        "     assert add(2, 3) == 5\n"
        "+\n"
        "+\n"
        "+def test_add_neg():\n"
        "+    assert add(-1, 1) == 0\n"
    ),
}
DIFF = "".join(SECTIONS.values())
TEST_PATHS = ["tests/__init__.py", 'tests/data/q"t.txt', "tests/test_core.py"]
SOURCE_PATHS = [path for path in SECTIONS if path not in TEST_PATHS]

# The tree the diff applies to.
BASE_FILES = {
    "src/money/core.py": "def add(a, b):\n    return a + b\n",
    "src/money/legacy.py": "legacy = True\n",
    "src/money/café.py": "x\n",
    "docs/release notes.txt": "old notes\n",
    "tests/test_core.py": "from money.core import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_core.py",
        "tests/data/q.txt",
        "src/pkg/tests/helpers.py",
        "pkg/test/util.py",
        "lib/testing/fixtures.py",
        "src/pkg/test_money.py",
        "src/pkg/money_test.py",
        "conftest.py",
        "src/pkg/conftest.py",
        "app/tests.py",
    ],
)
def test_is_test_path_true(path):
    assert is_test_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "src/pkg/contest.py",
        "src/pkg/testing_utils.py",
        "docs/tests.rst",
        "tests",  # a bare name is a file, not a directory
        "src/pkg/latest/x.py",
        "src/pkg/test_data.json",
        "src/pkg/attest.py",
        "",
    ],
)
def test_is_test_path_false(path):
    assert not is_test_path(path)


def test_changed_files_reads_every_kind_of_git_section():
    assert changed_files(DIFF) == list(SECTIONS)


def test_changed_files_decodes_quoted_octal_and_escapes():
    diff = (
        'diff --git "a/dir/t\\303\\251st\\tx\\\\y.py" "b/dir/t\\303\\251st\\tx\\\\y.py"\n'
        "new file mode 100644\n"
        "index 0000000..e69de29\n"
    )
    assert changed_files(diff) == ["dir/tést\tx\\y.py"]


def test_changed_files_uses_the_new_name_of_a_rename():
    diff = (
        "diff --git a/old name.py b/new name.py\n"
        "similarity index 100%\n"
        "rename from old name.py\n"
        "rename to new name.py\n"
    )
    assert changed_files(diff) == ["new name.py"]


def test_changed_files_uses_the_old_name_of_a_header_only_deletion():
    diff = "diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\nindex e69de29..0000000\n"
    assert changed_files(diff) == ["gone.txt"]


def test_changed_files_is_unique_and_ordered():
    diff = SECTIONS["src/money/core.py"] + SECTIONS["tests/test_core.py"] + SECTIONS["src/money/core.py"]
    assert changed_files(diff) == ["src/money/core.py", "tests/test_core.py"]


def test_changed_files_without_git_headers():
    diff = (
        "--- a/src/x.py\t2024-01-01 10:00:00\n"
        "+++ b/src/x.py\t2024-01-02 10:00:00\n"
        "@@ -1,2 +1,2 @@\n"
        "--- a comment line that looks like a header\n"
        "+++ and its replacement\n"
        " keep\n"
        "--- old/y.py\n"
        "+++ /dev/null\n"
        "@@ -1 +0,0 @@\n"
        "-gone\n"
        "--- plain.txt\n"
        "+++ plain.txt\n"
        "@@ -1 +1 @@\n"
        "-a\n"
        "+b\n"
    )
    assert changed_files(diff) == ["src/x.py", "old/y.py", "plain.txt"]


def test_changed_files_of_no_diff_is_empty():
    assert changed_files("") == []
    assert changed_files("just a commit message\n") == []


def test_split_by_tests_puts_each_file_in_its_part():
    source, tests = split_by_tests(DIFF)
    assert changed_files(source) == SOURCE_PATHS
    assert changed_files(tests) == TEST_PATHS
    assert source == "".join(SECTIONS[path] for path in SOURCE_PATHS)
    assert tests == "".join(SECTIONS[path] for path in TEST_PATHS)


def test_split_by_tests_keeps_every_byte_of_every_section():
    source, tests = split_by_tests(DIFF)
    assert sorted((source + tests).splitlines(keepends=True)) == sorted(DIFF.splitlines(keepends=True))
    assert len(source) + len(tests) == len(DIFF)


def test_split_by_tests_drops_the_commit_message_and_keeps_missing_final_newline():
    message = "From 1234 Mon Sep 17 00:00:00 2001\nSubject: fix add\n\n---\n src/money/core.py | 1 +\n\n"
    tail = SECTIONS["tests/test_core.py"].removesuffix("\n") + "\n\\ No newline at end of file"
    source, tests = split_by_tests(message + SECTIONS["src/money/core.py"] + tail)
    assert source == SECTIONS["src/money/core.py"]
    assert tests == tail


def test_split_by_tests_does_not_split_on_hunk_lines_that_look_like_headers():
    # the removed line "-- note" reads "--- note" in the diff and the added "++ x" reads "+++ x"
    diff = (
        "--- a/tests/test_sql.py\n"
        "+++ b/tests/test_sql.py\n"
        "@@ -1,2 +1,2 @@\n"
        " query = 1\n"
        "--- note\n"
        "+++ x\n"
        "--- a/src/sql.py\n"
        "+++ b/src/sql.py\n"
        "@@ -1 +1 @@\n"
        "-a\n"
        "+b\n"
    )
    source, tests = split_by_tests(diff)
    assert changed_files(tests) == ["tests/test_sql.py"]
    assert source.startswith("--- a/src/sql.py\n")
    assert source + tests != diff and tests + source == diff


def test_split_by_tests_of_only_source_has_empty_test_part():
    source, tests = split_by_tests(SECTIONS["src/money/core.py"])
    assert (source, tests) == (SECTIONS["src/money/core.py"], "")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_each_part_applies_with_git_and_both_give_the_full_change(tmp_path):
    source, tests = split_by_tests(DIFF)
    for name, patch in (("full", DIFF), ("source", source), ("tests", tests)):
        repo = tmp_path / name
        make_repo(repo, BASE_FILES)
        (repo / "change.diff").write_text(patch)
        result = subprocess.run(
            ["git", "apply", "--check", "change.diff"], cwd=repo, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{name}: {result.stderr}"

    repo = tmp_path / "both"
    make_repo(repo, BASE_FILES)
    for part in (tests, source):
        (repo / "part.diff").write_text(part)
        subprocess.run(["git", "apply", "part.diff"], cwd=repo, check=True, capture_output=True)
    (repo / "part.diff").unlink()
    assert not (repo / "src/money/legacy.py").exists()
    assert (repo / "src/money/café.py").read_text() == "y\n"
    assert (repo / 'tests/data/q"t.txt').read_text() == "z\n"
    assert (repo / "docs/empty notes.txt").read_text() == ""
    assert "test_add_neg" in (repo / "tests/test_core.py").read_text()


def test_test_files_takes_the_file_of_each_node_id():
    ids = [
        "tests/test_a.py::TestX::test_y[a-b::c]",
        "tests/test_a.py::test_z",
        "tests/test_b.py",
        "tests/test_c.py::test_w[1]",
        "tests/test_b.py::test_v",
    ]
    assert files_of_tests(ids) == ["tests/test_a.py", "tests/test_b.py", "tests/test_c.py"]


def test_test_files_of_nothing_is_empty():
    assert files_of_tests([]) == []
    assert files_of_tests(iter(["", "  "])) == []


def test_module_has_no_process_or_network_imports():
    source = (Path(__file__).resolve().parents[2] / "forager/tasks/patches.py").read_text()
    for forbidden in ("subprocess", "socket", "httpx", "docker", "sqlmodel"):
        assert f"import {forbidden}" not in source
