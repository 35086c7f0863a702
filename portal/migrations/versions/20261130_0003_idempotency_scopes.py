"""Payments' Idempotency-Keys get their own prefix, as credit requests' already had ("credit:").

Before, a payment's key was stored as the client sent it, so a payment with the
key "credit:zz" and a credit request with the key "zz" collided.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:00:00
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE idempotency_records SET key = 'payment:' || key WHERE key NOT LIKE 'credit:%'")


def downgrade() -> None:
    op.execute("UPDATE idempotency_records SET key = SUBSTR(key, 9) WHERE key LIKE 'payment:%'")
