"""Who may touch what: the one place for authorization rules."""
from __future__ import annotations

from flask import abort, g, request
from flask import session as cookie_session
from flask_login import current_user

from portal.auth.sessions import Claim, load_login, principal_from_token, token_claim
from portal.db import get_session
from portal.extensions import csrf


def _bearer(req) -> str | None:
    header = req.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def load_user(jti: str):
    """Flask-Login's user loader: the principal of the session cookie's login record."""
    # An explicit bearer token wins over a session cookie sent along with it.
    if _bearer(request) is not None:
        return None
    return load_login(get_session(), jti)


def load_user_from_token(req):
    """Flask-Login's request loader: the principal of a bearer token."""
    token = _bearer(req)
    return principal_from_token(get_session(), token) if token else None


def require_login(role: str | None = None):
    """Abort 401 unless someone (of `role`, if given) is logged in; return them."""
    if not current_user.is_authenticated:
        abort(401, description="login required")
    if role is not None and current_user.role != role:
        abort(403, description=f"{role}s only")
    return current_user


def require_claim(role: str) -> Claim:
    """Abort 401 or 403 as ``require_login`` does; return who the caller says they are.

    A bearer token's signature and claims are checked here, its login record is not: the
    caller then checks it with ``sessions.verify_claims`` in the transaction of its write (the
    payment batch checks all of its callers' records in one statement: ``portal.api.customer.write_payments``).
    A session cookie's login record is read here, as ``require_login`` reads it.
    """
    if "claim" in g:
        return g.claim
    token = _bearer(request)
    if token is None:
        user = require_login(role)
        claim = Claim(user.role, user.user_id, user.jti)
    else:
        claim = token_claim(token)
        if claim is None:
            abort(401, description="login required")
        if claim.role != role:  # a rare refusal: read the record, so a dead login answers 401 as everywhere
            require_login(role)
    g.claim = claim
    return claim


def require_customer_access(customer_id: int):
    """Let a customer reach only their own id and a manager any id; else 404 (no existence leak)."""
    user = require_login()
    if user.role == "manager" or user.user_id == customer_id:
        return user
    abort(404, description="no such customer")


def check_csrf() -> None:
    """Demand a CSRF token on cookie-authenticated writes (bearer-token calls carry no cookie risk)."""
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return
    if _bearer(request) is not None:
        return
    if request.endpoint in _CSRF_EXEMPT:
        return
    if "_user_id" in cookie_session:
        csrf.protect()


# JSON logins need no CSRF token: they demand application/json, which a
# cross-site form cannot send, and there is no session to ride on yet.
_CSRF_EXEMPT = {"auth.customer_login", "auth.manager_login"}
