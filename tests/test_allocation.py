"""Properties of the allocation rule (pure, so Hypothesis can hammer it)."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from contracts.allocation import Outstanding, allocate, allocate_rows

months = st.lists(
    st.tuples(st.integers(2020, 2027), st.integers(1, 12), st.integers(0, 10**9)),
    min_size=1, max_size=40, unique_by=lambda t: (t[0], t[1]),
).map(lambda rows: [Outstanding(y, m, owed) for y, m, owed in rows])


@st.composite
def cases(draw):
    schedule = draw(months)
    start = draw(st.sampled_from([(m.year, m.month) for m in schedule]))
    amount = draw(st.integers(1, 10**10))
    return schedule, start, amount


@given(cases())
def test_conservation_to_the_cent(case):
    schedule, start, amount = case
    allocations, to_bank = allocate(amount, start, schedule)
    assert sum(a.amount_cents for a in allocations) + to_bank == amount
    assert to_bank >= 0 and all(a.amount_cents > 0 for a in allocations)


@given(cases())
def test_no_month_beyond_its_due(case):
    schedule, start, amount = case
    owed = {(m.year, m.month): m.owed_cents for m in schedule}
    allocations, _ = allocate(amount, start, schedule)
    for a in allocations:
        assert a.amount_cents <= owed[(a.year, a.month)]
    assert len({(a.year, a.month) for a in allocations}) == len(allocations)


@given(cases())
def test_months_before_the_chosen_one_untouched(case):
    schedule, start, amount = case
    allocations, _ = allocate(amount, start, schedule)
    assert all((a.year, a.month) >= start for a in allocations)


@given(cases())
def test_later_month_paid_only_when_earlier_ones_are_full(case):
    schedule, start, amount = case
    owed = {(m.year, m.month): m.owed_cents for m in schedule}
    allocations, to_bank = allocate(amount, start, schedule)
    got = {(a.year, a.month): a.amount_cents for a in allocations}
    eligible = sorted(k for k in owed if k >= start)
    for i, key in enumerate(eligible):
        if any(got.get(later, 0) for later in eligible[i + 1:]):
            assert got.get(key, 0) == owed[key], f"{key} not full but a later month was paid"
    if to_bank:
        assert all(got.get(k, 0) == owed[k] for k in eligible), "bank credit while a month still owes"


def test_example_overflow_into_next_year_then_bank_credit():
    schedule = [Outstanding(2024, 12, 5_000), Outstanding(2025, 1, 3_000), Outstanding(2024, 11, 1_000)]
    allocations, to_bank = allocate(10_000, (2024, 12), schedule)
    assert [(a.year, a.month, a.amount_cents) for a in allocations] == [(2024, 12, 5_000), (2025, 1, 3_000)]
    assert to_bank == 2_000


@given(st.lists(st.tuples(st.integers(1, 10**9), st.lists(st.integers(0, 10**8), min_size=1, max_size=8)),
                min_size=1, max_size=10))
def test_batch_rule_matches_month_by_month_reference(rows):
    width = max(len(owed) for _, owed in rows)
    owed = np.array([o + [0] * (width - len(o)) for _, o in rows], dtype=np.int64)
    parts, bank = allocate_rows(np.array([a for a, _ in rows]), owed)
    for i, (amount, months_owed) in enumerate(rows):
        left = amount
        for j, o in enumerate(months_owed):  # the rule, read literally
            take = min(left, o)
            assert parts[i, j] == take
            left -= take
        assert bank[i] == left
