"""The audit trail: every manager action, written in the caller's transaction, read newest first.

``record`` is called inside the transaction that makes the change, so a change and its
audit row are committed together or not at all. Values are JSON: what changed, never a
password or its hash.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.models import AuditEvent, utcnow

# What each action means, for the audit page.
ACTIONS = {
    "customer.create": "created a customer",
    "customer.contact": "edited a customer's contact details",
    "customer.password_reset": "reset a customer's password",
    "customer.deactivate": "deactivated a customer",
    "customer.reactivate": "reactivated a customer",
    "manager.create": "created a manager",
    "manager.deactivate": "deactivated a manager",
    "manager.reactivate": "reactivated a manager",
    "payment.reverse": "reversed a payment",
    "bank_credit.refund": "refunded bank credit",
    "mail.retry": "sent a failed email again",
}


def record(session: Session, manager_id: int | None, action: str, target_type: str, target_id: int,
           old: dict | None = None, new: dict | None = None) -> AuditEvent:
    """Add an audit row for a manager's action to the caller's transaction."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(created_at=utcnow(), actor_role="manager" if manager_id is not None else "system",
                       actor_id=manager_id, action=action, target_type=target_type, target_id=target_id,
                       old=old, new=new)
    session.add(event)
    return event


@dataclass
class AuditPage:
    """One page of the audit trail."""

    rows: list[AuditEvent]
    total: int
    page: int
    per_page: int


def events(session: Session, page: int = 1, per_page: int = 20, target_type: str | None = None,
           target_id: int | None = None) -> AuditPage:
    """Return a page of audit events, newest first (optionally about one target)."""
    where = []
    if target_type is not None:
        where.append(AuditEvent.target_type == target_type)
    if target_id is not None:
        where.append(AuditEvent.target_id == target_id)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
    rows = session.scalars(select(AuditEvent).where(*where).order_by(AuditEvent.created_at.desc(),
                                                                     AuditEvent.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    return AuditPage(list(rows), total, page, per_page)
