"""Idempotency-Key: a retried request gets the first answer and changes nothing, for payments and credit.

The first answer to a request made with a key is stored (``IdempotencyRecord``)
in the same transaction as what the request wrote. A retry with the same key
and the same request gets it back; the same key with another request is a 409.
Payments and credit requests keep their keys apart (``scope``).
"""
from __future__ import annotations

import hashlib
import json

from sqlalchemy import bindparam, insert, select, tuple_
from sqlalchemy.orm import Session

from portal.db import core
from portal.ledger.errors import Conflict
from portal.models import IdempotencyRecord, utcnow

# Stored key = prefix + the client's key: a payment's key never meets a credit request's.
SCOPES = {"payment": "payment:", "credit": "credit:"}
_records = IdempotencyRecord.__table__.c
_FIRST_ANSWERS = select(_records.customer_id, _records.key, _records.request_hash, _records.response).where(
    tuple_(_records.customer_id, _records.key).in_(bindparam("keys", expanding=True)))
_REMEMBER = insert(IdempotencyRecord.__table__)


def fingerprint(**fields) -> str:
    """Hash a request's meaningful fields, to tell a true retry from a reused key."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def first_answer(session: Session, scope: str, customer_id: int, key: str, request_hash: str) -> dict | None:
    """Return the stored answer for this key, None for a new key; 409 if the key was used for another request."""
    return answer(first_answers(session, scope, [(customer_id, key)]).get((customer_id, key)), request_hash)


def first_answers(session: Session, scope: str, keys: list[tuple[int, str]]) -> dict[tuple[int, str], tuple]:
    """Return the stored (request hash, answer) of each (customer, key) that has one, in one read."""
    prefix = SCOPES[scope]
    rows = core(session).execute(_FIRST_ANSWERS, {"keys": [(c, prefix + k) for c, k in keys]})
    return {(c, key.removeprefix(prefix)): (request_hash, response) for c, key, request_hash, response in rows}


def answer(record: tuple | None, request_hash: str) -> dict | None:
    """Return a stored (request hash, answer)'s answer for the same request, None for none; 409 for another request."""
    if record is None:
        return None
    if record[0] != request_hash:
        raise Conflict("Idempotency-Key was already used for a different request", "Idempotency-Key")
    return record[1]


def remember(session: Session, scope: str, customer_id: int, key: str, request_hash: str, answer: dict) -> None:
    """Store the first answer for this key, in the caller's transaction."""
    remember_many(session, scope, [(customer_id, key, request_hash, answer)])


def remember_many(session: Session, scope: str, records: list[tuple[int, str, str, dict]]) -> None:
    """Store first answers (customer, key, request hash, answer) in one statement, in the caller's transaction."""
    if records:
        now = utcnow()
        core(session).execute(_REMEMBER, [{"customer_id": c, "key": SCOPES[scope] + k, "request_hash": h,
                                           "response": a, "created_at": now} for c, k, h, a in records])
