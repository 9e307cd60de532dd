import pytest

from ledger import format_amount, parse_amount


@pytest.mark.parametrize(
    "text, cents",
    [("12.34", 1234), ("7", 700), ("-0.5", -50), ("1,000.01", 100001), (".99", 99)],
)
def test_parse_amount(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("text", ["", "abc", "1.234", "--1"])
def test_parse_amount_rejects(text):
    with pytest.raises(ValueError):
        parse_amount(text)


def test_format_amount():
    assert format_amount(1234) == "12.34"
    assert format_amount(-5) == "-0.05"
    assert format_amount(123456789) == "1,234,567.89"


def test_round_trip():
    for cents in (-100001, -1, 0, 1, 99, 100, 123456):
        assert parse_amount(format_amount(cents)) == cents
