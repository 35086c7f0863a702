"""Logins: one server-side record per login, shared by the session cookie and the bearer token.

A login creates an ``ApiToken`` row (its ``jti``). The session cookie carries
the jti as Flask-Login's user id; the bearer token is the jti signed and
time-stamped with itsdangerous. Logout revokes the row, which ends both.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from flask_login import UserMixin
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.auth.passwords import hash_password, needs_rehash, verify_password
from portal.db import write_transaction
from portal.models import ApiToken, Customer, Manager, utcnow

ROLES = {"customer": Customer, "manager": Manager}


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


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="api-token")


def authenticate(session: Session, role: str, user_id: int, password: str):
    """Return the user for a correct id and password, else None (same work either way)."""
    user = session.get(ROLES[role], user_id)
    if not verify_password(user.password_hash if user else None, password):
        return None
    if needs_rehash(user.password_hash):
        with write_transaction(session):
            session.get(ROLES[role], user_id).password_hash = hash_password(password)
    return user


def start_login(session: Session, role: str, user) -> tuple[Principal, str, datetime]:
    """Create the login record; return the principal, its bearer token and expiry."""
    max_age = current_app.config["TOKEN_MAX_AGE"]
    jti = secrets.token_urlsafe(24)
    expires = utcnow() + timedelta(seconds=max_age)
    with write_transaction(session):
        session.add(ApiToken(jti=jti, role=role, user_id=user.id, expires_at=expires))
    token = _serializer().dumps(jti)
    return Principal(role, user.id, user.name, jti), token, expires


def load_login(session: Session, jti: str) -> Principal | None:
    """Return the principal of a live login record, or None if revoked, expired or unknown."""
    record = session.get(ApiToken, jti)
    if record is None or record.revoked_at is not None:
        return None
    expires = record.expires_at
    if expires.tzinfo is None:  # SQLite returns naive datetimes
        expires = expires.replace(tzinfo=UTC)
    if expires <= utcnow():
        return None
    user = session.get(ROLES[record.role], record.user_id)
    if user is None:
        return None
    return Principal(record.role, record.user_id, user.name, jti)


def principal_from_token(session: Session, token: str) -> Principal | None:
    """Verify a bearer token's signature and age, then load its login record."""
    try:
        jti = _serializer().loads(token, max_age=current_app.config["TOKEN_MAX_AGE"])
    except (BadSignature, SignatureExpired):
        return None
    return load_login(session, jti) if isinstance(jti, str) else None


def end_login(session: Session, jti: str) -> None:
    """Revoke a login record: its cookie session and bearer token stop working."""
    with write_transaction(session):
        record = session.get(ApiToken, jti)
        if record is not None and record.revoked_at is None:
            record.revoked_at = utcnow()


def revoke_all(session: Session, role: str, user_id: int) -> int:
    """Revoke every live login of a user (after a password reset); return how many."""
    with write_transaction(session):
        records = session.scalars(select(ApiToken).where(
            ApiToken.role == role, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))).all()
        for record in records:
            record.revoked_at = utcnow()
    return len(records)
