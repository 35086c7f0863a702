"""Ledger tables and the year_percentage view.

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 07:52:36.142756
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# The year_percentage view, frozen as it was created: the contract between the ledger and the
# model (one row per customer, the paid share of each of the five complete years before the
# current year, oldest first, NULL for a year with nothing due, and the outcome label).
# tests/test_importer.py checks it against pipeline.features on real data.
_THIS_YEAR = {
    "sqlite": "CAST(strftime('%Y', 'now') AS INTEGER)",
    "postgresql": "CAST(EXTRACT(YEAR FROM CURRENT_DATE) AS INTEGER)",
}
YEAR_PERCENTAGE = """
CREATE VIEW year_percentage AS
SELECT c.id AS customer_id,
       {y} AS decision_year,
       100.0 * SUM(CASE WHEN d.year = {y} - 5 THEN d.paid_cents ELSE 0 END)
             / NULLIF(SUM(CASE WHEN d.year = {y} - 5 THEN d.due_cents ELSE 0 END), 0) AS paid_pct_5y_ago,
       100.0 * SUM(CASE WHEN d.year = {y} - 4 THEN d.paid_cents ELSE 0 END)
             / NULLIF(SUM(CASE WHEN d.year = {y} - 4 THEN d.due_cents ELSE 0 END), 0) AS paid_pct_4y_ago,
       100.0 * SUM(CASE WHEN d.year = {y} - 3 THEN d.paid_cents ELSE 0 END)
             / NULLIF(SUM(CASE WHEN d.year = {y} - 3 THEN d.due_cents ELSE 0 END), 0) AS paid_pct_3y_ago,
       100.0 * SUM(CASE WHEN d.year = {y} - 2 THEN d.paid_cents ELSE 0 END)
             / NULLIF(SUM(CASE WHEN d.year = {y} - 2 THEN d.due_cents ELSE 0 END), 0) AS paid_pct_2y_ago,
       100.0 * SUM(CASE WHEN d.year = {y} - 1 THEN d.paid_cents ELSE 0 END)
             / NULLIF(SUM(CASE WHEN d.year = {y} - 1 THEN d.due_cents ELSE 0 END), 0) AS paid_pct_1y_ago,
       o.result AS result,
       o.true_probability AS true_probability
FROM customers c
LEFT JOIN dues d ON d.customer_id = c.id AND d.year >= {y} - 5 AND d.year < {y}
LEFT JOIN outcomes o ON o.customer_id = c.id
GROUP BY c.id, o.result, o.true_probability
"""


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_api_tokens'))
    )
    op.create_table('customers',
    sa.Column('total_due_cents', sa.BigInteger(), nullable=False),
    sa.Column('total_paid_cents', sa.BigInteger(), nullable=False),
    sa.Column('bank_credit_cents', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('age', sa.SmallInteger(), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('age IS NULL OR (age >= 18 AND age <= 120)', name=op.f('ck_customers_age_range')),
    sa.CheckConstraint('bank_credit_cents >= 0', name=op.f('ck_customers_bank_credit_nonneg')),
    sa.CheckConstraint('total_due_cents >= 0', name=op.f('ck_customers_due_nonneg')),
    sa.CheckConstraint('total_paid_cents >= 0 AND total_paid_cents <= total_due_cents', name=op.f('ck_customers_paid_within_due')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_name', ['name'], unique=False)

    op.create_table('managers',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('age', sa.SmallInteger(), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_managers'))
    )
    op.create_table('credit_decisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('year', sa.SmallInteger(), nullable=False),
    sa.Column('month', sa.SmallInteger(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('approved', sa.Boolean(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_credit_decisions_amount_pos')),
    sa.CheckConstraint('month >= 1 AND month <= 12', name=op.f('ck_credit_decisions_month_range')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_credit_decisions_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_decisions')),
    sa.UniqueConstraint('request_id', name=op.f('uq_credit_decisions_request_id'))
    )
    with op.batch_alter_table('credit_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_credit_decisions_created', ['created_at'], unique=False)
        batch_op.create_index('ix_credit_decisions_customer_created', ['customer_id', 'created_at'], unique=False)

    op.create_table('dues',
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('year', sa.SmallInteger(), nullable=False),
    sa.Column('month', sa.SmallInteger(), nullable=False),
    sa.Column('due_cents', sa.BigInteger(), nullable=False),
    sa.Column('paid_cents', sa.BigInteger(), nullable=False),
    sa.Column('opening_paid_cents', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('due_cents >= 0', name=op.f('ck_dues_due_nonneg')),
    sa.CheckConstraint('month >= 1 AND month <= 12', name=op.f('ck_dues_month_range')),
    sa.CheckConstraint('paid_cents >= 0 AND paid_cents <= due_cents', name=op.f('ck_dues_paid_within_due')),
    sa.CheckConstraint('opening_paid_cents >= 0 AND opening_paid_cents <= paid_cents', name=op.f('ck_dues_opening_within_paid')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_dues_customer_id_customers')),
    sa.PrimaryKeyConstraint('customer_id', 'year', 'month', name=op.f('pk_dues'))
    )
    op.create_table('idempotency_records',
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_idempotency_records_customer_id_customers')),
    sa.PrimaryKeyConstraint('customer_id', 'key', name=op.f('pk_idempotency_records'))
    )
    op.create_table('outcomes',
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('result', sa.SmallInteger(), nullable=False),
    sa.Column('true_probability', sa.Float(), nullable=True),
    sa.CheckConstraint('result IN (0, 1)', name=op.f('ck_outcomes_result_binary')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_outcomes_customer_id_customers')),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_outcomes'))
    )
    op.create_table('payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('year', sa.SmallInteger(), nullable=False),
    sa.Column('month', sa.SmallInteger(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('to_bank_credit_cents', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_payments_amount_pos')),
    sa.CheckConstraint('month >= 1 AND month <= 12', name=op.f('ck_payments_month_range')),
    sa.CheckConstraint('to_bank_credit_cents >= 0 AND to_bank_credit_cents <= amount_cents', name=op.f('ck_payments_bank_credit_within_amount')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_payments_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_customer_created', ['customer_id', 'created_at'], unique=False)

    op.create_table('allocations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('year', sa.SmallInteger(), nullable=False),
    sa.Column('month', sa.SmallInteger(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_allocations_amount_pos')),
    sa.ForeignKeyConstraint(['customer_id', 'year', 'month'], ['dues.customer_id', 'dues.year', 'dues.month'], name='fk_allocations_due'),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_allocations_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocations'))
    )
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.create_index('ix_allocations_due', ['customer_id', 'year', 'month'], unique=False)
        batch_op.create_index('ix_allocations_payment', ['payment_id'], unique=False)

    op.create_table('payment_reversals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('manager_id', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['manager_id'], ['managers.id'], name=op.f('fk_payment_reversals_manager_id_managers')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_reversals_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_reversals')),
    sa.UniqueConstraint('payment_id', name=op.f('uq_payment_reversals_payment_id'))
    )
    op.execute(YEAR_PERCENTAGE.format(y=_THIS_YEAR[op.get_bind().dialect.name]))


def downgrade() -> None:
    op.execute("DROP VIEW year_percentage")
    op.drop_table('payment_reversals')
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.drop_index('ix_allocations_payment')
        batch_op.drop_index('ix_allocations_due')

    op.drop_table('allocations')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_customer_created')

    op.drop_table('payments')
    op.drop_table('outcomes')
    op.drop_table('idempotency_records')
    op.drop_table('dues')
    with op.batch_alter_table('credit_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_decisions_customer_created')
        batch_op.drop_index('ix_credit_decisions_created')

    op.drop_table('credit_decisions')
    op.drop_table('managers')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_name')

    op.drop_table('customers')
    op.drop_table('api_tokens')
