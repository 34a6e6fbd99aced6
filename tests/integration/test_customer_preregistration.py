"""Customer pre-registration: the 15-day subject lock on a normalised email (FAQ 5.3.6), on a real database."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import locks
from engine.customers import add_customer, get_customer, lock_key, normalise_email, update_customer
from engine.directory import add_user
from engine.errors import Forbidden, LockHeld, RuleViolation, ValidationError
from engine.models import Outbox
from tests.conftest import START
from tests.helpers import counts

LOCK_END = START + timedelta(days=15)  # 2026-03-17 09:00 Beijing = 02:00 Berlin


def add_account(runtime, email: str, country: str = "CN", login: str | None = None, **attrs) -> dict:
    """A customer account (and its customer user when `login` is given)."""
    now = runtime.now()
    with runtime.db.write() as conn:
        if login:
            add_user(conn, {"login": login, "name": login.title(), "email": normalise_email(email),
                            "roles": ["customer"]}, now)
        return add_customer(conn, {"email": email, "name": email.split("@")[0].title(), "country": country,
                                   "login": login, **attrs}, now)


def set_account(runtime, email: str, **changes) -> dict:
    with runtime.db.write() as conn:
        return update_customer(conn, email, changes, runtime.now())


def account(runtime, email: str) -> dict:
    with runtime.db.read() as conn:
        return get_customer(conn, email)


def outbox(runtime, template: str | None = None) -> list:
    with runtime.db.read() as conn:
        query = select(Outbox.__table__).order_by(Outbox.__table__.c.id)
        if template:
            query = query.where(Outbox.__table__.c.template == template)
        return conn.execute(query).all()


def render_all(runtime, prefix: str) -> list:
    """Render every queued email of a lifecycle in its recipient's language (StrictUndefined)."""
    from notifications.render import render_message

    rendered = []
    for row in outbox(runtime):
        if row.template.startswith(prefix):
            rendered.append((row, render_message(row)))
            for locale in ("en", "zh"):  # both languages render from the same context
                render_message({**row._mapping, "locale": locale})
    return rendered


def prereg(runtime, actor, email="ann@example.com", **extra):
    return runtime.start("customer_preregistration", {"email": email, **extra}, actor)


def test_start_locks_the_normalised_email_for_15_days(runtime, people):
    add_account(runtime, "ann@example.com")
    case = prereg(runtime, people["acme-admin"], email="  Ann@Example.COM ")
    assert case["state"] == "locked" and case["business_key"] == "ann@example.com"
    assert case["data"]["email"] == "ann@example.com" and case["data"]["country"] == "CN"
    assert case["data"]["same_country"] is True
    assert case["data"]["locked_until"] == "2026-03-17T01:00:00+00:00"
    assert case["data"]["locked_until_local"] == "2026-03-17 09:00 Asia/Shanghai"
    with runtime.db.read() as conn:
        held = locks.holder(conn, "customer-email:ann@example.com", runtime.now())
    assert held.owner == "partner:ACME" and held.until == LOCK_END
    assert {t["name"]: t["due_at"] for t in case["timers"]} == {
        "lock_end": "2026-03-17T01:00:00+00:00", "lock_reminder": "2026-03-14T01:00:00+00:00"}
    assert {r.recipient for r in outbox(runtime, "customer_preregistration/locked")} == {
        "acme-admin@example.com", "contact@acme.example"}


def test_normalisation_trims_and_lowercases_only():
    assert normalise_email("  Ann.Lee+Cloud@Example.COM\t") == "ann.lee+cloud@example.com"
    assert lock_key("ANN@example.com") == "customer-email:ann@example.com"
    with pytest.raises(ValidationError, match="is not a valid email address"):
        normalise_email("ann at example.com")


def test_start_by_another_partner_during_lock_is_refused_naming_the_end_in_its_zone(runtime, people):
    prereg(runtime, people["acme-admin"], country="CN")
    before = counts(runtime.db)
    with pytest.raises(LockHeld) as err:
        prereg(runtime, people["nord-admin"], email="ANN@example.com ", country="CN")
    assert err.value.message == (
        "customer ann@example.com is pre-registered by another partner until 2026-03-17 02:00 Europe/Berlin: "
        "no other partner may pre-register or associate this customer before then, unless the customer uses a new "
        "email address (FAQ 5.3.6)")
    assert err.value.status == 409
    assert counts(runtime.db) == before


def test_new_email_address_is_not_locked(runtime, people):
    prereg(runtime, people["acme-admin"], country="CN")
    other = prereg(runtime, people["nord-admin"], email="ann+cloud@example.com", country="CN")
    assert other["state"] == "locked" and other["partner"] == "NORD"
    assert other["data"]["same_country"] is False


def test_same_partner_cannot_preregister_twice_during_its_lock(runtime, people):
    first = prereg(runtime, people["acme-admin"], country="CN")
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=rf"already pre-registered ann@example.com \(case {first['id']}\); "
                                            r"the lock ends 2026-03-17 09:00 Asia/Shanghai"):
        prereg(runtime, people["acme-dev1"], country="CN")
    assert counts(runtime.db) == before


def test_lock_expires_by_timer_at_exactly_15_days(runtime, people):
    case = prereg(runtime, people["acme-admin"], country="CN")
    runtime.advance_to(LOCK_END - timedelta(minutes=1))
    assert runtime.get(case["id"])["state"] == "locked"
    with pytest.raises(LockHeld, match="until 2026-03-17 02:00 Europe/Berlin"):
        prereg(runtime, people["nord-admin"], country="CN")
    runtime.advance(timedelta(minutes=2))
    view = runtime.get(case["id"])
    assert view["state"] == "expired"
    assert (view["history"][-1]["event"], view["history"][-1]["actor"], view["history"][-1]["at"]) == (
        "expire", "system", "2026-03-17T01:00:00+00:00")
    taken = prereg(runtime, people["nord-admin"], country="CN")
    assert taken["state"] == "locked" and taken["partner"] == "NORD"
    assert [r.recipient for r in outbox(runtime, "customer_preregistration/expired")] == [
        "acme-admin@example.com", "contact@acme.example"]


def test_partner_may_preregister_again_after_its_lock_ended(runtime, people):
    prereg(runtime, people["acme-admin"], country="CN")
    runtime.advance(timedelta(days=15, minutes=1))
    again = prereg(runtime, people["acme-admin"], country="CN")
    assert again["data"]["locked_until"] == (runtime.now() + timedelta(days=15)).isoformat()


def test_reminder_three_days_before_the_lock_ends(runtime, people):
    case = prereg(runtime, people["acme-admin"], country="CN")
    runtime.advance_to(LOCK_END - timedelta(days=3, minutes=1))
    assert outbox(runtime, "customer_preregistration/lock_reminder") == []
    runtime.advance(timedelta(minutes=2))
    assert [r.recipient for r in outbox(runtime, "customer_preregistration/lock_reminder")] == [
        "acme-admin@example.com", "contact@acme.example"]
    assert runtime.get(case["id"])["state"] == "locked"


def test_lock_days_are_configurable(runtime, people, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_CUSTOMER_LOCK_DAYS", "30")
    case = prereg(runtime, people["acme-admin"], country="CN")
    assert case["data"]["locked_until"] == (START + timedelta(days=30)).isoformat()


def test_release_frees_the_email_for_other_partners(runtime, people):
    case = prereg(runtime, people["acme-admin"], country="CN")
    assert runtime.fire(case["id"], "release", people["acme-dev1"])["state"] == "released"
    assert prereg(runtime, people["nord-admin"], country="CN")["partner"] == "NORD"
    runtime.advance(timedelta(days=20))
    assert runtime.get(case["id"])["state"] == "released"  # its timers were cancelled


def test_customer_with_a_partner_cannot_be_preregistered(runtime, people):
    add_account(runtime, "bea@example.com", login="bea")
    inv = runtime.start("customer_association", {"email": "bea@example.com", "model": "referral"},
                        people["acme-admin"])
    runtime.fire(inv["id"], "accept", people["bea"])
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="bea@example.com already has a partner; a customer can be associated "
                                            r"with only one partner \(FAQ 5.3.1\)"):
        prereg(runtime, people["nord-admin"], email="bea@example.com")
    with pytest.raises(RuleViolation, match="already associated with your partner"):
        prereg(runtime, people["acme-admin"], email="bea@example.com")
    assert counts(runtime.db) == before


def test_country_comes_from_the_account_or_is_required(runtime, people):
    add_account(runtime, "carl@example.de", country="DE")
    case = prereg(runtime, people["acme-admin"], email="carl@example.de", country="CN")
    assert case["data"]["country"] == "DE" and case["data"]["same_country"] is False
    before = counts(runtime.db)
    with pytest.raises(ValidationError, match="country: is required when the customer has no account yet"):
        prereg(runtime, people["acme-admin"], email="dora@example.com")
    assert counts(runtime.db) == before


def test_only_partner_people_preregister(runtime, people):
    with pytest.raises(Forbidden, match="needs role partner_admin or partner_member"):
        prereg(runtime, people["alice"], country="CN", partner="ACME")


def test_lock_is_a_single_winner_upsert(runtime, people):
    """Two owners racing for one key through the engine lock: the second sees the first's end."""
    now = runtime.now()
    with runtime.db.write() as conn:
        locks.acquire(conn, lock_key("eve@example.com"), "partner:ACME", now + timedelta(days=15), now)
    with runtime.db.write() as conn, pytest.raises(LockHeld) as err:
        locks.acquire(conn, lock_key("eve@example.com"), "partner:NORD", now + timedelta(days=15), now)
    assert err.value.until == now + timedelta(days=15)


def test_emails_render_in_both_languages(runtime, people):
    case = prereg(runtime, people["acme-admin"], email="Ann@Example.com", country="CN", name="Ann & Co <Ltd>")
    runtime.advance(timedelta(days=15, minutes=1))
    rendered = render_all(runtime, "customer_preregistration/")
    assert {row.template for row, _ in rendered} == {
        "customer_preregistration/locked", "customer_preregistration/lock_reminder", "customer_preregistration/expired"}
    locked = next(m for row, m in rendered if row.template.endswith("/locked") and row.locale == "en")
    assert "2026-03-17 09:00 Asia/Shanghai" in locked.subject
    assert "Ann & Co <Ltd>" in locked.text and "Ann &amp; Co &lt;Ltd&gt;" in locked.html
    assert f"/cases/{case['id']}" in locked.text
