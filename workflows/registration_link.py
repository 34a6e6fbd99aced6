"""Registration link for a new partner account (LIFECYCLES section 3; FAQ 5.2.15, 5.2.16).

Rules enforced:
- The case starts when the person's email or SMS code has been verified;
  from that instant the registration link is valid for 24 hours
  (``PARTNERFLOW_REGISTRATION_LINK_VALID_HOURS``, default 24), exactly: a
  timer expires it, and registering at or after that instant is refused
  naming when it expired (FAQ 5.2.15).
- verified -> registered (the new partner account is created in the accounts
  table, linked to this case) or expired (timer). A newer verification by the
  same person supersedes a link still valid, so only one link works at a time.
- The new account's email address must differ from the current account's
  (FAQ 5.2.16), compared trimmed and case-insensitively; the current
  account is the requester's record in the accounts table (else their user
  email). The new login ID must be free; the registered country is an ISO
  code and is fixed from then on (changes need a service ticket, FAQ 2.1.10).
- Only the person who verified may register with the link.
- Emails: the link to the verified address (or the requester's email after
  an SMS code), the confirmation to the new account's address, and a notice
  when the link expired.

Also here: `CLI` = ``partnerflow accounts ...`` (add, list, show,
change-country, associate).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select

from engine import accounts
from engine.definition import Ctx, Notify, Timer, Transition, Workflow
from engine.directory import user_by_login
from engine.errors import Forbidden, ValidationError
from engine.models import Instance
from engine.roles import ACCOUNT, CUSTOMER, PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.schema import EMAIL_RE, Field, Schema
from engine.settings import setting

I = Instance.__table__
NAME = "registration_link"


class S(StrEnum):
    verified = "verified"  #: the code was verified; the link is valid for 24 hours
    registered = "registered"  #: the new partner account exists (final)
    expired = "expired"  #: not used within 24 hours (final)
    superseded = "superseded"  #: replaced by a newer verification of the same person (final)


def valid_hours() -> int:
    return setting("registration_link_valid_hours", 24)


def _contact_check(value: str) -> str | None:
    if "@" in value:
        return None if EMAIL_RE.match(value) else f"{value!r} is not a valid email address"
    digits = value.replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        digits = digits[1:]
    return None if digits.isdigit() and 6 <= len(digits) <= 15 else f"{value!r} is not an email address or phone number"


START = Schema(
    Field("channel", "choice", choices=("email", "sms"), description="How the verification code was sent"),
    Field("contact", "str", max_length=254, check=_contact_check,
          description="The verified email address or mobile number"),
)
REGISTER = Schema(
    Field("login_id", "str", max_length=128, pattern=r"[A-Za-z0-9][A-Za-z0-9_.@+-]*",
          pattern_hint="letters, digits and . _ @ + -"),
    Field("name", "str", max_length=200, description="Company or account name"),
    Field("email", "email", description="Email address of the new account: must differ from the current one"),
    Field("registered_country", "str", check=lambda v: accounts._country_problem(v),
          description="ISO country code; fixed after registration (FAQ 2.1.10)"),
)


# -- guards ---------------------------------------------------------------------
def channel_matches_contact(ctx: Ctx) -> str | None:
    is_email = "@" in ctx.data["contact"]
    if ctx.data["channel"] == "email" and not is_email:
        raise ValidationError("contact", "must be the verified email address when the channel is email")
    if ctx.data["channel"] == "sms" and is_email:
        raise ValidationError("contact", "must be the verified mobile number when the channel is sms")
    return None


def current_account(ctx: Ctx) -> tuple[str | None, str | None]:
    """(login ID, email) of the requester's current account: the accounts record, else their user."""
    acc = accounts.account_by_login(ctx.conn, ctx.actor.login)
    if acc is not None:
        return acc["login_id"], acc["email"]
    user = user_by_login(ctx.conn, ctx.actor.login)
    return ctx.actor.login, (user or {}).get("email")


def actor_is_requester(ctx: Ctx) -> str | None:
    if ctx.actor.login != ctx.data["requested_by"]:
        raise Forbidden(f"only {ctx.data['requested_by']}, who verified the code, may use this registration link")
    return None


def link_not_expired(ctx: Ctx) -> str | None:
    """The link is valid for exactly 24 hours after verification (FAQ 5.2.15)."""
    expires = datetime.fromisoformat(ctx.data["expires_at"])
    if ctx.now >= expires:
        return (f"the registration link expired on {ctx.calendar.format(expires)} (valid {valid_hours()} hours after "
                "verification); verify your email or phone again for a new link")
    return None


def email_differs_from_current(ctx: Ctx) -> str | None:
    """The new account must use an email address different from the current one (FAQ 5.2.16)."""
    current = ctx.data.get("current_email")
    if current and accounts.normalise_email(ctx.payload["email"]) == accounts.normalise_email(current):
        raise ValidationError("email", f"the new account must use an email address different from the current "
                              f"one ({current}) (FAQ 5.2.16)")
    return None


def login_id_free(ctx: Ctx) -> str | None:
    taken = accounts.account_by_login(ctx.conn, ctx.payload["login_id"])
    if taken is not None:
        same = "" if taken["login_id"] == ctx.payload["login_id"] else f" (as {taken['login_id']!r}; login IDs ignore case)"
        raise ValidationError("login_id", f"login ID {ctx.payload['login_id']!r} is already taken{same}")
    return None


# -- effects ----------------------------------------------------------------------
def start_effect(ctx: Ctx) -> dict:
    login, email = current_account(ctx)
    expires = ctx.now + timedelta(hours=valid_hours())
    for row in ctx.conn.execute(select(I.c.id).where(I.c.workflow == NAME, I.c.state == S.verified,
                                                     I.c.created_by == ctx.actor.login)):
        ctx.fire_later(row.id, "supersede")
    link_email = ctx.data["contact"] if ctx.data["channel"] == "email" else email
    return {"requested_by": ctx.actor.login, "current_login_id": login, "current_email": email,
            "link_email": link_email, "expires_at": expires.isoformat(), "token": uuid.uuid4().hex}


def create_account(ctx: Ctx) -> dict:
    acc = accounts.add_account(ctx.conn, {"login_id": ctx.payload["login_id"], "name": ctx.payload["name"],
                                          "email": ctx.payload["email"], "kind": "partner",
                                          "registered_country": ctx.payload["registered_country"]},
                               ctx.now, registration_case_id=ctx.instance_id)
    return {"new_login_id": acc["login_id"], "new_email": acc["email"],
            "registered_country": acc["registered_country"], "registered_at": ctx.now.isoformat()}


def expires_at(ctx: Ctx) -> datetime:
    return datetime.fromisoformat(ctx.data["expires_at"])


PEOPLE = frozenset({ACCOUNT, CUSTOMER, PARTNER_ADMIN, PARTNER_MEMBER})

WORKFLOW = Workflow(
    name=NAME,
    title="Registration link for a new partner account",
    faq="FAQ 5.2.15, 5.2.16",
    description="Verified -> registered within 24 hours, or expired; the new email must differ from the current one.",
    states=S,
    initial=S.verified,
    final=(S.registered, S.expired, S.superseded),
    start_schema=START,
    start_roles=PEOPLE,
    start_guards=(channel_matches_contact,),
    start_effect=start_effect,
    partner_required=False,
    business_key=lambda data: data.get("requested_by"),
    state_descriptions={
        S.verified: "the code was verified; the link is valid for 24 hours",
        S.registered: "the new partner account was created",
        S.expired: "the link was not used within 24 hours",
        S.superseded: "replaced by a newer verification",
    },
    transitions=(
        Transition("register", S.verified, S.registered, PEOPLE, payload=REGISTER,
                   guards=(actor_is_requester, link_not_expired, email_differs_from_current, login_id_free),
                   effect=create_account),
        Transition("expire", S.verified, S.expired, {SYSTEM}),
        Transition("supersede", S.verified, S.superseded, {SYSTEM}),
    ),
    timers=(
        Timer(S.verified, "expire", at=expires_at,
              description="24 hours after verification (PARTNERFLOW_REGISTRATION_LINK_VALID_HOURS)"),
    ),
    notifications=(
        Notify("registration_link/link", ["data:link_email"], on_enter=S.verified),
        Notify("registration_link/registered", ["data:new_email", "data:link_email"], on_enter=S.registered),
        Notify("registration_link/expired", ["data:link_email"], on_enter=S.expired),
    ),
)


def seed_demo(runtime, people) -> None:
    """A verified registration link of a demo person, valid for 24 hours."""
    from engine.directory import add_user

    now = runtime.now()
    with runtime.db.write() as conn:
        if user_by_login(conn, "zhou.min") is None:
            add_user(conn, {"login": "zhou.min", "name": "Zhou Min", "email": "zhou.min@mail.example",
                            "roles": [ACCOUNT], "password": "partnerflow-demo"}, now)
            accounts.add_account(conn, {"login_id": "zhou.min", "name": "Zhou Min", "email": "zhou.min@mail.example"},
                                 now)
    runtime.start(NAME, {"channel": "email", "contact": "zhou.min@mail.example"}, runtime.actor("zhou.min"))


CLI = accounts.ACCOUNTS_CLI
