"""Persisted transitions per second through `Runtime.fire`, and the same work done the usual way with `transitions`.

Ours: cases of ``bench_flip`` are moved left/right by a person, one
`Runtime.fire` call (one transaction, one commit) per transition: load and lock
the case, check event, role and guards, move it through the lifecycle's shared
state machine, update the case, append a history row, cancel the deadline of
the state left, arm the deadline of the state entered (``view=False``: the case
view is not read back, as the peer reads nothing back either; the API's
read-back costs about as much again).

The peer: a `transitions.Machine` attached to each object loaded through the
SQLAlchemy ORM (the pattern the library's users write), the state column saved
by the session, a history row added, the pending deadline row cancelled and a
new one added, one commit per transition, on the same database engine with the
same SQLite settings.
"""
from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import ForeignKey, String, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .common import T0, Metric, fresh_database, migrated

CASES = 400


def _actor():
    from engine.actors import Actor

    return Actor(login="bench-manager", roles=frozenset({"ecosystem_manager"}), name="Bench Manager")


def _runtime(url: str):
    from engine.clock import ManualClock
    from engine.db import Database
    from engine.runtime import Runtime

    from .lifecycle import registry

    return Runtime(Database(url), ManualClock(T0), registry())


def _seed(url: str, cases: int) -> list[int]:
    rt = _runtime(url)
    actor = _actor()
    ids = [rt.start("bench_flip", {"n": k}, actor)["id"] for k in range(cases)]
    rt.db.dispose()
    return ids


def _fire_many(url: str, ids: list[int], count: int) -> int:
    """Fire `count` transitions round-robin over `ids`; returns the count done."""
    rt = _runtime(url)
    actor = _actor()
    with rt.db.read() as conn:
        from engine.models import Instance

        I = Instance.__table__
        states = dict(conn.execute(select(I.c.id, I.c.state).where(I.c.id.in_(ids))).all())
    done = 0
    for k in range(count):
        iid = ids[k % len(ids)]
        event = "flip" if states[iid] == "left" else "flop"
        states[iid] = rt.fire(iid, event, actor, view=False)["state"]
        done += 1
    rt.db.dispose()
    return done


def _history_rows(url: str) -> int:
    from engine.db import Database
    from engine.models import History

    db = Database(url)
    with db.read() as conn:
        n = conn.execute(select(func.count()).select_from(History.__table__)).scalar_one()
    db.dispose()
    return n


def _proc(url, ids, count, runs, go, queue):
    """One process: a warm-up, then `runs` timed rounds, each started at the same line as the other processes."""
    _fire_many(url, ids, max(20, count // 10))
    for _ in range(runs):
        go.wait(600)
        start = time.time()
        _fire_many(url, ids, count)
        queue.put((start, time.time()))
        go.wait(600)  # the parent counts the history between rounds


def ours(kind: str, per_run: int, runs: int, processes: int) -> Metric:
    with fresh_database(kind, "transitions") as url:
        migrated(url).dispose()
        ids = _seed(url, CASES)
        rates = []
        if processes == 1:
            _fire_many(url, ids, max(50, per_run // 10))  # warm-up
            for _ in range(runs):
                before = _history_rows(url)
                t = time.perf_counter()
                _fire_many(url, ids, per_run)
                seconds = time.perf_counter() - t
                rates.append((_history_rows(url) - before) / seconds)  # completed work, from the database
        else:
            ctx = mp.get_context("spawn")
            go, queue = ctx.Barrier(processes + 1), ctx.Queue()
            share = [ids[i::processes] for i in range(processes)]
            procs = [ctx.Process(target=_proc, args=(url, share[i], per_run // processes, runs, go, queue))
                     for i in range(processes)]
            for p in procs:
                p.start()
            for _ in range(runs):
                go.wait(600)  # everyone warmed up (first round) or counted (later rounds)
                before = _history_rows(url)
                spans = [queue.get(timeout=1800) for _ in procs]
                done = _history_rows(url) - before
                go.wait(600)
                seconds = max(s[1] for s in spans) - min(s[0] for s in spans)
                rates.append(done / seconds)
            for p in procs:
                p.join(60)
    name = f"transitions_per_s_{kind}"
    target = 3000 if kind == "sqlite" else 2000
    note = (f"{per_run:,} fires over {CASES} cases, {processes} process{'es' if processes > 1 else ''}, "
            f"median of {runs}")
    return Metric(name, statistics.median(rates), "transitions/s", target, ">=", note, rates)


# ------------------------------------------------------------------ the peer
class NaiveBase(DeclarativeBase):
    pass


class Doc(NaiveBase):
    __tablename__ = "naive_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    version: Mapped[int]
    updated_at: Mapped[datetime]


class DocHistory(NaiveBase):
    __tablename__ = "naive_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("naive_docs.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class DocDeadline(NaiveBase):
    __tablename__ = "naive_deadlines"
    id: Mapped[int] = mapped_column(primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("naive_docs.id"), index=True)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))


NAIVE_TRANSITIONS = [
    {"trigger": "flip", "source": "left", "dest": "right"},
    {"trigger": "flop", "source": "right", "dest": "left"},
    {"trigger": "expire", "source": ["left", "right"], "dest": "expired"},
]


def naive(per_run: int, runs: int) -> Metric:
    from transitions import Machine

    from engine.db import Database

    with fresh_database("sqlite", "naive") as url:
        db = Database(url)  # same engine settings: WAL, synchronous=NORMAL, BEGIN IMMEDIATE
        NaiveBase.metadata.create_all(db.engine)
        now = datetime.now(UTC)
        with Session(db.engine) as s:
            s.add_all([Doc(id=i + 1, state="left", version=1, updated_at=now) for i in range(CASES)])
            s.add_all([DocDeadline(doc_id=i + 1, due_at=now + timedelta(days=3), status="pending")
                       for i in range(CASES)])
            s.commit()

        def one(k: int, s: Session) -> None:
            doc = s.get(Doc, k % CASES + 1)
            Machine(model=doc, states=["left", "right", "expired"], transitions=NAIVE_TRANSITIONS,
                    initial=doc.state, auto_transitions=False)
            before = doc.state
            doc.trigger("flip" if before == "left" else "flop")
            at = datetime.now(UTC)
            doc.version += 1
            doc.updated_at = at
            s.add(DocHistory(doc_id=doc.id, event="flip" if before == "left" else "flop", from_state=before,
                             to_state=doc.state, actor="bench-manager", at=at))
            s.execute(update(DocDeadline).where(DocDeadline.doc_id == doc.id, DocDeadline.status == "pending")
                      .values(status="cancelled"))
            s.add(DocDeadline(doc_id=doc.id, due_at=at + timedelta(days=3), status="pending"))
            s.commit()

        def batch(count: int) -> float:
            with Session(db.engine, expire_on_commit=True) as s:
                t = time.perf_counter()
                for k in range(count):
                    one(k, s)
                return time.perf_counter() - t

        def history() -> int:
            with Session(db.engine) as s:
                return s.scalar(select(func.count()).select_from(DocHistory))

        batch(max(50, per_run // 10))
        rates = []
        for _ in range(runs):
            before = history()
            seconds = batch(per_run)
            rates.append((history() - before) / seconds)
        db.dispose()
    return Metric("naive_transitions_per_s_sqlite", statistics.median(rates), "transitions/s", None, ">=",
                  f"transitions Machine per ORM object, {per_run:,} fires, median of {runs}", rates)
