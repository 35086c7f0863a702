"""Simulate a bank's export: customers, five years of monthly dues, and the outcome observed after them.

The demo ledger and the model's training data come from here, and from nowhere
else. ``simulate`` is pure (parameters in, DataFrames out) and deterministic for
a seed; ``main`` writes the frames as a ledger export (``contracts.ledger_export``,
Parquet files under ``var/data/``) for the portal to import.

Time line of one customer
-------------------------
* **Feature years**: the five complete years before the customer's outcome
  window (``end_year - 5`` ... ``end_year - 1`` by default, the five years before
  today). Their monthly dues and payments go into the export, so the ledger's
  ``year_percentage`` view shows them as ``paid_pct_5y_ago`` ... ``paid_pct_1y_ago``.
* **Outcome window**: the twelve months after the last feature year (the year
  ``end_year``). The customer's behaviour in it is simulated, but only its
  outcome is exported (``outcomes.parquet``): no due or payment of the window
  is, so the label never comes from a month the ledger shows as a feature year.
  ``result = 1`` (good) when fewer than ``BAD_MISSED_MONTHS`` (4) of the
  window's twelve months go unpaid in full; 0 (bad) otherwise.

How a customer behaves
----------------------
* A hidden **reliability** ``r`` ~ Beta: the chance of paying a month in full.
  It drifts over the years (``DRIFT_SD``: some customers improve, some slip),
  and the drift goes on into the outcome window.
* **Shocks** lower it for a while: a bad year (any year, likelier for
  unreliable customers) and a job loss (a run of months with almost nothing
  paid, which may go on into the window). The window has shocks of its own,
  drawn from the same hidden reliability: the yearly percentages reveal the
  hidden state only in part.
* Each month the customer pays in full (on time or late: the export only shows
  the result), pays part, misses, overpays, or prepays the next months. The
  ledger's own allocation rule (``contracts.allocation.allocate_rows``)
  spreads each payment: money beyond a month's due goes to the following
  months, then to the oldest months still owed, and only what is left after
  every month is paid is the customer's bank credit.
* ``true_probability`` is the exact probability of a good outcome given the
  hidden state at the end of the feature years (reliability, drift, a job loss
  still going on), summed over every shock the window may bring. The label is
  drawn from that same process, so ``true_probability`` is what the best
  possible model would say; its score on a set of customers is a reference,
  not a ceiling that a model on these rows cannot pass by chance.

``cohorts=k`` splits the customers into k cohorts whose outcome windows are the
k years up to ``end_year`` (customer 101 is in the latest): an earlier cohort's
dues stop a year earlier (accounts closed after their outcome). The pipeline's
out-of-time check trains on the earlier cohorts and tests on the latest.

Run ``python -m pipeline.simulate --help`` for the command line.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import comb

from contracts import ledger_export
from contracts.allocation import allocate_rows
from pipeline.features import HISTORY_YEARS, yearly_percentages

FIRST_CUSTOMER_ID = 101
YEARS = HISTORY_YEARS
MONTHS = 12
DRIFT_SD = 0.3  # spread of the five-year trend in reliability (some improve, some slip)
DEMO_CUSTOMER_MONTHLY = 0.8  # customer 101's chance of paying a month in full

# The outcome window: the twelve months after the last feature year.
WINDOW_MONTHS = 12
BAD_MISSED_MONTHS = 4  # result = 0 (bad) when at least this many window months are not paid in full
# Where the window's chance to pay lies on the drift's time scale (0 = first feature month, 1 = the
# last): the level the hidden reliability reached at the end of the feature years (the trend stops).
WINDOW_T = 1.0
# The window's own shocks, likelier for unreliable customers: a bad year (its severity is one of
# SEVERITIES, equally likely) and a job loss starting in any month of the window (equally likely).
WINDOW_BAD_YEAR = (0.04, 0.16)  # probability = a + b * (1 - reliability)
WINDOW_JOB_LOSS = (0.03, 0.06)
SEVERITIES = tuple(0.15 + 0.45 * (k + 0.5) / 5 for k in range(5))  # the history's U(0.15, 0.6), in 5 steps
JOBLESS_FACTOR = 0.15  # a month without a job keeps this share of the chance to pay in full
MONTHLY_RANGE = (0.01, 0.995)

FIRST_NAMES = np.array([
    "Aarav", "Aisha", "Alice", "Amara", "Ana", "Ananya", "Arjun", "Ben", "Carlos", "Chen",
    "Chloe", "Daniel", "Diya", "Elena", "Emma", "Fatima", "Gabriel", "Hana", "Ibrahim", "Isabel",
    "Ivan", "James", "Julia", "Kai", "Kavya", "Leila", "Liam", "Lucas", "Maria", "Mateo",
    "Mei", "Mohammed", "Nadia", "Noah", "Nora", "Olivia", "Omar", "Priya", "Rahul", "Rosa",
    "Sara", "Sofia", "Tariq", "Thomas", "Uma", "Victor", "Wei", "Yara", "Yusuf", "Zoe",
])
LAST_NAMES = np.array([
    "Ahmed", "Andersen", "Banerjee", "Becker", "Brown", "Costa", "Das", "Dubois", "Fernandez", "Fischer",
    "Garcia", "Gupta", "Hansen", "Ito", "Iyer", "Jansen", "Johnson", "Kim", "Kowalski", "Kumar",
    "Lee", "Lopez", "Martin", "Mehta", "Moreau", "Muller", "Nair", "Nguyen", "Novak", "Okafor",
    "Olsen", "Patel", "Pereira", "Petrov", "Reddy", "Rossi", "Santos", "Sato", "Schmidt", "Sharma",
    "Silva", "Singh", "Smith", "Suzuki", "Tanaka", "Taylor", "Wang", "Williams", "Wilson", "Zhang",
])


def simulate(n_customers: int = 1000, seed: int = 42, end_year: int | None = None,
             cohorts: int = 1) -> dict[str, pd.DataFrame]:
    """Return simulated ``customers``, ``dues`` and ``outcomes`` frames for a seed.

    The outcome window of the latest cohort is the year ``end_year`` (default:
    this year); the dues cover the five years before each customer's window,
    twelve months each. Amounts are integer minor units (cents).
    """
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    if not 1 <= cohorts <= n_customers:
        raise ValueError("cohorts must be between 1 and the number of customers")
    end_year = date.today().year if end_year is None else int(end_year)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
    n = int(n_customers)
    ids = np.arange(FIRST_CUSTOMER_ID, FIRST_CUSTOMER_ID + n, dtype=np.int64)
    window_year = end_year - np.arange(n, dtype=np.int64) % cohorts  # customer 101: the latest cohort

    people = _people(rngs[0], ids)
    due = _dues(rngs[1], n)
    latent = _latent(rngs[2], n)
    # The demo's customer 101 is a steady payer with a few gaps, so the demo shows
    # months still to pay and money flowing forward (not an all-paid account).
    latent["monthly"][0] = DEMO_CUSTOMER_MONTHLY
    latent["reliability"][0], latent["drift"][0], latent["carried_jobless"][0] = DEMO_CUSTOMER_MONTHLY, 0.0, 0
    paid, bank_credit = _payments(rngs[3], due, latent["monthly"])
    result, true_probability = _outcomes(rngs[4], latent)

    people["bank_credit_cents"] = bank_credit
    first_year = np.repeat(window_year - YEARS, YEARS * MONTHS)
    dues = pd.DataFrame({
        "customer_id": np.repeat(ids, YEARS * MONTHS),
        "year": first_year + np.tile(np.repeat(np.arange(YEARS, dtype=np.int64), MONTHS), n),
        "month": np.tile(np.arange(1, MONTHS + 1, dtype=np.int64), n * YEARS),
        "due_cents": due.ravel(),
        "paid_cents": paid.ravel(),
    })
    outcomes = pd.DataFrame({"customer_id": ids, "result": result, "true_probability": true_probability})
    return {"customers": people, "dues": dues, "outcomes": outcomes}


def _people(rng: np.random.Generator, ids: np.ndarray) -> pd.DataFrame:
    """Return plausible names, emails, ages and phone numbers."""
    n = len(ids)
    first = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    age = np.clip(np.round(rng.normal(43, 13, n)), 18, 80).astype(np.int64)
    phone_digits = rng.integers(0, 10_000_000, n)
    ids_str = ids.astype(str)
    name = np.char.add(np.char.add(first, " "), last)
    email = np.char.add(np.char.add(np.char.add(np.char.lower(first), "."), np.char.lower(last)), ids_str)
    email = np.char.add(email, "@example.com")
    exchange = np.char.zfill((phone_digits // 10_000).astype(str), 3)
    line = np.char.zfill((phone_digits % 10_000).astype(str), 4)
    phone = np.char.add(np.char.add(np.char.add("+1-555-", exchange), "-"), line)
    return pd.DataFrame({
        "customer_id": ids,
        "name": pd.array(name, dtype="str"),
        "email": pd.array(email, dtype="str"),
        "age": age,
        "phone": pd.array(phone, dtype="str"),
    })


def _dues(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return an (n, 60) matrix of monthly dues in cents, all above zero."""
    months = YEARS * MONTHS
    t = np.arange(months)
    # Base amount 500.00 .. 20,000.00, log-uniform: most customers owe little;
    # yearly growth, a seasonal swing and month-to-month noise, all in log space.
    log_due = rng.normal(0.0, 0.12, (n, months))
    log_due += rng.uniform(np.log(50_000), np.log(2_000_000), n)[:, None]
    log_due += np.outer(np.log1p(rng.normal(0.03, 0.04, n)), t / MONTHS)
    phase = rng.uniform(0, 2 * np.pi, n)
    angle = 2 * np.pi * (t % MONTHS) / MONTHS
    log_due += 0.08 * (np.outer(np.cos(phase), np.sin(angle)) + np.outer(np.sin(phase), np.cos(angle)))
    due = np.exp(log_due)
    # Now and then a month carries a new credit: two to four times the usual due.
    spike = rng.random((n, months)) < 0.02
    due[spike] *= rng.uniform(2, 4, int(spike.sum()))
    return np.maximum(np.round(due), 100).astype(np.int64)


def _latent(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Return the hidden reliability, its drift, its monthly path with shocks, and a job loss going on at the end."""
    months = YEARS * MONTHS
    t = np.arange(months) / (months - 1)
    reliability = rng.beta(4.0, 0.7, n)
    drift = rng.normal(0.0, DRIFT_SD, n)
    path = reliability[:, None] + drift[:, None] * (t[None, :] - 0.5)

    # A bad year: likelier for unreliable customers; lowers every month of that year.
    bad_year = rng.random((n, YEARS)) < (0.04 + 0.16 * (1 - reliability))[:, None]
    severity = rng.uniform(0.15, 0.6, (n, YEARS)) * bad_year
    path -= np.repeat(severity, MONTHS, axis=1)

    # A job loss: a run of months with almost nothing paid (it may go on into the outcome window).
    lost = rng.random(n) < 0.06 + 0.12 * (1 - reliability)
    start = rng.integers(0, months, n)
    length = rng.geometric(1 / 7, n)
    month = np.arange(months)[None, :]
    jobless = lost[:, None] & (month >= start[:, None]) & (month < (start + length)[:, None])
    path = np.where(jobless, path * JOBLESS_FACTOR, path)

    path += rng.normal(0.0, 0.04, (n, months))
    return {
        "reliability": reliability,
        "drift": drift,
        "monthly": np.clip(path, 0.01, 0.995),
        "carried_jobless": np.where(lost, np.clip(start + length - months, 0, WINDOW_MONTHS), 0).astype(np.int64),
    }


def _payments(rng: np.random.Generator, due: np.ndarray, monthly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return what each month got paid (capped at its due) and the bank credit left.

    Each month the customer pays what the month still owes times a behaviour
    factor; money beyond a month's due pays the following months, then the
    oldest months still owed; what is left after every month is paid is bank
    credit (the ledger's allocation rule).
    """
    n, months = due.shape
    # One uniform draw decides each month: full (u < p), else part or nothing;
    # within the full months, the lowest few overpay and the highest few prepay.
    u = rng.random((n, months))
    full = u < monthly
    rest = (u - monthly) / (1 - monthly)
    partial = ~full & (rest < 0.25 + 0.5 * monthly)
    factor = full.astype(np.float64)
    factor[partial] = rng.beta(2.0, 2.0, int(partial.sum()))
    within = u / monthly
    overpay = full & (within < 0.02)
    factor[overpay] += rng.uniform(0.01, 0.3, int(overpay.sum()))
    prepay = full & (within > 0.985)
    prepay_months = np.zeros((n, months), dtype=np.int8)
    prepay_months[prepay] = rng.integers(1, 3, int(prepay.sum()))

    # What the next one or two months will be due (known to a prepaying customer).
    ahead = np.zeros_like(due)
    ahead[:, :-1] += np.where(prepay_months[:, :-1] >= 1, due[:, 1:], 0)
    ahead[:, :-2] += np.where(prepay_months[:, :-2] >= 2, due[:, 2:], 0)

    # One step per month across all customers: each pays for month m, and the
    # ledger's allocation rule spreads the money over m and the months after it,
    # then over the oldest months still owed before m; only the rest is bank credit.
    paid = np.zeros_like(due)
    bank_credit = np.zeros(n, dtype=np.int64)
    for m in range(months):
        owed = due - paid
        f = factor[:, m]
        amount = np.where(f >= 1.0, np.round(owed[:, m] * f), np.floor(owed[:, m] * f / 100) * 100).astype(np.int64)
        amount = np.where(owed[:, m] > 0, amount + ahead[:, m], 0)
        allocations, to_bank = allocate_rows(amount, owed, m)
        paid += allocations
        bank_credit += to_bank
    return paid, bank_credit


def _window_scenarios(latent: dict) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Return every way the outcome window can go: (probability, jobless months, monthly chance to pay in full).

    A scenario is a bad year of one of SEVERITIES or none, times a job loss from
    one of the twelve months on or none; a job loss still going on at the end of
    the feature years keeps the window's first months jobless in every scenario.
    """
    r, carried = latent["reliability"], latent["carried_jobless"]
    level = r + latent["drift"] * (WINDOW_T - 0.5)
    q_bad = WINDOW_BAD_YEAR[0] + WINDOW_BAD_YEAR[1] * (1 - r)
    q_job = WINDOW_JOB_LOSS[0] + WINDOW_JOB_LOSS[1] * (1 - r)
    bad = [(1 - q_bad, 0.0)] + [(q_bad / len(SEVERITIES), s) for s in SEVERITIES]
    job = [(1 - q_job, None)] + [(q_job / WINDOW_MONTHS, m) for m in range(WINDOW_MONTHS)]
    scenarios = []
    for p_bad, severity in bad:
        monthly = np.clip(level - severity, *MONTHLY_RANGE)
        for p_job, start in job:
            jobless = carried if start is None else carried + WINDOW_MONTHS - np.maximum(start, carried)
            scenarios.append((p_bad * p_job, jobless, monthly))
    return scenarios


def _binomial_pmf(k: int, trials: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Return P(k successes in ``trials`` tries of chance ``p``), elementwise (0 when k > trials)."""
    return comb(trials, k) * p ** k * (1 - p) ** np.maximum(trials - k, 0)


def _good_probability(jobless: np.ndarray, monthly: np.ndarray) -> np.ndarray:
    """Return P(fewer than BAD_MISSED_MONTHS window months unpaid in full) for one scenario."""
    working = WINDOW_MONTHS - jobless
    p_job = np.clip(monthly * JOBLESS_FACTOR, *MONTHLY_RANGE)
    miss_jobless = np.stack([_binomial_pmf(k, jobless, 1 - p_job) for k in range(BAD_MISSED_MONTHS)])
    miss_working = np.stack([_binomial_pmf(k, working, 1 - monthly) for k in range(BAD_MISSED_MONTHS)])
    return sum(miss_jobless[k] * miss_working[:BAD_MISSED_MONTHS - k].sum(axis=0) for k in range(BAD_MISSED_MONTHS))


def _outcomes(rng: np.random.Generator, latent: dict) -> tuple[np.ndarray, np.ndarray]:
    """Return the outcome observed in the window (1 = good) and its exact probability given the hidden state.

    The probability sums every scenario of the window; the outcome draws one
    scenario per customer, then each of its twelve months, and counts the months
    not paid in full.
    """
    scenarios = _window_scenarios(latent)
    weights = np.stack([w for w, _, _ in scenarios], axis=1)
    true_probability = np.einsum("ns,sn->n", weights, np.stack([_good_probability(j, m) for _, j, m in scenarios]))

    n = len(weights)
    chosen = (rng.random(n)[:, None] > np.cumsum(weights, axis=1)).sum(axis=1)
    chosen = np.minimum(chosen, len(scenarios) - 1)  # rounding in the cumulative sum
    jobless = np.stack([j for _, j, _ in scenarios], axis=1)[np.arange(n), chosen]
    monthly = np.stack([m for _, _, m in scenarios], axis=1)[np.arange(n), chosen]
    month = np.arange(WINDOW_MONTHS)[None, :]
    chance = np.where(month < jobless[:, None], np.clip(monthly * JOBLESS_FACTOR, *MONTHLY_RANGE)[:, None],
                      monthly[:, None])
    missed = (rng.random((n, WINDOW_MONTHS)) >= chance).sum(axis=1)
    return (missed < BAD_MISSED_MONTHS).astype(np.int64), true_probability


def summary(data: dict[str, pd.DataFrame]) -> str:
    """Return a few lines describing a simulation."""
    pct = yearly_percentages(data["dues"]).to_numpy().ravel()
    pct = pct[~np.isnan(pct)]  # an earlier cohort has no dues in the latest years
    years = data["dues"]["year"]
    levels = [0.01, 0.05, 0.10, 0.25, 0.5, 0.75]
    quantiles = "  ".join(f"q{round(100 * p):02d}={v:.1f}" for p, v in zip(levels, np.quantile(pct, levels)))
    good = data["outcomes"]["result"].mean()
    return "\n".join([
        f"customers {len(data['customers']):,}  dues {len(data['dues']):,}  outcomes {len(data['outcomes']):,}",
        f"feature years {years.min()}-{years.max()}; outcomes observed in the year after each customer's last",
        f"good outcomes {100 * good:.1f}%",
        f"yearly paid %  {quantiles}",
        f"customer-years below 50%: {100 * (pct < 50).mean():.1f}%  above 95%: {100 * (pct > 95).mean():.1f}%",
    ])


def main(argv: list[str] | None = None) -> int:
    """Simulate, write the Parquet files and print a summary."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000, help="number of customers (default 1000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--end-year", type=int, default=None,
                        help="the outcome window's year: dues for the five years before it (default: this year)")
    parser.add_argument("--cohorts", type=int, default=1,
                        help="cohorts with outcome windows in the years up to --end-year (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default var/data/)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    print(f"simulating {args.customers:,} customers (seed {args.seed}) ...", flush=True)
    data = simulate(args.customers, args.seed, args.end_year, args.cohorts)
    simulated = time.perf_counter()
    print(f"simulated in {simulated - started:.2f} s; writing ...", flush=True)
    folder = ledger_export.write(data, args.out)
    print(f"wrote {folder} in {time.perf_counter() - simulated:.2f} s (total {time.perf_counter() - started:.2f} s)")
    print(summary(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
