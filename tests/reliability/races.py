"""Race drivers shared by `test_races.py` and `python -m benchmarks chaos`.

`decision_races`: in each round 2 to 10 threads, each with its own database
connection and runtime, fire approve or reject on one case at the same
moment. `timer_races`: in each round a partner rejects a settlement at the
very instant its auto-confirm timer is due while a worker sweeps at that
instant. Both return counts taken from the tables and the refusals.
"""
from __future__ import annotations

import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from engine.clock import ManualClock
from engine.db import Database
from engine.errors import EventNotAllowed
from engine.models import History, Outbox, Timer
from engine.runtime import Runtime

from .harness import ADMIN, OPERATORS, seed_people
from .lifecycles import MAIL, SETTLEMENT, registry

H, OB, T = History.__table__, Outbox.__table__, Timer.__table__
DECISIONS = ("approve", "reject", "confirm", "auto_confirm")
LAST_CHANGE = re.compile(r"last change: '(?P<event>[a-z_]+)' by (?P<login>[\w.-]+) at (?P<at>\S+?)\)")
BASE = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@dataclass
class RaceReport:
    rounds: int = 0
    threads: int = 0
    successes: int = 0
    conflicts: int = 0
    conflicts_naming_winner: int = 0
    double_decisions: int = 0
    other_errors: list = field(default_factory=list)
    outcomes: dict = field(default_factory=dict)
    wrong_emails: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _start_settlement(rt: Runtime, period_end: datetime) -> int:
    with rt.db.write() as conn:
        return rt.start_in(conn, SETTLEMENT, {"period_end": period_end.isoformat()}, rt.actor(ADMIN), rt.now())


def decision_races(url: str, rounds: int, *, seed: int = 0, max_threads: int = 10) -> RaceReport:
    """Rounds of 2..`max_threads` operators deciding one case at once; each thread has its own connection."""
    rng = random.Random(seed)
    clock = ManualClock(BASE)
    dbs = [Database(url, pool_size=1) for _ in range(max_threads)]
    rts = [Runtime(d, clock, registry()) for d in dbs]
    seed_people(dbs[0], BASE)
    actors = [rts[0].actor(login) for login in OPERATORS[:max_threads]]
    report = RaceReport()
    pool = ThreadPoolExecutor(max_threads)
    try:
        for _ in range(rounds):
            n = rng.randint(2, max_threads)
            case = _start_settlement(rts[0], BASE + timedelta(days=30))
            events = [rng.choice(("approve", "reject")) for _ in range(n)]
            gate = threading.Barrier(n)

            def attempt(k: int):
                gate.wait(10)
                try:
                    rts[k].fire(case, events[k], actors[k], comment=f"decision {k}")
                    return ("ok", k, None)
                except EventNotAllowed as exc:
                    return ("conflict", k, exc.message)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    return ("error", k, f"{type(exc).__name__}: {exc}")

            results = list(pool.map(attempt, range(n)))
            report.rounds += 1
            report.threads += n
            winners = [k for status, k, _ in results if status == "ok"]
            report.successes += len(winners)
            with dbs[0].read() as conn:
                decided = conn.execute(select(H.c.event, H.c.actor, H.c.at).where(
                    H.c.instance_id == case, H.c.event.in_(DECISIONS))).all()
            if len(winners) != 1 or len(decided) != 1:
                report.double_decisions += max(len(winners), len(decided)) - 1 if winners or decided else 1
            for status, k, message in results:
                if status == "error":
                    report.other_errors.append(message)
                elif status == "conflict":
                    report.conflicts += 1
                    m = LAST_CHANGE.search(message or "")
                    if (m and len(decided) == 1 and m["event"] == decided[0].event
                            and m["login"] == decided[0].actor
                            and datetime.fromisoformat(m["at"]) == decided[0].at.replace(microsecond=0)):
                        report.conflicts_naming_winner += 1
    finally:
        pool.shutdown()
        for d in dbs:
            d.dispose()
    return report


def timer_races(url: str, rounds: int, *, seed: int = 0) -> RaceReport:
    """Rounds of a partner rejecting a settlement at the instant its auto-confirm timer is due, while a worker sweeps."""
    rng = random.Random(seed)
    person_db, worker_db = Database(url, pool_size=1), Database(url, pool_size=1)
    seed_people(person_db, BASE)
    reg = registry()
    setup = Runtime(person_db, ManualClock(BASE), reg)
    dues = [BASE + timedelta(days=1, minutes=k) for k in range(rounds)]
    ids = []
    with person_db.write() as conn:  # one case per round; round k's timer is the only one due at its instant
        actor = setup.actor(ADMIN)
        for due in dues:
            ids.append(setup.start_in(conn, SETTLEMENT, {"period_end": due.isoformat()}, actor, BASE))
    report = RaceReport()
    pool = ThreadPoolExecutor(2)
    partner = setup.actor(ADMIN)
    try:
        for case, due in zip(ids, dues):
            clock = ManualClock(due)
            person = Runtime(person_db, clock, reg)
            worker = Runtime(worker_db, clock, reg, worker_id=f"race-worker-{case}")
            gate = threading.Barrier(2)
            # either side may get a head start of up to 20 ms, so both orders occur on both databases
            # (a sweep needs two transactions before it fires; a person's reject needs one)
            lag = rng.random() * 0.04

            def reject():
                gate.wait(10)
                if lag > 0.02:
                    time.sleep(lag - 0.02)
                try:
                    person.fire(case, "reject", partner, comment="the figures are wrong")
                    return "ok"
                except EventNotAllowed as exc:
                    return exc.message
                except Exception as exc:  # noqa: BLE001
                    return f"error {type(exc).__name__}: {exc}"

            def sweep():
                gate.wait(10)
                if lag < 0.02:
                    time.sleep(lag)
                return worker.sweep(now=due)

            f_reject, f_sweep = pool.submit(reject), pool.submit(sweep)
            said, swept = f_reject.result(), f_sweep.result()
            report.rounds += 1
            report.threads += 2
            with person_db.read() as conn:
                decided = conn.execute(select(H.c.event).where(H.c.instance_id == case,
                                                               H.c.event.in_(DECISIONS))).scalars().all()
                mails = set(conn.execute(select(OB.c.template).where(OB.c.instance_id == case)).scalars())
                timer = conn.execute(select(T.c.status).where(T.c.instance_id == case)).scalar_one()
            if isinstance(said, str) and said.startswith("error"):
                report.other_errors.append(said)
            if len(decided) != 1:
                report.double_decisions += 1
                continue
            outcome = decided[0]
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
            report.successes += (said == "ok") + swept.fired
            if said != "ok":
                report.conflicts += 1
                if "last change: 'auto_confirm' by system" in said:
                    report.conflicts_naming_winner += 1
            expected_state = {"reject": ("rejected", "cancelled"), "auto_confirm": ("auto_confirmed", "fired")}
            wanted_mail = {MAIL[outcome]}
            if mails != wanted_mail or timer != expected_state[outcome][1]:
                report.wrong_emails += 1
    finally:
        pool.shutdown()
        person_db.dispose()
        worker_db.dispose()
    return report
