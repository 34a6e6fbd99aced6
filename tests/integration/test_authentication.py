"""Business- and payment-information authentication (LIFECYCLES section 1, FAQ 2.1) on a real database."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine import accounts
from engine.cli import main
from engine.directory import partner_by_code
from engine.errors import EventNotAllowed, Forbidden, RuleViolation, ValidationError
from engine.models import Outbox
from tests.helpers import counts
from workflows.payment_authentication import apply_together, may_be_paid, payout_with_vat, vat_rate

BUSINESS = {"company_name": "Acme Cloud Services Co., Ltd.", "legal_entity_country": "CN",
            "registration_number": "91310000MA1FL0XX1X"}
PAYMENT = {"company_name": "Acme Cloud Services Co., Ltd.", "legal_entity_country": "CN",
           "bank_name": "Bank of China", "bank_country": "CN", "bank_account_name": "Acme Cloud Services Co Ltd",
           "bank_account_number": "6217000012345678", "settlement_currency": "CNY", "vat_rate_percent": "6"}


@pytest.fixture
def acme(runtime, people):
    """ACME's partner account is registered in China, NORD's in Germany."""
    with runtime.db.write() as conn:
        accounts.add_account(conn, {"login_id": "acme-partner", "name": "Acme Cloud", "kind": "partner",
                                    "partner": "ACME", "registered_country": "CN"}, runtime.now())
        accounts.add_account(conn, {"login_id": "nord-partner", "name": "Nordlicht", "kind": "partner",
                                    "partner": "NORD", "registered_country": "DE"}, runtime.now())
    with runtime.db.read() as conn:
        return partner_by_code(conn, "ACME")["id"]


def start(runtime, people, workflow, data, who="acme-admin"):
    case = runtime.start(workflow, data, people[who])
    runtime.drain()  # the automatic review runs at the next heartbeat
    return runtime.get(case["id"])


def paid(runtime, pid):
    with runtime.db.read() as conn:
        return may_be_paid(conn, pid), vat_rate(conn, pid)


def outbox(runtime, template):
    with runtime.db.read() as conn:
        return sorted(r.recipient for r in conn.execute(select(Outbox.__table__).where(
            Outbox.__table__.c.template == template)))


def approve_both(runtime, people):
    b = start(runtime, people, "business_authentication", BUSINESS)
    p = start(runtime, people, "payment_authentication", PAYMENT)
    runtime.fire(b["id"], "approve", people["alice"])
    runtime.fire(p["id"], "approve", people["fiona"])
    return b, p


# -- allowed paths -------------------------------------------------------------------
def test_apply_apart_then_approve_both_may_be_paid_with_vat(runtime, people, acme):
    assert paid(runtime, acme) == ("solution-partner certification (business information) has not been applied for; "
                                   "payment-information authentication has not been applied for", None)
    b = start(runtime, people, "business_authentication", BUSINESS)
    assert b["state"] == "under_review"
    assert [h["event"] for h in b["history"]] == ["start", "review_automatically"]
    p = start(runtime, people, "payment_authentication", PAYMENT)
    assert p["state"] == "under_review" and p["data"]["automatic_review"] == "passed"
    assert paid(runtime, acme)[0] == (
        "solution-partner certification (business information) is not approved (state: under_review); "
        "payment-information authentication is not approved (state: under_review)")
    runtime.fire(b["id"], "approve", people["alice"])
    assert paid(runtime, acme)[0] == "payment-information authentication is not approved (state: under_review)"
    runtime.fire(p["id"], "approve", people["fiona"])
    reason, rate = paid(runtime, acme)
    assert reason is None and rate == Decimal("0.06")
    assert payout_with_vat(Decimal("1000.00"), rate) == Decimal("1060.00")
    assert outbox(runtime, "payment_authentication/approved") == ["acme-admin@example.com", "contact@acme.example"]


def test_apply_together_starts_both_cases(runtime, people, acme):
    b, p = apply_together(runtime, people["acme-admin"], BUSINESS, PAYMENT)
    runtime.drain()
    assert (runtime.get(b["id"])["state"], runtime.get(p["id"])["state"]) == ("under_review", "under_review")


def test_apply_together_with_bad_payment_saves_neither(runtime, people, acme):
    before = counts(runtime.db)
    with pytest.raises(ValidationError, match="vat_rate_percent: '7' is not an allowed VAT rate"):
        apply_together(runtime, people["acme-admin"], BUSINESS, {**PAYMENT, "vat_rate_percent": "7"})
    assert counts(runtime.db) == before


def test_vat_rate_with_percent_sign_is_recorded_as_a_rate(runtime, people, acme):
    p = start(runtime, people, "payment_authentication", {**PAYMENT, "vat_rate_percent": "13%"})
    assert p["data"]["vat_rate_percent"] == "13"
    runtime.fire(p["id"], "approve", people["fiona"])
    assert paid(runtime, acme)[1] == Decimal("0.13")


# -- submission checks ------------------------------------------------------------------
def test_start_refused_when_registered_country_differs_from_legal_entity(runtime, people, acme):
    before = counts(runtime.db)
    for wf, data in (("business_authentication", BUSINESS), ("payment_authentication", PAYMENT)):
        with pytest.raises(RuleViolation) as err:
            runtime.start(wf, {**data, "legal_entity_country": "DE"}, people["acme-admin"])
        assert err.value.message.startswith(
            "the account's registered country, China (CN) (account acme-partner), differs from the legal entity's "
            "registered country, Germany (DE) (FAQ 2.1.1)")
    assert counts(runtime.db) == before


def test_start_refused_when_company_name_is_neither_chinese_nor_english(runtime, people, acme):
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        runtime.start("business_authentication", {**BUSINESS, "company_name": "Société Générale"}, people["acme-admin"])
    assert err.value.field == "company_name"
    assert "contains 'é' (U+00E9), which is neither Chinese nor English" in err.value.message
    with pytest.raises(ValidationError, match="company_name: contains 'П'"):
        runtime.start("payment_authentication", {**PAYMENT, "company_name": "Почта"}, people["acme-admin"])
    assert counts(runtime.db) == before


def test_chinese_company_name_accepted_with_english_brand(runtime, people, acme):
    b = start(runtime, people, "business_authentication", {**BUSINESS, "company_name": "北京ABC云科技有限公司（上海分公司）"})
    assert b["state"] == "under_review"


def test_chinese_name_with_usd_needs_english_bank_account_name(runtime, people, acme):
    chinese = {**PAYMENT, "company_name": "艾克米云服务有限公司", "bank_account_name": "艾克米云服务有限公司"}
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        runtime.start("payment_authentication", {**chinese, "settlement_currency": "USD"}, people["acme-admin"])
    assert err.value.field == "bank_account_name"
    assert "must be in English when the company name is Chinese and the settlement currency is USD" in err.value.message
    assert counts(runtime.db) == before
    # CNY settlement: a Chinese account name is fine
    assert start(runtime, people, "payment_authentication", {**chinese, "settlement_currency": "CNY"})["state"] == "under_review"


def test_chinese_name_with_usd_and_english_account_name_accepted(runtime, people, acme):
    p = start(runtime, people, "payment_authentication",
              {**PAYMENT, "company_name": "艾克米云服务有限公司", "settlement_currency": "USD"})
    assert p["state"] == "under_review"


def test_only_partner_admin_applies_and_only_once(runtime, people, acme):
    with pytest.raises(Forbidden, match="needs role partner_admin; acme-dev1 has partner_member"):
        runtime.start("payment_authentication", PAYMENT, people["acme-dev1"])
    p = start(runtime, people, "payment_authentication", PAYMENT)
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=f"already has a payment-information authentication \\(case {p['id']}, "
                                            "state under_review\\); edit that case instead"):
        runtime.start("payment_authentication", PAYMENT, people["acme-admin"])
    assert counts(runtime.db) == before


def test_partner_without_account_on_record_is_refused(runtime, people):
    with pytest.raises(ValidationError, match="partner ACME has no account on record"):
        runtime.start("business_authentication", BUSINESS, people["acme-admin"])


# -- review ---------------------------------------------------------------------------
def test_fail_needs_reason_then_edit_resubmits(runtime, people, acme):
    p = start(runtime, people, "payment_authentication", PAYMENT)
    with pytest.raises(ValidationError, match="a comment is required to fail"):
        runtime.fire(p["id"], "fail", people["fiona"])
    with pytest.raises(Forbidden, match="needs role admin or finance"):
        runtime.fire(p["id"], "approve", people["acme-admin"])
    failed = runtime.fire(p["id"], "fail", people["fiona"], comment="account number does not match the bank's records")
    assert failed["state"] == "failed" and failed["data"]["failure_reason"].startswith("account number")
    assert outbox(runtime, "payment_authentication/failed") == ["acme-admin@example.com", "contact@acme.example"]
    runtime.fire(p["id"], "edit", people["acme-admin"], {"bank_account_number": "6217000099998888"})
    runtime.drain()
    again = runtime.get(p["id"])
    assert again["state"] == "under_review" and again["data"]["failure_reason"] is None
    assert again["data"]["bank_account_number"] == "6217000099998888"


def test_business_fail_then_edit_and_approve(runtime, people, acme):
    b = start(runtime, people, "business_authentication", BUSINESS)
    runtime.fire(b["id"], "fail", people["alice"], comment="registration number unreadable")
    assert outbox(runtime, "business_authentication/failed") == ["acme-admin@example.com", "contact@acme.example"]
    runtime.fire(b["id"], "edit", people["acme-admin"], {"registration_number": "91310000MA1FL0XX2Y"})
    runtime.drain()
    assert runtime.fire(b["id"], "approve", people["bob"])["state"] == "approved"


def test_edit_that_changes_nothing_is_refused(runtime, people, acme):
    p = start(runtime, people, "payment_authentication", PAYMENT)
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="the edit changes nothing"):
        runtime.fire(p["id"], "edit", people["acme-admin"], {"bank_name": "Bank of China"})
    assert counts(runtime.db) == before


def test_unsupported_bank_country_fails_automatic_review_then_offline_review_approves(runtime, people, acme):
    p = start(runtime, people, "payment_authentication", {**PAYMENT, "bank_country": "KP"})
    assert p["state"] == "automatic_review_failed"
    assert "North Korea" in p["data"]["automatic_review"] or "Korea" in p["data"]["automatic_review"]
    assert outbox(runtime, "payment_authentication/automatic_review_failed") == [
        "acme-admin@example.com", "contact@acme.example"]
    with pytest.raises(EventNotAllowed):
        runtime.fire(p["id"], "approve", people["fiona"])
    before = counts(runtime.db)
    with pytest.raises(ValidationError, match="bank_confirmation_letter: the uploaded letter's file name"):
        runtime.fire(p["id"], "request_offline_review", people["acme-admin"], {"bank_confirmation_letter": "letter.exe"})
    with pytest.raises(ValidationError, match="bank_confirmation_letter: is required"):
        runtime.fire(p["id"], "request_offline_review", people["acme-admin"], {})
    assert counts(runtime.db) == before
    off = runtime.fire(p["id"], "request_offline_review", people["acme-admin"],
                       {"bank_confirmation_letter": "bank-letter-2026.pdf"})
    assert off["state"] == "offline_review"
    assert [t["title"] for t in off["tasks"]] == ["Offline review: check the bank confirmation letter"]
    assert outbox(runtime, "payment_authentication/offline_review") == ["fiona@example.com"]
    assert runtime.fire(p["id"], "approve", people["fiona"])["state"] == "approved"


def test_supported_bank_countries_are_a_setting(runtime, people, acme, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_SUPPORTED_BANK_COUNTRIES", "CN,KP")
    assert start(runtime, people, "payment_authentication", {**PAYMENT, "bank_country": "KP"})["state"] == "under_review"


# -- waiting for procurement, 14-day escalation ---------------------------------------------
def finance_tasks(runtime, case_id):
    return [t["title"] for t in runtime.get(case_id)["tasks"] if t["role"] == "finance"]


def test_procurement_supplier_waits_and_escalates_after_exactly_14_days(runtime, people, acme):
    with runtime.db.write() as conn:
        accounts.add_supplier(conn, "ACME", "SUP-100234", runtime.now())
    p = start(runtime, people, "payment_authentication", PAYMENT)
    assert p["state"] == "waiting_for_procurement"
    assert [(t["role"], t["title"]) for t in p["tasks"]] == [
        ("procurement", "Add the supplier's data in the procurement system")]
    assert outbox(runtime, "payment_authentication/waiting_for_procurement") == [
        "acme-admin@example.com", "contact@acme.example", "paul@example.com"]
    runtime.advance(timedelta(days=14) - timedelta(minutes=1))
    assert finance_tasks(runtime, p["id"]) == []
    assert outbox(runtime, "payment_authentication/procurement_escalation") == []
    runtime.advance(timedelta(minutes=2))
    assert finance_tasks(runtime, p["id"]) == [
        "Escalation: payment authentication is still waiting for procurement"]
    assert outbox(runtime, "payment_authentication/procurement_escalation") == ["fiona@example.com", "paul@example.com"]
    assert runtime.get(p["id"])["state"] == "waiting_for_procurement"
    with pytest.raises(Forbidden, match="needs role admin or procurement"):
        runtime.fire(p["id"], "add_procurement_data", people["fiona"])
    done = runtime.fire(p["id"], "add_procurement_data", people["paul"])
    assert done["state"] == "under_review"
    assert [t["title"] for t in done["tasks"]] == ["Review the partner's bank and tax data"]


# -- bank data edited after approval blocks payouts -------------------------------------------
def test_bank_edit_after_approval_blocks_payouts_until_reapproved(runtime, people, acme):
    b, p = approve_both(runtime, people)
    assert paid(runtime, acme) == (None, Decimal("0.06"))
    runtime.advance(timedelta(days=1))
    runtime.fire(p["id"], "edit", people["acme-admin"], {"bank_account_number": "6217000055554444",
                                                         "vat_rate_percent": "9"})
    runtime.drain()
    reason, rate = paid(runtime, acme)
    assert reason == ("bank data edited on 2026-03-03 09:00 Asia/Shanghai; payouts blocked until the new data is "
                      "approved")
    assert rate == Decimal("0.06")  # the approved rate stays until the new data is approved
    assert outbox(runtime, "payment_authentication/payouts_blocked") == [
        "acme-admin@example.com", "contact@acme.example", "fiona@example.com"]
    runtime.fire(p["id"], "fail", people["fiona"], comment="IBAN check failed")
    assert paid(runtime, acme)[0].startswith("bank data edited on 2026-03-03 09:00 Asia/Shanghai")
    runtime.fire(p["id"], "edit", people["acme-admin"], {"bank_account_number": "6217000055553333"})
    runtime.drain()
    runtime.fire(p["id"], "approve", people["fiona"])
    assert paid(runtime, acme) == (None, Decimal("0.09"))


def test_editing_approved_business_information_blocks_payouts_until_reapproved(runtime, people, acme):
    b, p = approve_both(runtime, people)
    runtime.fire(b["id"], "edit", people["acme-admin"], {"address": "88 Century Avenue, Shanghai"})
    runtime.drain()
    assert paid(runtime, acme)[0] == ("solution-partner certification (business information) is not approved "
                                      "(state: under_review)")
    runtime.fire(b["id"], "approve", people["alice"])
    assert paid(runtime, acme)[0] is None


# -- registered country (FAQ 2.1.10) ---------------------------------------------------------------
def test_registered_country_cannot_be_edited_in_the_case(runtime, people, acme):
    p = start(runtime, people, "payment_authentication", PAYMENT)
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="the registered country cannot be changed by editing \\(FAQ 2.1.10\\): "
                                            "open a service ticket of type registered_country_change stating the reason"):
        runtime.fire(p["id"], "edit", people["acme-admin"], {"registered_country": "DE"})
    with pytest.raises(RuleViolation, match="differs from the legal entity's registered country, Germany"):
        runtime.fire(p["id"], "edit", people["acme-admin"], {"legal_entity_country": "DE"})
    assert counts(runtime.db) == before


def country_ticket(runtime, people, country="DE", who="acme-admin", take=True):
    """A registered_country_change service ticket, submitted and (by default) taken by operations."""
    t = runtime.start("service_ticket", {"type": "registered_country_change", "title": "Registered country",
                                         "description": "Our headquarters moved.", "reason": "headquarters moved",
                                         "new_country": country}, people[who])
    runtime.fire(t["id"], "submit", people[who])
    if take:
        runtime.fire(t["id"], "take", people["oscar"])
    return t["id"]


def change_country(runtime, people, ticket, country="DE", who="oscar", reason=None, login="acme-partner"):
    with runtime.db.write() as conn:
        return accounts.change_registered_country(conn, login, country, ticket=ticket, reason=reason,
                                                  actor=people[who], now=runtime.now())


def test_registered_country_changes_only_through_a_service_ticket(runtime, people, acme):
    ticket = country_ticket(runtime, people)
    general = runtime.start("service_ticket", {"title": "Question", "description": "Hello"}, people["acme-admin"])["id"]
    nord = country_ticket(runtime, people, who="nord-admin", country="FR")
    before = counts(runtime.db)
    for who, ref, country, error, message in (
        ("acme-admin", ticket, "DE", Forbidden, "changing a registered country needs an operator working a service "
                                                "ticket; acme-admin has partner_admin"),
        ("oscar", "", "DE", ValidationError, "ticket: the registered country can be changed only through a service "
                                             "ticket (FAQ 2.1.10): give the ticket number"),
        ("oscar", "T-1", "DE", ValidationError, "ticket: 'T-1' is not a service ticket number"),
        ("oscar", 9999, "DE", ValidationError, "ticket: no service ticket #9999"),
        ("oscar", general, "DE", ValidationError, f"ticket: service ticket #{general} is of type 'general', not "
                                                  "'registered_country_change'"),
        ("oscar", ticket, "FR", ValidationError, f"country: service ticket #{ticket} asks for Germany (DE), not "
                                                 "France (FR)"),
        ("oscar", nord, "FR", ValidationError, f"ticket: service ticket #{nord} was raised by another partner"),
    ):
        with pytest.raises(error) as err:
            change_country(runtime, people, ref, country=country, who=who)
        assert err.value.message.startswith(message), err.value.message
    assert counts(runtime.db) == before
    changed = change_country(runtime, people, f"#{ticket}")
    assert changed["registered_country"] == "DE"
    with runtime.db.read() as conn:
        assert [(c["old_country"], c["new_country"], c["ticket"], c["reason"], c["changed_by"])
                for c in accounts.country_changes(conn, "acme-partner")] == [
            ("CN", "DE", f"#{ticket}", "headquarters moved", "oscar")]
    assert start(runtime, people, "business_authentication",
                 {**BUSINESS, "legal_entity_country": "DE"})["state"] == "under_review"


def test_country_change_refused_before_the_ticket_is_submitted(runtime, people, acme):
    draft = runtime.start("service_ticket", {"type": "registered_country_change", "title": "Country",
                                             "description": "moved", "reason": "moved", "new_country": "DE"},
                          people["acme-admin"])["id"]
    with pytest.raises(ValidationError, match=f"ticket: service ticket #{draft} is created; the change is made while "
                                              "the ticket is submitted and being processed"):
        change_country(runtime, people, draft)


def test_automatic_review_fails_when_country_changed_between_submission_and_review(runtime, people, acme):
    ticket = country_ticket(runtime, people)
    case = runtime.start("business_authentication", BUSINESS, people["acme-admin"])
    change_country(runtime, people, ticket, who="root")
    runtime.drain()
    view = runtime.get(case["id"])
    assert view["state"] == "failed"
    assert view["data"]["failure_reason"].startswith("automatic review: the account's registered country, Germany (DE)")


# -- command line ------------------------------------------------------------------------------
@pytest.fixture
def cli(db_url, monkeypatch, people, acme):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    return run


def test_cli_apply_together_and_status(cli, tmp_path):
    (tmp_path / "b.json").write_text(json.dumps(BUSINESS))
    out = cli("authentication", "apply", "--business", f"@{tmp_path / 'b.json'}", "--payment", json.dumps(PAYMENT),
              "--as", "acme-admin").stdout
    assert "business_authentication: under_review" in out and "payment_authentication: under_review" in out
    status = json.loads(cli("authentication", "status", "ACME", "--json").stdout)
    assert status["may_be_paid"] is False and "not approved (state: under_review)" in status["reason"]
    assert "may not be paid" in cli("authentication", "status", "ACME").stdout


def test_cli_change_country_refused_without_ticket(cli, runtime, people):
    result = cli("accounts", "change-country", "acme-partner", "--country", "DE", "--reason", "moved", "--as", "oscar",
                 ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ticket: the registered country can be changed only through a service ticket")
    ticket = country_ticket(runtime, people)
    out = cli("accounts", "change-country", "acme-partner", "--country", "DE", "--ticket", str(ticket),
              "--as", "oscar").stdout
    assert "registered country now Germany (DE)" in out
    assert f"country CN -> DE by oscar (ticket #{ticket}: headquarters moved)" in cli("accounts", "show",
                                                                                    "acme-partner").stdout


def test_cli_suppliers_add_sends_review_to_procurement(cli, runtime, people):
    assert "procurement supplier SUP-7" in cli("suppliers", "add", "--partner", "ACME", "--number", "SUP-7").stdout
    assert start(runtime, people, "payment_authentication", PAYMENT)["state"] == "waiting_for_procurement"


# -- emails render in both languages --------------------------------------------------------------
def test_every_authentication_email_renders_in_both_languages(runtime, people, acme):
    from notifications import render

    with runtime.db.write() as conn:
        accounts.add_supplier(conn, "NORD", "SUP-1", runtime.now())
    b, p = approve_both(runtime, people)
    b2 = start(runtime, people, "business_authentication", {**BUSINESS, "legal_entity_country": "DE",
                                                               "company_name": "Nordlicht GmbH"}, "nord-admin")
    runtime.fire(b2["id"], "fail", people["alice"], comment="<b>unreadable</b>")
    runtime.fire(p["id"], "edit", people["acme-admin"], {"bank_country": "KP"})
    runtime.drain()
    runtime.fire(p["id"], "request_offline_review", people["acme-admin"], {"bank_confirmation_letter": "l.pdf"})
    runtime.fire(p["id"], "fail", people["fiona"], comment="letter not stamped")
    n = start(runtime, people, "payment_authentication", {**PAYMENT, "legal_entity_country": "DE"}, "nord-admin")
    runtime.advance(timedelta(days=15))
    assert n["state"] == "waiting_for_procurement"
    with runtime.db.read() as conn:
        rows = conn.execute(select(Outbox.__table__).where(Outbox.__table__.c.template.like("%_authentication/%"))).all()
    seen = set()
    for row in rows:
        for locale in ("en", "zh"):
            msg = render.render_message({**row._mapping, "locale": locale})
            assert msg.subject and msg.text and "<b>unreadable" not in msg.html
            seen.add(row.template)
    from workflows import business_authentication, payment_authentication
    declared = {n.template for wf in (business_authentication.WORKFLOW, payment_authentication.WORKFLOW)
                for n in wf.notifications}
    assert seen == declared


def test_escalation_period_is_a_setting(runtime, people, acme, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_PROCUREMENT_ESCALATION_DAYS", "21")
    with runtime.db.write() as conn:
        accounts.add_supplier(conn, "ACME", "SUP-9", runtime.now())
    p = start(runtime, people, "payment_authentication", PAYMENT)
    runtime.advance(timedelta(days=14, minutes=1))
    assert finance_tasks(runtime, p["id"]) == []
    runtime.advance(timedelta(days=7))
    assert finance_tasks(runtime, p["id"]) == ["Escalation: payment authentication is still waiting for procurement"]


def test_transition_tables_are_exactly_these_edges():
    from workflows import business_authentication as b, payment_authentication as p

    def edges(wf):
        return {(s, t.event, t.dest or s) for t in wf.transitions for s in t.sources}

    assert edges(b.WORKFLOW) == {
        ("submitted", "review_automatically", "failed"), ("submitted", "review_automatically", "under_review"),
        ("under_review", "approve", "approved"), ("under_review", "fail", "failed"),
        ("under_review", "edit", "submitted"), ("approved", "edit", "submitted"), ("failed", "edit", "submitted")}
    assert edges(p.WORKFLOW) == {
        ("submitted", "review_automatically", "automatic_review_failed"),
        ("submitted", "review_automatically", "waiting_for_procurement"),
        ("submitted", "review_automatically", "under_review"),
        ("automatic_review_failed", "request_offline_review", "offline_review"),
        ("waiting_for_procurement", "escalate", "waiting_for_procurement"),
        ("waiting_for_procurement", "add_procurement_data", "under_review"),
        ("under_review", "approve", "approved"), ("offline_review", "approve", "approved"),
        ("under_review", "fail", "failed"), ("offline_review", "fail", "failed"),
        *{(s, "edit", "submitted") for s in ("automatic_review_failed", "offline_review", "waiting_for_procurement",
                                              "under_review", "approved", "failed")}}


def test_payouts_blocked_email_arrives_over_smtp(runtime, people, acme, smtp_server):
    from notifications.dispatcher import Dispatcher

    b, p = approve_both(runtime, people)
    Dispatcher(runtime).dispatch()
    smtp_server.clear()
    runtime.fire(p["id"], "edit", people["acme-admin"], {"bank_name": "China Merchants Bank"})
    Dispatcher(runtime).dispatch()
    [got] = smtp_server.to("fiona@example.com")
    assert got.message["Subject"] == "Bank data of ACME edited: payouts blocked until the new data is approved"
    assert "Payouts to the partner are blocked from this moment until the new data is approved" in got.text()
    assert {r.rcpt_tos[0] for r in smtp_server.received} == {"fiona@example.com", "acme-admin@example.com",
                                                             "contact@acme.example"}
