"""Properties of the allocation rule (pure, so Hypothesis can hammer it)."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from contracts.allocation import Outstanding, allocate, allocate_rows, settle

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


def _by_month(schedule, allocations):
    """What each month owed and what each month got, keyed by (year, month)."""
    return ({(m.year, m.month): m.owed_cents for m in schedule},
            {(a.year, a.month): a.amount_cents for a in allocations})


def _visiting_order(schedule, start):
    """The months in the order the rule visits them: the chosen one, the later ones, then the earlier ones."""
    keys = sorted((m.year, m.month) for m in schedule)
    return [k for k in keys if k >= start] + [k for k in keys if k < start]


@given(cases())
def test_earlier_months_paid_only_after_the_chosen_and_later_ones(case):
    schedule, start, amount = case
    allocations, to_bank = allocate(amount, start, schedule)
    owed, got = _by_month(schedule, allocations)
    order = _visiting_order(schedule, start)
    assert [(a.year, a.month) for a in allocations] == [k for k in order if got.get(k)], "visited in order"
    for i, key in enumerate(order):
        if any(got.get(later, 0) for later in order[i + 1:]):
            assert got.get(key, 0) == owed[key], f"{key} not full but a month after it in the order was paid"


@given(cases())
def test_nothing_to_bank_credit_while_any_month_is_owed(case):
    schedule, start, amount = case
    allocations, to_bank = allocate(amount, start, schedule)
    owed, got = _by_month(schedule, allocations)
    if to_bank:
        assert all(got.get(k, 0) == owed[k] for k in owed), "bank credit while a month still owes"
        assert to_bank == amount - sum(owed.values())
    else:
        assert sum(got.values()) == amount


@given(months, st.integers(0, 10**10))
def test_settling_bank_credit_pays_the_oldest_months_first(schedule, credit):
    owed, got = _by_month(schedule, settle(credit, schedule))
    assert sum(got.values()) == min(credit, sum(owed.values()))
    keys = sorted(owed)
    for i, key in enumerate(keys):
        assert got.get(key, 0) <= owed[key]
        if any(got.get(later, 0) for later in keys[i + 1:]):
            assert got.get(key, 0) == owed[key]


def test_example_overflow_into_next_year_then_the_oldest_owed_month_then_bank_credit():
    schedule = [Outstanding(2024, 12, 5_000), Outstanding(2025, 1, 3_000), Outstanding(2024, 11, 1_000),
                Outstanding(2024, 10, 0)]
    allocations, to_bank = allocate(10_000, (2024, 12), schedule)
    assert [(a.year, a.month, a.amount_cents) for a in allocations] == [
        (2024, 12, 5_000), (2025, 1, 3_000), (2024, 11, 1_000)]
    assert to_bank == 1_000


def test_a_paid_month_chosen_sends_the_money_to_the_oldest_owed_month():
    schedule = [Outstanding(2025, 12, 0), Outstanding(2025, 3, 2_000), Outstanding(2025, 5, 4_000)]
    allocations, to_bank = allocate(5_000, (2025, 12), schedule)
    assert [(a.year, a.month, a.amount_cents) for a in allocations] == [(2025, 3, 2_000), (2025, 5, 3_000)]
    assert to_bank == 0


@given(st.lists(st.tuples(st.integers(1, 10**9), st.lists(st.integers(0, 10**8), min_size=1, max_size=8),
                          st.integers(0, 7)), min_size=1, max_size=10), st.booleans())
def test_batch_rule_matches_month_by_month_reference(rows, one_start):
    width = max(len(owed) for _, owed, _ in rows)
    owed = np.array([o + [0] * (width - len(o)) for _, o, _ in rows], dtype=np.int64)
    starts = np.array([s % width for _, _, s in rows])
    start = int(starts[0]) if one_start else starts
    parts, bank = allocate_rows(np.array([a for a, _, _ in rows]), owed, start)
    for i, (amount, _, _) in enumerate(rows):
        first = int(starts[0] if one_start else starts[i])
        left = amount
        for j in [*range(first, width), *range(first)]:  # the rule, read literally
            take = min(left, int(owed[i, j]))
            assert parts[i, j] == take
            left -= take
        assert bank[i] == left
