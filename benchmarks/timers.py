"""Due timers drained and fired through the runtime's sweep, by worker processes.

Each case waits in ``bench_approval``'s ``pending`` state with one timer due;
firing it moves the case to ``expired`` through the worker's own path
(`Runtime.drain`): a claim with a lease, the cases row-locked (PostgreSQL),
the claim checked, the event, the system's role and the state machine's
answer (decided once per batch for an event that leads the same way from a
state), then the case update, a history row with the timer id, the timers and
tasks of the state left cancelled and the timer marked fired, each written by
one statement for the whole batch. Completed work is counted from the history
(rows carrying a timer id), never from the workers' own tallies.
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from datetime import timedelta

from .common import T0, Metric, Stopwatch, fired_count, fresh_database, migrated, seed_waiting

#: The first sweep's batch; `Runtime.drain` grows it while sweeps stay short (as `partnerflow worker` does).
BATCH = 200


def _drain_worker(commands, results, batch: int) -> None:
    """A long-lived worker process: for each (url, now, start_at) command, drain what is due, as the worker's
    heartbeat does (`Runtime.drain`)."""
    from datetime import datetime

    from engine.clock import ManualClock
    from engine.db import Database
    from engine.runtime import Runtime

    from .lifecycle import registry

    reg = registry()
    while True:
        command = commands.get()
        if command is None:
            return
        url, now_iso, start_at = command
        db = Database(url)
        rt = Runtime(db, ManualClock(datetime.fromisoformat(now_iso)), reg, lease=timedelta(minutes=10))
        with db.read():
            pass  # connected before the start line
        time.sleep(max(0.0, start_at - time.time()))
        start = time.time()
        fired = rt.drain(batch=batch).fired
        end = time.time()
        db.dispose()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.put({"fired": fired, "start": start, "end": end, "peak_rss_mb": peak_mb})


class Workers:
    """Worker processes started once (imports are not part of any measurement) and reused for every drain."""

    def __init__(self, count: int, batch: int = BATCH):
        ctx = mp.get_context("spawn")
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(count)]
        self.procs = [ctx.Process(target=_drain_worker, args=(q, self.results, batch)) for q in self.commands]
        for p in self.procs:
            p.start()

    def drain(self, url: str) -> dict:
        now = T0 + timedelta(minutes=1)
        start_at = time.time() + 1.0
        for q in self.commands:
            q.put((url, now.isoformat(), start_at))
        results = [self.results.get(timeout=3600) for _ in self.commands]
        return {
            "seconds": max(r["end"] for r in results) - min(r["start"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "per_worker": [r["fired"] for r in results],
        }

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for p in self.procs:
            p.join(60)


_POOLS: dict[int, Workers] = {}


def drain(url: str, workers: int) -> dict:
    """Drain with `workers` processes (started on first use, then reused)."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = Workers(workers)
    return pool.drain(url)


def close_pools() -> None:
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()


def drain_more(db, n: int, workers: int) -> dict:
    """Add `n` due timers to `db` (the earlier, fired ones stay), drain them, verify from the history."""
    before = fired_count(db)
    # month start: every deadline falls due within the same minute
    seed_waiting(db, n, lambda k: T0 - timedelta(seconds=k % 60))
    out = drain(db.url, workers)
    done = fired_count(db) - before
    if done != n:
        raise RuntimeError(f"{db.dialect}: {done} of {n} timers fired")
    out["fired"] = done
    out["rate"] = done / out["seconds"]
    return out


def one_drain(kind: str, n: int, workers: int) -> dict:
    """Seed `n` due timers in a fresh database and drain them."""
    with fresh_database(kind, "timers") as url:
        db = migrated(url)
        try:
            return drain_more(db, n, workers)
        finally:
            db.dispose()


def run(kind: str, n: int, runs: int, workers: int, warmup_n: int, big_n: int | None = None):
    """Median drain rate over `runs` rounds in one database (after a warm-up round); optionally a big last round."""
    with fresh_database(kind, "timers") as url:
        db = migrated(url)
        try:
            drain_more(db, warmup_n, workers)
            outs = [drain_more(db, n, workers) for _ in range(runs)]
            big = drain_more(db, big_n, workers) if big_n else None
        finally:
            db.dispose()
    rates = [o["rate"] for o in outs]
    name = f"timers_fired_per_s_{kind}"
    target = 5000 if kind == "sqlite" else 3000
    note = f"{n:,} due timers, {workers} worker process{'es' if workers > 1 else ''}, median of {runs}"
    return Metric(name, statistics.median(rates), "timers/s", target, ">=", note, rates), outs, big


if __name__ == "__main__":  # a quick look while developing
    import sys

    kind = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    w = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    with Stopwatch() as sw:
        print(one_drain(kind, n, w))
    close_pools()
    print(f"{sw.seconds:.1f}s")
