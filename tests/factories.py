"""Test data and logins: customers with a schedule (written straight through the ORM), year_percentage frames."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipeline.features import FEATURES
from portal.credit_requests import CreditSettings
from portal.ledger.policy import LimitRule

# Credit settings as the app's defaults have them (no decision service: the percentage method only).
SETTINGS = CreditSettings(percentage_threshold=80.0, ml_threshold=0.8, max_credit_cents=10**8, limit=LimitRule())


def login(client, role: str, user_id: int, password: str) -> dict:
    """Log in through the API; return the bearer header."""
    r = client.post(f"/api/{role}/login", json={"id": user_id, "password": password})
    assert r.status_code == 200, r.json
    return {"Authorization": f"Bearer {r.json['token']}"}


def token_of(html: str) -> str:
    """Return the CSRF token of the (first) form in a page."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def tampered(token: str) -> str:
    """Return a signed token with the first character of its signature changed.

    The first character carries six whole bits of the signature; changing one of the last
    characters instead can leave the decoded bytes as they were (base64 ignores trailing bits).
    """
    head, _, sig = token.rpartition(".")
    return f"{head}.{'B' if sig[0] == 'A' else 'A'}{sig[1:]}"


def form_token(client, path: str) -> str:
    """Open a page and return its form's CSRF token."""
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    return token_of(r.text)


def web_login(client, role: str, user_id: int, password: str, next_path: str | None = None):
    """Submit the login page's form (with `next` if given); return the response."""
    url = f"/{role}/login" + (f"?next={next_path}" if next_path else "")
    return client.post(url, data={"csrf_token": form_token(client, f"/{role}/login"), "id": str(user_id),
                                  "password": password})


def synthetic_frame(n: int = 400, seed: int = 0, *, with_age: bool = True) -> pd.DataFrame:
    """Return a year_percentage-shaped frame whose label rises with the paid percentages."""
    rng = np.random.default_rng(seed)
    skill = rng.beta(4, 1, n)
    pct = np.clip(100 * (skill[:, None] + rng.normal(0, 0.08, (n, len(FEATURES)))), 0, 100).round(2)
    logit = -6 + 0.08 * pct.mean(axis=1) + rng.normal(0, 0.5, n)
    p = 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(pct, columns=FEATURES)
    frame.insert(0, "customer_id", np.arange(1000, 1000 + n))
    frame.insert(1, "decision_year", 2026)
    frame["result"] = (rng.random(n) < p).astype(int)
    frame["true_probability"] = p
    if with_age:
        frame["age"] = rng.integers(18, 80, n)
    return frame


APPLICANT_NUMERIC = ("duration_months", "credit_amount", "age_years")
APPLICANT_CATEGORICAL = ("housing", "purpose", "checking_status")


def applicant_table(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Return a credit table of another bank: mixed numeric and categorical columns, a good/bad target ``risk``.

    Shaped like the German credit data: some purposes are missing (None), the
    outcome depends on duration, age, housing and the checking account.
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "applicant": np.arange(1, n + 1),
        "duration_months": rng.integers(4, 73, n).astype(float),
        "credit_amount": rng.gamma(2.0, 1600.0, n).round(0),
        "age_years": rng.integers(19, 76, n).astype(float),
        "housing": rng.choice(["own", "rent", "for free"], n, p=[0.6, 0.3, 0.1]),
        "purpose": rng.choice(["car", "furniture", "education", "business", "radio/tv"], n).astype(object),
        "checking_status": rng.choice(["<0", "0<=X<200", ">=200", "no checking"], n),
    })
    frame.loc[rng.random(n) < 0.05, "purpose"] = None
    logit = (2.0 - 0.04 * frame["duration_months"] + 0.02 * (frame["age_years"] - 35)
             + frame["housing"].map({"own": 0.8, "rent": -0.5, "for free": 0.0})
             + frame["checking_status"].map({"<0": -1.0, "0<=X<200": -0.3, ">=200": 0.5, "no checking": 1.0}))
    frame["risk"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "good", "bad")
    return frame
