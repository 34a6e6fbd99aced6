"""Each hot query of the runtime is an index lookup or an ordered index range, on SQLite and PostgreSQL.

The plans are read with EXPLAIN on a database holding many fired and pending
timers, so a plan that scans the table or sorts every due row (and so slows
down as the data grows) fails here rather than in production.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from benchmarks.common import T0, seed_waiting
from engine import runtime as rt_module
from engine.clock import ManualClock
from engine.fastsql import Fast
from engine.runtime import Runtime

N = 3000


@pytest.fixture
def loaded(db):
    """N cases with a pending timer each; a third of the timers already fired, some claimed."""
    seed_waiting(db, N, lambda k: T0 + timedelta(seconds=k))
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE timers SET status = 'fired' WHERE id % 3 = 0"))
        conn.execute(text("UPDATE timers SET status = 'claimed', lease_until = due_at WHERE id % 100 = 1"))
        conn.execute(text("INSERT INTO tasks (instance_id, workflow, state, name, role, title, status, flags, "
                          "created_at) SELECT id, workflow, state, 'decide', 'ecosystem_manager', 'Decide', "
                          "CASE WHEN id % 2 = 0 THEN 'done' ELSE 'open' END, '[]', created_at FROM instances"))
        conn.execute(text("ANALYZE"))
    return db


def plan(db, stmt, params: dict | None = None) -> str:
    """The plan of a Core statement (or SQL text) as one lowercase string."""
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")  # small tables: ask which index the plan can use
        if isinstance(stmt, str):
            sql, args = stmt, params or {}
        elif isinstance(stmt, Fast):
            sql, args = stmt.render(conn.dialect, params or {})
        else:
            compiled = stmt.compile(dialect=conn.dialect)
            state = compiled.construct_expanded_state(params or {})
            processors = state.processors
            values = {k: (processors[k](v) if k in processors and v is not None else v)
                      for k, v in state.parameters.items()}
            sql = state.statement
            args = tuple(values[k] for k in state.positiontup) if compiled.positional else values
        if db.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, args).all()
            out = " | ".join(str(r[-1]) for r in rows)
        else:
            rows = conn.exec_driver_sql("EXPLAIN " + sql, args).all()
            out = " | ".join(r[0] for r in rows)
        conn.rollback()
    return out.lower()


def no_scan(db, text_: str) -> None:
    if db.is_sqlite:
        assert "scan timers" not in text_ and "scan tasks" not in text_ and "scan history" not in text_, text_
    else:
        assert "seq scan" not in text_, text_


def test_claim_reads_pending_timers_in_due_order_from_the_partial_index(loaded):
    rt = Runtime(loaded, ManualClock(T0), None)
    text_ = plan(loaded, rt_module._CLAIM, rt._claim_params(500, T0 + timedelta(seconds=N // 2)))
    no_scan(loaded, text_)
    if loaded.is_sqlite:  # the rowid is part of every SQLite index, so either timer index gives (due_at, id) order
        assert "ix_timers_pending_due" in text_ or "ix_timers_status_due" in text_, text_
        assert "use temp b-tree for order by" not in text_, text_
    else:
        assert "ix_timers_pending_due" in text_, text_
        assert "sort" not in text_.replace("sort key", ""), text_


def test_expired_leases_are_found_through_the_claimed_index(loaded):
    text_ = plan(loaded, "UPDATE timers SET status = 'pending', claimed_by = NULL, lease_until = NULL "
                         "WHERE status = 'claimed' AND lease_until < " + ("?" if loaded.is_sqlite else "%(t)s"),
                 ("2026-03-02 02:00:00",) if loaded.is_sqlite else {"t": "2026-03-02 02:00:00"})
    assert "ix_timers_claimed_lease" in text_, text_
    no_scan(loaded, text_)


@pytest.mark.parametrize("name, params, index", [
    ("_LOAD", {"iid": 7}, "pk_instances|primary key"),
    ("_CANCEL_OTHER_TIMERS", {"iid": 7, "tid": 7}, "uq_timers_instance_id|sqlite_autoindex_timers"),
    ("_CANCEL_TIMERS", {"iid": 7}, "uq_timers_instance_id|sqlite_autoindex_timers"),
    ("_CLOSE_TASKS", {"iid": 7, "now": T0, "by": "system"}, "ix_tasks_instance_status"),
    ("_VIEW_HISTORY", {"iid": 7}, "uq_history_instance_id_version|sqlite_autoindex_history"),
    ("_VIEW_TIMERS", {"iid": 7}, "uq_timers_instance_id|sqlite_autoindex_timers"),
    ("_VIEW_TASKS", {"iid": 7}, "ix_tasks_instance_status"),
    ("_TIMER_FIRED", {"tid": 7, "worker": "w", "now": T0}, "pk_timers|primary key"),
])
def test_per_case_statements_use_an_index_on_the_case(loaded, name, params, index):
    text_ = plan(loaded, getattr(rt_module, name), params)
    assert any(i in text_ for i in index.split("|")), text_
    no_scan(loaded, text_)


def test_a_lookup_by_business_key_uses_the_partial_index(loaded):
    from sqlalchemy import select

    from engine.models import Instance

    I = Instance.__table__
    text_ = plan(loaded, select(I.c.id).where(I.c.workflow == "bench_approval", I.c.business_key == "k-7"))
    assert "ix_instances_business_key" in text_, text_
    no_scan(loaded, text_)
    assert "business_key is not null" in index_sql(loaded, "ix_instances_business_key")  # keyless cases skip it


def index_sql(db, name: str) -> str:
    with db.engine.connect() as conn:
        if db.is_sqlite:
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?", (name,))
        else:
            sql = conn.exec_driver_sql("SELECT indexdef FROM pg_indexes WHERE indexname = %(n)s", {"n": name})
        return sql.scalar_one().lower()


def test_only_timer_firings_are_in_the_unique_timer_index(loaded):
    sql = index_sql(loaded, "uq_history_timer_id")
    assert "unique" in sql and "timer_id is not null" in sql, sql
