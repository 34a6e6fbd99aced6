"""Funding-head incentives: quarter-start generation, at most half the dedicated personnel, whole calendar months."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.errors import EventNotAllowed, Forbidden, RuleViolation
from engine.incentives import add_person, whole_months
from engine.models import Instance, Outbox
from tests.helpers import counts

I = Instance.__table__
OB = Outbox.__table__
Q1 = (date(2026, 1, 1), date(2026, 3, 31))


def test_whole_months_jan_10_to_mar_20_is_one_month_february():
    assert whole_months(date(2026, 1, 10), date(2026, 3, 20), *Q1) == 1


@pytest.mark.parametrize("start,end,months", [
    (date(2025, 6, 1), None, 3),  # the whole quarter
    (date(2026, 1, 1), date(2026, 1, 31), 1),  # exactly January
    (date(2026, 1, 2), date(2026, 2, 28), 1),  # January started late: February only
    (date(2026, 2, 1), date(2026, 2, 27), 0),  # left a day before February ended
    (date(2026, 3, 15), None, 0),  # half of March
    (date(2026, 4, 1), None, 0),  # after the quarter
])
def test_whole_months_counts_only_complete_calendar_months(start, end, months):
    assert whole_months(start, end, *Q1) == months


@pytest.fixture
def staff(runtime, people):
    ids = {}
    with runtime.db.write() as conn:
        for name, start, end in (("Ann", date(2025, 6, 1), None), ("Ben", date(2026, 1, 10), date(2026, 3, 20)),
                                 ("Cai", date(2026, 2, 1), None), ("Dan", date(2026, 3, 15), None),
                                 ("Eve", date(2025, 1, 1), date(2026, 1, 31))):
            ids[name] = add_person(conn, partner="ACME", name=name, started_on=start, ended_on=end,
                                   now=runtime.now())["id"]
        add_person(conn, partner="NORD", name="Solo", started_on=date(2025, 1, 1), ended_on=None, now=runtime.now())
    return ids


@pytest.fixture
def generated(runtime, people, staff):
    runtime.advance_to(datetime(2026, 4, 1, 1, 1, tzinfo=UTC))  # 1 April 09:01 Beijing: quarter start
    with runtime.db.read() as conn:
        rows = conn.execute(select(I).where(I.c.workflow == "funding_head")).all()
    assert len(rows) == 1
    return runtime.get(rows[0].id)


def test_quarter_start_generates_previous_quarter_and_emails_partner(runtime, generated):
    assert generated["partner"] == "ACME" and generated["state"] == "generated"
    data = generated["data"]
    assert (data["quarter"], data["dedicated"], data["max_recipients"]) == ("2026-Q1", 5, 2)
    assert {p["name"]: p["months"] for p in data["personnel"]} == {"Ann": 3, "Ben": 1, "Cai": 2, "Dan": 0, "Eve": 1}
    with runtime.db.read() as conn:
        mails = conn.execute(select(OB).where(OB.c.template == "funding_head/generated")).all()
    assert {m.recipient for m in mails} == {"contact@acme.example", "acme-admin@example.com"}
    # NORD has one dedicated person: half of one is zero recipients, so nothing is generated for it.


def test_confirm_more_than_half_refused_naming_the_limit(runtime, people, staff, generated):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="3 recipients named; at most 2 allowed: half of the 5 dedicated "
                                            "personnel of 2026-Q1"):
        runtime.fire(generated["id"], "confirm", people["acme-admin"],
                     {"recipients": [staff["Ann"], staff["Ben"], staff["Cai"]]})
    assert counts(runtime.db) == before


def test_confirm_recipient_without_whole_month_refused(runtime, people, staff, generated):
    with pytest.raises(RuleViolation, match="Dan .* has no whole calendar month on the job in 2026-Q1"):
        runtime.fire(generated["id"], "confirm", people["acme-admin"], {"recipients": [staff["Dan"]]})


def test_confirm_unknown_person_refused(runtime, people, generated):
    with pytest.raises(RuleViolation, match="person 999 is not dedicated personnel of ACME"):
        runtime.fire(generated["id"], "confirm", people["acme-admin"], {"recipients": [999]})


def test_confirm_approve_request_payment_starts_quarterly_payout(runtime, people, staff, generated):
    confirmed = runtime.fire(generated["id"], "confirm", people["acme-admin"],
                             {"recipients": [staff["Ann"], staff["Ben"]]})
    assert confirmed["state"] == "confirmed"
    assert (confirmed["data"]["months"], confirmed["data"]["amount"]) == (4, "12000.00")  # 4 x 3000.00
    assert [t["role"] for t in confirmed["tasks"]] == ["ecosystem_manager"]
    with pytest.raises(Forbidden):
        runtime.fire(generated["id"], "approve", people["acme-admin"])
    runtime.fire(generated["id"], "approve", people["alice"])
    with pytest.raises(EventNotAllowed):
        runtime.fire(generated["id"], "approve", people["bob"])
    done = runtime.fire(generated["id"], "request_payment", people["acme-admin"])
    assert done["state"] == "payment_requested" and done["final"]
    with runtime.db.read() as conn:
        [payout] = conn.execute(select(I).where(I.c.workflow == "incentive_payout")).all()
    assert (payout.data["kind"], payout.data["period"], payout.data["amount"], payout.data["frequency"]) == (
        "funding_head", "2026-Q1", "12000.00", "quarterly")
    with pytest.raises(RuleViolation, match="only as cash coupons"):
        runtime.fire(payout.id, "apply", people["acme-admin"], {"method": "bank_transfer"})


def test_return_sends_back_for_new_confirmation(runtime, people, staff, generated):
    runtime.fire(generated["id"], "confirm", people["acme-admin"], {"recipients": [staff["Cai"]]})
    back = runtime.fire(generated["id"], "return", people["bob"], comment="Cai joined in February; check")
    assert back["state"] == "generated"
    again = runtime.fire(generated["id"], "confirm", people["acme-admin"], {"recipients": [staff["Ann"]]})
    assert again["data"]["amount"] == "9000.00"


def test_monthly_amount_is_a_setting(runtime, people, staff, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_FUNDING_HEAD_MONTHLY_AMOUNT", "2500.50")
    case = runtime.start("funding_head", {"partner": "ACME", "quarter": "2026-Q1"}, people["alice"])
    after = runtime.fire(case["id"], "confirm", people["acme-admin"], {"recipients": [staff["Cai"]]})
    assert after["data"]["amount"] == "5001.00"


def test_second_generation_of_a_quarter_and_partner_without_enough_people_refused(runtime, people, staff):
    runtime.start("funding_head", {"partner": "ACME", "quarter": "2026-Q1"}, people["alice"])
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="already case"):
        runtime.start("funding_head", {"partner": "ACME", "quarter": "2026-Q1"}, people["alice"])
    with pytest.raises(RuleViolation, match="NORD had 1 dedicated person"):
        runtime.start("funding_head", {"partner": "NORD", "quarter": "2026-Q1"}, people["alice"])
    assert counts(runtime.db) == before


def schedule_result(runtime):
    from engine.models import Schedule

    sc = Schedule.__table__
    with runtime.db.read() as conn:
        return conn.execute(select(sc.c.last_slot, sc.c.last_result).where(sc.c.name == "funding_head_quarter")).one()


def test_quarter_start_generates_for_exactly_two_dedicated_people_one_recipient(runtime, people):
    """Half of two is one recipient, so the case is generated; half of one is none, so NORD is skipped."""
    with runtime.db.write() as conn:
        for partner, name in (("ACME", "Ann"), ("ACME", "Ben"), ("NORD", "Solo")):
            add_person(conn, partner=partner, name=name, started_on=date(2025, 6, 1), ended_on=None, now=runtime.now())
    runtime.advance_to(datetime(2026, 4, 1, 1, 1, tzinfo=UTC))  # 1 April 09:01 Beijing: quarter start
    with runtime.db.read() as conn:
        [row] = conn.execute(select(I).where(I.c.workflow == "funding_head")).all()
    case = runtime.get(row.id)
    assert case["partner"] == "ACME"
    assert (case["data"]["quarter"], case["data"]["dedicated"], case["data"]["max_recipients"]) == ("2026-Q1", 2, 1)
    last = schedule_result(runtime)
    assert last.last_slot == datetime(2026, 4, 1, 1, 0, tzinfo=UTC)
    assert last.last_result == "2026-Q1: generated ACME; skipped NORD"


def test_quarter_start_skips_a_partner_whose_case_was_generated_by_hand(runtime, people, staff):
    by_hand = runtime.start("funding_head", {"partner": "ACME", "quarter": "2026-Q1"}, people["alice"])
    runtime.advance_to(datetime(2026, 4, 1, 1, 1, tzinfo=UTC))
    with runtime.db.read() as conn:
        rows = conn.execute(select(I.c.id).where(I.c.workflow == "funding_head")).all()
    assert [r.id for r in rows] == [by_hand["id"]]
    assert schedule_result(runtime).last_result == "2026-Q1: generated -; skipped ACME, NORD"


def test_funding_head_templates_render(runtime, people, staff, generated):
    from notifications.render import render_message

    runtime.fire(generated["id"], "confirm", people["acme-admin"], {"recipients": [staff["Ann"]]})
    runtime.fire(generated["id"], "return", people["bob"], comment="<i>check</i>")
    runtime.fire(generated["id"], "confirm", people["acme-admin"], {"recipients": [staff["Ann"]]})
    runtime.fire(generated["id"], "approve", people["alice"])
    runtime.fire(generated["id"], "request_payment", people["acme-admin"])
    runtime.advance(timedelta(minutes=1))
    with runtime.db.read() as conn:
        rows = conn.execute(select(OB).where(OB.c.template.like("funding_head/%"))).all()
    assert {r.template.split("/")[1] for r in rows} == {"generated", "confirmed", "returned", "approved",
                                                        "payment_requested"}
    for row in rows:
        for locale in ("en", "zh"):
            msg = render_message({**row._mapping, "locale": locale})
            assert "2026-Q1" in msg.subject and "<i>" not in msg.html


def test_cli_records_dedicated_personnel_and_generates(db_url, monkeypatch, people):
    import json

    from click.testing import CliRunner

    from engine.cli import main

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    runner = CliRunner()
    for name, started in (("Ann", "2025-01-01"), ("Ben", "2026-01-10")):
        out = runner.invoke(main, ["incentives", "person", "--partner", "ACME", "--name", name, "--started", started])
        assert out.exit_code == 0, out.output + out.stderr
    bad = runner.invoke(main, ["incentives", "person", "--partner", "ACME", "--name", "X", "--started", "2026-02-01",
                               "--ended", "2026-01-01"])
    assert bad.exit_code == 1 and "ended_on: 2026-01-01 is before the start 2026-02-01" in bad.stderr
    started = runner.invoke(main, ["start", "funding_head", "--data", '{"partner": "ACME", "quarter": "2026-Q1"}',
                                   "--as", "alice", "--json"])
    assert started.exit_code == 0, started.output + started.stderr
    data = json.loads(started.stdout)["data"]
    assert (data["dedicated"], data["max_recipients"], [p["months"] for p in data["personnel"]]) == (2, 1, [3, 2])
