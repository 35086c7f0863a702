"""The ledger's exceptions; each carries the HTTP status and the field at fault."""
from __future__ import annotations


class LedgerError(Exception):
    """Base class: a request the ledger refuses, with nothing written."""

    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(LedgerError):
    """The customer, month or payment does not exist (or is not yours)."""

    status = 404


class InvalidRequest(LedgerError):
    """Well-formed input that breaks a ledger rule (a month outside the schedule, ...)."""

    status = 422


class Conflict(LedgerError):
    """The request clashes with the ledger's state (a reused idempotency key, ...)."""

    status = 409
