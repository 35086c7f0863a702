"""Login throttling: failed logins counted the same way by the API and the login pages, in every worker.

Three counters, shared by ``POST /api/<role>/login`` and the ``/<role>/login`` form
(so ten guesses cannot be split five and five between them):

* per (role, id, address): ``LOGIN_LIMITS`` (default 5 per minute and 20 per hour) -
  what one attacker gets against one account;
* per (role, id), any address: ``LOGIN_ID_LIMITS`` (default 30 per hour) - a higher
  ceiling, so one address that guesses wrong cannot lock the customer out from
  everywhere else, yet many addresses together cannot guess on forever;
* per address, any id: ``LOGIN_ADDRESS_LIMITS`` (default 30 per minute).

Only failures count (answers 401). The counters live in Redis when ``REDIS_URL``
is set (every worker and every replica shares them); ``make run`` points
``REDIS_URL`` at a local Redis when one answers, and otherwise runs the portal
as one process (its threads share the in-memory counters). A refusal is 429
with ``Retry-After``; no other answer carries that header.
"""
from __future__ import annotations

import math
import time

from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from portal.extensions import limiter

THROTTLED = "too many failed logins; try again later"
ROLES = {"auth.customer_login": "customer", "web_auth.customer_login": "customer",
         "auth.manager_login": "manager", "web_auth.manager_login": "manager"}


def _login_id() -> str:
    """The role and id being tried, from the JSON body or the form."""
    body = request.get_json(silent=True) if request.is_json else request.form
    user_id = str(body.get("id", ""))[:32] if hasattr(body, "get") else ""
    return f"{ROLES.get(request.endpoint, 'unknown')}:{user_id}"


def id_and_address_key() -> str:
    """Rate-limit key: one account tried from one address."""
    return f"login:{_login_id()}:{get_remote_address()}"


def id_key() -> str:
    """Rate-limit key: one account, from anywhere."""
    return f"login:{_login_id()}"


def _failed(response) -> bool:
    return response.status_code == 401


def _config(name: str):
    return lambda: current_app.config[name]


def _note_retry_after(breached) -> None:
    """Remember when the breached limit lets the next attempt through; the 429 answer says it (Retry-After)."""
    seconds = max(1, math.ceil(breached.reset_at - time.time()))
    g.retry_after = str(max(seconds, int(g.get("retry_after") or 0)))


def throttled(view):
    """Count a login view's failed attempts (answers 401) and refuse with 429 beyond the limits."""
    common = {"deduct_when": _failed, "error_message": THROTTLED, "on_breach": _note_retry_after}
    by_id_and_address = limiter.shared_limit(_config("LOGIN_LIMITS"), "login-id-address", key_func=id_and_address_key,
                                             **common)
    by_id = limiter.shared_limit(_config("LOGIN_ID_LIMITS"), "login-id", key_func=id_key, **common)
    by_address = limiter.shared_limit(_config("LOGIN_ADDRESS_LIMITS"), "login-address", **common)
    limited = by_address(by_id(by_id_and_address(view)))
    limited.throttled = True  # read by `_not_a_login`
    return limited


@limiter.request_filter
def _not_a_login() -> bool:
    """Let every request but a throttled login view's skip the limiter: the login views alone carry limits.

    The limiter otherwise resolves every request's limits, about 75 us of CPU each (a payment's
    is in the hot path) only to find none.
    """
    return not getattr(current_app.view_functions.get(request.endpoint), "throttled", False)

