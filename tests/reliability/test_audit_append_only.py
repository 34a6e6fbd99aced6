"""The audit history is append-only.

PostgreSQL: migration 0801's trigger refuses UPDATE and DELETE of history
rows for the role the application connects with, through the engine's own
connection pool and through raw SQL; inserts (new changes) still work and the
refused statements change nothing. SQLite (embedded, the application owns
the file): the engine itself never updates or deletes history rows, which
the same test checks by recording every statement a full lifecycle run sends.
"""
from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from .harness import ADMIN, seed_people
from .lifecycles import SETTLEMENT, registry
from tests.conftest import START


def _case_with_history(runtime) -> int:
    seed_people(runtime.db, START)
    runtime.registry = registry()
    case = runtime.start(SETTLEMENT.name, {"period_end": "2026-04-01T00:00:00+00:00"}, runtime.actor(ADMIN))
    runtime.fire(case["id"], "reject", runtime.actor("rely-op1"), comment="numbers are wrong")
    return case["id"]


def test_history_rows_cannot_be_updated_or_deleted(db, runtime):
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda conn, cur, stmt, params, ctx, many: statements.append(stmt.lstrip()[:30].upper()))
    case = _case_with_history(runtime)
    runtime.advance_to(START.replace(month=5))  # the cancelled timer does nothing; nothing rewrites history
    assert not [s for s in statements if s.startswith(("UPDATE HISTORY", "DELETE FROM HISTORY"))]
    with db.read() as conn:
        before = conn.execute(text("SELECT id, event, actor, comment FROM history WHERE instance_id = :i ORDER BY id"),
                              {"i": case}).all()
    assert [r.event for r in before] == ["start", "reject"]
    if not db.is_postgres:
        return
    for sql in ("UPDATE history SET actor = 'someone-else', comment = NULL WHERE instance_id = :i",
                "UPDATE history SET at = at - interval '1 day' WHERE id = (SELECT max(id) FROM history)",
                "DELETE FROM history WHERE instance_id = :i"):
        with pytest.raises(DBAPIError) as err:
            with db.write() as conn:
                conn.execute(text(sql), {"i": case})
        assert "history is append-only" in str(err.value.orig)
        assert err.value.orig.sqlstate == "42501"  # insufficient_privilege
    with db.read() as conn:
        after = conn.execute(text("SELECT id, event, actor, comment FROM history WHERE instance_id = :i ORDER BY id"),
                             {"i": case}).all()
        trigger = conn.execute(text("SELECT tgenabled FROM pg_trigger WHERE tgname = 'history_append_only'")).scalar()
    assert after == before
    assert trigger == "O"  # enabled for ordinary sessions
    # appending still works: the next change adds a row
    runtime.start(SETTLEMENT.name, {"period_end": "2026-06-01T00:00:00+00:00"}, runtime.actor(ADMIN))
