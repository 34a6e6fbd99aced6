"""The sweep fires plain timers of a claimed batch set-based, with the same outcome as one by one."""
from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from sqlalchemy import func, select, update

from benchmarks.lifecycle import registry as bench_registry
from engine.actors import Actor
from engine.clock import ManualClock
from engine.definition import Timer as TimerRule
from engine.definition import Transition, Workflow
from engine.models import History, Instance, Timer
from engine.registry import Registry
from engine.runtime import Runtime
from engine.schema import Field, Schema

from tests.conftest import START

H, I, TM = History.__table__, Instance.__table__, Timer.__table__
MANAGER = Actor(login="mgr", roles=frozenset({"ecosystem_manager"}))


def _cases(db, n):
    rt = Runtime(db, ManualClock(START), bench_registry())
    ids = []
    for k in range(n):
        iid = rt.start("bench_approval", {"title": f"case {k}"}, MANAGER)["id"]
        rt.fire(iid, "submit", MANAGER)
        ids.append(iid)
    return rt, ids


def test_sweep_expires_every_due_case_once_with_history_and_fired_timers(db):
    rt, ids = _cases(db, 25)
    rt.fire(ids[0], "approve", MANAGER)  # its deadline is cancelled: nothing to fire
    result = rt.sweep(limit=100, now=START + timedelta(days=3, seconds=1))
    assert (result.claimed, result.fired, result.failed) == (24, 24, 0)
    with db.read() as conn:
        states = dict(conn.execute(select(I.c.state, func.count()).group_by(I.c.state)).all())
        fired = conn.execute(select(H.c.instance_id, H.c.from_state, H.c.to_state, H.c.actor, H.c.version)
                             .where(H.c.timer_id.is_not(None))).all()
        timers = dict(conn.execute(select(TM.c.status, func.count()).group_by(TM.c.status)).all())
        versions = set(conn.execute(select(I.c.version).where(I.c.state == "expired")).scalars())
    assert states == {"expired": 24, "approved": 1}
    assert len(fired) == 24 and {(f.from_state, f.to_state, f.actor, f.version) for f in fired} == {
        ("pending", "expired", "system", 3)}
    assert versions == {3}
    assert timers == {"fired": 24, "cancelled": 1}
    assert rt.sweep(limit=100, now=START + timedelta(days=4)).claimed == 0


def test_sweep_before_the_deadline_fires_nothing(db):
    rt, ids = _cases(db, 3)
    result = rt.sweep(limit=100, now=START + timedelta(days=3) - timedelta(seconds=1))
    assert result.claimed == 0
    assert rt.get(ids[0])["state"] == "pending"


def test_timer_whose_case_moved_on_is_obsolete_not_fired(db):
    rt, ids = _cases(db, 4)
    with db.write() as conn:  # the case left its state by a path that did not cancel the timer
        conn.execute(update(I).where(I.c.id == ids[1]).values(state="approved", version=9))
    result = rt.sweep(limit=100, now=START + timedelta(days=3, seconds=1))
    assert (result.fired, result.obsolete) == (3, 1)
    assert rt.get(ids[1])["state"] == "approved"
    with db.read() as conn:
        assert conn.execute(select(TM.c.status).where(TM.c.instance_id == ids[1])).scalar_one() == "obsolete"


def test_second_timer_of_one_case_in_the_same_batch_is_cancelled_not_fired(db):
    rt, ids = _cases(db, 2)
    with db.write() as conn:  # a second deadline on the same visit of the state
        conn.execute(TM.insert().values(instance_id=ids[0], name="expire-again", event="expire", state="pending",
                                        armed_version=2, due_at=START + timedelta(days=1), status="pending",
                                        attempts=0, created_at=START))
    result = rt.sweep(limit=100, now=START + timedelta(days=3, seconds=1))
    assert result.claimed == 3 and result.fired == 2
    with db.read() as conn:
        per_case = conn.execute(select(func.count()).select_from(H).where(H.c.instance_id == ids[0],
                                                                          H.c.timer_id.is_not(None))).scalar_one()
        statuses = sorted(conn.execute(select(TM.c.status).where(TM.c.instance_id == ids[0])).scalars())
    assert per_case == 1
    assert statuses == ["cancelled", "fired"]


def test_plain_timers_are_fired_set_based_without_falling_back_to_one_by_one(db, caplog):
    rt, ids = _cases(db, 5)
    calls = []
    one_by_one = rt._fire_timer
    rt._fire_timer = lambda conn, t, now: calls.append(t.id) or one_by_one(conn, t, now)
    with caplog.at_level("INFO", logger="partnerflow.runtime"):
        result = rt.sweep(limit=100, now=START + timedelta(days=3, seconds=1))
    assert result.fired == 5
    assert calls == [], "plain timers went through the one-by-one path"
    assert not [r for r in caplog.records if "fell back" in r.getMessage()]


class Step(StrEnum):
    waiting = "waiting"
    reminded = "reminded"
    escalated = "escalated"
    expired = "expired"


STEPS = Workflow(
    name="batch_steps", title="Batch steps", states=Step, initial=Step.waiting,
    final=(Step.escalated, Step.expired), partner_required=False, start_roles={"ecosystem_manager"},
    start_schema=Schema(Field("urgent", "bool", required=False, default=False)),
    transitions=(
        Transition("remind", Step.waiting, Step.reminded, {"system"}),  # the same way for every case
        Transition("lapse", Step.reminded, Step.escalated, {"system"}, when=lambda ctx: ctx.data["urgent"]),
        Transition("lapse", Step.reminded, Step.expired, {"system"}),  # a branch: decided per case
        Transition("nudge", Step.reminded, None, {"system"}),  # internal: stays, keeps the other timers
    ),
    timers=(TimerRule(Step.waiting, "remind", after=timedelta(days=1)),
            TimerRule(Step.reminded, "lapse", after=timedelta(days=2)),
            TimerRule(Step.reminded, "nudge", after=timedelta(days=1))),
)


def _steps(db, n):
    reg = Registry()
    reg.add(STEPS)
    rt = Runtime(db, ManualClock(START), reg)
    ids = [rt.start("batch_steps", {"urgent": k % 2 == 0}, MANAGER, view=False)["id"] for k in range(n)]
    calls = []
    one_by_one = rt._fire_timer
    rt._fire_timer = lambda conn, t, now: calls.append(t.id) or one_by_one(conn, t, now)
    return rt, ids, calls


def test_an_event_that_leads_one_way_arms_the_next_states_timers_for_the_whole_batch(db):
    rt, ids, calls = _steps(db, 6)
    now = START + timedelta(days=1, seconds=1)
    assert rt.sweep(limit=100, now=now).fired == 6
    assert calls == []
    with db.read() as conn:
        cases = conn.execute(select(I.c.state, I.c.version, I.c.state_entered_at, I.c.is_final)
                             .where(I.c.id.in_(ids))).all()
        armed = conn.execute(select(TM.c.instance_id, TM.c.name, TM.c.state, TM.c.armed_version, TM.c.due_at)
                             .where(TM.c.status == "pending")).all()
    assert set(cases) == {("reminded", 2, now, False)}
    assert sorted(armed) == sorted([(i, "lapse", "reminded", 2, now + timedelta(days=2)) for i in ids]
                                   + [(i, "nudge", "reminded", 2, now + timedelta(days=1)) for i in ids])


def test_an_internal_timer_event_keeps_the_state_its_entry_instant_and_its_other_timers(db):
    rt, ids, calls = _steps(db, 4)
    entered = START + timedelta(days=1, seconds=1)
    rt.sweep(limit=100, now=entered)
    nudged = entered + timedelta(days=1, seconds=1)
    assert rt.sweep(limit=100, now=nudged).fired == 4
    assert calls == []
    with db.read() as conn:
        cases = conn.execute(select(I.c.state, I.c.version, I.c.state_entered_at, I.c.updated_at)
                             .where(I.c.id.in_(ids))).all()
        pending = conn.execute(select(TM.c.name).where(TM.c.status == "pending")).scalars().all()
    assert set(cases) == {("reminded", 3, entered, nudged)}
    assert pending == ["lapse"] * 4


def test_a_branch_is_decided_per_case_in_the_same_batch(db):
    rt, ids, calls = _steps(db, 6)
    rt.sweep(limit=100, now=START + timedelta(days=1, seconds=1))
    rt.sweep(limit=100, now=START + timedelta(days=2, seconds=2))  # the nudges
    assert rt.sweep(limit=100, now=START + timedelta(days=3, seconds=2)).fired == 6
    assert calls == []
    with db.read() as conn:
        states = dict(conn.execute(select(I.c.id, I.c.state).where(I.c.id.in_(ids))).all())
        history = conn.execute(select(H.c.instance_id, H.c.event, H.c.to_state, H.c.version)
                               .where(H.c.event == "lapse").order_by(H.c.instance_id)).all()
        timers = dict(conn.execute(select(TM.c.status, func.count()).group_by(TM.c.status)).all())
    assert states == {i: ("escalated" if k % 2 == 0 else "expired") for k, i in enumerate(ids)}
    assert [tuple(h) for h in history] == [(i, "lapse", states[i], 4) for i in ids]
    assert timers == {"fired": 18}


def test_drain_grows_its_batch_while_sweeps_are_quick_and_shrinks_it_when_they_are_slow(db, monkeypatch):
    import engine.runtime as runtime

    rt, ids = _cases(db, 60)
    sizes = []
    sweep = rt.sweep
    rt.sweep = lambda limit, now=None: sizes.append(limit) or sweep(limit, now)
    monkeypatch.setattr(runtime, "SWEEP_TARGET_SECONDS", 3600.0)  # every sweep counts as quick
    assert rt.drain(now=START + timedelta(days=3, seconds=1), batch=4, max_batch=32).fired == 60
    assert sizes == [4, 8, 16, 32, 32]  # 4 + 8 + 16 + 32 = 60, then one sweep finds nothing

    rt2, _ = _cases(db, 10)
    sizes.clear()
    sweep2 = rt2.sweep
    rt2.sweep = lambda limit, now=None: sizes.append(limit) or sweep2(limit, now)
    monkeypatch.setattr(runtime, "SWEEP_TARGET_SECONDS", 0.0)  # every sweep counts as slow
    assert rt2.drain(now=START + timedelta(days=6), batch=4, max_batch=32).fired == 10
    assert sizes == [4, 4, 4, 4]


class Gate(StrEnum):
    waiting = "waiting"
    opened = "opened"


GATE = Workflow(
    name="batch_gate", title="Batch gate", states=Gate, initial=Gate.waiting, final=(Gate.opened,),
    partner_required=False, start_roles={"ecosystem_manager"},
    start_schema=Schema(Field("ok", "bool", required=False, default=False)),
    transitions=(Transition("open", Gate.waiting, Gate.opened, {"system"}, when=lambda ctx: ctx.data["ok"]),),
    timers=(TimerRule(Gate.waiting, "open", after=timedelta(days=1)),),
)


def test_a_case_no_branch_applies_to_fails_alone_and_the_rest_of_the_batch_fires(db):
    reg = Registry()
    reg.add(GATE)
    rt = Runtime(db, ManualClock(START), reg)
    ids = [rt.start("batch_gate", {"ok": k != 1}, MANAGER, view=False)["id"] for k in range(4)]
    result = rt.sweep(limit=100, now=START + timedelta(days=1, seconds=1))
    assert (result.fired, result.failed) == (3, 1)
    assert [rt.get(i)["state"] for i in ids] == ["opened", "waiting", "opened", "opened"]
    with db.read() as conn:
        error = conn.execute(select(TM.c.last_error).where(TM.c.instance_id == ids[1])).scalar_one()
    assert "no branch that applies" in error
