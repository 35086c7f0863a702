"""The manager's language: the pages' language a manager chose (customers have theirs since 0006).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:00:00

* ``managers.language``: NULL until the manager picks a language with the switcher;
  until then the pages follow the browser's ``Accept-Language``.
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("managers", sa.Column("language", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("managers", schema=None, recreate="never") as batch_op:  # in place, like 0006
        batch_op.drop_column("language")
