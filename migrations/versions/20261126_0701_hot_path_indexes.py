"""hot-path indexes: pending timers by due time, claimed timers by lease, open tasks by case

Revision ID: 0701
Revises: 0001
Create Date: 2026-11-26 05:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0701'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pending = sa.text("status = 'pending'")
    claimed = sa.text("status = 'claimed'")
    op.create_index('ix_timers_pending_due', 'timers', ['due_at', 'id'], unique=False,
                    sqlite_where=pending, postgresql_where=pending)
    op.create_index('ix_timers_claimed_lease', 'timers', ['lease_until'], unique=False,
                    sqlite_where=claimed, postgresql_where=claimed)
    op.create_index('ix_tasks_instance_status', 'tasks', ['instance_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tasks_instance_status', table_name='tasks')
    op.drop_index('ix_timers_claimed_lease', table_name='timers')
    op.drop_index('ix_timers_pending_due', table_name='timers')
