"""A tiny double-entry ledger."""

from ledger.accounts import Account, Ledger, UnbalancedEntry
from ledger.money import format_amount, parse_amount

__all__ = ["Account", "Ledger", "UnbalancedEntry", "format_amount", "parse_amount"]
