"""history.timer_id unique only where a timer fired: a person's change no longer writes an index entry

``uq_history_timer_id`` (a timer fires at most once) was a unique constraint
over every history row, and so took a NULL entry for each start and each
person's event: an index page written by every transaction. A unique index
``WHERE timer_id IS NOT NULL`` keeps the same guarantee, and only timer
firings write to it.

On SQLite a unique constraint lives in the table's definition, so the history
table is copied once (alembic's batch mode); on PostgreSQL the constraint is
dropped and the index built.

Revision ID: 1002
Revises: 1001
Create Date: 2026-11-26 10:45:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '1002'
down_revision = '1001'
branch_labels = None
depends_on = None

_FIRED = sa.text("timer_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('history', schema=None) as batch_op:
        batch_op.drop_constraint('uq_history_timer_id', type_='unique')
    op.create_index('uq_history_timer_id', 'history', ['timer_id'], unique=True,
                    sqlite_where=_FIRED, postgresql_where=_FIRED)


def downgrade() -> None:
    op.drop_index('uq_history_timer_id', table_name='history')
    with op.batch_alter_table('history', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_history_timer_id', ['timer_id'])
