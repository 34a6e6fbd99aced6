"""Accounts, member-partner associations, procurement suppliers, registered-country changes

Revision ID: 0101
Revises: 0001
Create Date: 2026-11-26 04:16:09.501958
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.models  # noqa: F401  (custom column types)


revision = '0101'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('login_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('registered_country', sa.String(length=2), nullable=False),
    sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('certificates', sa.JSON(), nullable=False),
    sa.Column('registration_case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_accounts_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('login_id', name=op.f('uq_accounts_login_id'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_partner_id'), ['partner_id'], unique=False)

    op.create_table('procurement_suppliers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('supplier_number', sa.String(length=64), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_procurement_suppliers_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_procurement_suppliers')),
    sa.UniqueConstraint('partner_id', name=op.f('uq_procurement_suppliers_partner_id'))
    )
    op.create_table('account_associations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('associated_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('ended_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('ended_by', sa.String(length=128), nullable=True),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.Column('invitation_case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_associations_account_id_accounts')),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_account_associations_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_associations'))
    )
    with op.batch_alter_table('account_associations', schema=None) as batch_op:
        batch_op.create_index('ix_account_associations_account', ['account_id', 'ended_at'], unique=False)
        batch_op.create_index('ix_account_associations_partner', ['partner_id', 'ended_at'], unique=False)

    op.create_table('account_country_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('old_country', sa.String(length=2), nullable=False),
    sa.Column('new_country', sa.String(length=2), nullable=False),
    sa.Column('ticket', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('changed_by', sa.String(length=128), nullable=False),
    sa.Column('changed_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_country_changes_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_country_changes'))
    )
    with op.batch_alter_table('account_country_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_country_changes_account_id'), ['account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('account_country_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_country_changes_account_id'))
    op.drop_table('account_country_changes')
    with op.batch_alter_table('account_associations', schema=None) as batch_op:
        batch_op.drop_index('ix_account_associations_partner')
        batch_op.drop_index('ix_account_associations_account')
    op.drop_table('account_associations')
    op.drop_table('procurement_suppliers')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_partner_id'))
    op.drop_table('accounts')
