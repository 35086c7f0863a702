"""The portal's client of the decision service (``serving/``): the only way the portal reaches the model.

The portal meets the model world through HTTP alone: scores for the ML method
(``POST /v1/decisions``), the live version for the manager's model page
(``GET /v1/model``), drift of recent inputs (``POST /v1/drift``) and replays of
past decisions with the version that made them (``POST /v1/replay``).

Serving only scores; the portal decides (``portal.ledger.policy``). This client
trusts nothing it is told: every call carries the shared ``SERVING_TOKEN``, an
answer must carry serving's HMAC signature of its body made with that token,
and a score must be a number in [0, 1] with a model version. A slow or broken
service cannot stall the portal: connections time out quickly and, after
``SERVING_BREAKER_FAILURES`` failures in a row, a circuit breaker answers
"unavailable" at once for ``SERVING_BREAKER_SECONDS`` before trying again
(shared by all workers through Redis when ``REDIS_URL`` is set). Every failure
is a ``ServiceUnavailable`` (503): nothing is approved on a guess.
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping

import pybreaker
import redis
import requests

from contracts.signing import SIGNATURE_HEADER, verify
from portal.ledger.errors import LedgerError

log = logging.getLogger("portal.decision_service")

# Replays and the model page may wait for serving to load a version from the registry.
ADMIN_TIMEOUT = 30.0


class ServiceUnavailable(LedgerError):
    """The decision service cannot answer now (down, no model, a bad answer); nothing approved."""

    status = 503

    def __init__(self, message: str, field: str | None = "method"):
        super().__init__(message, field)


def _storage(redis_url: str | None, service_url: str) -> pybreaker.CircuitBreakerStorage | None:
    """Return Redis storage shared by every worker and replica, or None (this process's memory)."""
    if not redis_url:
        return None
    try:
        return pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, redis.Redis.from_url(redis_url),
                                             namespace=f"portal-serving-breaker:{service_url}")
    except redis.RedisError as exc:  # the breaker still works, for this process alone
        log.warning("circuit breaker state kept in this process: Redis at REDIS_URL is unreachable (%s)", exc)
        return None


def _valid_score(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0.0 <= value <= 1.0)


def _shadow(value: object) -> dict | None:
    """Return the challenger's shadow score and version from a decision row, or None if absent or malformed."""
    if not isinstance(value, dict):
        return None
    score, version = value.get("score"), value.get("version")
    if not _valid_score(score) or not isinstance(version, str) or not version.strip() or len(version) > 32:
        return None
    return {"score": float(score), "version": version}


class DecisionService:
    """A client of one decision service: timeouts, the shared token, signed answers and a circuit breaker."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 2.0, connect_timeout: float = 0.5,
                 breaker_failures: int = 3, breaker_seconds: float = 30.0, redis_url: str | None = None):
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self.session = requests.Session()
        self._breaker_args = (breaker_failures, breaker_seconds, redis_url)
        self._breaker: pybreaker.CircuitBreaker | None = None
        self._lock = threading.Lock()

    @property
    def breaker(self) -> pybreaker.CircuitBreaker:
        """Return the circuit breaker, made on first use (Redis need not answer when the app starts)."""
        with self._lock:
            if self._breaker is None:
                failures, seconds, redis_url = self._breaker_args
                self._breaker = pybreaker.CircuitBreaker(
                    fail_max=failures, reset_timeout=seconds, state_storage=_storage(redis_url, self.url),
                    throw_new_error_on_trip=False, name="decision-service")
            return self._breaker

    @classmethod
    def from_config(cls, config: Mapping) -> DecisionService:
        """Build the client from the portal's settings."""
        return cls(config["SERVING_URL"], token=config.get("SERVING_TOKEN"), timeout=config["SERVING_TIMEOUT"],
                   connect_timeout=config["SERVING_CONNECT_TIMEOUT"],
                   breaker_failures=config["SERVING_BREAKER_FAILURES"],
                   breaker_seconds=config["SERVING_BREAKER_SECONDS"], redis_url=config.get("REDIS_URL"))

    def _call(self, method: str, path: str, body: dict | None, read_timeout: float) -> dict:
        """Make one call through the breaker; return the verified JSON answer or raise ServiceUnavailable."""
        try:
            return self.breaker.call(self._request, method, path, body, read_timeout)
        except pybreaker.CircuitBreakerError as exc:
            raise ServiceUnavailable("ML method unavailable: the decision service is failing; "
                                     f"the portal will try it again within {self.breaker.reset_timeout:g} s") from exc

    def _request(self, method: str, path: str, body: dict | None, read_timeout: float) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.session.request(method, self.url + path, json=body, headers=headers,
                                            timeout=(self.connect_timeout, read_timeout))
        except requests.RequestException as exc:
            self._still_loading()
            raise ServiceUnavailable("ML method unavailable: the decision service did not answer "
                                     f"({type(exc).__name__})") from exc
        if response.status_code != 200:
            self._still_loading()
            raise ServiceUnavailable(f"ML method unavailable: the decision service answered {response.status_code}")
        if self.token and not verify(self.token, response.content, response.headers.get(SIGNATURE_HEADER, "")):
            raise ServiceUnavailable("ML method unavailable: the answer is not signed by the decision service")
        try:
            answer = response.json()
        except ValueError as exc:
            raise ServiceUnavailable("ML method unavailable: the decision service answered badly") from exc
        if not isinstance(answer, dict):
            raise ServiceUnavailable("ML method unavailable: the decision service answered badly")
        return answer

    def _still_loading(self) -> None:
        """After a failed call: if serving's /ready says no model is loaded yet, say that instead."""
        try:
            ready = self.session.get(self.url + "/ready", timeout=(self.connect_timeout, self.connect_timeout))
        except requests.RequestException:
            return
        if ready.status_code == 503:
            raise ServiceUnavailable("ML method unavailable: the model is still loading; try again in a minute")

    def score(self, features: dict, decision_year: int) -> dict:
        """Score one customer's features; return the score, model version, serving's threshold, reasons, shadow.

        ``shadow`` is the challenger's ``{"version", "score"}`` when serving scored
        one in the shadow and it is well formed, else None: it never fails a decision.
        """
        answer = self._call("POST", "/v1/decisions", {"rows": [features], "decision_year": decision_year},
                            self.timeout)
        try:
            decision = answer["decisions"][0]
            value, version, reasons = decision["score"], decision["model_version"], decision["reasons"]
            threshold = decision.get("threshold")
        except (KeyError, IndexError, TypeError) as exc:
            raise ServiceUnavailable("ML method unavailable: the decision service answered badly") from exc
        valid = (_valid_score(value) and isinstance(version, str) and version.strip() != ""
                 and isinstance(reasons, list) and all(isinstance(r, dict) for r in reasons))
        if not valid:
            raise ServiceUnavailable("ML method unavailable: the decision service answered badly")
        return {"score": float(value), "model_version": version, "reasons": reasons, "served_threshold": threshold,
                "shadow": _shadow(decision.get("shadow"))}

    def model(self) -> dict:
        """Return what serving says about the live version (``serving``) and its registry entry (``registry``)."""
        return self._call("GET", "/v1/model", None, ADMIN_TIMEOUT)

    def drift(self, rows: list[dict]) -> list[dict]:
        """Return the drift table of recent inputs against the live version's training data."""
        return self._call("POST", "/v1/drift", {"rows": rows}, ADMIN_TIMEOUT).get("table", [])

    def replay(self, version: str, features: dict) -> float:
        """Score one stored input again with the version that decided it; return the score."""
        answer = self._call("POST", "/v1/replay", {"version": version, "rows": [features]}, ADMIN_TIMEOUT)
        try:
            return float(answer["scores"][0])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ServiceUnavailable("the decision service answered badly", "request_id") from exc
