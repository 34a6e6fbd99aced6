"""customers and their reserved instances

Revision ID: 0201
Revises: 0001
Create Date: 2026-11-26 04:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.models  # noqa: F401  (custom column types)
import engine.models_customers  # noqa: F401  (custom column types)


revision = '0201'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('login', sa.String(length=128), nullable=True),
    sa.Column('in_arrears', sa.Boolean(), nullable=False),
    sa.Column('special_contract', sa.Boolean(), nullable=False),
    sa.Column('internal', sa.Boolean(), nullable=False),
    sa.Column('balance', engine.models_customers.DecimalText(), nullable=False),
    sa.Column('topup_rewards', engine.models_customers.DecimalText(), nullable=False),
    sa.Column('outstanding_invoices', engine.models_customers.DecimalText(), nullable=False),
    sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('model', sa.String(length=16), nullable=True),
    sa.Column('associated_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_customers_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('email', name=op.f('uq_customers_email')),
    sa.UniqueConstraint('login', name=op.f('uq_customers_login'))
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customers_partner_id'), ['partner_id'], unique=False)

    op.create_table('customer_reserved_instances',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('expires_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_reserved_instances_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_reserved_instances'))
    )
    with op.batch_alter_table('customer_reserved_instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_reserved_instances_customer_id'), ['customer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customer_reserved_instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_reserved_instances_customer_id'))
    op.drop_table('customer_reserved_instances')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customers_partner_id'))
    op.drop_table('customers')
