"""drop redundant timer and task indexes: every index is written at each arm, claim, fire and cancel

- ``ix_timers_instance_id``: the unique (instance_id, armed_version, name)
  index already leads with the case.
- ``ix_timers_status_due``: due and claimed timers are read through the
  partial indexes ``ix_timers_pending_due`` and ``ix_timers_claimed_lease``;
  on SQLite this index also tempted the planner to walk every pending timer.
- ``ix_tasks_instance_id``: ``ix_tasks_instance_status`` leads with the case.

Revision ID: 0901
Revises: 0701
Create Date: 2026-11-26 08:00:00
"""
from __future__ import annotations

from alembic import op

revision = '0901'
down_revision = '0701'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index('ix_timers_status_due')
        batch_op.drop_index('ix_timers_instance_id')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_instance_id')


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_instance_id', ['instance_id'], unique=False)
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index('ix_timers_instance_id', ['instance_id'], unique=False)
        batch_op.create_index('ix_timers_status_due', ['status', 'due_at'], unique=False)
