"""Shared machinery of the reliability tests and of `python -m benchmarks chaos`.

`run_crash` starts worker processes (`tests.reliability.worker`) against a
real database holding deadline cases, kills them with SIGKILL again and again
(from outside, and from inside at chosen points of a sweep), restarts them,
and afterwards counts from the tables what fired once, twice or never, and
how long the claims of dead workers took to come back.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from engine.clock import ManualClock
from engine.db import Database
from engine.directory import add_partner, add_user
from engine.models import History, Instance, Outbox, Partner, Timer
from engine.runtime import Runtime

from .lifecycles import DEADLINE, registry

ROOT = Path(__file__).resolve().parents[2]
PARTNER = "RELY"
ADMIN = "rely-admin"
OPERATORS = ("rely-op1", "rely-op2", "rely-op3", "rely-op4", "rely-op5",
             "rely-op6", "rely-op7", "rely-op8", "rely-op9", "rely-op10")
H, T, I, OB = History.__table__, Timer.__table__, Instance.__table__, Outbox.__table__


def seed_people(db: Database, now: datetime) -> None:
    """Partner RELY (Beijing time) with its admin, and ten ecosystem managers (idempotent)."""
    with db.write() as conn:
        if conn.execute(select(Partner.__table__.c.id).where(Partner.__table__.c.code == PARTNER)).first():
            return
        add_partner(conn, {"code": PARTNER, "name": "Reliable Cloud", "admin_login": ADMIN,
                           "contact_email": "contact@rely.example"}, now)
        add_user(conn, {"login": ADMIN, "name": "Rely Admin", "email": "admin@rely.example",
                        "roles": ["partner_admin"], "partner": PARTNER, "personal_info_complete": True}, now)
        for login in OPERATORS:
            add_user(conn, {"login": login, "name": login.title(), "email": f"{login}@vendor.example",
                            "roles": ["ecosystem_manager"]}, now)


def seed_deadlines(db: Database, n: int, now: datetime, spread: timedelta) -> list[int]:
    """Start `n` deadline cases whose timers fall due evenly over `spread` after `now`, in one transaction."""
    seed_people(db, now)
    rt = Runtime(db, ManualClock(now), registry())
    actor = rt.actor(ADMIN)
    ids = []
    with db.write() as conn:
        for k in range(n):
            due = now + spread * (k / max(n - 1, 1))
            ids.append(rt.start_in(conn, DEADLINE, {"due": due.isoformat()}, actor, now))
    return ids


@dataclass
class CrashReport:
    workers: int
    cases: int
    kills: int = 0
    kills_external: int = 0
    kills_at_hooks: int = 0
    timers: int = 0
    fired_once: int = 0
    fired_twice: int = 0
    lost: int = 0
    claims_of_dead_workers: int = 0
    max_recovery_after_lease_s: float = 0.0
    outbox_per_case: list = field(default_factory=list)
    seconds: float = 0.0
    worker_errors: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class _Workers:
    """Worker processes forked from a fork server that has the engine imported (a restart takes milliseconds)."""

    def __init__(self, url: str, n: int, opts: list[str], logdir: Path, rng: random.Random, target: str = "main"):
        self.url, self.opts, self.logdir, self.rng, self.target = url, opts, logdir, rng, target
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(["tests.reliability.worker", "notifications.dispatcher"])
        self.generation = 0
        self.procs: dict[str, mp.process.BaseProcess] = {}
        self.born: dict[str, float] = {}
        for _ in range(n):
            self.spawn()

    def spawn(self) -> str:
        from . import worker

        self.generation += 1
        wid = f"rel-worker-{self.generation}"
        argv = [self.url, wid, *self.opts, "--seed", str(self.rng.randrange(1 << 30)),
                "--log", str(self.logdir / f"{wid}.log"), "--parent", str(os.getpid())]
        proc = self.ctx.Process(target=getattr(worker, self.target), args=(argv,), name=wid, daemon=True)
        proc.start()
        self.procs[wid] = proc
        self.born[wid] = time.monotonic()
        return wid

    def working(self, wid: str) -> bool:
        """Has the worker done some work (claimed something) since it started?"""
        path = self.logdir / f"{wid}.log"
        return path.exists() and '"claimed"' in path.read_text()

    def log(self, wid: str) -> str:
        path = self.logdir / f"{wid}.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def stop(self) -> None:
        for p in self.procs.values():
            if p.exitcode is None:
                p.terminate()
        for p in self.procs.values():
            p.join(10)
            if p.exitcode is None:
                p.kill()
                p.join()


def _retrying(fn):
    """`fn()`, again while the database is unreachable (an outage test restarts PostgreSQL, cutting every connection)."""
    for _ in range(300):
        try:
            return fn()
        except DBAPIError:
            time.sleep(0.1)
    raise AssertionError("the database stayed unreachable for 30 s")


def _claims_of(db: Database, wid: str) -> list[tuple[int, datetime]]:
    def read():
        with db.read() as conn:
            return [(r.id, r.lease_until) for r in conn.execute(
                select(T.c.id, T.c.lease_until).where(T.c.claimed_by == wid, T.c.status == "claimed"))]
    return _retrying(read)


def _pending(db: Database) -> tuple[int, int]:
    """(pending, claimed) timers; while the database is unreachable, waits for it."""
    def read():
        with db.read() as conn:
            rows = dict(conn.execute(select(T.c.status, func.count()).group_by(T.c.status)).all())
        return rows.get("pending", 0), rows.get("claimed", 0)
    return _retrying(read)


def run_crash(url: str, *, workers: int, cases: int, min_kills: int, lease: float = 2.0, interval: float = 0.1,
              limit: int = 10, pause_ms: float = 5.0, kill_every: float = 0.3,
              die: str = "after_claim=0.03,mid_fire=0.01,in_commit=0.03", timeout: float = 120.0,
              seed: int = 0, top_up: int = 40, on_tick=None) -> CrashReport:
    """Kill workers at random while they fire `cases` timers; return what the tables say afterwards.

    `on_tick(elapsed)` is called about every 20 ms while the workers run (the
    outage test restarts PostgreSQL from it).
    """
    rng = random.Random(seed)
    db = Database(url)
    report = CrashReport(workers=workers, cases=cases)
    offset = 120.0  # every timer seeded below (due within the next minute) is due for the workers at once
    start = datetime.now(UTC)
    seed_deadlines(db, cases, start, timedelta(seconds=60))
    total_cases = cases
    opts = ["--lease", str(lease), "--interval", str(interval), "--limit", str(limit), "--offset", str(offset),
            "--pause-ms", str(pause_ms), "--die", die]
    logdir = Path(tempfile.mkdtemp(prefix="pf-rel-"))
    last_claims: dict[int, datetime] = {}
    began = time.monotonic()
    pool = _Workers(url, workers, opts, logdir, rng)
    last_kill = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now - began > timeout:
                pending, claimed = _pending(db)
                raise AssertionError(f"timers still open after {timeout:.0f} s: {pending} pending, {claimed} claimed; "
                                     f"{report.kills} kills; worker logs in {logdir}")
            if on_tick is not None:
                on_tick(now - began)
            for wid, p in list(pool.procs.items()):
                code = p.exitcode
                if code is None:
                    continue
                del pool.procs[wid]
                if code != -signal.SIGKILL:
                    report.worker_errors.append((wid, code, pool.log(wid)))
                    raise AssertionError(f"worker {wid} exited with {code}: {pool.log(wid)}")
                report.kills += 1
                report.kills_at_hooks += 1
                for tid, until in _claims_of(db, wid):
                    last_claims[tid] = until
                pool.spawn()
            pending, claimed = _pending(db)
            if pending == 0 and claimed == 0 and report.kills >= min_kills:
                break
            if pending + claimed < limit * workers and report.kills < min_kills:
                # the work runs out before the kills do: give the workers more timers to die over (checked on
                # every beat, not only after a kill: a worker born after the last claim is never killed)
                _retrying(lambda: seed_deadlines(db, top_up, datetime.now(UTC), timedelta(seconds=30)))
                total_cases += top_up
            grown = [w for w in sorted(pool.procs) if now - pool.born[w] >= kill_every and pool.working(w)]
            if report.kills < min_kills and now - last_kill >= kill_every and grown:
                wid = rng.choice(grown)
                p = pool.procs.pop(wid)
                with contextlib.suppress(ProcessLookupError):  # it may have just died by its own crash hook
                    os.kill(p.pid, signal.SIGKILL)
                p.join()
                last_kill = now
                report.kills += 1
                report.kills_external += 1
                for tid, until in _claims_of(db, wid):
                    last_claims[tid] = until
                pool.spawn()
            time.sleep(0.02)
    finally:
        pool.stop()
    report.seconds = round(time.monotonic() - began, 1)
    report.cases = total_cases

    def tables():
        with db.read() as conn:
            return (conn.execute(select(func.count()).select_from(T)).scalar_one(),
                    dict(conn.execute(select(T.c.status, func.count()).group_by(T.c.status)).all()),
                    dict(conn.execute(select(H.c.timer_id, func.count()).where(H.c.timer_id.is_not(None))
                                      .group_by(H.c.timer_id)).all()),
                    dict(conn.execute(select(H.c.instance_id, func.count()).where(H.c.event == "expire")
                                      .group_by(H.c.instance_id)).all()),
                    dict(conn.execute(select(T.c.id, T.c.fired_at)).all()),
                    conn.execute(select(OB.c.instance_id, func.count()).group_by(OB.c.instance_id)).all())

    report.timers, statuses, per_timer, expiries, fired_at, outbox = _retrying(tables)
    report.fired_once = sum(1 for c in per_timer.values() if c == 1)
    report.fired_twice = sum(1 for c in per_timer.values() if c > 1) + sum(1 for c in expiries.values() if c > 1)
    report.lost = report.timers - len(per_timer) + statuses.get("failed", 0)
    report.claims_of_dead_workers = len(last_claims)
    delays = [(fired_at[tid] - until).total_seconds() for tid, until in last_claims.items()
              if fired_at.get(tid) is not None and until is not None]
    report.max_recovery_after_lease_s = round(max(delays, default=0.0), 2)
    report.outbox_per_case = sorted({c for _, c in outbox})
    db.dispose()
    return report


# ---------------------------------------------------------------------------------------------- mail
@dataclass
class MailReport:
    workers: int
    #: every outbox row at the end: the first queue plus the top-ups
    emails: int = 0
    emails_queued_first: int = 0
    #: deadline cases (two emails each) added while the kills were not done and the outbox ran low
    topped_up_cases: int = 0
    kills: int = 0
    kills_after_accept: int = 0
    delivered: int = 0
    duplicated: int = 0
    duplicates_outside_window: int = 0
    foreign_message_ids: int = 0
    lost: int = 0
    parked: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def queue_emails(db: Database, cases: int) -> int:
    """Queue emails the normal way: `cases` deadline cases fire their timer (two partner recipients each)."""
    now = datetime.now(UTC).replace(microsecond=0)
    seed_deadlines(db, cases, now - timedelta(minutes=1), timedelta(seconds=30))
    Runtime(db, ManualClock(now), registry()).drain()
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(OB).where(OB.c.status == "queued")).scalar_one()


def _open_emails(db: Database) -> int:
    def read():
        with db.read() as conn:
            return conn.execute(select(func.count()).select_from(OB).where(
                OB.c.status.in_(("queued", "sending")))).scalar_one()
    return _retrying(read)


def run_mail_crash(url: str, smtp, *, workers: int, cases: int, min_kills: int, lease: float = 5.0, batch: int = 5,
                   kill_every: float = 0.3, die: str = "after_accept=0.01", timeout: float = 120.0,
                   seed: int = 0, top_up: int = 20) -> MailReport:
    """Kill dispatcher processes at random (and right after the server accepted a message) until all is sent.

    `smtp` is a running `tests.smtp.SmtpServer`; what it received is compared
    with the outbox afterwards. When the outbox runs low before `min_kills`
    kills, `top_up` more deadline cases queue their emails (a dispatcher
    with nothing to claim is never killed, so the kills would stop there).
    """
    from notifications.models import OutboxAttempt

    OA = OutboxAttempt.__table__
    rng = random.Random(seed)
    db = Database(url)
    report = MailReport(workers=workers)
    report.emails_queued_first = queue_emails(db, cases)
    logdir = Path(tempfile.mkdtemp(prefix="pf-rel-mail-"))
    opts = ["--smtp-port", str(smtp.port), "--lease", str(lease), "--batch", str(batch), "--die", die]
    pool = _Workers(url, workers, opts, logdir, rng, target="mail_main")
    began = last_kill = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now - began > timeout:
                def statuses():
                    with db.read() as conn:
                        return dict(conn.execute(select(OB.c.status, func.count()).group_by(OB.c.status)).all())
                raise AssertionError(f"outbox not drained after {timeout:.0f} s: {_retrying(statuses)}; "
                                     f"{report.kills} kills; logs in {logdir}")
            for wid, p in list(pool.procs.items()):
                if p.exitcode is None:
                    continue
                del pool.procs[wid]
                if p.exitcode != -signal.SIGKILL:
                    raise AssertionError(f"mail worker {wid} exited with {p.exitcode}: {pool.log(wid)}")
                report.kills += 1
                report.kills_after_accept += 1
                pool.spawn()
            grown = [w for w in sorted(pool.procs) if now - pool.born[w] >= kill_every and pool.working(w)]
            if report.kills < min_kills and now - last_kill >= kill_every and grown:
                wid = rng.choice(grown)
                p = pool.procs.pop(wid)
                with contextlib.suppress(ProcessLookupError):  # it may have just died by its own crash hook
                    os.kill(p.pid, signal.SIGKILL)
                p.join()
                last_kill = now
                report.kills += 1
                pool.spawn()
            open_rows = _open_emails(db)
            if open_rows == 0 and report.kills >= min_kills:
                break
            if open_rows < 2 * batch * workers and report.kills < min_kills:
                _retrying(lambda: queue_emails(db, top_up))
                report.topped_up_cases += top_up
            time.sleep(0.02)
    finally:
        pool.stop()
    report.seconds = round(time.monotonic() - began, 1)

    def tables():
        with db.read() as conn:
            return ({r.message_id: r for r in conn.execute(select(OB.c.id, OB.c.message_id, OB.c.recipient,
                                                                  OB.c.status))},
                    {r.outbox_id for r in conn.execute(select(OA.c.outbox_id).where(OA.c.outcome == "requeued"))},
                    conn.execute(select(func.count()).select_from(OB)).scalar_one())

    rows, requeued, report.emails = _retrying(tables)
    received: dict[str, int] = {}
    for item in list(smtp.received):
        mid = item.message_id
        row = rows.get(mid)
        if row is None or [a.lower() for a in item.rcpt_tos] != [row.recipient.lower()]:
            report.foreign_message_ids += 1
            continue
        received[mid] = received.get(mid, 0) + 1
    for mid, row in rows.items():
        count = received.get(mid, 0)
        if row.status == "failed":
            report.parked += 1
        if count == 0:
            report.lost += 1
            continue
        report.delivered += 1
        if count > 1:
            report.duplicated += 1
            if row.id not in requeued:  # a second copy must come from a claim that outlived its worker
                report.duplicates_outside_window += 1
    db.dispose()
    return report
