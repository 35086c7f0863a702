"""Login throttling: failed logins counted per id and per address, for the API and the login pages alike."""
from __future__ import annotations

from flask import current_app, request

from portal.extensions import limiter

THROTTLED = "too many failed logins; try again later"


def login_id_key() -> str:
    """Rate-limit key for logins: the role and id being tried, from the JSON body or form."""
    body = request.get_json(silent=True) if request.is_json else request.form
    user_id = str(body.get("id", ""))[:32] if hasattr(body, "get") else ""
    return f"login:{request.path}:{user_id}"


def _login_limits() -> str:
    return current_app.config["LOGIN_LIMITS"]


def _failed(response) -> bool:
    return response.status_code == 401


def throttled(view):
    """Count a login view's failed attempts (answers 401) and refuse with 429 beyond the limits."""
    by_id = limiter.limit(_login_limits, key_func=login_id_key, deduct_when=_failed, error_message=THROTTLED)
    by_address = limiter.limit("30 per minute", deduct_when=_failed, scope="login-address", error_message=THROTTLED)
    return by_address(by_id(view))
