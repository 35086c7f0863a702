"""Idempotency-Key: a retried request gets the first answer and changes nothing, for payments and credit.

The first answer to a request made with a key is stored (``IdempotencyRecord``)
in the same transaction as what the request wrote. A retry with the same key
and the same request gets it back; the same key with another request is a 409.
Payments and credit requests keep their keys apart (``scope``).
"""
from __future__ import annotations

import hashlib
import json

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from portal.db import core
from portal.ledger.errors import Conflict
from portal.models import IdempotencyRecord, utcnow

# Stored key = prefix + the client's key: a payment's key never meets a credit request's.
SCOPES = {"payment": "payment:", "credit": "credit:"}
_records = IdempotencyRecord.__table__.c
_FIRST_ANSWER = select(_records.request_hash, _records.response).where(
    _records.customer_id == bindparam("c"), _records.key == bindparam("k"))
_REMEMBER = insert(IdempotencyRecord.__table__)


def fingerprint(**fields) -> str:
    """Hash a request's meaningful fields, to tell a true retry from a reused key."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def first_answer(session: Session, scope: str, customer_id: int, key: str, request_hash: str) -> dict | None:
    """Return the stored answer for this key, None for a new key; 409 if the key was used for another request."""
    record = core(session).execute(_FIRST_ANSWER, {"c": customer_id, "k": SCOPES[scope] + key}).first()
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise Conflict("Idempotency-Key was already used for a different request", "Idempotency-Key")
    return record.response


def remember(session: Session, scope: str, customer_id: int, key: str, request_hash: str, answer: dict) -> None:
    """Store the first answer for this key, in the caller's transaction."""
    core(session).execute(_REMEMBER, {"customer_id": customer_id, "key": SCOPES[scope] + key,
                                      "request_hash": request_hash, "response": answer, "created_at": utcnow()})
