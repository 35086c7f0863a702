"""Email outbox, audit trail, account deactivation and the customer's language.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00

* ``outbox``: the emails to send, written in the same transaction as their event
  (portal/mail/outbox.py) and delivered by the sender (portal/mail/sender.py).
* ``audit_events``: every manager action, with old and new values (portal/audit.py).
* ``customers.active`` / ``managers.active``: a deactivated account cannot log in; its
  records stay. Existing accounts are active.
* ``customers.language``: the language of the customer's emails ("en" for everyone now).
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Added in place (no batch copy): a copy of customers would break the views that read it on SQLite.
    op.add_column("customers", sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column("customers", sa.Column("language", sa.String(length=16), server_default="en", nullable=False))
    op.add_column("managers", sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_created", "audit_events", ["created_at"], unique=False)
    op.create_index("ix_audit_events_target", "audit_events", ["target_type", "target_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("recipient_name", sa.String(length=120), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f("ck_outbox_status_known")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_outbox_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_audit_events_target", table_name="audit_events")
    op.drop_index("ix_audit_events_created", table_name="audit_events")
    op.drop_table("audit_events")
    # Dropped in place too (SQLite >= 3.35 can).
    with op.batch_alter_table("managers", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("active")
    with op.batch_alter_table("customers", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("active")
