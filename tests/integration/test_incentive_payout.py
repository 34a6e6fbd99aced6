"""Incentive payout: methods, invoice and payment deadlines, coupons, quarterly rules, expiry, certifications, taxes."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.errors import EventNotAllowed, RuleViolation
from engine.incentives import add_incentive, payout_amounts, set_withholding_rate
from engine.models import Instance, Outbox, Partner
from tests.helpers import counts

I = Instance.__table__
OB = Outbox.__table__
P = Partner.__table__

#: Notice on Monday 2026-03-02 09:00 Beijing: valid until the end of 2027-03-02 Beijing time.
VALID_UNTIL = datetime(2027, 3, 2, 15, 59, 59, tzinfo=UTC)


ENTITIES = {
    "ACME": {"company_name": "Acme Cloud Services Co., Ltd.", "legal_entity_country": "CN",
             "registration_number": "91310000MA1FL0XX1X", "login": "acme-admin",
             "bank": {"bank_name": "Bank of China", "bank_country": "CN", "bank_account_name": "Acme Cloud Services Co Ltd",
                      "bank_account_number": "6217000012345678", "settlement_currency": "CNY"}},
    "NORD": {"company_name": "Nordlicht Systems GmbH", "legal_entity_country": "DE",
             "registration_number": "HRB 123456", "login": "nord-admin",
             "bank": {"bank_name": "Deutsche Bank", "bank_country": "DE", "bank_account_name": "Nordlicht Systems GmbH",
                      "bank_account_number": "DE89370400440532013000", "settlement_currency": "USD"}},
}


def certify(runtime, people, code: str, vat_percent: str = "6", approve_payment: bool = True) -> None:
    """Take the partner through both certifications of section 1 (business and payment information)."""
    from engine import accounts

    e = ENTITIES[code]
    with runtime.db.write() as conn:
        if accounts.partner_account(conn, conn.execute(select(P.c.id).where(P.c.code == code)).scalar_one()) is None:
            accounts.add_account(conn, {"login_id": f"{code.lower()}-partner", "name": code, "kind": "partner",
                                        "partner": code, "registered_country": e["legal_entity_country"]},
                                 runtime.now())
    entity = {k: e[k] for k in ("company_name", "legal_entity_country")}
    b = runtime.start("business_authentication", {**entity, "registration_number": e["registration_number"]},
                      people[e["login"]])
    p = runtime.start("payment_authentication", {**entity, **e["bank"], "vat_rate_percent": vat_percent},
                      people[e["login"]])
    runtime.drain()  # the automatic reviews run at the next heartbeat
    runtime.fire(b["id"], "approve", people["alice"])
    if runtime.get(p["id"])["state"] == "automatic_review_failed":
        runtime.fire(p["id"], "request_offline_review", people[e["login"]],
                     {"bank_confirmation_letter": "bank-letter.pdf"})
    if approve_payment:
        runtime.fire(p["id"], "approve", people["fiona"])


@pytest.fixture
def taxes(runtime):
    with runtime.db.write() as conn:
        set_withholding_rate(conn, "CN", "0.10", "fiona", runtime.now(), "test rate")
        set_withholding_rate(conn, "DE", "0.15", "fiona", runtime.now())


def start(runtime, people, amount="1000.00", currency="USD", kind="monthly", period="2026-02", partner="ACME", **extra):
    return runtime.start("incentive_payout", {"partner": partner, "kind": kind, "period": period, "amount": amount,
                                              "currency": currency, **extra}, people["fiona"])


def skip_to(runtime, instant):
    """Move the simulated clock over a stretch where nothing is due (no timer, no schedule slot ran yet)."""
    with runtime.db.read() as conn:
        from engine.models import Timer

        T = Timer.__table__
        first = conn.execute(select(T.c.due_at).where(T.c.status == "pending").order_by(T.c.due_at)).first()
    assert first is None or first.due_at > instant
    runtime.clock.set(instant)


def outbox(runtime, template):
    with runtime.db.read() as conn:
        return conn.execute(select(OB).where(OB.c.template == template)).all()


# -- notice and validity ------------------------------------------------------------------------------
def test_start_sends_notice_valid_one_year(runtime, people):
    case = start(runtime, people)
    assert case["state"] == "awaiting_application" and case["data"]["frequency"] == "monthly"
    assert case["data"]["valid_until"] == VALID_UNTIL.isoformat()
    timers = {t["name"]: t["due_at"] for t in case["timers"]}
    assert timers == {"expire": VALID_UNTIL.isoformat(), "remind_expiry": (VALID_UNTIL - timedelta(days=30)).isoformat()}
    assert {m.recipient for m in outbox(runtime, "incentive_payout/notice")} == {
        "contact@acme.example", "acme-admin@example.com"}


def test_earning_applied_for_on_last_day_of_its_year_is_accepted(runtime, people):
    case = start(runtime, people, amount="500.00")
    skip_to(runtime, VALID_UNTIL - timedelta(days=31))
    runtime.advance_to(VALID_UNTIL - timedelta(minutes=1))
    assert outbox(runtime, "incentive_payout/expiry_reminder")
    after = runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "cash_coupon"})
    assert after["state"] == "awaiting_coupons"


def test_earning_one_day_past_its_year_expired(runtime, people):
    case = start(runtime, people, amount="500.00")
    skip_to(runtime, VALID_UNTIL - timedelta(days=31))
    runtime.advance_to(VALID_UNTIL + timedelta(days=1))
    view = runtime.get(case["id"])
    assert view["state"] == "expired"
    assert view["history"][-1]["event"] == "expire" and view["history"][-1]["at"] == VALID_UNTIL.isoformat()
    with pytest.raises(EventNotAllowed, match="'expire' by system"):
        runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "cash_coupon"})
    assert outbox(runtime, "incentive_payout/expired")


def test_second_payout_for_same_earning_refused(runtime, people):
    case = start(runtime, people)
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=f"already has payout case {case['id']}"):
        start(runtime, people)
    assert counts(runtime.db) == before


# -- bank transfer minimum --------------------------------------------------------------------------------
def test_bank_transfer_of_usd_200_00_refused(runtime, people):
    case = start(runtime, people, amount="200.00")
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="bank transfer needs an amount above USD 200.00"):
        runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "bank_transfer"})
    assert counts(runtime.db) == before
    assert runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "top_up"})["state"] == "awaiting_invoice"


def test_bank_transfer_of_usd_200_01_allowed(runtime, people):
    case = start(runtime, people, amount="200.01")
    after = runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "bank_transfer"})
    assert after["state"] == "awaiting_invoice" and after["data"]["method"] == "bank_transfer"


# -- invoice and payment deadlines ---------------------------------------------------------------------------
def test_invoice_due_in_5_working_days_then_overdue_task_for_finance(runtime, people):
    case = start(runtime, people)
    after = runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "bank_transfer"})
    due = datetime(2026, 3, 9, 15, 59, 59, tzinfo=UTC)  # end of Monday 9 March, 5th working day
    assert [(t["name"], t["due_at"]) for t in after["timers"]] == [("invoice_overdue", due.isoformat())]
    runtime.advance_to(due - timedelta(minutes=1))
    assert runtime.get(case["id"])["tasks"] == []
    runtime.advance(timedelta(minutes=2))
    view = runtime.get(case["id"])
    assert view["state"] == "awaiting_invoice"
    assert [(t["role"], t["title"]) for t in view["tasks"]] == [
        ("finance", "Invoice overdue: chase the partner's invoice")]
    assert {m.recipient for m in outbox(runtime, "incentive_payout/invoice_overdue")} >= {"fiona@example.com",
                                                                                           "contact@acme.example"}


def test_payment_due_30_calendar_days_after_invoice_received(runtime, people):
    case = start(runtime, people)
    runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "bank_transfer"})
    runtime.advance(timedelta(days=1))  # Tuesday 3 March 09:00
    after = runtime.fire(case["id"], "receive_invoice", people["fiona"], {"invoice_number": "INV-2026-0042"})
    due = datetime(2026, 4, 2, 15, 59, 59, tzinfo=UTC)  # end of 2 April, 30 days after 3 March, Beijing
    assert after["state"] == "invoice_received"
    assert [(t["name"], t["due_at"]) for t in after["timers"]] == [("payment_overdue", due.isoformat())]
    assert [t["due_at"] for t in after["tasks"]] == [due.isoformat()]
    runtime.advance_to(due - timedelta(minutes=1))
    assert [t["name"] for t in runtime.get(case["id"])["tasks"]] == ["invoice_received:finance"]
    runtime.advance(timedelta(minutes=2))
    view = runtime.get(case["id"])
    assert sorted(t["name"] for t in view["tasks"]) == ["invoice_received:finance", "payment_overdue"]
    assert {m.recipient for m in outbox(runtime, "incentive_payout/payment_overdue")} == {"fiona@example.com"}


def test_return_invoice_asks_for_a_new_one(runtime, people):
    case = start(runtime, people)
    runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "top_up"})
    runtime.fire(case["id"], "receive_invoice", people["acme-admin"], {"invoice_number": "X1"})
    back = runtime.fire(case["id"], "return_invoice", people["fiona"], comment="wrong tax number")
    assert back["state"] == "awaiting_invoice" and back["timers"][0]["name"] == "invoice_overdue"
    assert outbox(runtime, "incentive_payout/invoice_returned")


# -- certifications and taxes ------------------------------------------------------------------------------------
def test_pay_blocked_until_both_certifications_approved(runtime, people, taxes):
    case = start(runtime, people)
    runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "bank_transfer"})
    after = runtime.fire(case["id"], "receive_invoice", people["fiona"], {"invoice_number": "INV-1"})
    assert after["tasks"][0]["flags"] == [
        "payout blocked: solution-partner certification (business information) has not been applied for; "
        "payment-information authentication has not been applied for"]
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="payout blocked: solution-partner certification"):
        runtime.fire(case["id"], "pay", people["fiona"], {"reference": "TRX-1"})
    assert counts(runtime.db) == before
    certify(runtime, people, "ACME", approve_payment=False)
    with pytest.raises(RuleViolation, match=r"payment-information authentication is not approved \(state: under_review\)"):
        runtime.fire(case["id"], "pay", people["fiona"], {"reference": "TRX-1"})
    with runtime.db.read() as conn:
        pa = conn.execute(select(I.c.id).where(I.c.workflow == "payment_authentication")).scalar_one()
    runtime.fire(pa, "approve", people["fiona"])
    paid = runtime.fire(case["id"], "pay", people["fiona"], {"reference": "TRX-1"})
    assert paid["state"] == "paid"
    # 1000.00 + 6 % VAT (60.00) - 10 % CN withholding tax (100.00)
    assert {k: paid["data"][k] for k in ("incentive", "vat", "withholding_tax", "paid")} == {
        "incentive": "1000.00", "vat": "60.00", "withholding_tax": "100.00", "paid": "960.00"}


def test_pay_refused_without_withholding_rate_for_partner_country(runtime, people):
    certify(runtime, people, "NORD", vat_percent="0")
    case = start(runtime, people, partner="NORD", amount="1000.00", currency="EUR")
    runtime.fire(case["id"], "apply", people["nord-admin"], {"method": "cash_coupon"})
    with pytest.raises(RuleViolation, match="no withholding tax rate is recorded for country DE"):
        runtime.fire(case["id"], "issue_coupons", people["fiona"])
    with runtime.db.write() as conn:
        set_withholding_rate(conn, "DE", "0.15", "fiona", runtime.now())
    paid = runtime.fire(case["id"], "issue_coupons", people["fiona"], {"coupon_codes": ["CC-1"]})
    assert paid["data"]["paid"] == "850.00"  # 1000 + 0 % VAT - 15 % DE withholding tax


def test_payout_arithmetic_is_decimal_rounded_half_up():
    result = payout_amounts(Decimal("333.33"), Decimal("0.06"), Decimal("0.10"))
    assert result == {"incentive": "333.33", "vat_rate": "0.06", "vat": "20.00", "withholding_rate": "0.10",
                      "withholding_tax": "33.33", "paid": "320.00"}
    assert payout_amounts(Decimal("0.25"), Decimal("0.06"), Decimal("0"))["vat"] == "0.02"  # 0.015 -> 0.02


# -- cash coupons -------------------------------------------------------------------------------------------------
def test_cash_coupons_need_no_invoice_and_are_due_in_5_working_days(runtime, people, taxes):
    certify(runtime, people, "ACME")
    case = start(runtime, people, amount="150.00")
    after = runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "cash_coupon"})
    due = datetime(2026, 3, 9, 15, 59, 59, tzinfo=UTC)
    assert after["state"] == "awaiting_coupons"
    assert [(t["title"], t["due_at"]) for t in after["tasks"]] == [("Issue the cash coupons", due.isoformat())]
    runtime.advance_to(due + timedelta(minutes=1))
    assert "coupons_overdue" in [t["name"] for t in runtime.get(case["id"])["tasks"]]
    paid = runtime.fire(case["id"], "issue_coupons", people["fiona"], {"coupon_codes": ["CC-9"]})
    assert paid["state"] == "paid" and paid["data"]["paid"] == "144.00"  # 150 + 9 - 15
    with pytest.raises(EventNotAllowed):
        runtime.fire(case["id"], "receive_invoice", people["fiona"], {"invoice_number": "n/a"})


# -- quarterly and reseller-customer ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["bank_transfer", "top_up"])
def test_quarterly_payout_only_as_cash_coupons(runtime, people, method):
    case = start(runtime, people, kind="reseller_customer", period="2026-Q1", amount="12000.00", currency="CNY")
    assert case["data"]["frequency"] == "quarterly"
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=f"quarterly payouts are paid only as cash coupons; {method} is not available"):
        runtime.fire(case["id"], "apply", people["acme-admin"], {"method": method})
    assert counts(runtime.db) == before
    assert runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "cash_coupon"})["state"] == "awaiting_coupons"


def test_reseller_incentive_is_quarterly_only(runtime, people):
    from engine.errors import ValidationError

    with pytest.raises(ValidationError, match="reseller_customer incentives are quarterly"):
        start(runtime, people, kind="reseller_customer", period="2026-02", amount="12000.00", currency="CNY")


def test_reseller_quarter_below_threshold_has_no_incentive(runtime, people):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="below the quarterly threshold of 10000.00"):
        start(runtime, people, kind="reseller_customer", period="2026-Q1", amount="9999.99", currency="CNY")
    assert counts(runtime.db) == before
    assert start(runtime, people, kind="reseller_customer", period="2026-Q1", amount="10000.00",
                 currency="CNY")["state"] == "awaiting_application"


def test_quarter_start_schedule_starts_reseller_payouts_reaching_threshold(runtime, people, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_RESELLER_QUARTER_THRESHOLD", "5000.00")
    with runtime.db.write() as conn:
        for partner, item, amount, cur in (("ACME", "customer A", "3000.00", "CNY"), ("ACME", "customer B", "2000.00", "CNY"),
                                           ("NORD", "customer C", "4999.99", "EUR")):
            add_incentive(conn, partner=partner, kind="reseller_customer", period="2026-Q1", item=item,
                          amount=amount, currency=cur, by="fiona", now=runtime.now())
    runtime.advance_to(datetime(2026, 4, 1, 1, 1, tzinfo=UTC))
    with runtime.db.read() as conn:
        rows = conn.execute(select(I).where(I.c.workflow == "incentive_payout")).all()
    assert [(r.data["kind"], r.data["period"], r.data["amount"], r.data["frequency"]) for r in rows] == [
        ("reseller_customer", "2026-Q1", "5000.00", "quarterly")]


def test_quarter_start_schedule_skips_a_partner_whose_reseller_payout_was_started_by_hand(runtime, people, monkeypatch):
    from engine.models import Schedule

    monkeypatch.setenv("PARTNERFLOW_RESELLER_QUARTER_THRESHOLD", "5000.00")
    with runtime.db.write() as conn:
        for partner, amount, cur in (("ACME", "6000.00", "CNY"), ("NORD", "4999.99", "EUR")):
            add_incentive(conn, partner=partner, kind="reseller_customer", period="2026-Q1", item="customer A",
                          amount=amount, currency=cur, by="fiona", now=runtime.now())
    by_hand = start(runtime, people, kind="reseller_customer", period="2026-Q1", amount="6000.00", currency="CNY")
    runtime.advance_to(datetime(2026, 4, 1, 1, 1, tzinfo=UTC))  # 1 April 09:01 Beijing: quarter start
    with runtime.db.read() as conn:
        rows = conn.execute(select(I.c.id).where(I.c.workflow == "incentive_payout")).all()
        sc = Schedule.__table__
        last = conn.execute(select(sc.c.last_slot, sc.c.last_result)
                            .where(sc.c.name == "reseller_incentive_quarter")).one()
    assert [r.id for r in rows] == [by_hand["id"]]
    assert last.last_slot == datetime(2026, 4, 1, 1, 0, tzinfo=UTC)
    assert last.last_result == "2026-Q1: started -; below threshold NORD; skipped ACME"


# -- templates ----------------------------------------------------------------------------------------------------
def test_payout_templates_render_in_both_languages(runtime, people, taxes):
    from notifications.render import render_message

    certify(runtime, people, "ACME")
    a = start(runtime, people, period="2026-01")
    runtime.fire(a["id"], "apply", people["acme-admin"], {"method": "bank_transfer"})
    runtime.advance(timedelta(days=8))
    runtime.fire(a["id"], "receive_invoice", people["acme-admin"], {"invoice_number": "I-1"})
    runtime.fire(a["id"], "return_invoice", people["fiona"], comment="<script>x</script>")
    runtime.fire(a["id"], "receive_invoice", people["acme-admin"], {"invoice_number": "I-2"})
    runtime.advance(timedelta(days=31))
    runtime.fire(a["id"], "pay", people["fiona"], {"reference": "T"})
    b = start(runtime, people, period="2026-02")
    runtime.fire(b["id"], "apply", people["acme-admin"], {"method": "cash_coupon"})
    runtime.advance(timedelta(days=8))
    runtime.fire(b["id"], "cancel", people["fiona"], comment="duplicate")
    c = start(runtime, people, period="2026-03")
    skip_to(runtime, datetime.fromisoformat(c["data"]["valid_until"]) - timedelta(days=31))
    runtime.advance(timedelta(days=40))
    with runtime.db.read() as conn:
        rows = conn.execute(select(OB).where(OB.c.template.like("incentive_payout/%"))).all()
    assert {r.template.split("/")[1] for r in rows} == {
        "notice", "expiry_reminder", "expired", "invoice_requested", "invoice_overdue", "invoice_received",
        "invoice_returned", "payment_overdue", "coupons_pending", "coupons_overdue", "paid", "cancelled"}
    for row in rows:
        for locale in ("en", "zh"):
            msg = render_message({**row._mapping, "locale": locale})
            assert msg.subject and "case #" in msg.text or "案例 #" in msg.text
            assert "<script>" not in msg.html
