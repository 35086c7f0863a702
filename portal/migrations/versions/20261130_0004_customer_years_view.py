"""The customer_years view: each customer's dues and payments summed per calendar year.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:00:00

The pipeline trains on the five years before each customer's last complete year
with data (pipeline.dataset), which the year_percentage view cannot give: that
view counts years back from the database's current date, so in January a ledger
whose last year has no data yet shows an empty most recent year. This view has
no clock: one row per customer and calendar year, with how many months the
schedule has in it. year_percentage (0001) is unchanged; the portal's live
decisions keep using it. The SQL is the same on SQLite and PostgreSQL.
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

CUSTOMER_YEARS = {
    dialect: """
CREATE VIEW customer_years AS
SELECT d.customer_id AS customer_id,
       d.year AS year,
       COUNT(*) AS months,
       SUM(d.due_cents) AS due_cents,
       SUM(d.paid_cents) AS paid_cents
FROM dues d
GROUP BY d.customer_id, d.year
"""
    for dialect in ("sqlite", "postgresql")
}


def upgrade() -> None:
    op.execute(CUSTOMER_YEARS[op.get_bind().dialect.name])


def downgrade() -> None:
    op.execute("DROP VIEW customer_years")
