"""Timer lateness with the wall clock: many pending deadlines, a steady stream falling due, p99 of (fired - due).

`pending` cases wait on deadlines weeks away (they must cost nothing while
they wait); `rate` deadlines fall due every second for `seconds` seconds.
A worker process beats every `interval` seconds on the system clock, like
`partnerflow worker --interval`, and sweeps what is due. A timer's lateness
is the instant the sweep that fired it had committed minus its due time.
"""
from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from .common import Metric, fired_count, fresh_database, migrated, seed_waiting


def _beat(url: str, interval: float, ready, go, queue) -> None:
    from engine.clock import SystemClock
    from engine.db import Database
    from engine.runtime import Runtime

    from .lifecycle import registry

    rt = Runtime(Database(url), SystemClock(), registry())
    rt.sweep(limit=1)  # connected and warm before the start line
    ready.set()
    until = queue.get()
    go.wait()
    commits = {}
    while time.time() < until:
        beat_at = time.time()
        while True:
            now = datetime.now(UTC)
            result = rt.sweep(limit=1000, now=now)
            if result.fired:
                commits[now.replace(tzinfo=None).isoformat()] = time.time()
            if result.claimed == 0:
                break
        time.sleep(max(0.0, interval - (time.time() - beat_at)))
    rt.db.dispose()
    queue.put(commits)


def run(kind: str, pending: int, rate: int, seconds: int, interval: float = 0.1) -> Metric:
    from engine.models import Timer

    TM = Timer.__table__
    with fresh_database(kind, "lateness") as url:
        db = migrated(url)
        far = datetime.now(UTC) + timedelta(days=30)
        seed_waiting(db, pending, lambda k: far + timedelta(seconds=k % 86400))
        ctx = mp.get_context("spawn")
        queue, ready, go = ctx.Queue(), ctx.Event(), ctx.Event()
        proc = ctx.Process(target=_beat, args=(url, interval, ready, go, queue))
        proc.start()
        ready.wait(300)
        start = datetime.now(UTC) + timedelta(seconds=2)
        due_n = rate * seconds
        seed_waiting(db, due_n, lambda k: start + timedelta(seconds=k / rate), chunk=due_n)
        queue.put(start.timestamp() + seconds + 2)
        time.sleep(0.5)  # the worker has read its end time
        go.set()
        commits = queue.get(timeout=seconds + 600)
        proc.join(30)
        with db.read() as conn:
            rows = conn.execute(select(TM.c.due_at, TM.c.fired_at).where(TM.c.status == "fired")).all()
        fired = fired_count(db)
        db.dispose()
    if fired != due_n:
        raise RuntimeError(f"lateness: {fired} of {due_n} due timers fired")
    late = []
    for due_at, fired_at in rows:
        committed = commits[fired_at.replace(tzinfo=None).isoformat()]
        late.append((committed - due_at.timestamp()) * 1000)
    late.sort()
    p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
    note = (f"{pending:,} pending, {rate}/s due for {seconds} s, beat every {interval} s on the system clock; "
            f"p50 {statistics.median(late):.0f} ms, max {late[-1]:.0f} ms")
    return Metric("timer_lateness_p99_ms", p99, "ms", 250, "<=", note, [])
