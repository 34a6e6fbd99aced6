"""Service tickets: the five states, messages kept in history, reminders at most once a day, country-change tickets."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import accounts
from engine.errors import EventNotAllowed, Forbidden, RuleViolation, ValidationError
from engine.models import Outbox
from tests.helpers import counts

OB = Outbox.__table__
TICKET = {"title": "Invoice for February is missing", "description": "We cannot find the February bill.",
          "type": "billing"}


def mails(runtime, template):
    with runtime.db.read() as conn:
        return conn.execute(select(OB).where(OB.c.template == template).order_by(OB.c.id)).all()


@pytest.fixture
def submitted(runtime, people):
    case = runtime.start("service_ticket", TICKET, people["acme-dev1"])
    assert case["state"] == "created" and case["data"]["creator"] == "acme-dev1"
    return runtime.fire(case["id"], "submit", people["acme-dev1"])


def test_full_path_created_to_closed(runtime, people, submitted):
    assert submitted["state"] == "pending_processing"
    assert [t["title"] for t in submitted["tasks"]] == ["Take the service ticket"]
    assert {m.recipient for m in mails(runtime, "service_ticket/submitted")} == {"oscar@example.com"}
    taken = runtime.fire(submitted["id"], "take", people["oscar"])
    assert taken["state"] == "processing" and taken["data"]["handler"] == "oscar"
    assert {m.recipient for m in mails(runtime, "service_ticket/taken")} == {"acme-dev1@example.com"}
    with pytest.raises(ValidationError, match="comment"):
        runtime.fire(submitted["id"], "resolve", people["oscar"])
    answered = runtime.fire(submitted["id"], "resolve", people["oscar"], comment="Re-sent to finance@acme.example")
    assert answered["state"] == "pending_confirmation"
    closed = runtime.fire(submitted["id"], "confirm", people["acme-dev1"])
    assert closed["state"] == "closed" and closed["final"] and closed["data"]["closed_how"] == "confirmed"
    assert [h["to"] for h in closed["history"]] == ["created", "pending_processing", "processing",
                                                    "pending_confirmation", "closed"]


def test_only_the_creator_submits_confirms_and_reminds(runtime, people):
    case = runtime.start("service_ticket", TICKET, people["acme-dev1"])
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=r"only the ticket's creator \(acme-dev1\) may submit it"):
        runtime.fire(case["id"], "submit", people["acme-dev2"])
    assert counts(runtime.db) == before
    with pytest.raises(Forbidden):
        runtime.fire(case["id"], "submit", people["oscar"])


def test_leave_message_is_internal_and_kept_in_history(runtime, people, submitted):
    after = runtime.fire(submitted["id"], "leave_message", people["acme-dev1"], comment="It is bill 2026-02-17.")
    assert after["state"] == "pending_processing" and after["version"] == submitted["version"] + 1
    last = after["history"][-1]
    assert (last["event"], last["from"], last["to"], last["comment"]) == (
        "leave_message", "pending_processing", "pending_processing", "It is bill 2026-02-17.")
    assert [t["title"] for t in after["tasks"]] == ["Take the service ticket"]  # tasks kept
    assert {m.recipient for m in mails(runtime, "service_ticket/message_to_operations")} == {"oscar@example.com"}
    runtime.fire(submitted["id"], "leave_message", people["oscar"], comment="Looking into it")
    assert {m.recipient for m in mails(runtime, "service_ticket/message_to_partner")} == {"acme-dev1@example.com"}
    with pytest.raises(ValidationError, match="comment"):
        runtime.fire(submitted["id"], "leave_message", people["acme-dev1"])
    with pytest.raises(RuleViolation, match="only the ticket's creator"):
        runtime.fire(submitted["id"], "leave_message", people["acme-dev2"], comment="me too")


def test_second_reminder_within_a_day_refused_with_next_allowed_time(runtime, people, submitted):
    first = runtime.fire(submitted["id"], "remind", people["acme-dev1"])
    assert "reminded" in [t["name"] for t in first["tasks"]]
    assert {m.recipient for m in mails(runtime, "service_ticket/reminder")} == {"oscar@example.com"}
    runtime.advance(timedelta(hours=23, minutes=59))
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="a reminder was already sent at 2026-03-02 09:00 Asia/Shanghai; "
                                            "the next reminder is allowed from 2026-03-03 09:00 Asia/Shanghai"):
        runtime.fire(submitted["id"], "remind", people["acme-dev1"])
    assert counts(runtime.db) == before
    runtime.advance(timedelta(minutes=1))
    runtime.fire(submitted["id"], "take", people["oscar"])
    again = runtime.fire(submitted["id"], "remind", people["acme-dev1"])
    assert again["data"]["reminders"] == 2


def test_remind_only_while_waiting_for_or_in_processing(runtime, people):
    case = runtime.start("service_ticket", TICKET, people["acme-dev1"])
    with pytest.raises(EventNotAllowed, match="not allowed in state 'created'"):
        runtime.fire(case["id"], "remind", people["acme-dev1"])


def test_reopen_needs_reason_and_auto_close_after_7_days(runtime, people, submitted):
    runtime.fire(submitted["id"], "take", people["oscar"])
    runtime.fire(submitted["id"], "resolve", people["oscar"], comment="done")
    with pytest.raises(ValidationError, match="comment"):
        runtime.fire(submitted["id"], "reopen", people["acme-dev1"])
    back = runtime.fire(submitted["id"], "reopen", people["acme-dev1"], comment="still missing")
    assert back["state"] == "processing"
    assert {m.recipient for m in mails(runtime, "service_ticket/reopened")} == {"oscar@example.com"}
    answered = runtime.fire(submitted["id"], "resolve", people["oscar"], comment="sent again")
    due = answered["timers"][0]["due_at"]
    runtime.advance(timedelta(days=7) - timedelta(minutes=1))
    assert runtime.get(submitted["id"])["state"] == "pending_confirmation"
    runtime.advance(timedelta(minutes=2))
    view = runtime.get(submitted["id"])
    assert view["state"] == "closed" and view["data"]["closed_how"] == "automatically"
    assert view["history"][-1]["at"] == due


def test_cancel_before_taken(runtime, people, submitted):
    closed = runtime.fire(submitted["id"], "cancel", people["acme-dev1"])
    assert closed["state"] == "closed" and closed["data"]["closed_how"] == "cancelled"


# -- registered-country change (FAQ 2.1.10) -----------------------------------------------------------------
def country_change(runtime, people, **fields):
    data = {"type": "registered_country_change", "title": "Change registered country",
            "description": "Our legal entity moved.", **fields}
    return runtime.start("service_ticket", data, people["acme-admin"])


def partner_account(runtime, country, partner="ACME", login_id="acme-partner"):
    with runtime.db.write() as conn:
        return accounts.add_account(conn, {"login_id": login_id, "name": partner.title(), "kind": "partner",
                                           "partner": partner, "registered_country": country}, runtime.now())


def test_country_change_ticket_requires_a_reason(runtime, people):
    partner_account(runtime, "CN")
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        country_change(runtime, people, new_country="SG")
    assert err.value.field == "reason" and "must state its reason" in err.value.reason
    with pytest.raises(ValidationError) as err:
        country_change(runtime, people, new_country="SG", reason="   ")
    assert err.value.field == "reason"
    with pytest.raises(ValidationError) as err:
        country_change(runtime, people, reason="moved to Singapore")
    assert err.value.field == "new_country"
    with pytest.raises(ValidationError, match="already the registered country"):
        country_change(runtime, people, reason="typo", new_country="CN")
    with pytest.raises(ValidationError, match="only for tickets of type registered_country_change"):
        runtime.start("service_ticket", {**TICKET, "new_country": "SG"}, people["acme-admin"])
    assert counts(runtime.db) == before


def test_country_change_ticket_compares_the_accounts_registered_country_not_the_partner_region(runtime, people):
    """ACME's holiday-calendar region is CN, but its account is registered in Singapore (FAQ 2.1.1, 2.1.10)."""
    partner_account(runtime, "SG")
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        country_change(runtime, people, new_country="SG", reason="typo")
    assert err.value.field == "new_country"
    assert err.value.reason == "is already the registered country (SG) of account acme-partner"
    assert counts(runtime.db) == before
    case = country_change(runtime, people, new_country="CN", reason="Legal entity moved back to Shanghai")
    ticket = runtime.fire(case["id"], "submit", people["acme-admin"])
    runtime.fire(ticket["id"], "take", people["oscar"])
    with runtime.db.write() as conn:
        changed = accounts.change_registered_country(conn, "acme-partner", "CN", ticket=ticket["id"], reason=None,
                                                     actor=people["oscar"], now=runtime.now())
    assert changed["registered_country"] == "CN"
    with pytest.raises(ValidationError, match=r"already the registered country \(CN\) of account acme-partner"):
        country_change(runtime, people, new_country="CN", reason="again")


def test_country_change_ticket_refuses_a_country_code_that_does_not_exist(runtime, people):
    """ZZ has the shape of a country code but names no country: refused when the ticket is raised, not later."""
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        country_change(runtime, people, new_country="ZZ", reason="moved")
    assert err.value.field == "new_country"
    assert err.value.reason == "'ZZ' is not an ISO 3166-1 alpha-2 country code (such as CN or DE)"
    assert counts(runtime.db) == before


def test_country_change_ticket_falls_back_to_the_partner_admins_account(runtime, people):
    with runtime.db.write() as conn:
        accounts.add_account(conn, {"login_id": "acme-admin", "name": "Acme Admin", "registered_country": "HK"},
                             runtime.now())
    with pytest.raises(ValidationError, match=r"already the registered country \(HK\) of account acme-admin"):
        country_change(runtime, people, new_country="HK", reason="typo")
    assert country_change(runtime, people, new_country="CN", reason="moved")["state"] == "created"


def test_country_change_ticket_with_reason_is_raised(runtime, people):
    case = country_change(runtime, people, new_country="SG", reason="Legal entity re-registered in Singapore")
    assert case["state"] == "created" and case["business_key"] == "registered_country_change"
    submitted = runtime.fire(case["id"], "submit", people["acme-admin"])
    assert submitted["state"] == "pending_processing"


def test_service_ticket_templates_render(runtime, people, submitted):
    from notifications.render import render_message

    runtime.fire(submitted["id"], "leave_message", people["acme-dev1"], comment="<script>x</script>")
    runtime.fire(submitted["id"], "remind", people["acme-dev1"])
    runtime.fire(submitted["id"], "take", people["oscar"])
    runtime.fire(submitted["id"], "leave_message", people["oscar"], comment="ok")
    runtime.fire(submitted["id"], "resolve", people["oscar"], comment="done")
    runtime.fire(submitted["id"], "reopen", people["acme-dev1"], comment="no")
    runtime.fire(submitted["id"], "resolve", people["oscar"], comment="done again")
    runtime.advance(timedelta(days=8))
    c = country_change(runtime, people, new_country="SG", reason="moved")
    runtime.fire(c["id"], "submit", people["acme-admin"])
    with runtime.db.read() as conn:
        rows = conn.execute(select(OB).where(OB.c.template.like("service_ticket/%"))).all()
    assert {r.template.split("/")[1] for r in rows} == {
        "submitted", "taken", "answered", "reopened", "message_to_operations", "message_to_partner", "reminder",
        "closed"}
    for row in rows:
        for locale in ("en", "zh"):
            msg = render_message({**row._mapping, "locale": locale})
            assert f"#{row.instance_id}" in msg.subject and "<script>" not in msg.html
