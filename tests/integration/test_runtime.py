"""The runtime on a real database: events, roles, guards, versions, history, timers, schedules, time."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.clock import SimulatedClock
from engine.errors import EventNotAllowed, Forbidden, NotFound, RuleViolation, StaleVersion, ValidationError
from engine.models import History, Outbox, Task, Timer
from engine.runtime import Runtime
from tests.helpers import count, counts

from . import chain

VOUCHER = {"exam": "Cloud Architect", "users": ["acme-dev1"]}


@pytest.fixture
def registry():
    return chain.registry()


def test_start_records_history_opens_task_and_queues_email(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    assert case["state"] == "applied" and case["version"] == 1 and case["partner"] == "ACME"
    assert [(h["event"], h["from"], h["to"], h["actor"]) for h in case["history"]] == [
        ("start", None, "applied", "acme-admin")]
    assert [(t["role"], t["title"]) for t in case["tasks"]] == [("ecosystem_manager", "Decide on the exam voucher application")]
    with runtime.db.read() as conn:
        rows = conn.execute(select(Outbox.__table__)).all()
    assert {r.recipient for r in rows} == {"alice@example.com", "bob@example.com"}
    assert all(r.template == "exam_voucher/applied" and r.status == "queued" for r in rows)
    assert len({r.message_id for r in rows}) == 2


def test_approve_from_applied_moves_and_arms_reminder_timer(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    after = runtime.fire(case["id"], "approve", people["alice"], comment="ok")
    assert after["state"] == "approved" and after["version"] == 2
    assert after["history"][-1] | {"at": None} == {
        "version": 2, "at": None, "actor": "alice", "event": "approve", "from": "applied", "to": "approved",
        "comment": "ok", "payload": {}, "timer_id": None}
    # Monday 09:00 Beijing + 3 working days = Thursday 09:00
    assert [t["due_at"] for t in after["timers"]] == ["2026-03-05T01:00:00+00:00"]
    assert [t["title"] for t in after["tasks"]] == ["Issue the approved exam vouchers"]
    assert after["tasks"][0]["due_local"] == "2026-03-05 23:59 Asia/Shanghai"


def test_event_not_allowed_lists_allowed_events_and_changes_nothing(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"])
    before = counts(runtime.db)
    with pytest.raises(EventNotAllowed) as err:
        runtime.fire(case["id"], "reject", people["bob"], comment="too late")
    assert err.value.allowed == []
    assert "not allowed in state 'approved'" in err.value.message
    assert "'approve' by alice" in err.value.message  # who decided, and when
    assert "others may: issue" in err.value.message
    with pytest.raises(EventNotAllowed) as err:
        runtime.fire(case["id"], "reject", people["oscar"])
    assert err.value.allowed == ["issue"]
    assert counts(runtime.db) == before


def test_unknown_event_is_a_conflict_naming_allowed_ones(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    with pytest.raises(EventNotAllowed, match="has no event 'teleport'.*allowed now: approve, reject"):
        runtime.fire(case["id"], "teleport", people["alice"])


def test_role_check_says_which_role_is_needed(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    before = counts(runtime.db)
    with pytest.raises(Forbidden, match="needs role admin or ecosystem_manager; acme-admin has partner_admin"):
        runtime.fire(case["id"], "approve", people["acme-admin"])
    with pytest.raises(Forbidden, match="happens automatically"):
        runtime.fire(runtime.fire(case["id"], "approve", people["alice"])["id"], "remind_issue", people["alice"])
    assert counts(runtime.db)["history"] == before["history"] + 1


def test_admin_may_act_for_operator_roles(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    assert runtime.fire(case["id"], "approve", people["root"])["state"] == "approved"


def test_guard_failure_names_the_rule_and_saves_nothing(runtime, people):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="'acme-dev2' has not maintained their personal information"):
        runtime.start("exam_voucher", {"exam": "X", "users": ["acme-dev1", "acme-dev2"]}, people["acme-admin"])
    with pytest.raises(RuleViolation, match="'ghost' is unknown: login ID not found"):
        runtime.start("exam_voucher", {"exam": "X", "users": ["ghost"]}, people["acme-admin"])
    with pytest.raises(RuleViolation, match="not a member of partner ACME"):
        runtime.start("exam_voucher", {"exam": "X", "users": ["nord-dev"]}, people["acme-admin"])
    assert counts(runtime.db) == before


def test_bad_data_names_the_field(runtime, people):
    with pytest.raises(ValidationError) as err:
        runtime.start("exam_voucher", {"exam": "X", "users": []}, people["acme-admin"])
    assert err.value.field == "users"
    with pytest.raises(ValidationError, match="partner: is required"):
        runtime.start("chain", {"deadline": "2026-03-20"}, people["alice"])
    with pytest.raises(ValidationError, match="no partner with code 'NOPE'"):
        runtime.start("chain", {"partner": "NOPE", "deadline": "2026-03-20"}, people["alice"])
    with pytest.raises(ValidationError, match="codes: must be a list"):
        case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
        runtime.fire(case["id"], "approve", people["alice"])
        runtime.fire(case["id"], "issue", people["oscar"], {"codes": "ABC"})


def test_comment_required_on_reject(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    with pytest.raises(ValidationError, match="comment: a comment is required to reject"):
        runtime.fire(case["id"], "reject", people["alice"], comment="  ")
    assert runtime.fire(case["id"], "reject", people["alice"], comment="no budget")["state"] == "rejected"


@pytest.mark.parametrize("comment, reason", [
    ("no\x00budget", "comment: must not contain NUL characters"),
    (42, "comment: must be text, got int"),
    ("x" * 4001, "comment: is 4001 characters long; at most 4000 allowed"),
])
def test_a_bad_comment_is_refused_and_nothing_is_saved(runtime, people, comment, reason):
    with pytest.raises(ValidationError, match=reason):
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"], comment)
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    before = counts(runtime.db)
    with pytest.raises(ValidationError, match=reason):
        runtime.fire(case["id"], "reject", people["alice"], comment=comment)
    assert counts(runtime.db) == before
    after = runtime.fire(case["id"], "reject", people["alice"], comment="  no budget \n")
    assert after["history"][-1]["comment"] == "no budget"


def test_a_comment_of_exactly_4000_characters_is_kept_whole(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"], "x" * 4000)
    assert case["history"][-1]["comment"] == "x" * 4000


def test_stale_version_is_refused(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    with pytest.raises(StaleVersion, match="at version 1, not 7"):
        runtime.fire(case["id"], "approve", people["alice"], expected_version=7)
    assert runtime.fire(case["id"], "approve", people["alice"], expected_version=1)["version"] == 2


def test_partner_users_cannot_see_other_partners_cases(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    with pytest.raises(NotFound):
        runtime.get(case["id"], people["nord-admin"])
    with pytest.raises(NotFound):
        runtime.fire(case["id"], "withdraw", people["nord-admin"])
    with pytest.raises(Forbidden, match="acts for partner NORD"):
        runtime.start("exam_voucher", {**VOUCHER, "partner": "ACME"}, people["nord-admin"])
    with pytest.raises(NotFound):
        runtime.get(999999)


def test_timer_armed_on_enter_cancelled_on_leave(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"])
    runtime.fire(case["id"], "issue", people["oscar"], {"codes": ["C1"]})
    with runtime.db.read() as conn:
        statuses = [r.status for r in conn.execute(select(Timer.__table__))]
        tasks = [(r.title, r.status, r.closed_by) for r in conn.execute(select(Task.__table__).order_by(Task.__table__.c.id))]
    assert statuses == ["cancelled"]
    assert tasks == [("Decide on the exam voucher application", "done", "alice"),
                     ("Issue the approved exam vouchers", "done", "oscar")]
    result = runtime.advance(timedelta(days=10))
    assert result.timers_fired == 0
    assert runtime.get(case["id"])["state"] == "issued"


def test_reminder_fires_once_at_its_due_instant(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"])
    runtime.advance(timedelta(days=3) - timedelta(minutes=1))  # Thursday 08:59 Beijing: one minute early
    assert [h["event"] for h in runtime.get(case["id"])["history"]] == ["start", "approve"]
    runtime.advance(timedelta(minutes=2))
    view = runtime.get(case["id"])
    assert [h["event"] for h in view["history"]] == ["start", "approve", "remind_issue"]
    assert view["history"][-1]["actor"] == "system" and view["history"][-1]["timer_id"] is not None
    assert view["history"][-1]["at"] == "2026-03-05T01:00:00+00:00"
    assert sorted(t["title"] for t in view["tasks"]) == [
        "Issue the approved exam vouchers", "Reminder: approved exam vouchers are still not issued"]
    assert [t["role"] for t in runtime.open_tasks(people["oscar"])] == ["operations_manager"] * 2
    runtime.advance(timedelta(days=30))
    assert len(runtime.get(case["id"])["history"]) == 3  # never twice


def test_reminder_working_days_are_configurable(runtime, people, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_VOUCHER_REMINDER_WORKING_DAYS", "5")
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    view = runtime.fire(case["id"], "approve", people["alice"])
    assert view["timers"][0]["due_at"] == "2026-03-09T01:00:00+00:00"  # Monday + 5 working days


def test_advance_fires_chains_in_due_order_including_timers_armed_during_advance(runtime, people):
    c1 = runtime.start("chain", {"deadline": "2026-03-10"}, people["acme-admin"])
    c2 = runtime.start("chain", {"deadline": "2026-03-03"}, people["acme-admin"])
    result = runtime.advance(timedelta(days=20))
    assert result.timers_fired == 6
    h1 = runtime.get(c1["id"])["history"]
    h2 = runtime.get(c2["id"])["history"]
    assert [(h["to"], h["at"]) for h in h1] == [
        ("waiting", "2026-03-02T01:00:00+00:00"),
        ("one", "2026-03-02T02:00:00+00:00"),  # after 1 hour
        ("two", "2026-03-04T02:00:00+00:00"),  # 2 working days later, same local time
        ("done", "2026-03-10T15:59:59+00:00"),  # end of the deadline day in Beijing
    ]
    # c2's deadline passed before it reached 'two': its timer is due at once, fires at the next step
    assert [h["to"] for h in h2] == ["waiting", "one", "two", "done"]
    assert h2[-1]["at"] == "2026-03-04T02:00:00+00:00"
    assert runtime.now() == datetime(2026, 3, 22, 1, 0, tzinfo=UTC)


def test_branch_condition_is_chosen_by_the_shared_machine(runtime, people):
    c = runtime.start("chain", {"deadline": "2026-03-10", "size": 10}, people["acme-admin"])
    runtime.advance(timedelta(hours=2))
    assert runtime.get(c["id"])["state"] == "big"


def test_internal_event_keeps_timers_and_opens_task(runtime, people):
    c = runtime.start("chain", {"deadline": "2026-03-10"}, people["acme-admin"])
    runtime.advance(timedelta(hours=1))
    before = runtime.get(c["id"])
    after = runtime.fire(c["id"], "poke", people["alice"])
    assert after["state"] == "one" and after["timers"] == before["timers"]
    assert sorted(t["title"] for t in after["tasks"]) == ["Look at it", "Poked"]


def test_human_event_beats_timer_and_timer_becomes_cancelled(runtime, people):
    c = runtime.start("chain", {"deadline": "2026-03-10"}, people["acme-admin"])
    runtime.fire(c["id"], "cancel", people["acme-admin"])
    result = runtime.advance(timedelta(days=30))
    assert result.timers_fired == 0
    assert [h["event"] for h in runtime.get(c["id"])["history"]] == ["start", "cancel"]


def test_timer_survives_a_restart(db, registry, people, runtime):
    c = runtime.start("chain", {"deadline": "2026-03-10"}, people["acme-admin"])
    runtime.db.dispose()
    del runtime
    # a brand-new process: new Database, new Runtime, same file / server
    from engine.db import Database

    db2 = Database(db.url)
    rt2 = Runtime(db2, SimulatedClock(db2), registry)
    assert rt2.now() == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # the simulated clock is shared through the db
    rt2.advance(timedelta(hours=1, minutes=1))
    assert rt2.get(c["id"])["state"] == "one"
    db2.dispose()


def test_missed_timers_fire_late_once_on_start(db, registry, people, runtime):
    c = runtime.start("chain", {"deadline": "2026-03-10"}, people["acme-admin"])
    # time passes with no worker running
    runtime.clock.set(datetime(2026, 3, 2, 5, 0, tzinfo=UTC))
    rt2 = Runtime(db, SimulatedClock(db), registry)
    rt3 = Runtime(db, SimulatedClock(db), registry)
    assert rt2.tick().fired == 1
    assert rt3.tick().fired == 0  # a second worker starting changes nothing
    hist = rt2.get(c["id"])["history"]
    assert [h["to"] for h in hist] == ["waiting", "one"]
    assert hist[-1]["at"] == "2026-03-02T05:00:00+00:00"  # fired late, once


def test_a_timer_never_fires_twice_even_if_its_row_is_reset(runtime, people):
    c = runtime.start("chain", {"deadline": "2026-03-10"}, people["acme-admin"])
    runtime.advance(timedelta(hours=1))
    from sqlalchemy import update

    T = Timer.__table__
    with runtime.db.write() as conn:  # simulate a lost 'fired' mark: the history row's unique timer_id still holds
        conn.execute(update(T).where(T.c.event == "step", T.c.state == "waiting").values(status="pending"))
        # and pretend the case were back in 'waiting'
        from engine.models import Instance
        I = Instance.__table__
        conn.execute(update(I).where(I.c.id == c["id"]).values(state="waiting"))
    result = runtime.sweep()
    assert result.fired == 0 and result.duplicates == 1
    with runtime.db.read() as conn:
        fired_by_timer = conn.execute(select(History.__table__.c.timer_id).where(
            History.__table__.c.timer_id.is_not(None))).all()
    assert len(fired_by_timer) == 1


def test_timer_of_a_state_already_left_is_obsolete(runtime, people):
    c = runtime.start("chain", {"deadline": "2026-03-10"}, people["acme-admin"])
    from sqlalchemy import update

    from engine.models import Instance
    I = Instance.__table__
    T = Timer.__table__
    with runtime.db.write() as conn:  # the case moved on by a path that did not cancel the timer
        conn.execute(update(I).where(I.c.id == c["id"]).values(state="two"))
    runtime.clock.set(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    result = runtime.sweep()
    assert result.obsolete == 1 and result.fired == 0
    with runtime.db.read() as conn:
        assert conn.execute(select(T.c.status)).scalar_one() == "obsolete"


def test_calendar_schedule_runs_each_slot_once_in_order(db, registry, runtime):
    chain.RUNS.clear()
    other = Runtime(db, SimulatedClock(db), registry)
    runtime.tick()  # registers the schedule: next slot is the 3rd working day of March 2026 (Wed Mar 4)
    runtime.advance(timedelta(days=70))  # to May 11
    other.tick()
    slots = [s.isoformat() for s in chain.RUNS]
    # 3rd working day: Mar 4; Apr 3 (Apr 1 Wed, 2 Thu, 3 Fri); May 7 (May 1-5 off, 6 Wed, 7 Thu... )
    assert slots == ["2026-03-04T01:00:00+00:00", "2026-04-03T01:00:00+00:00", "2026-05-08T01:00:00+00:00"]


def test_clock_moves_back_without_unfiring(runtime, people):
    c = runtime.start("chain", {"deadline": "2026-03-10"}, people["acme-admin"])
    runtime.advance(timedelta(hours=2))
    runtime.advance(timedelta(hours=-5))
    assert runtime.now() == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    assert runtime.get(c["id"])["state"] == "one"


def test_advance_refused_on_the_system_clock(db, registry):
    from engine.clock import SystemClock
    from engine.errors import Conflict

    with pytest.raises(Conflict, match="PARTNERFLOW_CLOCK=simulated"):
        Runtime(db, SystemClock(), registry).advance(timedelta(hours=1))


def test_four_eyes_author_cannot_approve(runtime, people, registry):
    # exam vouchers are authored by partner users; use a transition marked four_eyes on chain-like data
    from engine.definition import Transition, Workflow
    from enum import StrEnum

    class R(StrEnum):
        draft = "draft"
        submitted = "submitted"
        approved = "approved"

    wf = Workflow("req", "Request", R, R.draft, [
        Transition("submit", R.draft, R.submitted, {"ecosystem_manager"}, authors=True),
        Transition("approve", R.submitted, R.approved, {"ecosystem_manager"}, four_eyes=True),
    ], final=[R.approved], start_roles={"ecosystem_manager"}, partner_required=False)
    registry.add(wf)
    c = runtime.start("req", {}, people["alice"])
    runtime.fire(c["id"], "submit", people["bob"])
    with pytest.raises(Forbidden, match="four-eyes rule: bob submitted or edited"):
        runtime.fire(c["id"], "approve", people["bob"])
    with pytest.raises(Forbidden, match="four-eyes rule: alice"):
        runtime.fire(c["id"], "approve", people["alice"])  # she created it
    assert runtime.fire(c["id"], "approve", people["root"])["state"] == "approved"
    assert count(runtime.db, "history") == 3


def test_a_person_without_partner_sees_only_cases_naming_them(runtime, people):
    from engine.directory import add_user

    with runtime.db.write() as conn:
        add_user(conn, {"login": "visitor", "name": "Visitor", "email": "visitor@example.com", "roles": ["account"]},
                 runtime.now())
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    with pytest.raises(NotFound):
        runtime.get(case["id"], runtime.actor("visitor"))
    assert runtime.get(case["id"], runtime.actor("acme-dev1"))["id"] == case["id"]  # own partner
    assert runtime.get(case["id"], people["alice"])["id"] == case["id"]  # operator


def test_schedule_slot_exactly_at_first_tick_is_not_skipped(db, registry, runtime):
    chain.RUNS.clear()
    runtime.clock.set(datetime(2026, 3, 4, 1, 0, tzinfo=UTC))  # exactly the 3rd working day of March, 09:00
    runtime.tick()
    assert [s.isoformat() for s in chain.RUNS] == ["2026-03-04T01:00:00+00:00"]
