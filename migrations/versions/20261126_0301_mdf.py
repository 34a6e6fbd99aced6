"""MDF: partner solutions, partner bills and payments, MDF bars

Revision ID: 0301
Revises: 0001
Create Date: 2026-11-26 04:45:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.models  # noqa: F401  (custom column types)
import engine.models_mdf  # noqa: F401  (custom column types)


revision = '0301'
down_revision = '0001'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('mdf_solutions',
    sa.Column('id', ID, nullable=False),
    sa.Column('partner_id', ID, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('released_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_mdf_solutions_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mdf_solutions')),
    sa.UniqueConstraint('partner_id', 'name', name=op.f('uq_mdf_solutions_partner_id_name'))
    )
    with op.batch_alter_table('mdf_solutions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mdf_solutions_partner_id'), ['partner_id'], unique=False)

    op.create_table('partner_bills',
    sa.Column('id', ID, nullable=False),
    sa.Column('partner_id', ID, nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('cycle', sa.String(length=7), nullable=False),
    sa.Column('amount', engine.models_mdf.MoneyText(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('paid_at', engine.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_partner_bills_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_bills')),
    sa.UniqueConstraint('number', name=op.f('uq_partner_bills_number'))
    )
    with op.batch_alter_table('partner_bills', schema=None) as batch_op:
        batch_op.create_index('ix_partner_bills_partner_cycle', ['partner_id', 'cycle'], unique=False)

    op.create_table('partner_bill_payments',
    sa.Column('id', ID, nullable=False),
    sa.Column('bill_id', ID, nullable=False),
    sa.Column('amount', engine.models_mdf.MoneyText(), nullable=False),
    sa.Column('reference', sa.String(length=128), nullable=True),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('paid_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bill_id'], ['partner_bills.id'], name=op.f('fk_partner_bill_payments_bill_id_partner_bills')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_bill_payments'))
    )
    with op.batch_alter_table('partner_bill_payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partner_bill_payments_bill_id'), ['bill_id'], unique=False)

    op.create_table('mdf_bars',
    sa.Column('id', ID, nullable=False),
    sa.Column('partner_id', ID, nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('until', engine.models.UTCDateTime(), nullable=False),
    sa.Column('claim_id', ID, nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('confirmed_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_mdf_bars_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mdf_bars'))
    )
    with op.batch_alter_table('mdf_bars', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mdf_bars_partner_id'), ['partner_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mdf_bars', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mdf_bars_partner_id'))
    op.drop_table('mdf_bars')
    with op.batch_alter_table('partner_bill_payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partner_bill_payments_bill_id'))
    op.drop_table('partner_bill_payments')
    with op.batch_alter_table('partner_bills', schema=None) as batch_op:
        batch_op.drop_index('ix_partner_bills_partner_cycle')
    op.drop_table('partner_bills')
    with op.batch_alter_table('mdf_solutions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mdf_solutions_partner_id'))
    op.drop_table('mdf_solutions')
