"""Registration link for a new partner account (LIFECYCLES section 3, FAQ 5.2.15/16): 24 hours, a different email."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import accounts
from engine.directory import add_user
from engine.errors import EventNotAllowed, Forbidden, NotFound, RuleViolation, ValidationError
from engine.models import Outbox
from tests.helpers import counts

DAY = timedelta(hours=24)
MINUTE = timedelta(minutes=1)
NEW = {"login_id": "qian-cloud", "name": "Qian Cloud Ltd.", "email": "admin@qian-cloud.example",
       "registered_country": "CN"}


@pytest.fixture
def person(runtime, people):
    """qian.li: a person account whose current email is Qian.Li@Mail.example; ben: another person."""
    now = runtime.now()
    with runtime.db.write() as conn:
        for login, email in (("qian.li", "Qian.Li@Mail.example"), ("ben", "ben@mail.example")):
            add_user(conn, {"login": login, "name": login.title(), "email": email, "roles": ["account"]}, now)
            accounts.add_account(conn, {"login_id": login, "name": login.title(), "email": email}, now)
    return people


def verify(runtime, people, login="qian.li", channel="email", contact="Qian.Li@Mail.example"):
    return runtime.start("registration_link", {"channel": channel, "contact": contact}, people[login])


def outbox(runtime, template):
    with runtime.db.read() as conn:
        return sorted(r.recipient for r in conn.execute(select(Outbox.__table__).where(
            Outbox.__table__.c.template == template)))


def test_verified_link_is_valid_24_hours_and_emailed(runtime, person):
    case = verify(runtime, person)
    assert case["state"] == "verified" and case["partner"] is None
    assert case["data"]["current_email"] == "Qian.Li@Mail.example"
    assert [(t["event"], t["due_at"]) for t in case["timers"]] == [("expire", "2026-03-03T01:00:00+00:00")]
    assert outbox(runtime, "registration_link/link") == ["Qian.Li@Mail.example"]


def test_register_one_minute_before_24_hours_creates_partner_account(runtime, person):
    case = verify(runtime, person)
    runtime.advance(DAY - MINUTE)
    done = runtime.fire(case["id"], "register", person["qian.li"], NEW)
    assert done["state"] == "registered" and done["timers"] == []
    with runtime.db.read() as conn:
        acc = accounts.account_by_login(conn, "qian-cloud")
    assert (acc["kind"], acc["email"], acc["registered_country"], acc["registration_case_id"]) == (
        "partner", "admin@qian-cloud.example", "CN", case["id"])
    assert outbox(runtime, "registration_link/registered") == ["Qian.Li@Mail.example", "admin@qian-cloud.example"]


def test_link_expires_one_minute_after_24_hours(runtime, person):
    case = verify(runtime, person)
    runtime.advance(DAY - MINUTE)
    assert runtime.get(case["id"])["state"] == "verified"
    assert outbox(runtime, "registration_link/expired") == []
    runtime.advance(2 * MINUTE)
    view = runtime.get(case["id"])
    assert view["state"] == "expired" and view["history"][-1]["actor"] == "system"
    assert outbox(runtime, "registration_link/expired") == ["Qian.Li@Mail.example"]
    before = counts(runtime.db)
    with pytest.raises(EventNotAllowed, match="not allowed in state 'expired'"):
        runtime.fire(case["id"], "register", person["qian.li"], NEW)
    assert counts(runtime.db) == before


def test_register_at_expiry_instant_is_refused_even_before_the_timer_ran(runtime, person):
    case = verify(runtime, person)
    runtime.clock.set(runtime.now() + DAY)  # time moved, no sweep yet
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="the registration link expired on 2026-03-03 09:00 Asia/Shanghai"):
        runtime.fire(case["id"], "register", person["qian.li"], NEW)
    assert counts(runtime.db) == before


@pytest.mark.parametrize("email", ["Qian.Li@Mail.example", "qian.li@mail.example", "  QIAN.LI@MAIL.EXAMPLE "])
def test_new_email_equal_to_current_is_refused(runtime, person, email):
    case = verify(runtime, person)
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        runtime.fire(case["id"], "register", person["qian.li"], {**NEW, "email": email})
    assert err.value.field == "email"
    assert err.value.message == ("email: the new account must use an email address different from the current one "
                                 "(Qian.Li@Mail.example) (FAQ 5.2.16)")
    assert counts(runtime.db) == before


def test_taken_login_id_and_bad_country_are_refused(runtime, person):
    case = verify(runtime, person)
    before = counts(runtime.db)
    with pytest.raises(ValidationError, match="login_id: login ID 'BEN' is already taken \\(as 'ben'; login IDs ignore case\\)"):
        runtime.fire(case["id"], "register", person["qian.li"], {**NEW, "login_id": "BEN"})
    with pytest.raises(ValidationError, match="registered_country: 'XX' is not an ISO 3166-1 alpha-2 country code"):
        runtime.fire(case["id"], "register", person["qian.li"], {**NEW, "registered_country": "XX"})
    assert counts(runtime.db) == before


def test_only_the_person_who_verified_may_register(runtime, person):
    case = verify(runtime, person)
    # another person cannot even see someone else's registration link
    with pytest.raises(NotFound, match=f"case {case['id']} not found"):
        runtime.fire(case["id"], "register", person["ben"], NEW)
    with pytest.raises(Forbidden, match="needs role account or customer or partner_admin or partner_member; alice has"):
        runtime.fire(case["id"], "register", person["alice"], NEW)


def test_sms_verification_sends_link_to_current_email(runtime, person):
    case = verify(runtime, person, channel="sms", contact="+86 138 0013 8000")
    assert case["data"]["link_email"] == "Qian.Li@Mail.example"
    with pytest.raises(ValidationError, match="contact: must be the verified mobile number when the channel is sms"):
        verify(runtime, person, channel="sms", contact="qian@mail.example")
    with pytest.raises(ValidationError, match="contact: 'abc' is not an email address or phone number"):
        verify(runtime, person, channel="sms", contact="abc")


def test_new_verification_supersedes_the_previous_link(runtime, person):
    first = verify(runtime, person)
    runtime.advance(timedelta(hours=3))
    second = verify(runtime, person)
    assert runtime.get(first["id"])["state"] == "superseded"
    assert second["data"]["expires_at"] == "2026-03-03T04:00:00+00:00"
    runtime.advance(DAY - timedelta(hours=3) + MINUTE)  # the first link's 24 hours have passed
    assert runtime.get(second["id"])["state"] == "verified"
    assert runtime.fire(second["id"], "register", person["qian.li"], NEW)["state"] == "registered"


def test_every_registration_email_renders_in_both_languages(runtime, person):
    from notifications import render
    from workflows.registration_link import WORKFLOW

    runtime.fire(verify(runtime, person)["id"], "register", person["qian.li"], NEW)
    verify(runtime, person, login="ben", contact="ben@mail.example")
    runtime.advance(DAY + MINUTE)
    with runtime.db.read() as conn:
        rows = conn.execute(select(Outbox.__table__).where(Outbox.__table__.c.template.like("registration_link/%"))).all()
    seen = set()
    for row in rows:
        for locale in ("en", "zh"):
            msg = render.render_message({**row._mapping, "locale": locale})
            assert msg.subject and msg.text
            seen.add(row.template)
    assert seen == {n.template for n in WORKFLOW.notifications}


def test_validity_is_a_setting(runtime, person, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_REGISTRATION_LINK_VALID_HOURS", "48")
    case = verify(runtime, person)
    runtime.advance(DAY + MINUTE)
    assert runtime.get(case["id"])["state"] == "verified"
    runtime.advance(DAY)
    assert runtime.get(case["id"])["state"] == "expired"


def test_transition_table_is_exactly_these_edges():
    from workflows.registration_link import WORKFLOW

    assert {(s, t.event, t.dest or s) for t in WORKFLOW.transitions for s in t.sources} == {
        ("verified", "register", "registered"), ("verified", "expire", "expired"),
        ("verified", "supersede", "superseded")}


def test_link_email_arrives_over_smtp_with_its_deadline(runtime, person, smtp_server):
    from notifications.dispatcher import Dispatcher

    case = verify(runtime, person)
    assert Dispatcher(runtime).dispatch().sent == 1
    [got] = smtp_server.to("Qian.Li@Mail.example")
    assert got.message["Subject"] == "Your partner registration link (valid until 2026-03-03 09:00 Asia/Shanghai)"
    text = got.text()
    assert "by 2026-03-03 09:00 Asia/Shanghai (24 hours)" in text
    assert "different from your current one (Qian.Li@Mail.example)" in text
    assert f"http://127.0.0.1:8000/cases/{case['id']}" in text
