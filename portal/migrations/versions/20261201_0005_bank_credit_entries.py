"""Bank credit entries: bank credit applied to dues, applications undone by a reversal, refunds.

Allocations get a second kind of source (a bank credit application) besides a
payment, and customers an opening bank credit (imported), so that every
customer's bank credit adds up from rows:
bank_credit = opening + live payments' to_bank_credit - applied + undone - refunded.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 03:55:24.938967
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bank_credit_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('credit_decision_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payment_reversal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('undoes_entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('manager_id', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind <> 'refund' OR (manager_id IS NOT NULL AND reason IS NOT NULL)", name=op.f('ck_bank_credit_entries_refund_says_who_and_why')),
    sa.CheckConstraint("kind <> 'unapplied' OR undoes_entry_id IS NOT NULL", name=op.f('ck_bank_credit_entries_unapplied_names_entry')),
    sa.CheckConstraint("kind IN ('applied', 'unapplied', 'refund')", name=op.f('ck_bank_credit_entries_kind_known')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_bank_credit_entries_amount_pos')),
    sa.ForeignKeyConstraint(['credit_decision_id'], ['credit_decisions.id'], name=op.f('fk_bank_credit_entries_credit_decision_id_credit_decisions')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_bank_credit_entries_customer_id_customers')),
    sa.ForeignKeyConstraint(['manager_id'], ['managers.id'], name=op.f('fk_bank_credit_entries_manager_id_managers')),
    sa.ForeignKeyConstraint(['payment_reversal_id'], ['payment_reversals.id'], name=op.f('fk_bank_credit_entries_payment_reversal_id_payment_reversals')),
    sa.ForeignKeyConstraint(['undoes_entry_id'], ['bank_credit_entries.id'], name=op.f('fk_bank_credit_entries_undoes_entry_id_bank_credit_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_credit_entries')),
    sa.UniqueConstraint('undoes_entry_id', name=op.f('uq_bank_credit_entries_undoes_entry_id'))
    )
    with op.batch_alter_table('bank_credit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_bank_credit_entries_customer_created', ['customer_id', 'created_at'], unique=False)

    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bank_credit_entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.alter_column('payment_id',
               existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
               nullable=True)
        batch_op.create_index('ix_allocations_bank_credit_entry', ['bank_credit_entry_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_allocations_bank_credit_entry_id_bank_credit_entries'), 'bank_credit_entries', ['bank_credit_entry_id'], ['id'])
        batch_op.create_check_constraint(batch_op.f('ck_allocations_one_source'), '(payment_id IS NULL) <> (bank_credit_entry_id IS NULL)')

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opening_bank_credit_cents', sa.BigInteger(), server_default='0', nullable=False))
    # What a customer held that no live payment put there came with the import.
    op.execute("UPDATE customers SET opening_bank_credit_cents = bank_credit_cents - COALESCE(("
               " SELECT SUM(p.to_bank_credit_cents) FROM payments p WHERE p.customer_id = customers.id"
               " AND p.id NOT IN (SELECT payment_id FROM payment_reversals)), 0)")


def downgrade() -> None:
    # Refused by the database (allocations.payment_id NOT NULL) once bank credit has been applied to dues.
    # Plain DROP COLUMN (SQLite >= 3.35 has it): batch mode would copy the table, which the view refers to.
    op.execute("ALTER TABLE customers DROP COLUMN opening_bank_credit_cents")

    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_allocations_one_source'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_allocations_bank_credit_entry_id_bank_credit_entries'), type_='foreignkey')
        batch_op.drop_index('ix_allocations_bank_credit_entry')
        batch_op.alter_column('payment_id',
               existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
               nullable=False)
        batch_op.drop_column('bank_credit_entry_id')

    with op.batch_alter_table('bank_credit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_bank_credit_entries_customer_created')

    op.drop_table('bank_credit_entries')
