"""Every inbox query is an ordered range of an index on open tasks, on SQLite and PostgreSQL.

The statements `services.inbox` sends are captured for each kind of page (first, keyset deep page, each
filter, a partner user, an admin across roles) and EXPLAINed on a database holding a few thousand tasks, so
a query that scans the task table, sorts every open task of a role or counts them fails here; at a million
cases such a query costs seconds instead of a fraction of a millisecond.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, insert, text

from engine.models import Instance, Task
from web import services

N = 2000
ROLES = ("mdf_owner", "ecosystem_manager", "partner_admin")


@pytest.fixture
def loaded(rt, users):
    """N cases with one task each: most open, a few claimed by mona, a tenth undated, spread over both partners."""
    now = rt.now()
    with rt.db.write() as conn:
        pids = [r.id for r in conn.execute(text("SELECT id FROM partners ORDER BY id"))]
        conn.execute(insert(Instance.__table__), [
            {"id": i, "workflow": "web_probe", "state": "submitted", "version": 1, "partner_id": pids[i % 2],
             "data": {}, "is_final": False, "created_by": "acme-admin", "created_at": now, "updated_at": now,
             "state_entered_at": now} for i in range(1, N + 1)])
        conn.execute(insert(Task.__table__), [
            {"instance_id": i, "workflow": ("web_probe", "exam_voucher")[i % 2 == 0 and i % 3 == 0],
             "partner_id": pids[i % 2], "state": "submitted", "name": "decide", "role": ROLES[i % 3],
             "title": "Decide", "status": "open" if i % 4 else "done", "assignee": "mona" if i % 50 == 1 else None,
             "due_at": None if i % 10 == 0 else now + timedelta(minutes=i * 37 % 5000 - 2500),
             "flags": [], "created_at": now} for i in range(1, N + 1)])
        conn.execute(text("ANALYZE"))
    if rt.db.is_postgres:
        rt.db.dispose()  # fresh connections see the statistics
    return rt


def statements(rt, actor, args: dict) -> list[tuple[str, object]]:
    """The SQL text and parameters of the task queries one inbox page sends."""
    seen: list = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if " tasks " in statement:
            seen.append((statement, parameters))

    event.listen(rt.db.engine, "before_cursor_execute", capture)
    try:
        services.inbox(rt, actor, services.parse_inbox_query(args, rt))
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", capture)
    assert seen, args
    return seen


def plan(rt, sql: str, params) -> str:
    with rt.db.engine.connect() as conn:
        if rt.db.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
            out = " | ".join(str(r[-1]) for r in rows)
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # few rows: ask which index the plan can use
            out = " | ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params).all())
        conn.rollback()
    return out.lower()


CURSOR = "after"  # replaced by a real cursor from the first page
PAGES = [
    ("mona", {}, "ix_tasks_inbox "),
    ("mona", {"after": CURSOR}, "ix_tasks_inbox "),
    ("mona", {"workflow": "web_probe"}, "ix_tasks_inbox_workflow"),
    ("mona", {"partner": "NORD"}, "ix_tasks_inbox_partner "),
    ("mona", {"workflow": "web_probe", "partner": "ACME"}, "ix_tasks_inbox_partner_workflow"),
    ("mona", {"due": "overdue"}, "ix_tasks_inbox "),
    ("mona", {"due": "today"}, "ix_tasks_inbox "),
    ("mona", {"due": "week"}, "ix_tasks_inbox "),
    ("mona", {"due": "none"}, "ix_tasks_inbox "),
    ("mona", {"due": "none", "after": "n.100"}, "ix_tasks_inbox "),
    ("mona", {"assigned": "unassigned"}, "ix_tasks_inbox "),
    ("mona", {"assigned": "me"}, "ix_tasks_assignee"),
    ("alice", {"assigned": "me"}, "ix_tasks_assignee"),
    ("acme-admin", {}, "ix_tasks_inbox_partner "),
    ("acme-admin", {"after": CURSOR}, "ix_tasks_inbox_partner "),
    ("root", {}, "ix_tasks_inbox "),
    ("root", {"after": CURSOR}, "ix_tasks_inbox "),
]


@pytest.mark.parametrize("who, args, index", PAGES, ids=[f"{w}-{'&'.join(f'{k}={v}' for k, v in a.items()) or 'first'}"
                                                        for w, a, _ in PAGES])
def test_inbox_query_is_an_ordered_index_range(loaded, users, who, args, index):
    actor = users[who]
    if args.get("after") == CURSOR:
        first = services.inbox(loaded, actor, services.InboxQuery(limit=20))
        assert first["next"], "the first page should have a next page"
        args = {**args, "after": first["next"]}
    for sql, params in statements(loaded, actor, args):
        assert "count(" not in sql.lower() and "offset" not in sql.lower(), sql
        text_ = plan(loaded, sql, params)
        if loaded.db.is_sqlite:
            # The rowid ends every SQLite index, so the index order is (…, due_at, id): no sort step.
            assert f"using index {index.strip()} (" in text_ or f"using index {index}" in text_, text_
            assert "scan t" not in text_ and "temp b-tree" not in text_, text_
        else:  # with this few rows PostgreSQL may sort a bitmap scan's rows; at a million it reads the index in order
            assert "seq scan on tasks" not in text_ and "pk_tasks" not in text_, text_
            assert "ix_tasks_inbox" in text_ or "ix_tasks_assignee" in text_, text_
