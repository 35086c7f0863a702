"""The allocation rule: the one implementation, for one payment or for many at once.

A payment is applied to the chosen month first, then to each following month
in order (across years); a month takes at most what it still owes; whatever is
left after the last month becomes bank credit. Hence, always:
``amount == sum(allocations) + to_bank_credit`` and no month is paid beyond its due.

``allocate_rows`` is the rule itself, vectorised with numpy over many payments
(the simulator applies a month of payments for every customer in one call);
``allocate`` is the ledger's view of it for one payment over a customer's schedule.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Outstanding:
    """What one month still owes."""

    year: int
    month: int
    owed_cents: int


@dataclass(frozen=True)
class Allocation:
    """The part of a payment that goes to one month."""

    year: int
    month: int
    amount_cents: int


def allocate_rows(amounts: np.ndarray, owed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply each payment to its row of owed months, first column first.

    ``amounts`` has shape (n,), ``owed`` shape (n, k): row i is what the chosen
    month and the months after it still owe, in order. Returns the allocations
    (n, k) and the bank credit (n,), in exact int64 arithmetic.
    """
    amounts = np.asarray(amounts, dtype=np.int64)
    owed = np.maximum(np.asarray(owed, dtype=np.int64), 0)
    # Money reaching month j is what is left after every earlier month took its share.
    owed_before = np.cumsum(owed, axis=1) - owed
    allocations = np.clip(amounts[:, None] - owed_before, 0, owed)
    return allocations, np.maximum(amounts - owed.sum(axis=1), 0)


def allocate(amount_cents: int, start: tuple[int, int], months: Iterable[Outstanding]):
    """Split one payment over the months from `start` on; return (allocations, to_bank_credit)."""
    if amount_cents <= 0:
        raise ValueError("amount must be positive")
    ahead = sorted((m for m in months if (m.year, m.month) >= start), key=lambda m: (m.year, m.month))
    owed = np.array([[m.owed_cents for m in ahead]], dtype=np.int64).reshape(1, len(ahead))
    parts, bank = allocate_rows(np.array([amount_cents]), owed)
    allocations = [Allocation(m.year, m.month, int(c)) for m, c in zip(ahead, parts[0]) if c > 0]
    return allocations, int(bank[0])
