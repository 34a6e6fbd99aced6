"""Database outages and missing workers.

`test_database_outage_under_load`: worker processes sweep 150 due timers
when the database goes away for a moment - on PostgreSQL the server is
restarted (``pg_ctlcluster ... restart``: every connection is cut); on SQLite
another process holds the file's exclusive lock for three seconds. The
workers reconnect (``pool_pre_ping``) or wait, and carry on: every timer
fires exactly once, none is lost.

`test_no_worker_for_ten_minutes_then_two_start_at_once`: timers fall due
over ten simulated minutes while no worker runs; then two heartbeats start
at the same moment, each with its own connection. Every due timer fires
once; starting two more at once changes nothing.
"""
from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from engine.clock import SimulatedClock
from engine.db import Database
from engine.models import History, Timer
from engine.runtime import Runtime
from engine.scheduler import Heartbeat
from tests.conftest import START
from tests.helpers import counts

from .harness import run_crash, seed_deadlines
from .lifecycles import registry

H, T = History.__table__, Timer.__table__
CASES = 150


def _pending(db) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(T).where(T.c.status.in_(("pending", "claimed")))).scalar_one()


def _pg_restart() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                   capture_output=True, timeout=60)


def test_database_outage_under_load(db):
    outage: dict = {}

    def on_tick(elapsed: float) -> None:
        # the outage starts as soon as the workers fire (not after a fixed delay: with the fork server
        # already warm from an earlier test they can fire all the timers within a second)
        if "done" in outage or _pending(db) == CASES:
            return
        if db.is_postgres:
            outage["pending_before"] = _pending(db)
            with db.read() as conn:
                outage["started"] = conn.execute(text("SELECT pg_postmaster_start_time()")).scalar()
            _pg_restart()
        else:
            path = db.engine.url.database
            holder = sqlite3.connect(path, isolation_level=None, timeout=30)
            holder.execute("BEGIN EXCLUSIVE")
            outage["pending_before"] = _pending(db)  # counted under the lock: no commit can slip in between
            time.sleep(3.0)  # the outage itself: nobody can write meanwhile
            outage["pending_during"] = _pending(db)
            holder.execute("COMMIT")
            holder.close()
        outage["done"] = True

    report = run_crash(db.url, workers=3 if db.is_postgres else 1, cases=CASES, min_kills=0, die="", pause_ms=5,
                       on_tick=on_tick, seed=3)
    assert outage.get("done"), "the outage never happened"
    assert outage["pending_before"] > 0, "the workers had finished before the outage: it proved nothing"
    if db.is_postgres:
        with db.read() as conn:
            assert conn.execute(text("SELECT pg_postmaster_start_time()")).scalar() > outage["started"]
    else:
        assert outage["pending_during"] == outage["pending_before"]
    assert report.fired_once == report.timers == CASES, report
    assert report.lost == 0 and report.fired_twice == 0, report


def test_no_worker_for_ten_minutes_then_two_start_at_once(db):
    clock = SimulatedClock(db)
    clock.set(START)
    ids = seed_deadlines(db, 60, START + timedelta(seconds=5), timedelta(minutes=9, seconds=50))
    clock.set(START + timedelta(minutes=10))  # ten minutes pass and no worker runs
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(H).where(H.c.timer_id.is_not(None))).scalar_one() == 0

    def start_two() -> None:
        gate = threading.Barrier(2)
        dbs = [Database(db.url) for _ in range(2)]

        def run(d: Database) -> None:
            beat = Heartbeat(Runtime(d, SimulatedClock(d), registry()), interval=3600)
            gate.wait(10)
            beat.start()  # the first beat fires everything missed, at once
            beat.shutdown()

        threads = [threading.Thread(target=run, args=(d,)) for d in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for d in dbs:
            d.dispose()

    start_two()
    with db.read() as conn:
        per_timer = dict(conn.execute(select(H.c.timer_id, func.count()).where(H.c.timer_id.is_not(None))
                                      .group_by(H.c.timer_id)).all())
        statuses = dict(conn.execute(select(T.c.status, func.count()).group_by(T.c.status)).all())
        states = dict(conn.execute(text("SELECT state, count(*) FROM instances GROUP BY state")).all())
    assert len(per_timer) == 60 and set(per_timer.values()) == {1}
    assert statuses == {"fired": 60}
    assert states == {"expired": 60} and len(ids) == 60
    before = counts(db)
    start_two()
    assert counts(db) == before
