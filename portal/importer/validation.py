"""Validate a ledger export before anything is written; each error names the file, column and first bad row."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from contracts.ledger_export import REQUIRED

TEXT_LIMITS = {"name": 120, "email": 254, "phone": 32}
MONEY = {"due_cents", "paid_cents", "bank_credit_cents"}


class LedgerImportError(ValueError):
    """The input cannot be imported; the message names the file, the column and the problem."""

    def __init__(self, message: str, file: str | None = None, column: str | None = None):
        where = ".".join(part for part in (file, column) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.column = file, column


@dataclass
class Prepared:
    """Validated input as plain arrays and lists, ready for the bulk writers."""

    customers: list[np.ndarray | list]   # CUSTOMER_COLUMNS without password_hash and created_at
    dues: list[np.ndarray]               # in DUE_COLUMNS order
    outcomes: list[np.ndarray | list]    # in OUTCOME_COLUMNS order

    @property
    def counts(self) -> dict[str, int]:
        return {"customers": len(self.customers[0]), "dues": len(self.dues[0]),
                "outcomes": len(self.outcomes[0])}


def validate(data: dict[str, pd.DataFrame]) -> Prepared:
    """Check every rule the ledger enforces, naming the first offending row; return arrays."""
    for name in ("customers", "dues"):
        if data.get(name) is None:
            raise LedgerImportError("missing (no such file or frame)", name)
    outcomes = data.get("outcomes")
    if outcomes is None:
        outcomes = pd.DataFrame({"customer_id": np.array([], np.int64), "result": np.array([], np.int64)})
    frames = {"customers": data["customers"], "dues": data["dues"], "outcomes": outcomes}
    for name, frame in frames.items():
        missing = [c for c in REQUIRED[name] if c not in frame.columns]
        if missing:
            raise LedgerImportError(f"missing column(s) {', '.join(missing)}", name)
    customers = _customers(frames["customers"])
    ids = customers[0]
    order = np.argsort(ids, kind="stable")
    dues, total_due, total_paid = _dues(frames["dues"], ids, order)
    _bank_credit_only_when_nothing_owed(ids, customers[5], total_due, total_paid)
    return Prepared(customers=customers[:5] + [total_due, total_paid] + customers[5:], dues=dues,
                    outcomes=_outcomes(frames["outcomes"], ids, order))


def _customers(c: pd.DataFrame) -> list:
    """Return id, name, email, age, phone and bank credit, checked."""
    ids = _ints(c, "customers", "customer_id", low=1)
    _unique(ids, "customers")
    texts = {col: _texts(c, "customers", col, required=col == "name") for col in TEXT_LIMITS}
    age = _ints(c, "customers", "age", low=18, high=120, nullable=True) if "age" in c else [None] * len(c)
    bank_credit = (_ints(c, "customers", "bank_credit_cents", low=0) if "bank_credit_cents" in c
                   else np.zeros(len(c), np.int64))
    return [ids, texts["name"], texts["email"], age, texts["phone"], bank_credit]


def _dues(d: pd.DataFrame, ids: np.ndarray, order: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """Return the dues' columns (paid twice: paid and opening paid) and each customer's totals."""
    customer_id = _ints(d, "dues", "customer_id")
    year = _ints(d, "dues", "year", low=1000, high=9999)
    month = _ints(d, "dues", "month", low=1, high=12)
    due = _ints(d, "dues", "due_cents", low=0)
    paid = _ints(d, "dues", "paid_cents", low=0)
    over = np.flatnonzero(paid > due)
    if len(over):
        i = over[0]
        raise LedgerImportError(f"paid_cents {paid[i]} exceeds due_cents {due[i]} at row {i} "
                                f"(customer {customer_id[i]}, {year[i]}-{month[i]:02d})", "dues", "paid_cents")
    owner = _owners(ids, order, customer_id, "dues")
    _unique_months(customer_id, year, month)
    sums = pd.DataFrame({"owner": owner, "due": due, "paid": paid}).groupby("owner").sum()
    total_due = np.zeros(len(ids), np.int64)
    total_paid = np.zeros(len(ids), np.int64)
    total_due[sums.index.to_numpy()] = sums["due"].to_numpy()
    total_paid[sums.index.to_numpy()] = sums["paid"].to_numpy()
    return [customer_id, year, month, due, paid, paid], total_due, total_paid


def _bank_credit_only_when_nothing_owed(ids: np.ndarray, bank_credit: np.ndarray, total_due: np.ndarray,
                                        total_paid: np.ndarray) -> None:
    """Reject bank credit held while dues are owed: the ledger keeps it only once every due is cleared."""
    bad = np.flatnonzero((bank_credit > 0) & (total_paid < total_due))
    if len(bad):
        i = bad[0]
        raise LedgerImportError(f"customer {ids[i]} holds bank credit {bank_credit[i]} while owing "
                                f"{total_due[i] - total_paid[i]} (row {i}); bank credit is what is left after "
                                "every due is cleared: apply it to the dues first", "customers", "bank_credit_cents")


def _outcomes(o: pd.DataFrame, ids: np.ndarray, order: np.ndarray) -> list:
    """Return the outcomes' customer ids, results and true probabilities (None if unknown)."""
    outcome_ids = _ints(o, "outcomes", "customer_id")
    _unique(outcome_ids, "outcomes")
    _owners(ids, order, outcome_ids, "outcomes")
    result = _ints(o, "outcomes", "result", low=0, high=1)
    probability = [None] * len(o)
    if "true_probability" in o:
        given = o["true_probability"]
        p = pd.to_numeric(given, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        bad = np.flatnonzero(given.notna().to_numpy() & ~((p >= 0) & (p <= 1)))
        if len(bad):
            raise LedgerImportError(f"must be a number in 0..1 (row {bad[0]}: {given.iloc[bad[0]]!r})",
                                    "outcomes", "true_probability")
        probability = [None if np.isnan(x) else x for x in p.tolist()]
    return [outcome_ids, result, probability]


def _ints(frame: pd.DataFrame, file: str, column: str, low: int | None = None, high: int | None = None,
          nullable: bool = False):
    """Return a column as int64 (a list with None where nullable); reject floats for money."""
    series = frame[column]
    present = series.notna().to_numpy()
    if not nullable and not present.all():
        raise LedgerImportError(f"missing value at row {np.flatnonzero(~present)[0]}", file, column)
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        raise LedgerImportError(f"must be integers, got {dtype}", file, column)
    if pd.api.types.is_float_dtype(dtype):
        if column in MONEY:
            raise LedgerImportError(f"must be integer minor units (cents), got {dtype}", file, column)
        values = series.to_numpy(np.float64, na_value=0.0)
        bad = np.flatnonzero((values != np.round(values)) | (np.abs(values) >= 2.0**62))
        if len(bad):
            raise LedgerImportError(f"must be integers (row {bad[0]}: {values[bad[0]]})", file, column)
    elif dtype.kind == "u" or getattr(dtype, "numpy_dtype", dtype).kind == "u":
        values = series.to_numpy(np.uint64, na_value=0)
        if len(values) and values.max() >= 2**63:
            raise LedgerImportError("value too large", file, column)
    else:
        values = series.to_numpy(np.int64, na_value=0)
    values = values.astype(np.int64)
    if low is not None:
        rows = np.flatnonzero(present & (values < low))
        if len(rows):
            what = "negative amount" if column in MONEY else f"value below {low}"
            raise LedgerImportError(f"{what} {values[rows[0]]} at row {rows[0]}", file, column)
    if high is not None:
        rows = np.flatnonzero(present & (values > high))
        if len(rows):
            raise LedgerImportError(f"value above {high}: {values[rows[0]]} at row {rows[0]}", file, column)
    if nullable:
        return [int(v) if ok else None for v, ok in zip(values.tolist(), present)]
    return values


def _texts(frame: pd.DataFrame, file: str, column: str, required: bool) -> list:
    """Return a text column as a list of str (None where missing and allowed)."""
    if column not in frame:
        if required:
            raise LedgerImportError("missing column", file, column)
        return [None] * len(frame)
    series = frame[column]
    present = series.notna().to_numpy()
    values = series.astype(object).where(present, None).tolist()
    wrong = [i for i, v in enumerate(values) if v is not None and not isinstance(v, str)]
    if wrong:
        raise LedgerImportError(f"must be text (row {wrong[0]}: {values[wrong[0]]!r})", file, column)
    if required:
        empty = [i for i, v in enumerate(values) if v is None or not v.strip()]
        if empty:
            raise LedgerImportError(f"missing or empty at row {empty[0]}", file, column)
    too_long = [i for i, v in enumerate(values) if v is not None and len(v) > TEXT_LIMITS[column]]
    if too_long:
        raise LedgerImportError(f"longer than {TEXT_LIMITS[column]} characters at row {too_long[0]}", file, column)
    return values


def _unique(ids: np.ndarray, file: str) -> None:
    """Reject a repeated customer id, naming it."""
    ordered = np.sort(ids)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated):
        raise LedgerImportError(f"duplicate customer_id {repeated[0]}", file, "customer_id")


def _owners(ids: np.ndarray, order: np.ndarray, refs: np.ndarray, file: str) -> np.ndarray:
    """Reject references to customers not in the customers file; return each one's row there."""
    if not len(ids):
        if len(refs):
            raise LedgerImportError(f"unknown customer {refs[0]} at row 0 (not in customers)", file, "customer_id")
        return np.zeros(0, np.int64)
    ordered = ids[order]
    position = np.minimum(np.searchsorted(ordered, refs), len(ordered) - 1)
    unknown = np.flatnonzero(ordered[position] != refs)
    if len(unknown):
        i = unknown[0]
        raise LedgerImportError(f"unknown customer {refs[i]} at row {i} (not in customers)", file, "customer_id")
    return order[position]


def _unique_months(customer_id: np.ndarray, year: np.ndarray, month: np.ndarray) -> None:
    """Reject two rows for the same (customer, year, month)."""
    if len(customer_id) < 2:
        return
    if customer_id.min() >= 0 and customer_id.max() < 2**40:
        key = (customer_id * 10_000 + year) * 16 + month  # year < 10,000 and month < 16: one int64
        if np.all(key[1:] > key[:-1]):  # sorted and distinct: the usual export, checked in O(n)
            return
    repeated = np.flatnonzero(pd.DataFrame({"c": customer_id, "y": year, "m": month}).duplicated().to_numpy())
    if len(repeated):
        i = repeated[0]
        raise LedgerImportError(f"duplicate month at row {i}: customer {customer_id[i]}, {year[i]}-{month[i]:02d}",
                                "dues")
