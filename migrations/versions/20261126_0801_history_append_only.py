"""history append-only: on PostgreSQL a trigger refuses UPDATE and DELETE of audit rows

Revision ID: 0801
Revises: 0001
Create Date: 2026-11-26 04:35:00

The audit trail (table ``history``) only ever grows. On PostgreSQL a row
trigger raises an error for every UPDATE or DELETE of a history row, whatever
role the application connects with (the owner included), so neither a bug
nor a stolen application password can rewrite who decided what. Removing the
guard takes a deliberate schema change by the table owner
(``ALTER TABLE history DISABLE TRIGGER history_append_only``), which is itself
visible in the database logs. TRUNCATE (used by the test suite between
tests) is not a row operation and is not affected.

On SQLite (the embedded single-user store) the application owns the file,
so a trigger would be no boundary; nothing is created there.
"""
from __future__ import annotations

from alembic import op

revision = "0801"
down_revision = "0001"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION partnerflow_history_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'history is append-only: % of history row % refused', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'the audit trail records every change; write a new row instead';
END;
$$
"""
TRIGGER = """
CREATE TRIGGER history_append_only
BEFORE UPDATE OR DELETE ON history
FOR EACH ROW EXECUTE FUNCTION partnerflow_history_append_only()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS history_append_only ON history")
    op.execute("DROP FUNCTION IF EXISTS partnerflow_history_append_only()")
