import pytest

from forager.tasks.statement import mutate_fix_statement

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
