"""Crash safety of durable timers: worker processes killed with SIGKILL again and again.

PostgreSQL run: three worker processes share 500 deadline cases whose timers
fall due within a minute; at least 20 kills, from outside at random moments
and from inside right after a claim, in the middle of a firing transaction
and while it commits. SQLite run: the same with one worker. Afterwards every
timer fired exactly once (one history row each, unique timer id), no case
expired twice, every case queued the same emails, and the claims of dead
workers came back within the lease plus one sweep.
"""
from __future__ import annotations

from .harness import run_crash

LEASE = 2.0
INTERVAL = 0.1
#: Slack for one sweep on a loaded two-core machine (claim, fire a batch, commit).
ONE_SWEEP = 3.0


def test_sigkill_workers_every_timer_fires_exactly_once(db):
    workers = 3 if db.is_postgres else 1
    report = run_crash(db.url, workers=workers, cases=500, min_kills=20, lease=LEASE, interval=INTERVAL,
                       seed=8)
    assert report.kills >= 20, report
    assert report.timers == report.cases >= 500
    assert report.fired_once == report.timers, report
    assert report.fired_twice == 0 and report.lost == 0, report
    assert len(report.outbox_per_case) == 1 and report.outbox_per_case[0] >= 1, report
    assert report.claims_of_dead_workers > 0, "no kill caught a worker holding a claim: the test proved nothing"
    assert report.max_recovery_after_lease_s <= INTERVAL + ONE_SWEEP, report
