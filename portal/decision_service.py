"""The portal's client of the decision service (``serving/``): the only way the portal reaches the model.

The portal meets the model world through HTTP alone: decisions for the ML
method (``POST /v1/decisions``), the live version for the manager's model page
(``GET /v1/model``), drift of recent inputs (``POST /v1/drift``) and replays of
past decisions with the version that made them (``POST /v1/replay``). Every
failure is a ``ServiceUnavailable`` (503): nothing is approved on a guess.
"""
from __future__ import annotations

import math

import requests

from portal.ledger.errors import LedgerError

# Replays and the model page may wait for serving to load a version from the registry.
ADMIN_TIMEOUT = 30.0


class ServiceUnavailable(LedgerError):
    """The decision service cannot answer now (down, no model, a bad answer); nothing approved."""

    status = 503


def _post(url: str, path: str, body: dict, timeout: float) -> dict:
    """POST JSON to the decision service and return its JSON answer, or raise ServiceUnavailable."""
    try:
        response = requests.post(f"{url.rstrip('/')}{path}", json=body, timeout=timeout)
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"ML method unavailable: the decision service did not answer ({type(exc).__name__})",
                                 "method") from exc
    return _json(response)


def _json(response: requests.Response) -> dict:
    if response.status_code != 200:
        raise ServiceUnavailable(f"ML method unavailable: the decision service answered {response.status_code}",
                                 "method")
    try:
        body = response.json()
    except ValueError as exc:
        raise ServiceUnavailable("ML method unavailable: the decision service answered badly", "method") from exc
    if not isinstance(body, dict):
        raise ServiceUnavailable("ML method unavailable: the decision service answered badly", "method")
    return body


def score(url: str, features: dict, decision_year: int, timeout: float) -> dict:
    """Ask for one decision; return its score, threshold, approval, model version and reasons."""
    body = _post(url, "/v1/decisions", {"rows": [features], "decision_year": decision_year}, timeout)
    try:
        decision = body["decisions"][0]
        value, threshold = float(decision["score"]), float(decision["threshold"])
        approved, version, reasons = decision["approved"], str(decision["model_version"]), decision["reasons"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ServiceUnavailable("ML method unavailable: the decision service answered badly", "method") from exc
    valid = (math.isfinite(value) and 0.0 <= value <= 1.0 and 0.0 < threshold <= 1.0 and isinstance(approved, bool)
             and approved == (value >= threshold) and isinstance(reasons, list))
    if not valid:
        raise ServiceUnavailable("ML method unavailable: the decision service answered badly", "method")
    return {"score": value, "threshold": threshold, "approved": approved, "model_version": version,
            "reasons": reasons}


def model(url: str, timeout: float = ADMIN_TIMEOUT) -> dict:
    """Return what serving says about the live version (``serving``) and its registry entry (``registry``)."""
    try:
        response = requests.get(f"{url.rstrip('/')}/v1/model", timeout=timeout)
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"the decision service did not answer ({type(exc).__name__})") from exc
    return _json(response)


def drift(url: str, rows: list[dict], timeout: float = ADMIN_TIMEOUT) -> list[dict]:
    """Return the drift table of recent inputs against the live version's training data."""
    return _post(url, "/v1/drift", {"rows": rows}, timeout).get("table", [])


def replay(url: str, version: str, features: dict, timeout: float = ADMIN_TIMEOUT) -> float:
    """Score one stored input again with the version that decided it; return the score."""
    body = _post(url, "/v1/replay", {"version": version, "rows": [features]}, timeout)
    try:
        return float(body["scores"][0])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ServiceUnavailable("the decision service answered badly", "request_id") from exc
