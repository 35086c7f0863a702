"""The credit policy's record on each decision: limit, exposure and the checks that ran.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 04:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credit_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limit_cents", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("exposure_cents", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("checks", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credit_decisions", schema=None) as batch_op:
        batch_op.drop_column("checks")
        batch_op.drop_column("exposure_cents")
        batch_op.drop_column("limit_cents")
