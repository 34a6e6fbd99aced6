"""MDF applications (LIFECYCLES section 5; FAQ 4.4.1-4.4.7): every rule at its boundary, moved by the simulated clock."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.errors import EventNotAllowed, Forbidden, RuleViolation, ValidationError
from engine.mdf import ACTIVITY_TYPES, NON_REIMBURSABLE, add_solution, set_solution_status
from engine.models import Instance, Outbox
from tests.helpers import counts

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


# -- helpers shared with test_mdf_claim.py and test_mdf_freeze.py --------------
def released(runtime, code: str = "ACME", name: str = "Retail Cloud") -> None:
    with runtime.db.write() as conn:
        add_solution(conn, code, name, runtime.now(), released=True)


def activity(start: datetime, hours: int = 8, amount: str = "3000.00", **over) -> dict:
    base = {"title": "Customer day", "type": "customer_communication", "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=hours)).isoformat(), "place": "Shanghai Expo Center",
            "audience": "end_customers", "form": "offline", "approving_department": "Ecosystem Marketing East",
            "expenses": [{"description": "Venue", "category": "venue", "amount": amount}]}
    base.update(over)
    return base


def apply(runtime, people, *activities, login: str = "acme-admin", **extra) -> dict:
    data = {"title": "Smart retail day", "activities": list(activities), **extra}
    return runtime.start("mdf_application", data, people[login])


def approved(runtime, people, *activities, login: str = "acme-admin") -> dict:
    case = apply(runtime, people, *activities, login=login)
    runtime.fire(case["id"], "submit", people[login])
    return runtime.fire(case["id"], "approve", people["mona"], comment="budget available")


def claim_of(runtime, application_id: int) -> dict:
    with runtime.db.read() as conn:
        row = conn.execute(select(Instance.__table__.c.id).where(
            Instance.__table__.c.workflow == "mdf_claim",
            Instance.__table__.c.business_key == f"application:{application_id}")).first()
    assert row is not None, "no claim was opened"
    return runtime.get(row.id)


def outbox(runtime, template: str | None = None) -> list:
    with runtime.db.read() as conn:
        query = select(Outbox.__table__).order_by(Outbox.__table__.c.id)
        if template:
            query = query.where(Outbox.__table__.c.template == template)
        return conn.execute(query).all()


def render_all(runtime) -> int:
    """Render every queued email in both languages with StrictUndefined (fails on any unknown variable)."""
    from notifications.render import render_message

    rows = outbox(runtime)
    for row in rows:
        for locale in ("en", "zh"):
            msg = render_message({**dict(row._mapping), "locale": locale})
            assert msg.subject and msg.text and "<p>" in msg.html
    return len(rows)


@pytest.fixture
def acme(runtime, people):
    released(runtime)
    return people


# -- activity types, fields, expense rules (FAQ 4.4.2, 4.4.3, 4.4.5) -------------
def test_twelve_activity_types_and_unknown_type_refused(runtime, acme):
    assert len(ACTIVITY_TYPES) == 12
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    for kind in ACTIVITY_TYPES:
        assert apply(runtime, acme, activity(start, type=kind))["state"] == "draft"
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        apply(runtime, acme, activity(start, type="golf_day"))
    assert err.value.field == "activities[0].type" and "customer_cxo_visit" in err.value.reason
    assert counts(runtime.db) == before


@pytest.mark.parametrize("field", ["starts_at", "place", "audience", "form", "expenses"])
def test_time_place_audience_form_and_expenses_are_required(runtime, acme, field):
    act = activity(datetime(2026, 4, 10, 9, tzinfo=SH))
    act.pop(field)
    with pytest.raises(ValidationError, match=f"activities\\[0\\].{field}: is required"):
        apply(runtime, acme, act)


@pytest.mark.parametrize("category", sorted(NON_REIMBURSABLE))
def test_non_reimbursable_category_refused_by_name(runtime, acme, category):
    act = activity(datetime(2026, 4, 10, 9, tzinfo=SH))
    act["expenses"].append({"description": "x", "category": category, "amount": "10.00"})
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        apply(runtime, acme, act)
    assert err.value.field == "activities[0].expenses[1].category"
    assert "never reimbursable" in err.value.reason and NON_REIMBURSABLE[category] in err.value.reason
    assert counts(runtime.db) == before


def test_gift_of_cny_200_00_per_unit_accepted_200_01_refused(runtime, acme):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)

    def gift(unit, units=10, heads=None):
        item = {"description": "Branded notebooks", "category": "marketing_gifts", "amount": "300.00",
                "unit_value_cny": unit, "units": units}
        if heads:
            item["heads"] = heads
        return activity(start, expenses=[item])

    assert apply(runtime, acme, gift("200.00"))["state"] == "draft"
    with pytest.raises(RuleViolation, match=r"CNY 200.01 per unit is above the limit of CNY 200.00 per unit and per head"):
        apply(runtime, acme, gift("200.01"))
    # per head: 4 gifts of CNY 100 shared by 2 people = CNY 200 per head; 3 gifts of CNY 150 for 2 = CNY 225
    assert apply(runtime, acme, gift("100.00", units=4, heads=2))["state"] == "draft"
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=r"CNY 225.00 per head \(3 x CNY 150.00 for 2 people\)"):
        apply(runtime, acme, gift("150.00", units=3, heads=2))
    with pytest.raises(ValidationError, match="unit_value_cny: a marketing gift must state its value per unit in CNY"):
        apply(runtime, acme, activity(start, expenses=[{"description": "Mugs", "category": "marketing_gifts",
                                                          "amount": "50.00"}]))
    assert counts(runtime.db) == before


def test_money_as_float_refused(runtime, acme):
    act = activity(datetime(2026, 4, 10, 9, tzinfo=SH))
    act["expenses"][0]["amount"] = 3000.5
    with pytest.raises(ValidationError, match="never a float"):
        apply(runtime, acme, act)


# -- released solution (FAQ 4.4.1) -----------------------------------------------
def test_only_partner_with_released_solution_may_apply(runtime, people):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="partner ACME has no released solution"):
        apply(runtime, people, activity(start))
    assert counts(runtime.db) == before
    with runtime.db.write() as conn:
        add_solution(conn, "ACME", "Retail Cloud", runtime.now())  # a draft is not enough
    with pytest.raises(RuleViolation, match="no released solution"):
        apply(runtime, people, activity(start))
    with runtime.db.write() as conn:
        set_solution_status(conn, "ACME", "Retail Cloud", "released", runtime.now())
        add_solution(conn, "ACME", "IoT Edge", runtime.now())
    with pytest.raises(RuleViolation, match="solution 'IoT Edge' of partner ACME is not released; released solutions: Retail Cloud"):
        apply(runtime, people, activity(start), solution="IoT Edge")
    case = apply(runtime, people, activity(start), solution="Retail Cloud")
    with runtime.db.write() as conn:  # withdrawn before submission: submission refused
        set_solution_status(conn, "ACME", "Retail Cloud", "withdrawn", runtime.now())
    with pytest.raises(RuleViolation, match="no released solution"):
        runtime.fire(case["id"], "submit", people["acme-admin"])


# -- 10 working days before the activity (FAQ 4.4.2) -------------------------------
def test_submit_from_draft_10_working_days_before_across_national_day_accepted(runtime, acme):
    # Activity Friday 2026-10-16 09:00 Beijing. Counting back 10 working days from the day before it:
    # Oct 15, 14, 13, 12, Sat Oct 10 (adjusted working day), 9, 8, [Oct 1-7 National Day], Sep 30, 29, 28.
    runtime.advance_to(datetime(2026, 9, 28, 10, 0, tzinfo=SH))
    case = apply(runtime, acme, activity(datetime(2026, 10, 16, 9, tzinfo=SH)))
    runtime.advance_to(datetime(2026, 9, 28, 23, 59, tzinfo=SH))  # the whole last day counts
    assert runtime.fire(case["id"], "submit", acme["acme-admin"])["state"] == "submitted"


def test_submit_from_draft_9_working_days_before_across_national_day_refused(runtime, acme):
    runtime.advance_to(datetime(2026, 9, 28, 10, 0, tzinfo=SH))
    case = apply(runtime, acme, activity(datetime(2026, 10, 16, 9, tzinfo=SH)))
    runtime.advance_to(datetime(2026, 9, 29, 0, 0, 30, tzinfo=SH))
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        runtime.fire(case["id"], "submit", acme["acme-admin"])
    assert err.value.rule == "submitted_10_working_days_before"
    assert ("at least 10 working days before the activity starts (FAQ 4.4.2): the activity starts on 2026-10-16 "
            "(Asia/Shanghai); the last day to submit was 2026-09-28; today, 2026-09-29, is only 9 working day(s)"
            ) in err.value.message
    assert counts(runtime.db) == before
    assert runtime.get(case["id"])["state"] == "draft"


def test_working_days_counted_in_partner_region_germany(runtime, acme):
    # NORD (Germany): activity Thursday 2026-10-15 10:00 Berlin; Oct 3 (German Unity Day) is a Saturday,
    # China's National Day does not apply: the 10th working day before is Thursday Oct 1.
    released(runtime, "NORD", "Logistics Cloud")
    runtime.advance_to(datetime(2026, 10, 1, 12, 0, tzinfo=BERLIN))
    ok = apply(runtime, acme, activity(datetime(2026, 10, 15, 10, tzinfo=BERLIN)), login="nord-admin")
    assert runtime.fire(ok["id"], "submit", acme["nord-admin"])["state"] == "submitted"
    late = apply(runtime, acme, activity(datetime(2026, 10, 14, 10, tzinfo=BERLIN)), login="nord-admin")
    with pytest.raises(RuleViolation, match="last day to submit was 2026-09-30.*region DE"):
        runtime.fire(late["id"], "submit", acme["nord-admin"])


def test_submit_after_activity_started_refused(runtime, acme):
    case = apply(runtime, acme, activity(datetime(2026, 3, 2, 8, tzinfo=SH)))  # started an hour ago
    with pytest.raises(RuleViolation, match="the activity already started at 2026-03-02 08:00 Asia/Shanghai"):
        runtime.fire(case["id"], "submit", acme["acme-admin"])


# -- yearly cap (FAQ 4.4.1) ---------------------------------------------------------
def test_cap_reached_exactly_accepted_then_one_cent_more_refused(runtime, acme):
    # ACME: Cloud Solution Provider / Advanced: USD 15,000 a year; pending amounts count too
    start = datetime(2026, 5, 12, 9, tzinfo=SH)
    first = apply(runtime, acme, activity(start, amount="10000.00"))
    runtime.fire(first["id"], "submit", acme["acme-admin"])  # pending
    second = apply(runtime, acme, activity(start, amount="5000.00"))
    assert runtime.fire(second["id"], "submit", acme["acme-dev1"])["state"] == "submitted"
    third = apply(runtime, acme, activity(start, amount="0.01"))
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        runtime.fire(third["id"], "submit", acme["acme-admin"])
    assert err.value.message == (
        "MDF yearly cap exceeded (FAQ 4.4.1): partner ACME (Cloud Solution Provider / Advanced) may use at most "
        "USD 15,000.00 for activities in 2026; USD 15,000.00 is already approved or pending, so USD 0.00 remains, "
        "and this application asks for USD 0.01")
    assert counts(runtime.db) == before


def test_cap_exceeded_by_one_cent_refused_stating_remaining(runtime, acme):
    start = datetime(2026, 5, 12, 9, tzinfo=SH)
    approved(runtime, acme, activity(start, amount="10000.00"))
    over = apply(runtime, acme, activity(start, amount="5000.01"))
    with pytest.raises(RuleViolation, match=r"USD 10,000.00 is already approved or pending, so USD 5,000.00 remains, "
                                            r"and this application asks for USD 5,000.01"):
        runtime.fire(over["id"], "submit", acme["acme-admin"])
    # drafts, rejected, withdrawn and other years do not count
    other_year = apply(runtime, acme, activity(datetime(2027, 1, 20, 9, tzinfo=SH), amount="15000.00"))
    assert runtime.fire(other_year["id"], "submit", acme["acme-admin"])["state"] == "submitted"
    rejected = apply(runtime, acme, activity(start, amount="5000.00"))
    runtime.fire(rejected["id"], "submit", acme["acme-admin"])
    runtime.fire(rejected["id"], "reject", acme["mona"], comment="no budget line")
    assert runtime.fire(over["id"], "edit", acme["acme-admin"], {
        "title": "Smart retail day", "activities": [activity(start, amount="5000.00")]})["data"]["total"] == "5000.00"
    assert runtime.fire(over["id"], "submit", acme["acme-admin"])["state"] == "submitted"


@pytest.mark.parametrize("program,tier,cap", [
    ("Distribution", "Standard", "50000.00"), ("Cloud Solution Provider", "Standard", "5000.00"),
    ("Cloud Solution Provider", "Advanced", "15000.00"), ("Cloud Solution Provider", "Premier", "30000.00"),
    ("Cloud Solution Provider", "Core", "50000.00")])
def test_cap_per_program_and_tier(runtime, acme, program, tier, cap):
    from engine.directory import update_partner

    with runtime.db.write() as conn:
        update_partner(conn, "ACME", {"program": program, "tier": tier})
    start = datetime(2026, 5, 12, 9, tzinfo=SH)
    exact = apply(runtime, acme, activity(start, amount=cap))
    assert runtime.fire(exact["id"], "submit", acme["acme-admin"])["state"] == "submitted"
    more = apply(runtime, acme, activity(start, amount="0.01"))
    with pytest.raises(RuleViolation, match=f"{program} / {tier}.*so USD 0.00 remains"):
        runtime.fire(more["id"], "submit", acme["acme-admin"])


def test_program_without_mdf_budget_refused(runtime, acme):
    from engine.directory import update_partner

    with runtime.db.write() as conn:
        update_partner(conn, "ACME", {"program": "Service"})
    case = apply(runtime, acme, activity(datetime(2026, 5, 12, 9, tzinfo=SH)))
    with pytest.raises(RuleViolation, match="has no MDF budget"):
        runtime.fire(case["id"], "submit", acme["acme-admin"])


# -- several activities of one quarter (FAQ 4.4.7) -----------------------------------
def test_several_activities_of_one_quarter_alike_accepted(runtime, acme):
    case = apply(runtime, acme, activity(datetime(2026, 4, 10, 9, tzinfo=SH)),
                 activity(datetime(2026, 6, 30, 9, tzinfo=SH), hours=14, place="Hangzhou", form="hybrid"))
    assert case["data"]["quarter"] == "2026-Q2" and case["data"]["total"] == "6000.00"
    assert case["data"]["last_end"] == "2026-06-30T15:00:00+00:00"
    assert runtime.fire(case["id"], "submit", acme["acme-admin"])["state"] == "submitted"


@pytest.mark.parametrize("field,value,words", [
    ("audience", "partners", "activity 2 differs in audience ('partners', activity 1 has 'end_customers')"),
    ("type", "exhibition", "activity 2 differs in type ('exhibition', activity 1 has 'customer_communication')"),
    ("approving_department", "Channel Sales North",
     "activity 2 differs in approving department ('Channel Sales North', activity 1 has 'Ecosystem Marketing East')"),
])
def test_several_activities_differing_refused_naming_difference(runtime, acme, field, value, words):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        apply(runtime, acme, activity(datetime(2026, 4, 10, 9, tzinfo=SH)),
              activity(datetime(2026, 5, 10, 9, tzinfo=SH), **{field: value}))
    assert "same audience, type and approving department (FAQ 4.4.7)" in err.value.message
    assert words in err.value.message
    assert counts(runtime.db) == before


def test_activities_of_two_quarters_refused(runtime, acme):
    with pytest.raises(RuleViolation, match=r"activity 2 starts in 2026-Q3, activity 1 starts in 2026-Q2"):
        apply(runtime, acme, activity(datetime(2026, 6, 30, 9, tzinfo=SH)), activity(datetime(2026, 7, 1, 9, tzinfo=SH)))
    # the quarter is the partner's local one: 2026-07-01 01:00 Beijing is still June 30 in UTC
    with pytest.raises(RuleViolation, match=r"activity 1 ends in 2026-Q3"):
        apply(runtime, acme, activity(datetime(2026, 6, 30, 20, tzinfo=SH), hours=5))


def test_activity_ending_before_it_starts_refused(runtime, acme):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    with pytest.raises(ValidationError, match=r"activities\[0\].ends_at: activity 1 must end after it starts"):
        apply(runtime, acme, activity(start, ends_at=start.isoformat()))


# -- approval before the activity, timers (FAQ 4.4.2) -----------------------------------
def test_approve_from_submitted_arms_start_and_end_timers_and_opens_claim(runtime, acme):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    case = approved(runtime, acme, activity(start, hours=8))
    assert case["state"] == "approved" and case["data"]["approved_by"] == "mona"
    assert [t["does"] for t in case["timers"]] == ["start_activity -> activity_running on 2026-04-10 09:00 Asia/Shanghai"]
    runtime.advance_to(start - timedelta(minutes=1))
    assert runtime.get(case["id"])["state"] == "approved"
    runtime.advance_to(start + timedelta(minutes=1))
    assert runtime.get(case["id"])["state"] == "activity_running"
    runtime.advance_to(start + timedelta(hours=8) - timedelta(minutes=1))
    assert runtime.get(case["id"])["state"] == "activity_running"
    runtime.advance_to(start + timedelta(hours=8, minutes=1))
    view = runtime.get(case["id"])
    assert view["state"] == "activity_ended" and view["final"]
    claim = claim_of(runtime, case["id"])
    assert claim["state"] == "open" and claim["partner"] == "ACME"
    assert claim["data"]["approved_budget"] == "3000.00" and claim["history"][0]["actor"] == "system"


def test_submitted_not_approved_before_activity_expires(runtime, acme):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    case = apply(runtime, acme, activity(start))
    runtime.fire(case["id"], "submit", acme["acme-admin"])
    runtime.advance_to(start - timedelta(minutes=1))
    assert runtime.get(case["id"])["state"] == "submitted"
    runtime.advance_to(start + timedelta(minutes=1))
    assert runtime.get(case["id"])["state"] == "expired"
    with pytest.raises(EventNotAllowed):
        runtime.fire(case["id"], "approve", acme["mona"])
    assert outbox(runtime, "mdf_application/expired")


def test_reject_from_submitted_needs_comment(runtime, acme):
    case = apply(runtime, acme, activity(datetime(2026, 4, 10, 9, tzinfo=SH)))
    runtime.fire(case["id"], "submit", acme["acme-admin"])
    with pytest.raises(ValidationError, match="a comment is required to reject"):
        runtime.fire(case["id"], "reject", acme["mona"])
    assert runtime.fire(case["id"], "reject", acme["mona"], comment="not a marketing activity")["state"] == "rejected"
    assert "contact@acme.example" in {r.recipient for r in outbox(runtime, "mdf_application/rejected")}


# -- four-eyes -------------------------------------------------------------------------
def test_submitter_cannot_approve_four_eyes(runtime, acme):
    case = apply(runtime, acme, activity(datetime(2026, 4, 10, 9, tzinfo=SH)), login="root", partner="ACME")
    runtime.fire(case["id"], "submit", acme["root"])
    before = counts(runtime.db)
    with pytest.raises(Forbidden, match="four-eyes rule: root submitted or edited case"):
        runtime.fire(case["id"], "approve", acme["root"])
    with pytest.raises(Forbidden, match="four-eyes"):
        runtime.fire(case["id"], "reject", acme["root"], comment="mine")
    assert counts(runtime.db) == before
    assert runtime.fire(case["id"], "approve", acme["mona"])["state"] == "approved"


def test_last_editor_cannot_reapprove_change(runtime, acme):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    case = approved(runtime, acme, activity(start))
    runtime.fire(case["id"], "change", acme["root"], {"changes": [{"activity": 1, "place": "Hangzhou"}]})
    with pytest.raises(Forbidden, match="four-eyes"):
        runtime.fire(case["id"], "approve", acme["root"])
    assert runtime.fire(case["id"], "approve", acme["mona"])["state"] == "approved"


# -- changes after approval (FAQ 4.4.2) ----------------------------------------------
def test_change_from_approved_goes_back_for_approval_with_new_task(runtime, acme):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    case = approved(runtime, acme, activity(start))
    new_start = datetime(2026, 4, 17, 9, tzinfo=SH)
    changed = runtime.fire(case["id"], "change", acme["acme-dev1"], {"changes": [
        {"activity": 1, "starts_at": new_start.isoformat(), "ends_at": (new_start + timedelta(hours=8)).isoformat(),
         "form": "hybrid"}]})
    assert changed["state"] == "pending_reapproval"
    [task] = changed["tasks"]
    assert task["role"] == "mdf_owner" and task["title"].startswith("Re-approve the MDF application")
    assert "activity 1: form offline -> hybrid" in task["flags"]
    assert task["due_local"] == "2026-04-17 09:00 Asia/Shanghai"
    assert changed["data"]["activities"][0]["form"] == "hybrid" and outbox(runtime, "mdf_application/changed")
    # the old start passes: nothing starts, because the approval is pending again
    runtime.advance_to(start + timedelta(hours=1))
    assert runtime.get(case["id"])["state"] == "pending_reapproval"
    again = runtime.fire(case["id"], "approve", acme["mona"])
    assert again["state"] == "approved" and again["timers"][0]["due_local"] == "2026-04-17 09:00 Asia/Shanghai"


@pytest.mark.parametrize("change", [{"place": "Suzhou"}, {"audience": "mixed"}, {"form": "online"}])
def test_change_of_place_audience_or_form_needs_reapproval(runtime, acme, change):
    case = approved(runtime, acme, activity(datetime(2026, 4, 10, 9, tzinfo=SH)))
    out = runtime.fire(case["id"], "change", acme["acme-admin"], {"changes": [{"activity": 1, **change}]})
    assert out["state"] == "pending_reapproval"


def test_change_not_reapproved_before_activity_expires(runtime, acme):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    case = approved(runtime, acme, activity(start))
    runtime.fire(case["id"], "change", acme["acme-admin"], {"changes": [{"activity": 1, "place": "Suzhou"}]})
    runtime.advance_to(start + timedelta(minutes=1))
    assert runtime.get(case["id"])["state"] == "expired"


def test_change_altering_nothing_or_after_start_refused(runtime, acme):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    case = approved(runtime, acme, activity(start))
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="alters no time, place, audience or form"):
        runtime.fire(case["id"], "change", acme["acme-admin"], {"changes": [{"activity": 1, "place": "Shanghai Expo Center"}]})
    with pytest.raises(ValidationError, match="activity 2 does not exist"):
        runtime.fire(case["id"], "change", acme["acme-admin"], {"changes": [{"activity": 2, "place": "X"}]})
    with pytest.raises(ValidationError, match="unknown field"):
        runtime.fire(case["id"], "change", acme["acme-admin"], {"changes": [{"activity": 1, "expenses": []}]})
    assert counts(runtime.db) == before
    runtime.advance_to(start + timedelta(minutes=1))
    with pytest.raises(EventNotAllowed):
        runtime.fire(case["id"], "change", acme["acme-admin"], {"changes": [{"activity": 1, "place": "X"}]})


# -- emails, CLI -------------------------------------------------------------------------
def test_emails_of_the_application_render_in_both_languages(runtime, acme):
    start = datetime(2026, 4, 10, 9, tzinfo=SH)
    case = approved(runtime, acme, activity(start))
    runtime.fire(case["id"], "change", acme["acme-admin"], {"changes": [{"activity": 1, "place": "<b>Suzhou</b>"}]})
    runtime.fire(case["id"], "reject", acme["mona"], comment="venue too small")
    other = apply(runtime, acme, activity(start))
    runtime.fire(other["id"], "submit", acme["acme-admin"])
    runtime.advance_to(start + timedelta(minutes=1))
    templates = {r.template for r in outbox(runtime)}
    assert {"mdf_application/submitted", "mdf_application/approved", "mdf_application/changed",
            "mdf_application/rejected", "mdf_application/expired"} <= templates
    assert render_all(runtime) >= 6
    from notifications.render import render_message

    [row] = [r for r in outbox(runtime, "mdf_application/changed")][:1]
    msg = render_message(dict(row._mapping))
    assert "&lt;b&gt;Suzhou&lt;/b&gt;" in msg.html and "re-approve before 2026-04-10 09:00" in msg.subject


def test_cli_solutions_then_start_and_submit(db_url, monkeypatch, people):
    from engine.cli import main

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    run = CliRunner()
    data = json.dumps({"title": "Day", "activities": [activity(datetime(2026, 4, 10, 9, tzinfo=SH))]})
    refused = run.invoke(main, ["start", "mdf_application", "--data", data, "--as", "acme-admin"])
    assert refused.exit_code == 1 and "no released solution" in refused.stderr
    out = run.invoke(main, ["solutions", "add", "--partner", "ACME", "--name", "Retail Cloud"])
    assert out.exit_code == 0 and "(draft)" in out.stdout
    out = run.invoke(main, ["solutions", "release", "--partner", "ACME", "--name", "Retail Cloud"])
    assert out.exit_code == 0 and "is released" in out.stdout
    listed = json.loads(run.invoke(main, ["solutions", "list", "--json"]).stdout)
    assert [(s["partner"], s["status"]) for s in listed] == [("ACME", "released")]
    started = json.loads(run.invoke(main, ["start", "mdf_application", "--data", data, "--as", "acme-admin",
                                           "--json"]).stdout)
    out = run.invoke(main, ["fire", str(started["id"]), "submit", "--as", "acme-admin"])
    assert out.exit_code == 0 and "submitted" in out.stdout
    out = run.invoke(main, ["fire", str(started["id"]), "approve", "--as", "acme-admin"])
    assert out.exit_code == 1 and "needs role" in out.stderr


def test_demo_seeds_application_waiting_and_claim_near_its_end(runtime):
    from engine.demo import seed

    seed(runtime)
    with runtime.db.read() as conn:
        rows = conn.execute(select(Instance.__table__).where(
            Instance.__table__.c.workflow.in_(("mdf_application", "mdf_claim")))).all()
    states = {(r.workflow, r.state) for r in rows}
    assert ("mdf_application", "submitted") in states and ("mdf_claim", "open") in states
    claim = next(r for r in rows if r.workflow == "mdf_claim")
    ends = datetime.fromisoformat(claim.data["window_ends_at"])
    assert timedelta(days=4) < ends - runtime.now() < timedelta(days=7)


def test_cli_mdf_budget_shows_cap_used_and_remaining(db_url, monkeypatch, runtime, acme):
    from engine.cli import main

    start = datetime(2026, 5, 12, 9, tzinfo=SH)
    pending = apply(runtime, acme, activity(start, amount="10000.00"))
    runtime.fire(pending["id"], "submit", acme["acme-admin"])
    approved(runtime, acme, activity(start, amount="2000.00"))
    apply(runtime, acme, activity(start, amount="999.00"))  # a draft does not count
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    out = CliRunner().invoke(main, ["mdf", "budget", "ACME", "--json"])
    assert out.exit_code == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["cap"], info["approved"], info["pending"], info["remaining"]) == (
        "15000.00", "2000.00", "10000.00", "3000.00")
    assert info["released_solutions"] == ["Retail Cloud"] and info["barred_until"] is None
    text = CliRunner().invoke(main, ["mdf", "budget", "ACME", "--year", "2027"]).stdout
    assert "MDF 2027: cap USD 15000.00, approved USD 0.00, pending USD 0.00, remaining USD 15000.00" in text
    assert CliRunner().invoke(main, ["mdf", "bars"]).stdout.strip() == "no bars"
