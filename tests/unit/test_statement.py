import pytest

from forager.tasks.statement import (
    commit_subject,
    hidden_names,
    issue_statement,
    mutate_fix_statement,
    traceback_tail,
)

FAILURES = [
    ("tests/test_money.py::test_add", "AssertionError: assert Money(3) == Money(5)"),
    ("tests/test_money.py::test_sum[1-2]", "assert 1 == 3\n +  where 1 = total([1, 2])\n"),
    ("tests/test_money.py::test_empty", ""),
    ("tests/test_money.py::test_fourth", "never shown"),
]


def test_statement_lists_the_first_failures_and_counts_the_rest():
    text = mutate_fix_statement(FAILURES, total=7)
    assert text == (
        "Some tests of this repository fail and they should pass.\n"
        "\n"
        "Failing tests (3 of 7):\n"
        "- tests/test_money.py::test_add\n"
        "  AssertionError: assert Money(3) == Money(5)\n"
        "- tests/test_money.py::test_sum[1-2]\n"
        "  assert 1 == 3\n"
        "   +  where 1 = total([1, 2])\n"
        "- tests/test_money.py::test_empty\n"
        "  (no error message)\n"
        "\n"
        "and 4 more.\n"
        "\n"
        "Find the cause in the source code and fix it. Do not change the tests."
    )


def test_statement_without_more_has_no_more_line():
    text = mutate_fix_statement(FAILURES[:1], total=1)
    assert "Failing tests (1 of 1):" in text
    assert "more." not in text
    assert text.endswith("\n\nFind the cause in the source code and fix it. Do not change the tests.")


def test_all_given_failures_can_be_shown():
    text = mutate_fix_statement(FAILURES, total=4, shown=10)
    assert "Failing tests (4 of 4):" in text
    assert "never shown" in text
    assert "more." not in text


def test_long_messages_are_cut_with_a_mark():
    message = "E" * 50 + "\n" + "F" * 50
    text = mutate_fix_statement([("tests/test_a.py::test_x", message)], total=1, message_chars=60)
    body = [line for line in text.splitlines() if line.startswith("  ")]
    assert body == ["  " + "E" * 50, "  " + "F" * 8 + "…"]
    assert len("\n".join(line[2:] for line in body)) == 60


def test_short_messages_are_not_marked():
    text = mutate_fix_statement([("t.py::x", "x" * 10)], total=1, message_chars=10)
    assert "  " + "x" * 10 + "\n" in text
    assert "…" not in text


def test_messages_are_tidied_but_keep_their_indentation():
    message = "\r\n\r\nTraceback:   \r\n    assert add(1, 2) == 3\r\n\r\n"
    text = mutate_fix_statement([("t.py::x", message)], total=1)
    assert "- t.py::x\n  Traceback:\n      assert add(1, 2) == 3\n\nFind" in text


def test_whitespace_only_message_counts_as_none():
    assert "(no error message)" in mutate_fix_statement([("t.py::x", " \n\t\n")], total=2)


def test_statement_is_deterministic():
    assert mutate_fix_statement(FAILURES, total=9) == mutate_fix_statement(list(FAILURES), total=9)


@pytest.mark.parametrize(
    ("failures", "kwargs", "match"),
    [
        ([], {"total": 0}, "at least one failing test"),
        (FAILURES, {"total": 3}, "total=3 is less than the 4 failures"),
        (FAILURES, {"total": 4, "shown": 0}, "shown=0"),
        (FAILURES, {"total": 4, "message_chars": 0}, "message_chars=0"),
        ([("  ", "msg")], {"total": 1}, r"failures\[0\] has an empty test id"),
    ],
)
def test_bad_input_raises(failures, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mutate_fix_statement(failures, **kwargs)


# -- issue-fix statements -------------------------------------------------------------------------

SOURCE = """\
class Retrying:
    def __init__(self, stop):
        self.stop = stop

    def compute(self, attempt):
        if attempt > self.stop:
            return None
        return attempt


def helper():
    return 1
"""

GOLD = """\
diff --git a/src/pkg/retrying.py b/src/pkg/retrying.py
--- a/src/pkg/retrying.py
+++ b/src/pkg/retrying.py
@@ -5,4 +5,4 @@ class Retrying:
     def compute(self, attempt):
-        if attempt > self.stop:
+        if attempt >= self.stop:
             return None
         return attempt
@@ -12,1 +12,5 @@ def helper():
     return 1
+
+
+def added(x):
+    return x
"""

TRACEBACK = """\
    def test_stops_at_the_limit():
        r = Retrying(stop=2)
>       assert r.compute(2) is None

tests/test_retry.py:12: 
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _

self = <pkg.retrying.Retrying object at 0x7f00>, attempt = 2

    def compute(self, attempt):
>       raise ValueError("attempt 2 is past the limit")
E       ValueError: attempt 2 is past the limit

src/pkg/retrying.py:6: ValueError"""

FILES, FUNCTIONS = ["src/pkg/retrying.py"], ["compute", "added"]


def test_hidden_names_are_the_changed_files_and_the_functions_holding_changed_lines():
    files, functions = hidden_names(GOLD, {"src/pkg/retrying.py": SOURCE})
    assert files == ["src/pkg/retrying.py"]
    # compute holds the changed line; added is new; helper only precedes the insertion and __init__ is untouched
    assert sorted(functions) == ["added", "compute"]


def test_hidden_names_without_the_source_take_the_hunk_context_as_a_guess():
    _files, functions = hidden_names(GOLD)
    assert {"compute", "added", "helper"} <= set(functions)


@pytest.mark.parametrize(
    "message",
    [
        "Merge pull request #12 from someone/branch",
        "Merge branch 'main' into fix",
        "Revert \"Speed up retries\"",
        "Co-authored-by: Someone <a@b.c>",
        "#123",
        "fixes #12",
        "Fixes #12, #13",
        "Closes owner/repo#7.",
        "Release 1.2",
        "Release 8.2.3 (#410)",
        "Bump version to 2.0.1",
        "v1.2.3",
        "1.2.0",
        "Prepare release 3.1",
        "Bump pytest from 7.1 to 7.2",
        "Update changelog",
        "Fix compute for the last attempt",  # names a changed function
        "Change src/pkg/retrying.py to stop earlier",  # names a changed file
        "Clean up pkg.retrying",  # names it as a module
        "Speed up retrying.py",  # by its file name
        "",
    ],
)
def test_subjects_that_name_the_change_or_nothing_are_left_out(message):
    assert commit_subject(message, FILES, FUNCTIONS) is None


@pytest.mark.parametrize(
    ("message", "subject"),
    [
        ("Retry stops one attempt too late (#406)\n\nThe body explains the change.", "Retry stops one attempt too late"),
        ("Preserve defaults through the decorator", "Preserve defaults through the decorator"),
        ("  Keyword arguments are lost on retry  ", "Keyword arguments are lost on retry"),
        ("Recomputed delays keep their sign", "Recomputed delays keep their sign"),  # "compute" only inside a word
    ],
)
def test_subjects_that_name_behaviour_are_kept(message, subject):
    assert commit_subject(message, FILES, FUNCTIONS) == subject


def test_traceback_tail_drops_frames_in_changed_files_but_keeps_their_exception():
    tail = traceback_tail(TRACEBACK, FILES, FUNCTIONS)
    text = "\n".join(tail)
    assert "E       ValueError: attempt 2 is past the limit" in text
    assert "def test_stops_at_the_limit():" in text and "tests/test_retry.py:12:" in text
    for hidden in ("retrying.py", "pkg.retrying", "compute", "raise ValueError"):
        assert hidden not in text


def test_traceback_tail_keeps_the_last_lines():
    text = "\n".join(f"line {i}" for i in range(30))
    assert traceback_tail(text, lines=3) == ["line 27", "line 28", "line 29"]
    assert traceback_tail("", lines=3) == []


def test_issue_statement_reports_what_fails_and_never_names_the_change():
    failures = [
        ("tests/test_retry.py::test_stops_at_the_limit", "ValueError: attempt 2 is past the limit", TRACEBACK),
        ("tests/test_retry.py::test_other", "AssertionError: in compute: 3 != 2\nassert 3 == 2", ""),
    ]
    text = issue_statement(failures, total=4, subject="Retry stops one attempt too late", files=FILES,
                           functions=FUNCTIONS, traceback_lines=6)
    assert text == (
        "Retry stops one attempt too late\n"
        "\n"
        "Some tests fail and they should pass.\n"
        "\n"
        "Failing tests (2 of 4; they may not all be in the repository yet):\n"
        "- tests/test_retry.py::test_stops_at_the_limit\n"
        "  ValueError: attempt 2 is past the limit\n"
        "  Traceback (last lines):\n"
        "        def test_stops_at_the_limit():\n"
        "            r = Retrying(stop=2)\n"
        "\n"
        "    tests/test_retry.py:12:\n"
        "    E       ValueError: attempt 2 is past the limit\n"
        "- tests/test_retry.py::test_other\n"
        "  AssertionError: in …: 3 != 2\n"
        "  assert 3 == 2\n"
        "\n"
        "and 2 more.\n"
        "\n"
        "Find the cause in the source code and fix it, so that these tests pass. Do not change the tests."
    )
    assert "compute" not in text and "retrying.py" not in text


def test_exception_lines_keep_their_message_with_the_changed_names_cut_out():
    collection_error = (
        "ImportError while importing test module '/testbed/tests/test_retry.py'.\n"
        "tests/test_retry.py:3: in <module>\n"
        "    from pkg.retrying import added\n"
        "E   ImportError: cannot import name 'added' from 'pkg.retrying' (/testbed/src/pkg/retrying.py)"
    )
    assert traceback_tail(collection_error, FILES, FUNCTIONS) == [
        "ImportError while importing test module '/testbed/tests/test_retry.py'.",
        "tests/test_retry.py:3: in <module>",
        "E   ImportError: cannot import name '…' from '…' (/testbed/…)",
    ]


def test_tests_that_fail_the_same_way_share_one_description():
    same = "ImportError: cannot import name 'added'"
    failures = [("tests/test_a.py::test_1", same, ""), ("tests/test_a.py::test_2", same, ""),
                ("tests/test_a.py::test_3", "assert 1 == 2", "")]
    text = issue_statement(failures, total=3, functions=["added"])
    assert "- tests/test_a.py::test_1\n- tests/test_a.py::test_2\n  ImportError: cannot import name '…'\n" in text
    assert "- tests/test_a.py::test_3\n  assert 1 == 2\n" in text


def test_a_module_qualified_name_of_a_changed_file_counts_as_naming_it():
    files = ["tenacity/wait.py"]
    assert commit_subject("Implement a wait.wait_exponential_jitter per the guide", files) is None
    assert commit_subject("Waiting is too short. Retry waits longer now", files) is not None


def test_issue_statement_without_subject_or_messages():
    text = issue_statement([("tests/test_a.py::test_x", "", "")], total=1)
    assert text.startswith("Some tests fail and they should pass.\n")
    assert "- tests/test_a.py::test_x\n  (no error message)\n" in text
    assert "more." not in text


def test_issue_statement_needs_a_failing_test():
    with pytest.raises(ValueError, match="at least one failing test"):
        issue_statement([], total=0)
