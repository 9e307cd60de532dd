"""One-line text for reports and stored errors (forager/text.py)."""

from forager.text import error_line, first_line, one_line


def test_one_line_joins_lines_and_cuts_with_an_ellipsis():
    assert one_line("tests/test_a.py::test_x[a\nb]  \r\n tail") == "tests/test_a.py::test_x[a b] tail"
    assert one_line("abcdef", 4) == "abc…" and len(one_line("x" * 500, 200)) == 200
    assert one_line("short", 200) == "short"


def test_first_line_skips_blank_lines_and_an_empty_message_is_empty_not_an_error():
    assert first_line("\n\n  Traceback here  \nmore") == "Traceback here"
    assert first_line("") == "" and first_line("   \n \n") == ""
    assert first_line("y" * 400) == "y" * 300 and first_line("y" * 400, None) == "y" * 400


def test_error_line_names_the_class_and_the_first_line():
    assert error_line(ValueError("bad value\nsecond line")) == "ValueError: bad value"
    assert error_line(KeyError()) == "KeyError"  # str(KeyError()) is "": no IndexError
    assert error_line(RuntimeError("\n")) == "RuntimeError"
