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
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from flask import current_app
from flask_login import UserMixin
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from portal.auth.passwords import hash_password, needs_rehash, verify_password
from portal.db import OneOrMany, write_transaction
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


def _logins_query(jti_matches):
    """Build the query of live login records with their users' names and active flags, `jti_matches` selecting them."""
    tokens = ApiToken.__table__.c
    query = select(tokens.jti, tokens.role, tokens.user_id, tokens.expires_at,
                   *(c for role, user in ROLES.items()
                     for c in (user.__table__.c.name.label(f"{role}_name"),
                               user.__table__.c.active.label(f"{role}_active"))))
    for role, user in ROLES.items():
        query = query.outerjoin(user.__table__, and_(tokens.role == role, user.__table__.c.id == tokens.user_id))
    return query.where(jti_matches, tokens.revoked_at.is_(None))


# Built once: every request's login (one), a payment batch's (many).
_LOGINS = OneOrMany(_logins_query, ApiToken.__table__.c.jti)


def load_logins(session: Session, jtis: Collection[str]) -> dict[str, Principal]:
    """Return the principals of the live login records among `jtis`, by jti, in one query.

    A record that is revoked, expired or unknown, or whose user is inactive or gone, is left out.
    """
    rows = _LOGINS.execute(session, list(jtis))
    now = utcnow()
    live = {}
    for row in rows:
        expires = row.expires_at
        if expires.tzinfo is None:  # SQLite returns naive datetimes
            expires = expires.replace(tzinfo=UTC)
        user = row._mapping
        # active is False, or None when the user row is gone
        if row.role in ROLES and expires > now and user[f"{row.role}_active"]:
            live[row.jti] = Principal(row.role, row.user_id, user[f"{row.role}_name"], row.jti)
    return live


def load_login(session: Session, jti: str) -> Principal | None:
    """Return the principal of a live login record, or None (see ``load_logins``)."""
    return load_logins(session, [jti]).get(jti)


@dataclass(frozen=True)
class Claim:
    """Who a request says it comes from, its signature verified but its login record not yet read."""

    role: str
    user_id: int
    jti: str


# Tokens that verified, by (key, token), with their expiry: a client sends the same token with every
# request until it expires, and PyJWT's decode (its per-character base64 checks, the HMAC, the claims)
# was a tenth of an authenticated read's CPU. A failure is never kept (a token refused for a clock
# skew may verify a moment later); a kept token is honoured only before its exp, checked at every use,
# and its login record is still read for every request. Bounded: the oldest entries go first.
VERIFIED_TOKENS_MAX = 10_000
_verified: dict[tuple[str, str], tuple[Claim, float]] = {}
# Held to change the dict (rare: a new or expired token), never to read it: another thread removing
# an entry while a full store's eviction walks the dict would stop that walk with a RuntimeError.
_verified_changing = threading.Lock()


def token_claim(token: str) -> Claim | None:
    """Verify a bearer JWT (HS256 with the app's key, unexpired, every claim well formed); return its claim, else None.

    No database read: ``verify_claims`` then checks the login record, for one request or a batch of them.
    """
    key = (current_app.config["SECRET_KEY"], token)
    known = _verified.get(key)
    if known is not None:
        claim, expires = known
        if time.time() < expires:  # as PyJWT decides: expired once exp <= now
            return claim
        with _verified_changing:
            _verified.pop(key, None)
        return None
    claim, expires = _decode(*key)
    if claim is not None:
        with _verified_changing:
            while len(_verified) >= VERIFIED_TOKENS_MAX:
                del _verified[next(iter(_verified))]
            _verified[key] = claim, expires
    return claim


def _decode(secret_key: str, token: str) -> tuple[Claim | None, float]:
    """Verify a bearer JWT with PyJWT; return its claim and its exp (a POSIX time), or (None, 0) if it is refused."""
    try:
        claims = jwt.decode(token, secret_key, algorithms=[ALGORITHM], options={"require": CLAIMS})
    except jwt.InvalidTokenError:
        return None, 0.0
    jti, role, sub, exp = claims["jti"], claims["role"], claims["sub"], claims["exp"]
    if not (isinstance(jti, str) and role in ROLES and isinstance(sub, str) and sub.isascii() and sub.isdigit()
            and sub == str(int(sub))):
        return None, 0.0
    return Claim(role, int(sub), jti), float(int(exp))  # PyJWT compares int(exp) too


def verify_claims(session: Session, claims: list[Claim]) -> list[Principal | None]:
    """Return each claim's principal if its login record is live and agrees with it (same user, same role)."""
    live = load_logins(session, {c.jti for c in claims})
    return [p if (p := live.get(c.jti)) is not None and (p.role, p.user_id) == (c.role, c.user_id) else None
            for c in claims]


def principal_from_token(session: Session, token: str) -> Principal | None:
    """Return the principal of a bearer JWT whose claims verify and agree with a live login record, else None."""
    claim = token_claim(token)
    return verify_claims(session, [claim])[0] if claim is not None else None


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
