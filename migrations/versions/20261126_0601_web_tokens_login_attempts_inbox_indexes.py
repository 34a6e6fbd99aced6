"""web layer: API tokens, login attempts, inbox and case-list indexes

Revision ID: 0601
Revises: 0001
Create Date: 2026-11-26 04:14:06.329907
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.models  # noqa: F401  (custom column types)


revision = '0601'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('login', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', engine.models.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', engine.models.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', engine.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_login'), ['login'], unique=False)

    op.create_table('login_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('at', engine.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempts'))
    )
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempts_key_at', ['key', 'at'], unique=False)

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.create_index('ix_instances_workflow_id', ['workflow', 'id'], unique=False)

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_inbox_partner', ['status', 'role', 'partner_id', 'due_at', 'id'], unique=False)
        batch_op.create_index('ix_tasks_inbox_workflow', ['status', 'role', 'workflow', 'due_at', 'id'], unique=False)
        batch_op.create_index('ix_tasks_inbox_partner_workflow', ['status', 'role', 'partner_id', 'workflow', 'due_at', 'id'],
                              unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_inbox_partner_workflow')
        batch_op.drop_index('ix_tasks_inbox_workflow')
        batch_op.drop_index('ix_tasks_inbox_partner')

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index('ix_instances_workflow_id')

    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempts_key_at')

    op.drop_table('login_attempts')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_login'))

    op.drop_table('api_tokens')
