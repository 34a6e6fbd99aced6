"""notifications: delivery log of outbox rows, per-user email preferences (daily digest)

Revision ID: 0501
Revises: 0001
Create Date: 2026-11-26 04:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.models  # noqa: F401  (custom column types)

revision = "0501"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("outbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", engine.models.UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], name=op.f("fk_outbox_attempts_outbox_id_outbox")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_attempts")),
    )
    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_attempts_outbox", ["outbox_id", "id"], unique=False)
    op.create_table(
        "notification_preferences",
        sa.Column("login", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("digest_hour", sa.Integer(), nullable=False),
        sa.Column("next_digest_at", engine.models.UTCDateTime(), nullable=True),
        sa.Column("last_digest_at", engine.models.UTCDateTime(), nullable=True),
        sa.Column("updated_at", engine.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("login", name=op.f("pk_notification_preferences")),
    )


def downgrade() -> None:
    op.drop_table("notification_preferences")
    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_attempts_outbox")
    op.drop_table("outbox_attempts")
