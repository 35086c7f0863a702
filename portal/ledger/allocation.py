"""The allocation rule, as a pure function.

A payment is applied to the chosen month first, then to each following month
in order (across years); a month takes at most what it still owes; whatever is
left after the last month becomes bank credit. Hence, always:
``amount == sum(allocations) + to_bank_credit`` and no month is paid beyond its due.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


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


def allocate(amount_cents: int, start: tuple[int, int], months: Iterable[Outstanding]):
    """Split a payment over the months from `start` on; return (allocations, to_bank_credit)."""
    if amount_cents <= 0:
        raise ValueError("amount must be positive")
    left = amount_cents
    allocations: list[Allocation] = []
    for m in sorted(months, key=lambda m: (m.year, m.month)):
        if (m.year, m.month) < start or m.owed_cents <= 0:
            continue
        if left == 0:
            break
        take = min(left, m.owed_cents)
        allocations.append(Allocation(m.year, m.month, take))
        left -= take
    return allocations, left
