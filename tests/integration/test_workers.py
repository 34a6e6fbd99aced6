"""Several workers share the timer table: disjoint claims, every timer fired exactly once.

On PostgreSQL the workers are separate processes claiming with SKIP LOCKED;
on SQLite they are separate processes queueing for the write lock.
"""
from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from engine.clock import ManualClock
from engine.db import Database
from engine.models import History, Instance, Timer
from engine.runtime import Runtime

from . import chain

N = 600


def _worker(url: str, now_iso: str, queue, go) -> None:
    db = Database(url)
    rt = Runtime(db, ManualClock(datetime.fromisoformat(now_iso)), chain.registry(), lease=timedelta(minutes=5))
    with db.read():
        pass  # connect before the start line
    go.wait(60)
    fired, claims = 0, []
    while True:
        result = rt.sweep(limit=20)
        if result.claimed == 0:
            break
        fired += result.fired
        claims.append(result.claimed)
    db.dispose()
    queue.put((rt.worker_id, fired, claims))


def test_two_workers_fire_every_timer_exactly_once(db, people):
    now = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    I, T = Instance.__table__, Timer.__table__
    with db.write() as conn:
        pid = conn.execute(select(func.min(Instance.__table__.c.id))).scalar()  # noqa: F841 - none yet
        ids = conn.execute(insert(I).returning(I.c.id), [
            {"workflow": "chain", "state": "waiting", "version": 1, "data": {"deadline": "2026-03-10"},
             "created_by": "test", "created_at": now, "updated_at": now, "state_entered_at": now, "is_final": False}
            for _ in range(N)]).scalars().all()
        conn.execute(insert(T), [
            {"instance_id": i, "name": "step", "event": "step", "state": "waiting", "armed_version": 1,
             "due_at": now - timedelta(seconds=k % 60), "status": "pending", "attempts": 0, "created_at": now}
            for k, i in enumerate(ids)])
    ctx = mp.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_worker, args=(db.url, now.isoformat(), queue, go)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sum(r[1] for r in results) == N
    if db.is_postgres:  # SKIP LOCKED lets both work at once; SQLite's single writer may let one take all
        assert all(r[1] > 0 for r in results), results
    with db.read() as conn:
        fired = conn.execute(select(func.count()).select_from(History.__table__)
                             .where(History.__table__.c.timer_id.is_not(None))).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(History.__table__.c.timer_id)))).scalar_one()
        statuses = dict(conn.execute(select(T.c.status, func.count()).group_by(T.c.status)).all())
    assert fired == distinct == N
    # each fired case armed its next timer ('one' -> 'two' after 2 working days): pending, not yet due
    assert statuses == {"fired": N, "pending": N}
