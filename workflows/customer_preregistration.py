"""Customer pre-registration: a partner's 15-day claim on a potential customer's email (LIFECYCLES section 4; FAQ 5.3.6).

Rules enforced:
- A partner (admin or member) pre-registers a potential customer identified
  by email address. This takes the engine subject lock
  ``customer-email:<normalised email>`` (`engine.locks`) for the partner for
  ``PARTNERFLOW_CUSTOMER_LOCK_DAYS`` days (default **15**, FAQ 5.3.6).
  Normalisation (`engine.customers.normalise_email`): surrounding white space
  removed and the whole address lower-cased; nothing else is rewritten, so
  ``Ann@Example.com`` is the same customer as ``ann@example.com`` but
  ``ann+cloud@example.com`` is a new email address.
- While the lock is held, another partner's pre-registration (here) or
  association (`customer_association`) of that email is refused with a
  message naming when the lock ends, in the refused partner's time zone with
  the zone named. A new email address is not locked (FAQ 5.3.6).
- The same partner cannot pre-register an email it already holds (the
  refusal names its case and when its lock ends); after the lock ended it may
  pre-register again.
- A customer that already has a partner cannot be pre-registered (only one
  partner each, FAQ 5.3.1).
- The lock ends by a durable timer at exactly 15 days (state ``expired``);
  the partner is reminded ``PARTNERFLOW_CUSTOMER_LOCK_REMINDER_DAYS`` days
  before (default 3). The partner may release it earlier.
- When the customer accepts the locking partner's invitation within the lock
  (`customer_association`), this case moves to ``associated`` and the lock is
  released.
- Pre-registration is optional when partner and customer are in the same
  country: `customer_association` then associates without it; across
  countries it needs this partner's live pre-registration (FAQ 5.3.6). The
  partner's country is its region code (``partners.region``) unless its data
  names a ``country``.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select

from engine import locks
from engine.customers import find_customer, lock_key, normalise_email
from engine.definition import Ctx, Notify, Timer, Transition, Workflow
from engine.errors import LockHeld, ValidationError
from engine.models import Instance
from engine.roles import PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.schema import Field, Schema
from engine.settings import setting

I = Instance.__table__
PARTNER_PEOPLE = frozenset({PARTNER_ADMIN, PARTNER_MEMBER})


class S(StrEnum):
    locked = "locked"  #: pre-registered: the email is locked for this partner
    associated = "associated"  #: the customer accepted this partner's invitation within the lock (final)
    expired = "expired"  #: the lock ended unused (final)
    released = "released"  #: the partner released the lock early (final)


def lock_days() -> int:
    return setting("customer_lock_days", 15)


def reminder_days() -> int:
    return setting("customer_lock_reminder_days", 3)


START = Schema(
    Field("email", "email", description="The potential customer's email address"),
    Field("country", "str", required=False, pattern=r"[A-Za-z]{2}",
          pattern_hint="an ISO 3166 two-letter country code, such as CN",
          description="Customer's country (taken from the customer's account when it exists)"),
    Field("name", "str", required=False, max_length=200, description="Customer (company) name"),
    Field("note", "text", required=False, max_length=1000),
)


# -- shared with customer_association and reseller_budget ----------------------
def owner_of(partner: dict) -> str:
    """The subject-lock owner name of a partner."""
    return f"partner:{partner['code']}"


def partner_country(partner: dict) -> str:
    return str((partner.get("data") or {}).get("country") or partner.get("region") or "CN").upper()[:2]


def lock_refusal_text(email: str, until: datetime, ctx: Ctx) -> str:
    return (f"customer {email} is pre-registered by another partner until {ctx.calendar.format(until)}: "
            "no other partner may pre-register or associate this customer before then, unless the customer "
            "uses a new email address (FAQ 5.3.6)")


def check_not_locked_by_another(ctx: Ctx, email: str) -> None:
    """Raise `LockHeld` naming when the lock ends (reader's partner zone) if another partner holds `email`."""
    held = locks.holder(ctx.conn, lock_key(email), ctx.now)
    if held is not None and held.owner != owner_of(ctx.partner):
        raise LockHeld(held.key, held.until, lock_refusal_text(email, held.until, ctx))


def own_lock(ctx: Ctx, email: str) -> locks.LockInfo | None:
    """This partner's live lock on `email`, if any."""
    held = locks.holder(ctx.conn, lock_key(email), ctx.now)
    return held if held is not None and held.owner == owner_of(ctx.partner) else None


def locked_case_of(conn, email: str, partner_id: int) -> int | None:
    """The partner's pre-registration case of `email` still in ``locked``."""
    return conn.execute(select(I.c.id).where(I.c.workflow == "customer_preregistration",
                                             I.c.business_key == normalise_email(email),
                                             I.c.partner_id == partner_id, I.c.state == S.locked)
                        .order_by(I.c.id.desc()).limit(1)).scalar_one_or_none()


# -- guards ----------------------------------------------------------------------
def _email(ctx: Ctx) -> str:
    return normalise_email(ctx.data["email"])


def customer_has_no_partner(ctx: Ctx) -> str | None:
    """Only one partner per customer (FAQ 5.3.1): an associated customer cannot be pre-registered."""
    customer = find_customer(ctx.conn, _email(ctx))
    if customer is not None and customer["partner_id"] is not None:
        if customer["partner_id"] == ctx.partner["id"]:
            return f"customer {customer['email']} is already associated with your partner; no pre-registration needed"
        return (f"customer {customer['email']} already has a partner; a customer can be associated with only one "
                "partner (FAQ 5.3.1)")
    return None


def email_not_locked_by_another_partner(ctx: Ctx) -> str | None:
    """During another partner's 15-day lock, pre-registration is refused, naming when it ends (FAQ 5.3.6)."""
    check_not_locked_by_another(ctx, _email(ctx))
    return None


def not_already_preregistered_by_you(ctx: Ctx) -> str | None:
    email = _email(ctx)
    held = own_lock(ctx, email)
    if held is not None:
        case = locked_case_of(ctx.conn, email, ctx.partner["id"])
        return (f"your partner already pre-registered {email}" + (f" (case {case})" if case else "")
                + f"; the lock ends {ctx.calendar.format(held.until)}")
    return None


# -- effects ---------------------------------------------------------------------
def take_lock(ctx: Ctx) -> dict:
    """Normalise the email, read the customer's country from its account, and take the lock."""
    email = _email(ctx)
    customer = find_customer(ctx.conn, email)
    country = (customer["country"] if customer else (ctx.data.get("country") or "")).upper() or None
    if country is None:
        raise ValidationError("country", "is required when the customer has no account yet (two-letter code)")
    until = ctx.now + timedelta(days=lock_days())
    try:
        locks.acquire(ctx.conn, lock_key(email), owner_of(ctx.partner), until, ctx.now)
    except LockHeld as exc:  # lost a race with another partner after the guard
        raise LockHeld(exc.key, exc.until, lock_refusal_text(email, exc.until, ctx)) from None
    return {"email": email, "country": country, "same_country": country == partner_country(ctx.partner),
            "locked_until": until.isoformat(), "locked_until_local": ctx.calendar.format(until),
            "customer_name": ctx.data.get("name") or (customer["name"] if customer else None)}


def release_lock(ctx: Ctx) -> dict:
    locks.release(ctx.conn, lock_key(ctx.data["email"]), owner_of(ctx.partner))
    return {"lock_ended_at": ctx.now.isoformat()}


def lock_end(ctx: Ctx) -> datetime:
    return ctx.instant("locked_until")


def reminder_at(ctx: Ctx) -> datetime:
    return ctx.instant("locked_until") - timedelta(days=reminder_days())


WORKFLOW = Workflow(
    name="customer_preregistration",
    title="Customer pre-registration (15-day lock)",
    faq="FAQ 5.3.6, 5.3.1",
    description="A partner's claim on a potential customer's email: locked for 15 days against other partners.",
    states=S,
    initial=S.locked,
    final=(S.associated, S.expired, S.released),
    start_schema=START,
    start_roles=PARTNER_PEOPLE,
    start_guards=(customer_has_no_partner, email_not_locked_by_another_partner,
                  not_already_preregistered_by_you),
    start_effect=take_lock,
    business_key=lambda data: data.get("email"),
    transitions=(
        Transition("expire", S.locked, S.expired, {SYSTEM}, effect=release_lock, label="lock ends"),
        Transition("remind_expiry", S.locked, None, {SYSTEM}, label="reminder"),
        Transition("release", S.locked, S.released, PARTNER_PEOPLE, effect=release_lock),
        Transition("associate", S.locked, S.associated, {SYSTEM}, effect=release_lock,
                   label="customer accepted this partner's invitation"),
    ),
    timers=(
        Timer(S.locked, "expire", at=lock_end, name="lock_end",
              description="when the lock ends (PARTNERFLOW_CUSTOMER_LOCK_DAYS, default 15 days)"),
        Timer(S.locked, "remind_expiry", at=reminder_at, name="lock_reminder",
              when=lambda ctx: reminder_days() > 0 and reminder_at(ctx) > ctx.now,
              description="N days before the lock ends (PARTNERFLOW_CUSTOMER_LOCK_REMINDER_DAYS, default 3)"),
    ),
    notifications=(
        Notify("customer_preregistration/locked", ["partner", "actor"], on_enter=S.locked),
        Notify("customer_preregistration/lock_reminder", ["partner"], on_event="remind_expiry", reminder=True),
        Notify("customer_preregistration/expired", ["partner"], on_enter=S.expired),
    ),
    state_descriptions={
        S.locked: "No other partner may pre-register or associate the customer until the lock ends.",
        S.associated: "The customer accepted this partner's invitation within the lock.",
        S.expired: "The lock ended; any partner may now pre-register or associate the customer.",
        S.released: "The partner released the lock before it ended.",
    },
)


def seed_demo(runtime, people) -> None:
    """A locked customer: ACME pre-registered a Shanghai prospect (mixed-case email, normalised)."""
    from engine.customers import add_customer

    with runtime.db.write() as conn:
        if find_customer(conn, "it@zhonghe-logistics.example") is None:
            add_customer(conn, {"email": "it@zhonghe-logistics.example", "name": "Zhonghe Logistics",
                                "country": "CN"}, runtime.now())
    runtime.start("customer_preregistration", {"email": "IT@Zhonghe-Logistics.example ", "name": "Zhonghe Logistics"},
                  people.actor("acme-admin"))
