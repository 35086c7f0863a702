"""Login and logout for customers and managers (JSON)."""
from __future__ import annotations

from flask import session as cookie_session
from flask_login import current_user, login_user, logout_user
from flask_smorest import Blueprint, abort
from flask_wtf.csrf import generate_csrf

from portal import present
from portal.api.schemas import LoginIn, LoginOut, MessageOut, TokenOut
from portal.auth.access import require_login
from portal.auth.sessions import authenticate, end_login, issue_token, start_login
from portal.auth.throttle import throttled
from portal.db import get_session
from portal.errors import ErrorSchema

blp = Blueprint("auth", __name__, url_prefix="/api", description="Login and logout")


def login(role: str, body: dict) -> dict:
    """Check credentials, start a fresh session and issue a bearer token."""
    db = get_session()
    user = authenticate(db, role, body["id"], body["password"])
    if user is None:
        abort(401, message="wrong id or password")
    principal, token, expires = start_login(db, role, user)
    cookie_session.clear()  # a new session on every login
    login_user(principal)
    cookie_session.permanent = True
    return {"user": present.user(user, role), "token": token, "expires_at": expires,
            "csrf_token": generate_csrf()}


@blp.route("/customer/login", methods=["POST"])
@throttled
@blp.arguments(LoginIn())
@blp.response(200, LoginOut)
@blp.alt_response(401, schema=ErrorSchema, description="wrong id or password")
@blp.alt_response(429, schema=ErrorSchema, description="too many failed logins")
def customer_login(body):
    """Log a customer in."""
    return login("customer", body)


@blp.route("/manager/login", methods=["POST"])
@throttled
@blp.arguments(LoginIn())
@blp.response(200, LoginOut)
@blp.alt_response(401, schema=ErrorSchema, description="wrong id or password")
@blp.alt_response(429, schema=ErrorSchema, description="too many failed logins")
def manager_login(body):
    """Log a manager in."""
    return login("manager", body)


@blp.route("/token", methods=["POST"])
@blp.response(200, TokenOut)
@blp.alt_response(401, schema=ErrorSchema, description="no live login (an expired or revoked token: log in again)")
def refresh_token():
    """Give a live login a fresh bearer token (send the current, unexpired one); the login itself is unchanged."""
    user = require_login()
    token, expires = issue_token(user)
    return {"token": token, "expires_at": expires}


@blp.route("/logout", methods=["POST"])
@blp.response(200, MessageOut)
@blp.alt_response(401, schema=ErrorSchema, description="not logged in")
def logout():
    """End the session and revoke its bearer token."""
    if not current_user.is_authenticated:
        abort(401, message="login required")
    end_login(get_session(), current_user.jti)
    logout_user()
    cookie_session.clear()
    return {"message": "logged out"}
