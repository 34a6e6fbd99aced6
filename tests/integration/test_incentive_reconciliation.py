"""Monthly incentive reconciliation: opening by calendar schedule, confirm / reject / auto-confirm, the race."""
from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main
from engine.errors import EventNotAllowed, RuleViolation, ValidationError
from engine.incentives import add_incentive
from engine.models import History, Instance, Outbox, Schedule, Task
from tests.helpers import counts

I = Instance.__table__
H = History.__table__
OB = Outbox.__table__
TK = Task.__table__
SC = Schedule.__table__

#: Opened Monday 2026-03-02 09:00 Beijing: the 10th working day after is Monday 2026-03-16.
DEADLINE = datetime(2026, 3, 16, 15, 59, 59, tzinfo=UTC)


def incentive(runtime, partner="ACME", period="2026-02", amount="1000.00", item="Resale rebate", currency="CNY",
              kind="monthly"):
    with runtime.db.write() as conn:
        return add_incentive(conn, partner=partner, kind=kind, period=period, item=item, amount=amount,
                             currency=currency, by="fiona", now=runtime.now())


def cases(runtime, workflow):
    with runtime.db.read() as conn:
        return conn.execute(select(I).where(I.c.workflow == workflow).order_by(I.c.id)).all()


def outbox(runtime, template):
    with runtime.db.read() as conn:
        return conn.execute(select(OB).where(OB.c.template == template)).all()


@pytest.fixture
def opened(runtime, people):
    incentive(runtime, amount="1200.50")
    incentive(runtime, amount="300.00", item="New customer bonus")
    return runtime.start("incentive_reconciliation", {"partner": "ACME", "period": "2026-02"}, people["oscar"])


# -- opening -----------------------------------------------------------------------------------
def test_start_totals_lines_and_sets_deadline_in_partner_calendar(opened):
    assert opened["state"] == "open"
    assert opened["data"]["amount"] == "1500.50" and opened["data"]["currency"] == "CNY"
    assert [x["item"] for x in opened["data"]["lines"]] == ["Resale rebate", "New customer bonus"]
    assert opened["data"]["confirm_by"] == DEADLINE.isoformat()
    due = {t["name"]: t["due_at"] for t in opened["timers"]}
    assert due["auto_confirm"] == DEADLINE.isoformat()
    # reminder 2 working days before the deadline day (Thursday 2026-03-12), at the opening's 09:00
    assert due["remind"] == "2026-03-12T01:00:00+00:00"


def test_start_without_incentives_refused_and_saves_nothing(runtime, people):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="ACME has no monthly incentives recorded for 2026-02"):
        runtime.start("incentive_reconciliation", {"partner": "ACME", "period": "2026-02"}, people["oscar"])
    assert counts(runtime.db) == before


def test_second_reconciliation_for_same_month_refused(runtime, people, opened):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=f"already case {opened['id']}"):
        runtime.start("incentive_reconciliation", {"partner": "ACME", "period": "2026-02"}, people["fiona"])
    assert counts(runtime.db) == before


def test_schedule_opens_on_third_working_day_for_partners_with_incentives(runtime, people):
    incentive(runtime, period="2026-03", amount="500.00")
    incentive(runtime, partner="NORD", period="2026-03", amount="80.00", currency="EUR")
    runtime.advance_to(datetime(2026, 4, 3, 0, 59, tzinfo=UTC))  # Friday 2026-04-03 08:59 Beijing
    assert cases(runtime, "incentive_reconciliation") == []
    runtime.advance(timedelta(minutes=2))
    opened = cases(runtime, "incentive_reconciliation")
    assert [(r.data["period"], r.data["amount"], r.created_at) for r in opened] == [
        ("2026-03", "500.00", datetime(2026, 4, 3, 1, 0, tzinfo=UTC)),
        ("2026-03", "80.00", datetime(2026, 4, 3, 1, 0, tzinfo=UTC))]
    # NORD's deadline is computed in Berlin on German working days: 10 working days after Friday 3 April
    # (Easter Monday 6 April is a holiday there) is Monday 20 April, 23:59:59 CEST.
    assert opened[1].data["confirm_by"] == "2026-04-20T21:59:59+00:00"
    mails = outbox(runtime, "incentive_reconciliation/opened")
    assert {m.recipient for m in mails} >= {"contact@acme.example", "kontakt@nord.example", "acme-admin@example.com"}


def test_schedule_skips_a_partner_whose_reconciliation_was_opened_by_hand(runtime, people):
    incentive(runtime, period="2026-03", amount="500.00")
    incentive(runtime, partner="NORD", period="2026-03", amount="80.00", currency="EUR")
    by_hand = runtime.start("incentive_reconciliation", {"partner": "ACME", "period": "2026-03"}, people["oscar"])
    runtime.advance_to(datetime(2026, 4, 3, 1, 1, tzinfo=UTC))  # just after Friday 2026-04-03 09:00 Beijing
    assert [(r.id == by_hand["id"], r.data["amount"]) for r in cases(runtime, "incentive_reconciliation")] == [
        (True, "500.00"), (False, "80.00")]
    with runtime.db.read() as conn:
        last = conn.execute(select(SC.c.last_slot, SC.c.last_result)
                            .where(SC.c.name == "incentive_reconciliation_open")).one()
    assert last.last_slot == datetime(2026, 4, 3, 1, 0, tzinfo=UTC)
    assert last.last_result == "2026-03: opened 1 (NORD); already open 1"


def test_open_working_day_is_a_setting(runtime, people, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_RECONCILIATION_OPEN_WORKING_DAY", "1")
    incentive(runtime, period="2026-03")
    runtime.advance_to(datetime(2026, 4, 1, 1, 1, tzinfo=UTC))  # Wednesday 1 April, first working day
    assert [r.data["period"] for r in cases(runtime, "incentive_reconciliation")] == ["2026-03"]


def test_open_working_day_outside_first_five_refused(monkeypatch):
    from workflows.incentive_reconciliation import open_slot

    monkeypatch.setenv("PARTNERFLOW_RECONCILIATION_OPEN_WORKING_DAY", "6")
    with pytest.raises(ValidationError, match="outside 1..5"):
        open_slot(datetime(2026, 4, 1, tzinfo=UTC))


def test_open_working_day_5_is_the_last_allowed_and_skips_the_qingming_holiday(monkeypatch):
    """April 2026 in mainland China: working days 1-3 April, then the Qingming break 4-6 April, so the
    5th working day is Wednesday 8 April."""
    from workflows.incentive_reconciliation import open_slot

    monkeypatch.setenv("PARTNERFLOW_RECONCILIATION_OPEN_WORKING_DAY", "5")
    assert open_slot(datetime(2026, 4, 1, tzinfo=UTC)) == datetime(2026, 4, 8, 1, 0, tzinfo=UTC)


def test_open_working_day_0_refused(monkeypatch):
    from workflows.incentive_reconciliation import open_slot

    monkeypatch.setenv("PARTNERFLOW_RECONCILIATION_OPEN_WORKING_DAY", "0")
    with pytest.raises(ValidationError) as err:
        open_slot(datetime(2026, 4, 1, tzinfo=UTC))
    assert err.value.field == "PARTNERFLOW_RECONCILIATION_OPEN_WORKING_DAY"
    assert err.value.reason == ("0 is outside 1..5: reconciliations open within the first 5 working days "
                                "(FAQ 5.5.2)")


def test_january_reconciliation_opens_after_new_year_holiday(runtime, people, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_RECONCILIATION_OPEN_WORKING_DAY", "1")
    runtime.clock.set(datetime(2026, 12, 30, 1, 0, tzinfo=UTC))
    incentive(runtime, period="2026-12", amount="999.99")
    # 1 January 2027 (Friday) is New Year's Day, then a weekend: the first working day is Monday 4 January.
    runtime.advance_to(datetime(2027, 1, 4, 0, 59, tzinfo=UTC))
    assert cases(runtime, "incentive_reconciliation") == []
    runtime.advance(timedelta(minutes=2))
    [row] = cases(runtime, "incentive_reconciliation")
    assert row.data["period"] == "2026-12" and row.created_at == datetime(2027, 1, 4, 1, 0, tzinfo=UTC)


# -- reject / auto-confirm / confirm ---------------------------------------------------------------
def test_reject_from_open_one_minute_before_deadline_stops_auto_confirm(runtime, people, opened):
    runtime.advance_to(DEADLINE - timedelta(minutes=1))
    assert len(outbox(runtime, "incentive_reconciliation/reminder")) >= 1  # the reminder went out on 12 March
    after = runtime.fire(opened["id"], "reject", people["acme-admin"], comment="the February rebate is missing")
    assert after["state"] == "rejected" and after["timers"] == []
    assert [(t["role"], t["title"]) for t in after["tasks"]] == [
        ("operations_manager", "Follow up the partner's rejected incentive reconciliation")]
    assert {m.recipient for m in outbox(runtime, "incentive_reconciliation/rejected")} == {"oscar@example.com"}
    runtime.advance(timedelta(days=3))
    view = runtime.get(opened["id"])
    assert view["state"] == "rejected"
    assert [h["event"] for h in view["history"]] == ["start", "remind", "reject"]
    assert cases(runtime, "incentive_payout") == []


def test_left_alone_confirmed_by_system_at_deadline_and_payout_started(runtime, people, opened):
    runtime.advance_to(DEADLINE - timedelta(minutes=1))
    assert runtime.get(opened["id"])["state"] == "open"
    runtime.advance(timedelta(minutes=2))
    view = runtime.get(opened["id"])
    assert view["state"] == "confirmed"
    last = view["history"][-1]
    assert (last["event"], last["actor"], last["at"]) == ("auto_confirm", "system", DEADLINE.isoformat())
    [payout] = cases(runtime, "incentive_payout")
    assert (payout.state, payout.data["amount"], payout.data["period"], payout.data["source_case"]) == (
        "awaiting_application", "1500.50", "2026-02", opened["id"])
    assert outbox(runtime, "incentive_reconciliation/confirmed")


def test_reject_at_deadline_refused_even_before_timer_ran(runtime, people, opened):
    runtime.clock.set(DEADLINE)  # the worker has not swept yet
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="period ended at 2026-03-16 23:59 Asia/Shanghai"):
        runtime.fire(opened["id"], "reject", people["acme-admin"], comment="too late")
    assert counts(runtime.db) == before


def test_reject_needs_a_reason(runtime, people, opened):
    with pytest.raises(ValidationError, match="comment"):
        runtime.fire(opened["id"], "reject", people["acme-admin"])


def test_partner_member_cannot_confirm(runtime, people, opened):
    from engine.errors import Forbidden

    with pytest.raises(Forbidden, match="partner_admin"):
        runtime.fire(opened["id"], "confirm", people["acme-dev1"])


def test_revise_from_rejected_reopens_with_new_amount_and_deadline(runtime, people, opened):
    runtime.advance(timedelta(days=1))
    runtime.fire(opened["id"], "reject", people["acme-admin"], comment="missing rebate")
    runtime.advance(timedelta(days=1))  # Wednesday 4 March 09:00
    after = runtime.fire(opened["id"], "revise", people["oscar"], {"amount": "1700.50"}, comment="rebate added")
    assert after["state"] == "open" and after["data"]["amount"] == "1700.50"
    assert after["data"]["confirm_by"] == "2026-03-18T15:59:59+00:00"
    assert outbox(runtime, "incentive_reconciliation/opened")[-1].context["data"]["amount"] == "1700.50"
    runtime.fire(opened["id"], "confirm", people["acme-admin"])
    [payout] = cases(runtime, "incentive_payout")
    assert payout.data["amount"] == "1700.50"


# -- the race: one outcome whatever the order ------------------------------------------------------------
def test_confirm_one_minute_before_deadline_then_timer_does_nothing(runtime, people, opened):
    runtime.advance_to(DEADLINE - timedelta(minutes=1))
    runtime.fire(opened["id"], "confirm", people["acme-admin"])
    result = runtime.advance(timedelta(days=2))
    view = runtime.get(opened["id"])
    assert [h["event"] for h in view["history"]].count("auto_confirm") == 0
    assert view["history"][-1]["actor"] == "acme-admin"
    assert len(cases(runtime, "incentive_payout")) == 1
    assert result.timers_fired >= 0 and view["timers"] == []


def test_timer_first_then_click_is_a_conflict_naming_the_system(runtime, people, opened):
    runtime.advance_to(DEADLINE + timedelta(minutes=1))
    before = counts(runtime.db)
    with pytest.raises(EventNotAllowed, match="'auto_confirm' by system"):
        runtime.fire(opened["id"], "confirm", people["acme-admin"])
    assert counts(runtime.db) == before
    assert len(cases(runtime, "incentive_payout")) == 1


@pytest.mark.parametrize("round_", range(3))
def test_click_and_timer_racing_at_deadline_resolve_to_exactly_one_outcome(runtime, people, opened, round_):
    runtime.clock.set(DEADLINE)
    barrier = threading.Barrier(2)
    outcome: dict = {}

    def click():
        barrier.wait()
        try:
            runtime.fire(opened["id"], "confirm", people["acme-admin"])
            outcome["click"] = "won"
        except EventNotAllowed:
            outcome["click"] = "lost"

    def sweep():
        barrier.wait()
        outcome["sweep"] = runtime.drain(DEADLINE).fired

    threads = [threading.Thread(target=click), threading.Thread(target=sweep)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    runtime.drain(DEADLINE)
    with runtime.db.read() as conn:
        confirmations = conn.execute(select(H.c.event, H.c.actor).where(
            H.c.instance_id == opened["id"], H.c.to_state == "confirmed")).all()
    assert len(confirmations) == 1
    event, actor = confirmations[0]
    assert (event, actor) == (("confirm", "acme-admin") if outcome["click"] == "won" else ("auto_confirm", "system"))
    assert len(cases(runtime, "incentive_payout")) == 1
    assert runtime.get(opened["id"])["state"] == "confirmed"


# -- command line -----------------------------------------------------------------------------------------
def test_cli_records_incentives_and_withholding_rates(db_url, monkeypatch, people):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    runner = CliRunner()
    out = runner.invoke(main, ["incentives", "add", "--partner", "ACME", "--period", "2026-02", "--amount", "88.80"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["amount"] == "88.80"
    bad = runner.invoke(main, ["incentives", "add", "--partner", "ACME", "--period", "2026-Q1", "--amount", "1"])
    assert bad.exit_code == 1 and "period: '2026-Q1' is not a month like 2026-02" in bad.stderr
    listed = json.loads(runner.invoke(main, ["incentives", "list", "--partner", "ACME"]).stdout)
    assert [(x["period"], x["amount"]) for x in listed] == [("2026-02", "88.80")]
    assert runner.invoke(main, ["incentives", "withholding", "DE", "0.15"]).exit_code == 0
    assert json.loads(runner.invoke(main, ["incentives", "withholding"]).stdout) == [
        {"country": "DE", "rate": "0.1500", "note": None}]
    started = runner.invoke(main, ["start", "incentive_reconciliation", "--data",
                                   '{"partner": "ACME", "period": "2026-02"}', "--as", "oscar", "--json"])
    assert started.exit_code == 0, started.output
    assert json.loads(started.stdout)["data"]["amount"] == "88.80"


def test_templates_render_in_both_languages(runtime, people, opened):
    from notifications.render import render_message

    runtime.advance_to(DEADLINE - timedelta(minutes=1))
    runtime.fire(opened["id"], "reject", people["acme-admin"], comment="<b>missing</b>")
    runtime.fire(opened["id"], "revise", people["oscar"], comment="fixed")
    runtime.fire(opened["id"], "confirm", people["acme-admin"])
    with runtime.db.read() as conn:
        rows = conn.execute(select(OB).where(OB.c.template.like("incentive_reconciliation/%"))).all()
    assert {r.template.split("/")[1] for r in rows} == {"opened", "reminder", "rejected", "confirmed"}
    for row in rows:
        for locale in ("en", "zh"):
            msg = render_message({**row._mapping, "locale": locale})
            assert msg.subject and "1,500.50" in msg.text + msg.subject
            assert "<b>missing</b>" not in msg.html


def test_demo_seeds_a_reconciliation_that_will_auto_confirm_and_a_payout_waiting_for_its_invoice(runtime):
    from engine.demo import seed

    out = seed(runtime)
    assert "incentive_reconciliation" in out and "incentive_payout" in out
    recon = cases(runtime, "incentive_reconciliation")
    assert [(r.state, r.data["period"], r.data["amount"]) for r in recon] == [("open", "2026-02", "21250.00")]
    view = runtime.get(recon[0].id)
    assert "auto_confirm" in [t["name"] for t in view["timers"]]
    payouts = cases(runtime, "incentive_payout")
    assert [(p.state, p.data["method"]) for p in payouts] == [("awaiting_invoice", "bank_transfer")]
    runtime.advance_to(datetime.fromisoformat(view["data"]["confirm_by"]) + timedelta(minutes=1))
    assert runtime.get(recon[0].id)["state"] == "confirmed"


def test_cancel_from_rejected_needs_reason_and_tells_partner(runtime, people, opened):
    runtime.fire(opened["id"], "reject", people["acme-admin"], comment="not ours")
    with pytest.raises(ValidationError, match="comment"):
        runtime.fire(opened["id"], "cancel", people["oscar"])
    done = runtime.fire(opened["id"], "cancel", people["oscar"], comment="booked to the wrong partner")
    assert done["state"] == "cancelled" and done["final"] and done["tasks"] == []
    assert {m.recipient for m in outbox(runtime, "incentive_reconciliation/cancelled")} == {
        "contact@acme.example", "acme-admin@example.com"}
    # a cancelled reconciliation does not block opening the month again
    again = runtime.start("incentive_reconciliation", {"partner": "ACME", "period": "2026-02"}, people["oscar"])
    assert again["state"] == "open"
