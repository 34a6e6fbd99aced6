"""MDF reimbursement claims (LIFECYCLES section 5; FAQ 4.4.4, 4.4.6, 4.4.8): windows, materials, caps, splitting."""
from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.errors import EventNotAllowed, Forbidden, RuleViolation, ValidationError
from engine.mdf import bars
from tests.helpers import counts

from .test_mdf_application import activity, apply, approved, claim_of, outbox, released, render_all

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 4, 10, 9, tzinfo=SH)  # activity 09:00-17:00 on Friday 2026-04-10


def materials(amount: str = "3000.00", title: str = "Acme Cloud", **over) -> dict:
    base = {
        "amount": amount, "summary": "Forty customers, three opportunities.",
        "invoices": [{"number": "INV-1", "title": title, "total": amount, "date": "2026-04-10", "category": "venue",
                      "file": "inv-1.pdf"}],
        "receipts": [{"file": "receipt-1.pdf", "sealed": True}],
        "activities": [{"activity": 1, "photos": ["hall.jpg"], "attendance_sheet": "attendance.pdf",
                        "opportunities": [{"customer": "Big Retail", "description": "POS cloud migration"}],
                        "customer_feedback": "Useful demos", "reflection": "Book a larger room"}],
    }
    base.update(over)
    return base


def ended(runtime, people, *activities, login: str = "acme-admin") -> tuple[int, dict]:
    """An approved application whose activities have ended: (application id, its open claim)."""
    acts = activities or (activity(START),)
    case = approved(runtime, people, *acts, login=login)
    end = max(datetime.fromisoformat(a["ends_at"]) for a in acts)
    if runtime.now() < end + timedelta(minutes=1):
        runtime.advance_to(end + timedelta(minutes=1))
    return case["id"], claim_of(runtime, case["id"])


def ended_many(runtime, people, *specs) -> list[dict]:
    """Several approved applications (each a (login, activities...) tuple), then time moves past all their ends."""
    cases = [approved(runtime, people, *acts, login=login) for login, *acts in specs]
    end = max(datetime.fromisoformat(a["ends_at"]) for _, *acts in specs for a in acts)
    runtime.advance_to(end + timedelta(minutes=1))
    return [claim_of(runtime, c["id"]) for c in cases]


@pytest.fixture
def acme(runtime, people):
    released(runtime)
    return people


# -- the 90-day window (FAQ 4.4.8) -------------------------------------------------------
def test_claim_opens_when_activity_ends_with_window_at_end_of_day_90(runtime, acme):
    app, claim = ended(runtime, acme)
    assert claim["state"] == "open" and claim["data"]["application"] == app
    assert claim["data"]["window_ends_at"] == "2026-07-09T15:59:59+00:00"  # 2026-07-09 23:59:59 Beijing
    assert {t["name"]: t["due_local"] for t in claim["timers"]} == {
        "remind_claim": "2026-07-02 23:59 Asia/Shanghai", "close_window": "2026-07-10 00:00 Asia/Shanghai"}
    assert outbox(runtime, "mdf_claim/opened")
    before = counts(runtime.db)
    with pytest.raises(Forbidden, match="starting mdf_claim needs role system"):
        runtime.start("mdf_claim", {"application": app}, acme["mona"])
    assert counts(runtime.db) == before


def test_submit_from_open_on_day_90_accepted(runtime, acme):
    _, claim = ended(runtime, acme)
    runtime.advance_to(datetime(2026, 7, 9, 23, 58, tzinfo=SH))
    assert runtime.get(claim["id"])["state"] == "open"
    out = runtime.fire(claim["id"], "submit", acme["acme-dev1"], materials())
    assert out["state"] == "submitted" and out["data"]["claim"]["by"] == "acme-dev1"
    assert [t["role"] for t in out["tasks"]] == ["mdf_owner"]


def test_submit_on_day_91_refused_without_delay_approval(runtime, acme):
    _, claim = ended(runtime, acme)
    runtime.advance_to(datetime(2026, 7, 10, 0, 0, 30, tzinfo=SH))
    view = runtime.get(claim["id"])
    assert view["state"] == "overdue" and [t["title"] for t in view["tasks"]] == [
        "MDF claim window ended without a claim: approve a delay if justified"]
    assert outbox(runtime, "mdf_claim/window_closed")
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        runtime.fire(claim["id"], "submit", acme["acme-admin"], materials())
    assert err.value.rule == "within_claim_window"
    assert err.value.message.startswith(
        "the claim window ended at 2026-07-09 23:59 Asia/Shanghai (90 days after the activity ended on 2026-04-10); "
        "a late claim is refused unless the budget sponsor (mdf_owner) or an authorized approver (admin) approves "
        "the delay")
    assert counts(runtime.db) == before


def test_window_in_berlin_across_dst_change(runtime, acme):
    # NORD in Berlin: the activity ends 2026-09-10 17:00 CEST (UTC+2); day 90 is 2026-12-09, in CET (UTC+1),
    # so the window ends 2026-12-09 23:59:59 CET = 22:59:59 UTC, not 21:59:59 UTC.
    released(runtime, "NORD", "Logistics Cloud")
    runtime.advance_to(datetime(2026, 8, 10, 10, tzinfo=BERLIN))
    start = datetime(2026, 9, 10, 9, tzinfo=BERLIN)
    on_time = approved(runtime, acme, activity(start, place="Messe Berlin"), login="nord-admin")
    late = approved(runtime, acme, activity(start, place="Messe Berlin"), login="nord-admin")
    runtime.advance_to(start + timedelta(hours=8, minutes=1))
    first, second = claim_of(runtime, on_time["id"]), claim_of(runtime, late["id"])
    assert first["data"]["window_ends_at"] == "2026-12-09T22:59:59+00:00"
    assert {t["name"]: t["due_at"] for t in first["timers"]}["close_window"] == "2026-12-09T23:00:00+00:00"
    runtime.advance_to(datetime(2026, 12, 9, 22, 58, tzinfo=UTC))  # 23:58 in Berlin
    out = runtime.fire(first["id"], "submit", acme["nord-admin"], materials(title="Nordlicht GmbH"))
    assert out["state"] == "submitted"
    runtime.advance_to(datetime(2026, 12, 9, 23, 0, 30, tzinfo=UTC))  # 00:00:30 on day 91 in Berlin
    assert runtime.get(second["id"])["state"] == "overdue"
    with pytest.raises(RuleViolation, match="the claim window ended at 2026-12-09 23:59 Europe/Berlin"):
        runtime.fire(second["id"], "submit", acme["nord-admin"], materials(title="Nordlicht GmbH"))


def test_reminder_7_days_before_window_end(runtime, acme):
    _, claim = ended(runtime, acme)
    runtime.advance_to(datetime(2026, 7, 2, 23, 58, tzinfo=SH))
    assert not outbox(runtime, "mdf_claim/window_reminder")
    runtime.advance_to(datetime(2026, 7, 3, 0, 1, tzinfo=SH))
    rows = outbox(runtime, "mdf_claim/window_reminder")
    assert rows and {r.recipient for r in rows} >= {"contact@acme.example"}
    assert runtime.get(claim["id"])["state"] == "open"


def test_reminder_lead_time_is_a_setting(runtime, acme, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_MDF_CLAIM_REMINDER_DAYS", "3")
    _, claim = ended(runtime, acme)
    assert {t["name"]: t["due_local"] for t in claim["timers"]}["remind_claim"] == "2026-07-06 23:59 Asia/Shanghai"


# -- late claims with a delay approval (FAQ 4.4.8) ----------------------------------------------
def test_grant_delay_from_overdue_reopens_until_the_approved_day(runtime, acme):
    _, claim = ended(runtime, acme)
    runtime.advance_to(datetime(2026, 7, 12, 10, tzinfo=SH))
    cid = claim["id"]
    before = counts(runtime.db)
    with pytest.raises(Forbidden, match="needs role admin or mdf_owner"):
        runtime.fire(cid, "grant_delay", acme["acme-admin"], {"until": "2026-07-20"}, comment="please")
    with pytest.raises(ValidationError, match="a comment is required"):
        runtime.fire(cid, "grant_delay", acme["mona"], {"until": "2026-07-20"})
    with pytest.raises(RuleViolation, match="beyond 2026-07-09, its original last day"):
        runtime.fire(cid, "grant_delay", acme["mona"], {"until": "2026-07-09"}, comment="x")
    with pytest.raises(RuleViolation, match="already past"):
        runtime.fire(cid, "grant_delay", acme["mona"], {"until": "2026-07-11"}, comment="x")
    assert counts(runtime.db) == before
    out = runtime.fire(cid, "grant_delay", acme["mona"], {"until": "2026-07-20"}, comment="invoices delayed by the venue")
    assert out["state"] == "open"
    assert out["data"]["delay_approval"] | {"at": None} == {
        "by": "mona", "roles": ["mdf_owner"], "at": None, "until": "2026-07-20", "reason": "invoices delayed by the venue",
        "deadline": "2026-07-20T15:59:59+00:00"}
    assert outbox(runtime, "mdf_claim/delay_granted")
    # the approved day passes unused: overdue again, and the refusal says the delay ended
    runtime.advance_to(datetime(2026, 7, 21, 0, 0, 30, tzinfo=SH))
    assert runtime.get(cid)["state"] == "overdue"
    with pytest.raises(RuleViolation, match="the approved delay for this late claim ended at 2026-07-20 23:59 Asia/Shanghai"):
        runtime.fire(cid, "submit", acme["acme-admin"], materials())
    runtime.fire(cid, "grant_delay", acme["root"], {"until": "2026-07-25"}, comment="authorized by the director")
    assert runtime.fire(cid, "submit", acme["acme-admin"], materials())["state"] == "submitted"


# -- materials (FAQ 4.4.4) -----------------------------------------------------------------------
def _without(m: dict, key: str) -> dict:
    m = copy.deepcopy(m)
    m["activities"][0].pop(key)
    return m


@pytest.mark.parametrize("change,words", [
    (lambda m: _without(m, "photos"), "activity 1 (Customer day): event photos or an alternative proof"),
    (lambda m: _without(m, "attendance_sheet"), "activity 1 (Customer day): an attendance sheet or the reason there is none"),
    (lambda m: _without(m, "opportunities"), "activity 1 (Customer day): the opportunities (end customers attended)"),
    (lambda m: _without(m, "customer_feedback"), "activity 1 (Customer day): customer feedback (end customers attended)"),
    (lambda m: _without(m, "reflection"), "activity 1 (Customer day): a reflection"),
    (lambda m: {**m, "summary": " "}, "an overall summary"),
    (lambda m: {**m, "receipts": []}, "sealed receipts"),
    (lambda m: {**m, "receipts": [{"file": "r.pdf", "sealed": False}]}, "receipt r.pdf: not sealed"),
    (lambda m: {**m, "invoices": []}, "invoice scans"),
    (lambda m: materials(title="Acme Cloud Ltd"), "invoice INV-1: its title 'Acme Cloud Ltd' is not the partner's name 'Acme Cloud'"),
    (lambda m: {**m, "amount": "3000.01"}, "invoices: their total USD 3,000.00 is below the claimed USD 3,000.01"),
    (lambda m: {**m, "activities": []}, "activity 1 (Customer day): no materials"),
    (lambda m: {**m, "invoices": [{**m["invoices"][0], "category": "sponsorship"}]},
     "activity 1 (Customer day): the sponsorship contract (sponsorship was paid)"),
])
def test_submit_with_incomplete_materials_refused_naming_each(runtime, acme, change, words):
    _, claim = ended(runtime, acme)
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        runtime.fire(claim["id"], "submit", acme["acme-admin"], change(materials()))
    assert err.value.message.startswith("claim materials incomplete (FAQ 4.4.4): ")
    assert words in err.value.message
    assert counts(runtime.db) == before


def test_alternatives_accepted_and_nfkc_invoice_title(runtime, acme):
    _, claim = ended(runtime, acme, activity(START, audience="partners", title="Partner day"))
    m = materials(title="Ａｃｍｅ  Cloud")  # full-width letters, two spaces: the same name once folded
    act = m["activities"][0]
    for key in ("photos", "attendance_sheet", "opportunities", "customer_feedback"):
        act.pop(key)
    act.update(alternative_proof="Livestream recording link", no_attendance_reason="walk-in booth, no registration")
    m["invoices"].append({**m["invoices"][0], "number": "INV-2", "total": "0.01"})  # total above the claim is fine
    assert runtime.fire(claim["id"], "submit", acme["acme-admin"], m)["state"] == "submitted"


def test_ads_need_media_proofs_and_several_activities_each_need_materials(runtime, acme):
    acts = [activity(START, type="digital_marketing", title="Search ads"),
            activity(START + timedelta(days=3), type="digital_marketing", title="Social ads")]
    _, claim = ended(runtime, acme, *acts)
    m = materials()
    with pytest.raises(RuleViolation) as err:
        runtime.fire(claim["id"], "submit", acme["acme-admin"], m)
    assert "activity 1 (Search ads): media proofs of the advertisements (digital marketing)" in err.value.message
    assert "activity 2 (Social ads): no materials" in err.value.message
    m["activities"][0]["media_proofs"] = ["search-ads.png"]
    m["activities"].append({**m["activities"][0], "activity": 2})
    assert runtime.fire(claim["id"], "submit", acme["acme-admin"], m)["state"] == "submitted"


# -- return for incomplete materials, 45 days (FAQ 4.4.8) --------------------------------------
def _returned(runtime, acme) -> int:
    _, claim = ended(runtime, acme)
    runtime.advance_to(datetime(2026, 7, 1, 10, tzinfo=SH))
    runtime.fire(claim["id"], "submit", acme["acme-admin"], materials())
    with pytest.raises(ValidationError, match="a comment is required"):
        runtime.fire(claim["id"], "return", acme["mona"], {"missing": ["readable photos"]})
    out = runtime.fire(claim["id"], "return", acme["mona"], {"missing": ["readable photos of the hall"]},
                       comment="photos are blurred")
    assert out["state"] == "returned"
    assert out["data"]["returned"]["deadline"] == "2026-08-15T15:59:59+00:00"  # day 45: 2026-08-15 23:59:59 Beijing
    assert outbox(runtime, "mdf_claim/returned")
    return claim["id"]


def test_complete_from_returned_on_day_44_accepted(runtime, acme):
    cid = _returned(runtime, acme)
    runtime.advance_to(datetime(2026, 8, 14, 10, tzinfo=SH))  # day 44
    out = runtime.fire(cid, "complete", acme["acme-admin"], materials())
    assert out["state"] == "submitted" and out["timers"] == []


def test_returned_claim_closes_after_day_45_and_day_46_refused(runtime, acme):
    cid = _returned(runtime, acme)
    runtime.advance_to(datetime(2026, 8, 15, 23, 58, tzinfo=SH))  # still day 45
    assert runtime.get(cid)["state"] == "returned"
    runtime.advance_to(datetime(2026, 8, 16, 10, tzinfo=SH))  # day 46
    view = runtime.get(cid)
    assert view["state"] == "closed" and view["final"] and view["history"][-1]["actor"] == "system"
    assert outbox(runtime, "mdf_claim/closed")
    with pytest.raises(EventNotAllowed, match="not allowed in state 'closed'"):
        runtime.fire(cid, "complete", acme["acme-admin"], materials())


def test_complete_from_returned_still_checks_materials(runtime, acme):
    cid = _returned(runtime, acme)
    with pytest.raises(RuleViolation, match="receipt r.pdf: not sealed"):
        runtime.fire(cid, "complete", acme["acme-admin"], materials(receipts=[{"file": "r.pdf", "sealed": False}]))


# -- reimbursement capped at the budget (FAQ 4.4.2, 4.4.8), payment, four-eyes ---------------------
def test_approve_from_submitted_caps_reimbursement_excess_is_partner_cost(runtime, acme):
    _, claim = ended(runtime, acme)  # approved budget USD 3,000.00
    runtime.fire(claim["id"], "submit", acme["acme-admin"], materials("3500.00"))
    out = runtime.fire(claim["id"], "approve", acme["mona"])
    assert out["state"] == "approved"
    assert (out["data"]["reimbursed_amount"], out["data"]["partner_cost"]) == ("3000.00", "500.00")
    [task] = out["tasks"]
    assert task["role"] == "finance"
    paid = runtime.fire(claim["id"], "pay", acme["fiona"], {"reference": "MDF-PAY-0001"})
    assert paid["state"] == "paid" and paid["data"]["payment_reference"] == "MDF-PAY-0001"


def test_approve_under_budget_and_with_reviewer_amount(runtime, acme):
    _, first = ended(runtime, acme)
    runtime.fire(first["id"], "submit", acme["acme-admin"], materials("2500.00"))
    out = runtime.fire(first["id"], "approve", acme["mona"])
    assert (out["data"]["reimbursed_amount"], out["data"]["partner_cost"]) == ("2500.00", "0.00")
    _, second = ended(runtime, acme, activity(datetime(2026, 5, 20, 9, tzinfo=SH), place="Hangzhou"))
    runtime.fire(second["id"], "submit", acme["acme-admin"], materials("2800.00"))
    with pytest.raises(RuleViolation, match="USD 2,800.01 is above the claimed USD 2,800.00"):
        runtime.fire(second["id"], "approve", acme["mona"], {"amount": "2800.01"})
    out = runtime.fire(second["id"], "approve", acme["mona"], {"amount": "2000.00"})
    assert (out["data"]["reimbursed_amount"], out["data"]["partner_cost"]) == ("2000.00", "800.00")


def test_claim_submitter_cannot_approve_and_partner_cannot_pay(runtime, acme):
    _, claim = ended(runtime, acme)
    runtime.fire(claim["id"], "submit", acme["root"], materials())
    with pytest.raises(Forbidden, match="four-eyes rule: root"):
        runtime.fire(claim["id"], "approve", acme["root"])
    runtime.fire(claim["id"], "approve", acme["mona"])
    with pytest.raises(Forbidden, match="needs role admin or finance"):
        runtime.fire(claim["id"], "pay", acme["acme-admin"])


# -- order splitting (FAQ 4.4.6) ------------------------------------------------------------------
def test_split_claims_flagged_on_both_reviewer_tasks(runtime, acme):
    a1 = activity(START, title="Retail summit")
    a2 = activity(START + timedelta(hours=2), hours=4, title="Retail summit, afternoon", place="Elsewhere")
    first, second = ended_many(runtime, acme, ("acme-admin", a1), ("acme-admin", a2))
    runtime.fire(first["id"], "submit", acme["acme-admin"], materials("1500.00"))
    m = materials("1500.00")
    m["invoices"][0].update(date="2026-04-20", category="catering", number="INV-9")
    out = runtime.fire(second["id"], "submit", acme["acme-dev1"], m)
    [task] = out["tasks"]
    [flag] = task["flags"]
    assert flag.startswith(f"possible order splitting (FAQ 4.4.6): claim {first['id']} covers the same event "
                           "(customer communication at 'Elsewhere'")
    assert "by another claimant (acme-admin and acme-dev1)" in flag
    assert "split by invoice date (2026-04-20..2026-04-20 and 2026-04-10..2026-04-10)" in flag
    assert "split by expense type (catering and venue)" in flag
    other = runtime.get(first["id"])["tasks"][0]["flags"]
    assert len(other) == 1 and f"claim {second['id']} (ACME) covers the same event" in other[0]
    assert [t["flags"] for t in runtime.open_tasks(acme["mona"]) if t["case"] == second["id"]] == [[flag]]


def test_same_event_claimed_by_another_partner_flagged_unrelated_not(runtime, acme):
    released(runtime, "NORD", "Logistics Cloud")
    ours, theirs, unrelated = ended_many(
        runtime, acme, ("acme-admin", activity(START, place="Shanghai Expo Center")),
        ("nord-admin", activity(START, place="shanghai  expo center")),
        ("acme-admin", activity(START, place="Beijing Hall", type="exhibition")))
    runtime.fire(ours["id"], "submit", acme["acme-admin"], materials())
    out = runtime.fire(theirs["id"], "submit", acme["nord-admin"], materials(title="Nordlicht GmbH"))
    assert "claimed by another partner (ACME)" in out["tasks"][0]["flags"][0]
    clean = runtime.fire(unrelated["id"], "submit", acme["acme-admin"], materials())
    assert clean["tasks"][0]["flags"] == []


def test_confirmed_violation_bars_partner_until_year_end(runtime, acme, db_url, monkeypatch):
    _, claim = ended(runtime, acme)
    runtime.fire(claim["id"], "submit", acme["acme-admin"], materials())
    with pytest.raises(ValidationError, match="a comment is required"):
        runtime.fire(claim["id"], "confirm_violation", acme["mona"])
    out = runtime.fire(claim["id"], "confirm_violation", acme["mona"], comment="same summit claimed twice")
    assert out["state"] == "violation" and out["data"]["violation"]["until_local"] == "2026-12-31 23:59 Asia/Shanghai"
    with runtime.db.read() as conn:
        assert [(b["partner"], b["year"], b["claim"]) for b in bars(conn)] == [("ACME", 2026, claim["id"])]
    from click.testing import CliRunner

    from engine.cli import main

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    shown = CliRunner().invoke(main, ["mdf", "budget", "ACME"]).stdout
    assert "barred from MDF until 2026-12-31T15:59:59+00:00" in shown
    assert "same summit claimed twice" in CliRunner().invoke(main, ["mdf", "bars", "--partner", "ACME"]).stdout
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        apply(runtime, acme, activity(datetime(2026, 11, 20, 9, tzinfo=SH)))
    assert err.value.message == (
        f"partner ACME is barred from MDF until 2026-12-31 23:59 Asia/Shanghai after a confirmed order-splitting "
        f"violation (claim {claim['id']}, FAQ 4.4.6); new MDF applications are refused until then")
    assert counts(runtime.db) == before
    runtime.advance_to(datetime(2026, 12, 31, 23, 58, tzinfo=SH))
    with pytest.raises(RuleViolation, match="barred from MDF"):
        apply(runtime, acme, activity(datetime(2027, 2, 20, 9, tzinfo=SH)))
    runtime.advance_to(datetime(2027, 1, 1, 0, 0, 30, tzinfo=SH))
    assert apply(runtime, acme, activity(datetime(2027, 2, 20, 9, tzinfo=SH)))["state"] == "draft"


def test_bar_also_refuses_submitting_an_earlier_draft(runtime, acme):
    draft = apply(runtime, acme, activity(datetime(2026, 6, 20, 9, tzinfo=SH)))
    _, claim = ended(runtime, acme)
    runtime.fire(claim["id"], "submit", acme["acme-admin"], materials())
    runtime.fire(claim["id"], "confirm_violation", acme["mona"], comment="split by invoice date")
    with pytest.raises(RuleViolation, match="barred from MDF until 2026-12-31"):
        runtime.fire(draft["id"], "submit", acme["acme-admin"])


# -- emails ------------------------------------------------------------------------------------
def test_claim_emails_render_in_both_languages(runtime, acme):
    a, b, c = ended_many(runtime, acme, ("acme-admin", activity(START)),
                         ("acme-admin", activity(datetime(2026, 4, 20, 9, tzinfo=SH), place="B")),
                         ("acme-admin", activity(datetime(2026, 4, 21, 9, tzinfo=SH), place="C", type="exhibition")))
    runtime.fire(a["id"], "submit", acme["acme-admin"], materials("3500.00"))
    runtime.fire(a["id"], "approve", acme["mona"], comment="ok")
    runtime.fire(a["id"], "pay", acme["fiona"])
    runtime.fire(b["id"], "submit", acme["acme-admin"], materials())
    runtime.fire(b["id"], "return", acme["mona"], {"missing": ["photos"]}, comment="<script>x</script>")
    runtime.fire(c["id"], "submit", acme["acme-admin"], materials())
    runtime.fire(c["id"], "reject", acme["mona"], comment="not eligible")
    runtime.advance_to(datetime(2026, 7, 20, 10, tzinfo=SH))  # b closes; reminders and window ends elsewhere
    _, d = ended(runtime, acme, activity(datetime(2026, 8, 20, 9, tzinfo=SH), place="D"))
    runtime.advance_to(datetime(2026, 11, 20, 10, tzinfo=SH))
    runtime.fire(d["id"], "grant_delay", acme["mona"], {"until": "2026-11-30"}, comment="venue invoice late")
    runtime.fire(d["id"], "submit", acme["acme-admin"], materials())
    runtime.fire(d["id"], "confirm_violation", acme["mona"], comment="split")
    templates = {r.template for r in outbox(runtime) if r.template.startswith("mdf_claim/")}
    assert templates >= {f"mdf_claim/{n}" for n in ("opened", "window_reminder", "window_closed", "delay_granted",
                                                       "submitted", "returned", "closed", "approved", "paid",
                                                       "rejected", "violation")}
    assert render_all(runtime) > 20
