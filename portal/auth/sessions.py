"""Logins: one server-side record per login, shared by the session cookie and the bearer token.

A login creates an ``ApiToken`` row (its ``jti``), alive for ``PERMANENT_SESSION_LIFETIME``.
The session cookie carries the jti as Flask-Login's user id. The bearer token is a JWT
(RFC 7519, PyJWT) signed with the app's ``SECRET_KEY`` by HS256 - the only algorithm
accepted - with ``sub`` (the user id), ``role``, ``iat``, ``exp`` (``TOKEN_MAX_AGE``, short)
and ``jti`` (the login record). A token is honoured only while its record is: logout,
a password reset or a deactivation revokes the record, which ends the cookie session
and every token of that login at once. ``refresh_token`` gives a live login a new token.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from flask import current_app
from flask_login import UserMixin
from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from portal.auth.passwords import hash_password, needs_rehash, verify_password
from portal.db import core, write_transaction
from portal.models import ApiToken, Customer, Manager, utcnow

ROLES = {"customer": Customer, "manager": Manager}
ALGORITHM = "HS256"  # pinned: a token naming any other algorithm (or none) is refused
CLAIMS = ["sub", "role", "jti", "iat", "exp"]


@dataclass
class Principal(UserMixin):
    """Who is calling: a role, a user id, and the login record behind it."""

    role: str
    user_id: int
    name: str
    jti: str

    def get_id(self) -> str:
        """Return the login record id Flask-Login keeps in the session."""
        return self.jti

    @property
    def is_manager(self) -> bool:
        """Tell whether this is a manager."""
        return self.role == "manager"


def authenticate(session: Session, role: str, user_id: int, password: str):
    """Return the active user for a correct id and password, else None (same work and answer either way)."""
    user = session.get(ROLES[role], user_id)
    usable = user is not None and user.active
    if not verify_password(user.password_hash if usable else None, password):
        return None
    if needs_rehash(user.password_hash):
        with write_transaction(session):
            session.get(ROLES[role], user_id).password_hash = hash_password(password)
    return user


def issue_token(principal: Principal) -> tuple[str, datetime]:
    """Return a signed JWT for a login record, and when it expires."""
    now = utcnow().replace(microsecond=0)
    expires = now + timedelta(seconds=current_app.config["TOKEN_MAX_AGE"])
    claims = {"sub": str(principal.user_id), "role": principal.role, "jti": principal.jti, "iat": now,
              "exp": expires}
    return jwt.encode(claims, current_app.config["SECRET_KEY"], algorithm=ALGORITHM), expires


def start_login(session: Session, role: str, user) -> tuple[Principal, str, datetime]:
    """Create the login record; return the principal, its bearer token and the token's expiry."""
    jti = secrets.token_urlsafe(24)
    with write_transaction(session):
        session.add(ApiToken(jti=jti, role=role, user_id=user.id,
                             expires_at=utcnow() + current_app.permanent_session_lifetime))
    principal = Principal(role, user.id, user.name, jti)
    token, expires = issue_token(principal)
    return principal, token, expires


def _login_query():
    """Build the query of a live login record with its user's name and active flag (once: every request runs it)."""
    tokens = ApiToken.__table__.c
    query = select(tokens.role, tokens.user_id, tokens.expires_at,
                   *(c for role, user in ROLES.items()
                     for c in (user.__table__.c.name.label(f"{role}_name"),
                               user.__table__.c.active.label(f"{role}_active"))))
    for role, user in ROLES.items():
        query = query.outerjoin(user.__table__, and_(tokens.role == role, user.__table__.c.id == tokens.user_id))
    return query.where(tokens.jti == bindparam("jti"), tokens.revoked_at.is_(None))


_LOGIN = _login_query()


def load_login(session: Session, jti: str) -> Principal | None:
    """Return the principal of a live login record, or None if revoked, expired, unknown or the user is inactive.

    One query per request: the live record joined to its user's name and active flag, nothing else.
    """
    row = core(session).execute(_LOGIN, {"jti": jti}).first()
    if row is None or row.role not in ROLES:
        return None
    expires = row.expires_at
    if expires.tzinfo is None:  # SQLite returns naive datetimes
        expires = expires.replace(tzinfo=UTC)
    if expires <= utcnow():
        return None
    user = row._mapping
    if not user[f"{row.role}_active"]:  # False, or None when the user row is gone
        return None
    return Principal(row.role, row.user_id, user[f"{row.role}_name"], jti)


def principal_from_token(session: Session, token: str) -> Principal | None:
    """Verify a bearer JWT (HS256 with the app's key, unexpired, every claim present), then load its login record.

    The claims must agree with the record: the same user id and the same role.
    """
    try:
        claims = jwt.decode(token, current_app.config["SECRET_KEY"], algorithms=[ALGORITHM],
                            options={"require": CLAIMS})
    except jwt.InvalidTokenError:
        return None
    if not isinstance(claims["jti"], str):
        return None
    principal = load_login(session, claims["jti"])
    if principal is None or claims["role"] != principal.role or claims["sub"] != str(principal.user_id):
        return None
    return principal


def end_login(session: Session, jti: str) -> None:
    """Revoke a login record: its cookie session and bearer token stop working."""
    with write_transaction(session):
        record = session.get(ApiToken, jti)
        if record is not None and record.revoked_at is None:
            record.revoked_at = utcnow()


def revoke_logins(session: Session, role: str, user_id: int) -> int:
    """Revoke every live login of a user inside the caller's transaction; return how many."""
    records = session.scalars(select(ApiToken).where(
        ApiToken.role == role, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))).all()
    for record in records:
        record.revoked_at = utcnow()
    return len(records)
