"""Accounts and a ledger of balanced entries."""

from __future__ import annotations

from dataclasses import dataclass, field


class UnbalancedEntry(ValueError):
    pass


@dataclass
class Account:
    name: str
    kind: str = "asset"
    balance: int = 0

    def apply(self, cents: int) -> None:
        # Assets grow with debits; liabilities and income grow with credits.
        if self.kind in ("asset", "expense"):
            self.balance += cents
        else:
            self.balance -= cents


@dataclass
class Ledger:
    accounts: dict[str, Account] = field(default_factory=dict)
    entries: list[list[tuple[str, int]]] = field(default_factory=list)

    def open(self, name: str, kind: str = "asset") -> Account:
        if name in self.accounts:
            raise KeyError(f"account {name} exists")
        account = self.accounts[name] = Account(name, kind)
        return account

    def post(self, *lines: tuple[str, int]) -> None:
        """Post one entry: debits positive, credits negative; they must sum to zero."""
        if sum(amount for _, amount in lines) != 0:
            raise UnbalancedEntry(f"entry does not balance: {lines}")
        for name, _ in lines:
            if name not in self.accounts:
                raise KeyError(f"no account {name}")
        for name, amount in lines:
            self.accounts[name].apply(amount)
        self.entries.append(list(lines))

    def balance(self, name: str) -> int:
        return self.accounts[name].balance

    def trial_balance(self) -> int:
        """Debit-normal sum over all accounts; zero when the books balance."""
        total = 0
        for account in self.accounts.values():
            sign = 1 if account.kind in ("asset", "expense") else -1
            total += sign * account.balance
        return total
