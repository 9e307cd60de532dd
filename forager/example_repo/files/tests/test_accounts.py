import pytest

from ledger import Ledger, UnbalancedEntry


@pytest.fixture
def books():
    ledger = Ledger()
    ledger.open("cash")
    ledger.open("sales", "income")
    ledger.open("rent", "expense")
    return ledger


def test_post_moves_balances(books):
    books.post(("cash", 5000), ("sales", -5000))
    assert books.balance("cash") == 5000
    assert books.balance("sales") == 5000


def test_unbalanced_entry_is_refused(books):
    with pytest.raises(UnbalancedEntry):
        books.post(("cash", 100), ("sales", -99))
    assert books.entries == []


def test_unknown_account_changes_nothing(books):
    with pytest.raises(KeyError):
        books.post(("cash", 100), ("bank", -100))
    assert books.balance("cash") == 0


def test_trial_balance_is_zero(books):
    books.post(("cash", 5000), ("sales", -5000))
    books.post(("rent", 1200), ("cash", -1200))
    assert books.trial_balance() == 0
    assert books.balance("cash") == 3800


def test_open_twice_fails(books):
    with pytest.raises(KeyError):
        books.open("cash")
