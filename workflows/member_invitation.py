"""Member invitations: a partner admin invites a person account to join the partner (LIFECYCLES section 2; FAQ 3.2, 3.3).

Rules enforced:
- Only the partner admin may invite a member or cancel an invitation or a
  member's association (FAQ 3.3.8): anyone else is refused (Forbidden, naming
  the role needed and the roles held).
- The invitee is named by login ID (the accounts table); an unknown login ID
  is refused with "login ID not found" (FAQ 3.3.2).
- The invitation is refused with "verification failed: <reason>" when the
  login ID (FAQ 3.3.1): is itself a partner account; is authenticated as an
  enterprise; is associated with another partner now; or has been associated
  with three partners within the past 365 days (associations current at any
  moment of that window; re-joining one of those partners is allowed). The
  refusal says from when a new partner can be joined. The same checks run
  again when the invitee accepts.
- One pending invitation per person and partner: a second one is refused
  while the first is pending (a subject lock makes this hold under
  concurrency too).
- The invitation is valid for 7 days (``PARTNERFLOW_MEMBER_INVITATION_VALID_DAYS``,
  default 7), exactly 7 x 24 hours from sending (FAQ 3.3.3): a timer expires
  it and acceptance after that instant is refused. The admin may then invite
  again, which is a new case.
- Pending -> accepted (by the invitee only) / declined (by the invitee) /
  expired (timer) / cancelled (partner admin). Accepting associates the member
  with the partner (association history with dates), makes the person's user
  a member of the partner, and their certificates then count for the partner
  (FAQ 3.3.4: `engine.accounts.partner_certificates`).
- Accepted -> disassociated: the partner admin cancels the member's
  association (FAQ 3.3.8); also ``partnerflow members remove``.
- Emails: the invitation with its link to the invitee; a reminder to the
  invitee ``PARTNERFLOW_MEMBER_INVITATION_REMINDER_HOURS`` (default 24) hours
  before expiry; to the admin on expiry, acceptance and decline; to the
  invitee on cancellation and disassociation.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select

from engine import accounts
from engine.definition import Ctx, Notify, Timer, Transition, Workflow
from engine.directory import partner_by_id, user_by_login
from engine.errors import Conflict, Forbidden
from engine.locks import acquire, release
from engine.models import Instance
from engine.roles import ACCOUNT, CUSTOMER, PARTNER_ADMIN, SYSTEM
from engine.schema import Field, Schema
from engine.settings import setting

I = Instance.__table__
NAME = "member_invitation"
WINDOW_DAYS = 365
MAX_PARTNERS_IN_WINDOW = 3


class S(StrEnum):
    pending = "pending"  #: sent; the invitee may accept until it expires
    accepted = "accepted"  #: the invitee is a member of the partner
    declined = "declined"  #: the invitee said no (final)
    expired = "expired"  #: not accepted within the validity period (final; invite again)
    cancelled = "cancelled"  #: withdrawn by the partner admin (final)
    disassociated = "disassociated"  #: the partner admin ended the membership (final)


def valid_days() -> int:
    return setting("member_invitation_valid_days", 7)


def reminder_hours() -> int:
    return setting("member_invitation_reminder_hours", 24)


START = Schema(
    Field("login_id", "str", max_length=128, description="Login ID of the person to invite (FAQ 3.3.2)"),
    Field("message", "text", required=False, max_length=1000, description="A note to the invitee"),
)
DISASSOCIATE = Schema(Field("reason", "text", required=False, max_length=1000))


# -- guards -------------------------------------------------------------------------
def invitee_login_exists(ctx: Ctx) -> str | None:
    """The invitee is named by an existing login ID (FAQ 3.3.2)."""
    if accounts.account_by_login(ctx.conn, ctx.get("login_id")) is None:
        return f"login ID not found: {ctx.get('login_id')!r}"
    return None


def eligibility_problem(ctx: Ctx) -> str | None:
    """Why this account cannot join the partner (FAQ 3.3.1), or None."""
    acc = accounts.account_by_login(ctx.conn, ctx.get("login_id"))
    who = f"login ID {acc['login_id']!r}"
    user = user_by_login(ctx.conn, acc["login_id"])
    if acc["kind"] == "partner" or (user is not None and PARTNER_ADMIN in (user["roles"] or [])):
        return f"{who} is itself a partner account"
    if acc["kind"] == "enterprise":
        return f"{who} is authenticated as an enterprise"
    current = accounts.current_association(ctx.conn, acc["id"])
    partner_id = current["partner_id"] if current else (user or {}).get("partner_id")
    if partner_id is not None:
        if partner_id == ctx.partner["id"]:
            return f"{who} already is a member of partner {ctx.partner['code']}"
        code = current["partner_code"] if current else partner_by_id(ctx.conn, partner_id)["code"]
        return f"{who} is already associated with another partner ({code})"
    since = ctx.now - timedelta(days=WINDOW_DAYS)
    recent = accounts.associations_since(ctx.conn, acc["id"], since)
    last_end: dict[str, datetime] = {}
    for a in recent:
        end = a["ended_at"] or ctx.now
        last_end[a["partner_code"]] = max(end, last_end.get(a["partner_code"], end))
    if len(last_end) >= MAX_PARTNERS_IN_WINDOW and ctx.partner["code"] not in last_end:
        ends = sorted(last_end.values())
        free_from = ends[len(ends) - MAX_PARTNERS_IN_WINDOW] + timedelta(days=WINDOW_DAYS)
        return (f"{who} has been associated with three partners within the past {WINDOW_DAYS} days "
                f"({', '.join(sorted(last_end))}); it can join another partner from {ctx.calendar.format(free_from)}")
    return None


def invitee_eligible(ctx: Ctx) -> str | None:
    """Refuse with "verification failed" and the exact reason (FAQ 3.3.1)."""
    problem = eligibility_problem(ctx)
    return f"verification failed: {problem}" if problem else None


def no_pending_invitation(ctx: Ctx) -> str | None:
    """At most one pending invitation per person and partner."""
    key = ctx.get("login_id").strip().lower()
    row = ctx.conn.execute(select(I.c.id, I.c.data).where(
        I.c.workflow == NAME, I.c.partner_id == ctx.partner["id"], I.c.business_key == key,
        I.c.state == S.pending)).first()
    if row is not None:
        until = ctx.calendar.format(datetime.fromisoformat(row.data["expires_at"]))
        return (f"login ID {row.data['login_id']!r} already has a pending invitation from {ctx.partner['code']} "
                f"(case {row.id}, valid until {until}); cancel it or wait until it expires")
    return None


def actor_is_invitee(ctx: Ctx) -> str | None:
    if ctx.actor.login.lower() != ctx.data["login_id"].lower():
        raise Forbidden(f"only the invited person (login ID {ctx.data['login_id']!r}) may {ctx.event} this invitation; "
                        f"{ctx.actor.login} is not")
    return None


def not_expired(ctx: Ctx) -> str | None:
    """The link is valid for exactly the validity period (FAQ 3.3.3)."""
    expires = datetime.fromisoformat(ctx.data["expires_at"])
    if ctx.now >= expires:
        return f"the invitation expired on {ctx.calendar.format(expires)}; ask the partner admin to invite you again"
    return None


def still_member(ctx: Ctx) -> str | None:
    acc = accounts.account_by_login(ctx.conn, ctx.data["login_id"])
    current = accounts.current_association(ctx.conn, acc["id"]) if acc else None
    if current is None or current["partner_id"] != ctx.partner["id"]:
        return f"login ID {ctx.data['login_id']!r} is no longer a member of partner {ctx.partner['code']}"
    return None


# -- effects ------------------------------------------------------------------------
def lock_key(ctx: Ctx) -> str:
    return f"member-invitation:{ctx.partner['code']}:{ctx.get('login_id').strip().lower()}"


def start_effect(ctx: Ctx) -> dict:
    acc = accounts.account_by_login(ctx.conn, ctx.get("login_id"))
    expires = ctx.now + timedelta(days=valid_days())
    owner = f"invitation:{uuid.uuid4().hex}"
    acquire(ctx.conn, lock_key(ctx), owner, expires, ctx.now,
            message=f"login ID {acc['login_id']!r} already has a pending invitation from {ctx.partner['code']}")
    return {"login_id": acc["login_id"], "invitee_name": acc["name"], "invitee_email": acc["email"],
            "expires_at": expires.isoformat(), "lock_owner": owner, "invited_by": ctx.actor.login,
            "token": uuid.uuid4().hex}


def free_lock(ctx: Ctx) -> dict:
    release(ctx.conn, lock_key(ctx), ctx.data["lock_owner"])
    return {}


def associate_member(ctx: Ctx) -> dict:
    acc = accounts.account_by_login(ctx.conn, ctx.data["login_id"])
    try:
        accounts.associate(ctx.conn, acc["id"], ctx.partner["id"], ctx.now, invitation_case_id=ctx.instance_id)
    except Conflict as exc:
        raise Conflict(f"verification failed: {exc.message}") from None
    free_lock(ctx)
    return {"accepted_at": ctx.now.isoformat(), "certificates": acc["certificates"] or []}


def end_membership(ctx: Ctx) -> dict:
    accounts.disassociate(ctx.conn, ctx.data["login_id"], ctx.partner["id"], ctx.actor, ctx.now,
                          ctx.payload.get("reason") or ctx.comment)
    return {"disassociated_at": ctx.now.isoformat(), "disassociated_by": ctx.actor.login}


def expires_at(ctx: Ctx) -> datetime:
    return datetime.fromisoformat(ctx.data["expires_at"])


def reminder_at(ctx: Ctx) -> datetime:
    return expires_at(ctx) - timedelta(hours=reminder_hours())


INVITEE = frozenset({ACCOUNT, CUSTOMER})

WORKFLOW = Workflow(
    name=NAME,
    title="Member invitation",
    faq="FAQ 3.2, 3.3",
    description="A partner admin invites a person by login ID; valid 7 days; accepting associates the member.",
    states=S,
    initial=S.pending,
    final=(S.declined, S.expired, S.cancelled, S.disassociated),
    start_schema=START,
    start_roles={PARTNER_ADMIN},
    start_guards=(invitee_login_exists, invitee_eligible, no_pending_invitation),
    start_effect=start_effect,
    business_key=lambda data: data["login_id"].strip().lower(),
    state_descriptions={
        S.pending: "sent; the invitee may accept until it expires (7 days)",
        S.accepted: "the invitee is a member of the partner; their certificates count for it",
        S.declined: "the invitee declined",
        S.expired: "not accepted in time; the admin may invite again",
        S.cancelled: "withdrawn by the partner admin",
        S.disassociated: "the partner admin ended the membership",
    },
    transitions=(
        Transition("accept", S.pending, S.accepted, INVITEE, guards=(actor_is_invitee, not_expired, invitee_eligible),
                   effect=associate_member),
        Transition("decline", S.pending, S.declined, INVITEE, guards=(actor_is_invitee,), effect=free_lock),
        Transition("cancel", S.pending, S.cancelled, {PARTNER_ADMIN}, effect=free_lock),
        Transition("remind", S.pending, None, {SYSTEM}, label="reminder"),
        Transition("expire", S.pending, S.expired, {SYSTEM}, effect=free_lock),
        Transition("disassociate", S.accepted, S.disassociated, {PARTNER_ADMIN}, payload=DISASSOCIATE,
                   guards=(still_member,), effect=end_membership),
    ),
    timers=(
        Timer(S.pending, "remind", at=reminder_at, name="reminder",
              description="24 hours before expiry (PARTNERFLOW_MEMBER_INVITATION_REMINDER_HOURS)"),
        Timer(S.pending, "expire", at=expires_at,
              description="7 x 24 hours after sending (PARTNERFLOW_MEMBER_INVITATION_VALID_DAYS)"),
    ),
    notifications=(
        Notify("member_invitation/invitation", ["data:invitee_email"], on_enter=S.pending),
        Notify("member_invitation/reminder", ["data:invitee_email"], on_event="remind", reminder=True),
        Notify("member_invitation/accepted", ["partner_admin", "data:invitee_email"], on_enter=S.accepted),
        Notify("member_invitation/declined", ["partner_admin"], on_enter=S.declined),
        Notify("member_invitation/expired", ["partner_admin"], on_enter=S.expired),
        Notify("member_invitation/cancelled", ["data:invitee_email"], on_enter=S.cancelled),
        Notify("member_invitation/disassociated", ["data:invitee_email", "partner_admin"], on_enter=S.disassociated),
    ),
)


def seed_demo(runtime, people) -> None:
    """Person accounts; a pending invitation 1 hour before its reminder, an accepted member, a refused enterprise."""
    now = runtime.now()
    with runtime.db.write() as conn:
        for values in (
            {"login_id": "chen.jie", "name": "Chen Jie", "email": "chen.jie@mail.example",
             "certificates": ["Cloud Architect Associate"]},
            {"login_id": "liu.yang", "name": "Liu Yang", "email": "liu.yang@mail.example",
             "certificates": ["Big Data Professional", "Security Specialist"]},
            {"login_id": "globex-corp", "name": "Globex Corporation", "email": "it@globex.example", "kind": "enterprise"},
        ):
            if accounts.account_by_login(conn, values["login_id"]) is None:
                accounts.add_account(conn, values, now)
        from engine.directory import add_user

        for login, name, email in (("chen.jie", "Chen Jie", "chen.jie@mail.example"),
                                   ("liu.yang", "Liu Yang", "liu.yang@mail.example")):
            if user_by_login(conn, login) is None:
                add_user(conn, {"login": login, "name": name, "email": email, "roles": [ACCOUNT], "locale": "zh",
                                "password": "partnerflow-demo"}, now)
    admin = people.actor("acme-admin")
    # an invitation sent 5 days 23 hours ago: started at that past instant, so its timers, lock and
    # history are what they would be (history is append-only and never rewritten)
    with runtime.db.write() as conn:
        runtime.start_in(conn, WORKFLOW, {"login_id": "chen.jie", "message": "Welcome to the Acme delivery team"},
                         admin, now - timedelta(days=5, hours=23))
    accepted = runtime.start(NAME, {"login_id": "liu.yang"}, admin)
    runtime.fire(accepted["id"], "accept", runtime.actor("liu.yang"))


CLI = accounts.MEMBERS_CLI
