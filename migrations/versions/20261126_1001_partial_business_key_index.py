"""index only the cases that have a business key

Four lifecycles (business and payment authentication, exam vouchers, test
coupons) have no business key, and their cases wrote a NULL entry into
``ix_instances_business_key`` at every start. Every lookup by business key is
an equality, which a partial index ``WHERE business_key IS NOT NULL`` serves on
SQLite and PostgreSQL alike; the cases without a key no longer cost an index
page at their start.

Revision ID: 1001
Revises: 0901
Create Date: 2026-11-26 10:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '1001'
down_revision = '0901'
branch_labels = None
depends_on = None

_HAS_KEY = sa.text("business_key IS NOT NULL")


def upgrade() -> None:
    op.drop_index('ix_instances_business_key', table_name='instances')
    op.create_index('ix_instances_business_key', 'instances', ['workflow', 'business_key'], unique=False,
                    sqlite_where=_HAS_KEY, postgresql_where=_HAS_KEY)


def downgrade() -> None:
    op.drop_index('ix_instances_business_key', table_name='instances')
    op.create_index('ix_instances_business_key', 'instances', ['workflow', 'business_key'], unique=False)
