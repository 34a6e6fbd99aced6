"""incentives, withholding tax rates, dedicated personnel, consumption, program windows

Revision ID: 0401
Revises: 0001
Create Date: 2026-11-26 04:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.models  # noqa: F401  (custom column types)

revision = '0401'
down_revision = '0001'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('incentives',
    sa.Column('id', ID, nullable=False),
    sa.Column('partner_id', ID, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('item', sa.String(length=200), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_incentives_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incentives')),
    sa.UniqueConstraint('partner_id', 'kind', 'period', 'item', name=op.f('uq_incentives_partner_id_kind_period_item'))
    )
    op.create_index('ix_incentives_period', 'incentives', ['kind', 'period'], unique=False)
    op.create_table('withholding_tax_rates',
    sa.Column('country', sa.String(length=8), nullable=False),
    sa.Column('rate', sa.Numeric(precision=6, scale=4), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.Column('updated_at', engine.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('country', name=op.f('pk_withholding_tax_rates'))
    )
    op.create_table('dedicated_personnel',
    sa.Column('id', ID, nullable=False),
    sa.Column('partner_id', ID, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('login', sa.String(length=128), nullable=True),
    sa.Column('started_on', sa.Date(), nullable=False),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_dedicated_personnel_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dedicated_personnel'))
    )
    op.create_index(op.f('ix_dedicated_personnel_partner_id'), 'dedicated_personnel', ['partner_id'], unique=False)
    op.create_table('consumption',
    sa.Column('id', ID, nullable=False),
    sa.Column('partner_id', ID, nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('instance_id', ID, nullable=True),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_consumption_instance_id_instances')),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_consumption_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consumption'))
    )
    op.create_index('ix_consumption_partner_at', 'consumption', ['partner_id', 'at'], unique=False)
    op.create_table('program_windows',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('opens_on', sa.Date(), nullable=True),
    sa.Column('closes_on', sa.Date(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_program_windows'))
    )


def downgrade() -> None:
    op.drop_table('program_windows')
    op.drop_index('ix_consumption_partner_at', table_name='consumption')
    op.drop_table('consumption')
    op.drop_index(op.f('ix_dedicated_personnel_partner_id'), table_name='dedicated_personnel')
    op.drop_table('dedicated_personnel')
    op.drop_table('withholding_tax_rates')
    op.drop_index('ix_incentives_period', table_name='incentives')
    op.drop_table('incentives')
