"""Reseller customer monthly budget (FAQ 5.7.12, 5.1.15): alerts, restriction, raise, freeze, monthly reset."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from engine.errors import Forbidden, NotFound, RuleViolation, ValidationError
from engine.models import Instance, Timer
from tests.helpers import counts
from workflows.reseller_budget import purchase_allowed

from .test_customer_preregistration import add_account, outbox, render_all

SYSTEM = "system"
BEIJING_APRIL = datetime(2026, 3, 31, 16, 0, tzinfo=UTC)  # 2026-04-01 00:00 Asia/Shanghai
BERLIN_APRIL = datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # 2026-04-01 00:00 Europe/Berlin (summer time)


def reseller(runtime, people, email="ann@example.com", partner="acme-admin", country="CN", model="reseller"):
    login = email.split("@")[0]
    add_account(runtime, email, country=country, login=login)
    case = runtime.start("customer_association", {"email": email, "model": model}, people[partner])
    assert runtime.fire(case["id"], "accept", people[login])["state"] == "associated"
    return case


def budget(runtime, people, amount="1000.00", email="ann@example.com", partner="acme-admin"):
    return runtime.start("reseller_budget", {"customer": email, "budget": amount}, people[partner])


def spend(runtime, case, amount, actor=None):
    return runtime.fire(case["id"], "record_spend", actor or runtime.actor(SYSTEM), {"amount": amount})


def alerts(runtime) -> list[str]:
    """Alert templates queued so far, one entry per email template (recipients collapsed)."""
    seen = []
    for row in outbox(runtime):
        if row.template.startswith("reseller_budget/alert_") and (not seen or seen[-1] != (row.template, row.instance_id)):
            seen.append((row.template, row.instance_id))
    return [t.rsplit("_", 1)[1] for t, _ in seen]


def allowed(runtime, kind, email="ann@example.com"):
    with runtime.db.read() as conn:
        return purchase_allowed(conn, email, kind, now=runtime.now())


@pytest.fixture
def acme_budget(runtime, people):
    reseller(runtime, people)
    return budget(runtime, people)


def test_start_needs_your_reseller_customer_and_one_budget_each(runtime, people, acme_budget):
    assert acme_budget["state"] == "active" and acme_budget["data"]["month"] == "2026-03"
    assert [t["due_at"] for t in acme_budget["timers"]] == [BEIJING_APRIL.isoformat()]
    reseller(runtime, people, email="ref@example.com", model="referral")
    reseller(runtime, people, email="nord@example.de", partner="nord-admin", country="DE")
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=rf"already has a monthly budget \(case {acme_budget['id']}\)"):
        budget(runtime, people)
    with pytest.raises(RuleViolation, match="ref@example.com is not a reseller customer of partner ACME"):
        budget(runtime, people, email="ref@example.com")
    with pytest.raises(RuleViolation, match="nord@example.de is not a reseller customer of partner ACME"):
        budget(runtime, people, email="nord@example.de")
    with pytest.raises(RuleViolation, match="no customer account with email ghost@example.com"):
        budget(runtime, people, email="Ghost@example.com")
    with pytest.raises(ValidationError, match="budget: must not be below 0.01"):
        budget(runtime, people, amount="0")
    assert counts(runtime.db) == before


def test_alerts_at_75_90_and_100_percent_once_each(runtime, people, acme_budget):
    spend(runtime, acme_budget, "749.99")
    assert alerts(runtime) == []
    view = spend(runtime, acme_budget, "0.01")  # exactly 75%
    assert alerts(runtime) == ["75"] and view["data"]["percent"] == "75.0"
    assert {r.recipient for r in outbox(runtime, "reseller_budget/alert_75")} == {
        "acme-admin@example.com", "contact@acme.example", "ann@example.com"}
    spend(runtime, acme_budget, "100.00")
    assert alerts(runtime) == ["75"]
    spend(runtime, acme_budget, "49.99")
    assert alerts(runtime) == ["75"]
    spend(runtime, acme_budget, "0.01")  # exactly 90%
    assert alerts(runtime) == ["75", "90"]
    view = spend(runtime, acme_budget, "99.99")
    assert view["state"] == "active" and allowed(runtime, "subscription") is None  # 999.99 of 1000
    view = spend(runtime, acme_budget, "0.01")
    assert view["state"] == "restricted" and alerts(runtime) == ["75", "90", "100"]
    spend(runtime, acme_budget, "500.00")
    assert alerts(runtime) == ["75", "90", "100"] and runtime.get(acme_budget["id"])["data"]["spent"] == "1500.00"


def test_one_update_crossing_several_thresholds_sends_each_once(runtime, people, acme_budget):
    view = spend(runtime, acme_budget, "950.00")
    assert view["state"] == "active" and alerts(runtime) == ["75", "90"]
    assert view["data"]["alerts_sent"] == [75, 90]
    spend(runtime, acme_budget, "10.00")
    assert alerts(runtime) == ["75", "90"]
    spend(runtime, acme_budget, "2000.00")
    assert alerts(runtime) == ["75", "90", "100"]


def test_at_100_percent_subscriptions_and_reserved_instances_are_restricted_not_pay_per_use(runtime, people, acme_budget):
    spend(runtime, acme_budget, "1000.00")
    assert allowed(runtime, "pay_per_use") is None
    assert allowed(runtime, "subscription") == (
        "customer ann@example.com has reached its monthly budget (1000.00 of 1000.00 RMB in 2026-03): purchases of "
        "yearly/monthly products are restricted until the partner raises the budget or the month ends; pay-per-use "
        "stays available (FAQ 5.7.12)")
    assert "purchases of reserved instances are restricted" in allowed(runtime, "reserved_instance")
    assert allowed(runtime, "yearly") == allowed(runtime, "monthly") == allowed(runtime, "subscription")
    with pytest.raises(ValidationError, match="product_kind: 'spot' is not one of"):
        allowed(runtime, "spot")
    with pytest.raises(NotFound, match="no customer account with email 'ghost@example.com'"):
        allowed(runtime, "pay_per_use", email="ghost@example.com")


def test_customer_without_a_budget_is_not_restricted(runtime, people):
    reseller(runtime, people)
    assert allowed(runtime, "reserved_instance") is None


def test_raise_budget_lifts_the_restriction_when_spend_falls_below_it(runtime, people, acme_budget):
    spend(runtime, acme_budget, "1200.00")
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="the new budget 1000.00 RMB must be higher than the current budget "
                                            "1000.00 RMB"):
        runtime.fire(acme_budget["id"], "raise_budget", people["acme-admin"], {"budget": "1000.00"})
    with pytest.raises(Forbidden, match="raise_budget"):
        runtime.fire(acme_budget["id"], "raise_budget", people["ann"], {"budget": "5000.00"})
    assert counts(runtime.db) == before
    still = runtime.fire(acme_budget["id"], "raise_budget", people["acme-dev1"], {"budget": "1200.00"})
    assert still["state"] == "restricted"  # spend 1200 is not below 1200
    lifted = runtime.fire(acme_budget["id"], "raise_budget", people["acme-admin"], {"budget": "1200.01"})
    assert lifted["state"] == "active" and allowed(runtime, "subscription") is None
    assert [c["to"] for c in lifted["data"]["budget_changes"]] == ["1200.00", "1200.01"]
    assert alerts(runtime) == ["75", "90", "100"]
    spend(runtime, acme_budget, "0.01")
    assert runtime.get(acme_budget["id"])["state"] == "restricted"
    assert alerts(runtime) == ["75", "90", "100"]  # each alert once per month


def test_freeze_refuses_every_purchase_until_unfrozen(runtime, people, acme_budget):
    with pytest.raises(Forbidden):
        runtime.fire(acme_budget["id"], "freeze", people["alice"])
    frozen = runtime.fire(acme_budget["id"], "freeze", people["acme-admin"], comment="unpaid reseller invoice")
    assert frozen["state"] == "frozen"
    for kind in ("pay_per_use", "subscription", "reserved_instance"):
        assert allowed(runtime, kind).startswith("customer ann@example.com is frozen by its partner")
    assert {r.recipient for r in outbox(runtime, "reseller_budget/frozen")} >= {"ann@example.com"}
    spend(runtime, acme_budget, "1000.00")  # running pay-per-use bills still arrive
    assert runtime.get(acme_budget["id"])["state"] == "frozen"
    assert runtime.fire(acme_budget["id"], "unfreeze", people["acme-admin"])["state"] == "restricted"
    assert allowed(runtime, "pay_per_use") is None and allowed(runtime, "subscription") is not None


def test_only_billing_records_spend_in_money(runtime, people, acme_budget):
    with pytest.raises(Forbidden, match="record_spend"):
        spend(runtime, acme_budget, "10.00", actor=people["acme-admin"])
    with pytest.raises(ValidationError, match="amount: money must be given as a string or integer"):
        spend(runtime, acme_budget, 10.5)
    assert spend(runtime, acme_budget, "10.00", actor=people["fiona"])["data"]["spent"] == "10.00"


def test_month_resets_at_midnight_beijing_time(runtime, people, acme_budget):
    spend(runtime, acme_budget, "1000.00")
    runtime.advance_to(BEIJING_APRIL - timedelta(minutes=1))
    assert runtime.get(acme_budget["id"])["state"] == "restricted"
    assert allowed(runtime, "subscription") is not None
    runtime.advance(timedelta(minutes=2))
    view = runtime.get(acme_budget["id"])
    assert view["state"] == "active" and view["data"]["month"] == "2026-04" and view["data"]["spent"] == "0.00"
    assert view["data"]["past_months"] == [{"month": "2026-03", "budget": "1000.00", "spent": "1000.00",
                                            "alerts_sent": [75, 90, 100]}]
    assert [t["due_at"] for t in view["timers"]] == [datetime(2026, 4, 30, 16, 0, tzinfo=UTC).isoformat()]
    assert [h["event"] for h in view["history"]].count("reset_month") == 1
    assert allowed(runtime, "subscription") is None
    spend(runtime, acme_budget, "800.00")
    assert alerts(runtime) == ["75", "90", "100", "75"]  # a new month re-arms the alerts


def test_month_resets_at_midnight_in_the_partners_zone(runtime, people):
    reseller(runtime, people, email="nord@example.de", partner="nord-admin", country="DE")
    case = budget(runtime, people, email="nord@example.de", partner="nord-admin")
    spend(runtime, case, "1000.00")
    runtime.advance_to(BERLIN_APRIL - timedelta(minutes=1))  # Beijing's April began 6 hours ago
    assert runtime.get(case["id"])["state"] == "restricted"
    assert allowed(runtime, "reserved_instance", email="nord@example.de") is not None
    runtime.advance(timedelta(minutes=2))
    view = runtime.get(case["id"])
    assert view["state"] == "active" and view["data"]["month"] == "2026-04"
    assert view["history"][-1]["at"] == BERLIN_APRIL.isoformat()


def test_freeze_survives_the_monthly_reset(runtime, people, acme_budget):
    spend(runtime, acme_budget, "900.00")
    runtime.fire(acme_budget["id"], "freeze", people["acme-admin"])
    runtime.advance_to(BEIJING_APRIL + timedelta(minutes=1))
    view = runtime.get(acme_budget["id"])
    assert view["state"] == "frozen" and view["data"]["spent"] == "0.00" and view["timers"]
    assert runtime.fire(acme_budget["id"], "unfreeze", people["acme-admin"])["state"] == "active"


def test_calendar_schedule_catches_up_a_budget_whose_timer_did_not_fire(runtime, people, acme_budget):
    spend(runtime, acme_budget, "1000.00")
    with runtime.db.write() as conn:  # a timer lost to an operator's mistake
        conn.execute(update(Timer.__table__).where(Timer.__table__.c.instance_id == acme_budget["id"])
                     .values(status="failed"))
    runtime.advance_to(BEIJING_APRIL + timedelta(minutes=1))
    view = runtime.get(acme_budget["id"])
    assert view["state"] == "active" and view["data"]["month"] == "2026-04"
    assert view["history"][-1]["at"] == BEIJING_APRIL.isoformat() and view["history"][-1]["timer_id"] is None


def test_spend_in_a_new_month_before_the_reset_starts_that_month(runtime, people):
    reseller(runtime, people, email="nord@example.de", partner="nord-admin", country="DE")
    case = budget(runtime, people, email="nord@example.de", partner="nord-admin")
    spend(runtime, case, "1000.00")
    with runtime.db.write() as conn:
        conn.execute(update(Timer.__table__).where(Timer.__table__.c.instance_id == case["id"]).values(status="failed"))
    runtime.advance_to(BERLIN_APRIL + timedelta(hours=1))  # Beijing's sweep ran while Berlin was still in March
    assert runtime.get(case["id"])["data"]["month"] == "2026-03"
    assert allowed(runtime, "subscription", email="nord@example.de") is None  # a past month's restriction is over
    view = spend(runtime, case, "100.00")
    assert (view["state"], view["data"]["month"], view["data"]["spent"]) == ("active", "2026-04", "100.00")


def test_leaving_the_partner_or_the_reseller_model_closes_the_budget(runtime, people, acme_budget):
    with runtime.db.read() as conn:
        assoc_id = conn.execute(select(Instance.__table__.c.id).where(
            Instance.__table__.c.workflow == "customer_association")).scalar_one()
    runtime.fire(assoc_id, "change_model", people["alice"], {"model": "referral"}, comment="contract change")
    assert runtime.get(acme_budget["id"])["state"] == "closed"
    runtime.fire(assoc_id, "change_model", people["alice"], {"model": "reseller"}, comment="back to reseller")
    second = budget(runtime, people)
    runtime.fire(assoc_id, "request_disassociation", people["ann"])
    runtime.fire(assoc_id, "approve_disassociation", people["oscar"])
    assert runtime.get(second["id"])["state"] == "closed"
    assert allowed(runtime, "subscription") is None


def test_emails_render_in_both_languages(runtime, people, acme_budget):
    spend(runtime, acme_budget, "1000.00")
    runtime.fire(acme_budget["id"], "freeze", people["acme-admin"])
    runtime.fire(acme_budget["id"], "unfreeze", people["acme-admin"])
    rendered = render_all(runtime, "reseller_budget/")
    assert {row.template.split("/")[1] for row, _ in rendered} == {
        "alert_75", "alert_90", "alert_100", "frozen", "unfrozen"}
    full = next(m for row, m in rendered if row.template.endswith("alert_100") and row.locale == "en")
    assert "spent 1,000.00 RMB of its monthly budget of 1,000.00 RMB in 2026-03 (100.0%)" in full.text
    unfrozen = next(m for row, m in rendered if row.template.endswith("unfrozen"))
    assert "stay restricted" in unfrozen.text


def test_purchase_check_cli_reports_the_restriction(db_url, monkeypatch, runtime, people, acme_budget):
    from engine.cli import main

    spend(runtime, acme_budget, "1000.00")
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    runner = CliRunner()
    refused = runner.invoke(main, ["customers", "purchase-check", "ann@example.com", "reserved_instance"])
    assert refused.exit_code == 1 and "purchases of reserved instances are restricted" in refused.stdout
    ok = runner.invoke(main, ["customers", "purchase-check", "ann@example.com", "pay_per_use"])
    assert ok.exit_code == 0 and ok.stdout.strip() == "allowed"
    fired = runner.invoke(main, ["fire", str(acme_budget["id"]), "raise_budget", "--data", '{"budget": "2000"}',
                                 "--as", "acme-admin"])
    assert fired.exit_code == 0 and "active" in fired.stdout


def test_demo_seeds_a_locked_customer_and_a_budget_at_80_percent(runtime):
    from engine.demo import seed

    seed(runtime)
    with runtime.db.read() as conn:
        rows = {r.workflow: r for r in conn.execute(select(Instance.__table__).where(
            Instance.__table__.c.workflow.in_(["customer_preregistration", "reseller_budget"])))}
    assert rows["customer_preregistration"].state == "locked"
    assert rows["customer_preregistration"].business_key == "it@zhonghe-logistics.example"
    assert rows["reseller_budget"].state == "active" and rows["reseller_budget"].data["percent"] == "80.0"
    assert rows["reseller_budget"].data["alerts_sent"] == [75]
