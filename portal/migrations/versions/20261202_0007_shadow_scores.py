"""The challenger's shadow score with each ML decision.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00

``credit_decisions.shadow_version`` / ``shadow_score`` / ``shadow_approved``: what
the challenger (``credit-approval@challenger``, scored by serving in the shadow of
the champion) said about the same request; ``shadow_approved`` is the portal's
threshold applied to that score. NULL when no challenger scored it (the percentage
method, no challenger, or a broken one).
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Added in place (no batch copy), nullable: existing decisions had no shadow.
    op.add_column("credit_decisions", sa.Column("shadow_version", sa.String(length=32), nullable=True))
    op.add_column("credit_decisions", sa.Column("shadow_score", sa.Float(), nullable=True))
    op.add_column("credit_decisions", sa.Column("shadow_approved", sa.Boolean(), nullable=True))


def downgrade() -> None:
    # Dropped in place too (SQLite >= 3.35 can).
    with op.batch_alter_table("credit_decisions", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("shadow_approved")
        batch_op.drop_column("shadow_score")
        batch_op.drop_column("shadow_version")
