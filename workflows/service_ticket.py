"""Service tickets (LIFECYCLES section 10; FAQ 5.7.6, 5.7.13, 5.7.14; and section 1, FAQ 2.1.10).

Rules enforced:
- created -> pending processing -> processing -> pending confirmation ->
  closed. The creator submits the ticket (``submit``), an operations
  manager takes it (``take``) and answers it (``resolve``, comment
  required); the creator confirms (``confirm``) or reopens it with a reason
  (``reopen`` -> processing). With no answer the system closes it
  ``PARTNERFLOW_SERVICE_TICKET_CONFIRM_DAYS`` (default 7) calendar days after
  the answer. The creator may cancel it before it is taken.
- Messages: the creator (or an operator) leaves a message at any open stage
  (``leave_message``, comment required); it is an internal event kept in the
  history, and the other side is emailed.
- Reminders: the creator may remind operations (``remind``) while the ticket
  waits for processing or is in processing, at most once a day (24 hours): a
  second reminder is refused with the local time the next one is allowed
  (``PARTNERFLOW_SERVICE_TICKET_REMIND_HOURS``, default 24). A reminder opens
  an inbox task for the operations managers.
- Registered-country change (FAQ 2.1.10): the registered country cannot be
  changed in the normal flow, only through a ticket of type
  ``registered_country_change`` with a stated ``reason`` and the
  ``new_country`` (an existing ISO 3166-1 alpha-2 code); both are required for
  that type. The new country must differ from the registered country of the partner's account
  (the partner account, else the partner admin's: the country FAQ 2.1.1
  compares, not the partner's holiday-calendar ``region``); with no account
  on record this is checked when the operator makes the change
  (`engine.accounts.change_registered_country`).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from engine import accounts
from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.errors import ValidationError
from engine.roles import ADMIN, OPERATIONS_MANAGER, PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.schema import Field, Schema
from engine.settings import setting

NAME = "service_ticket"
TYPES = ("general", "billing", "technical", "account", "registered_country_change")


class S(StrEnum):
    created = "created"  #: written by the partner, not yet submitted
    pending_processing = "pending_processing"  #: submitted; waiting for an operations manager
    processing = "processing"  #: an operations manager is working on it
    pending_confirmation = "pending_confirmation"  #: answered; the creator confirms or reopens
    closed = "closed"  #: confirmed, closed automatically, or cancelled (final)


def confirm_days() -> int:
    return setting("service_ticket_confirm_days", 7)


def remind_hours() -> int:
    return setting("service_ticket_remind_hours", 24)


START = Schema(
    Field("type", "choice", choices=TYPES, required=False, default="general"),
    Field("title", "str", max_length=200),
    Field("description", "text", max_length=4000, min_length=1),
    Field("reason", "text", required=False, max_length=1000, description="Required for registered_country_change"),
    Field("new_country", "str", required=False, pattern=r"[A-Z]{2}", pattern_hint="a two-letter country code like DE"),
)


# -- guards ---------------------------------------------------------------------------------
def country_change_states_reason(ctx: Ctx) -> str | None:
    """A registered-country change needs a stated reason and the new country (FAQ 2.1.10)."""
    if ctx.data.get("type") != "registered_country_change":
        if ctx.data.get("new_country"):
            raise ValidationError("new_country", "only for tickets of type registered_country_change")
        return None
    if not (ctx.data.get("reason") or "").strip():
        raise ValidationError("reason", "is required: a registered-country change must state its reason (FAQ 2.1.10)")
    if not ctx.data.get("new_country"):
        raise ValidationError("new_country", "is required for a registered-country change")
    new_country = accounts.country_code(ctx.data["new_country"], "new_country")
    account = accounts.registered_account(ctx.conn, ctx.partner) if ctx.partner else None
    if account is not None and new_country == account["registered_country"]:
        raise ValidationError("new_country", f"is already the registered country ({account['registered_country']}) "
                                             f"of account {account['login_id']}")
    return None


def by_creator(ctx: Ctx) -> str | None:
    if ctx.actor.login != ctx.data.get("creator"):
        return f"only the ticket's creator ({ctx.data.get('creator')}) may {ctx.event} it"
    return None


def creator_or_operator(ctx: Ctx) -> str | None:
    if ctx.actor.partner_id is not None:
        return by_creator(ctx)
    return None


def once_a_day(ctx: Ctx) -> str | None:
    """At most one reminder per 24 hours; the refusal says when the next is allowed."""
    last = ctx.data.get("last_reminded_at")
    if last:
        nxt = datetime.fromisoformat(last) + timedelta(hours=remind_hours())
        if ctx.now < nxt:
            return (f"a reminder was already sent at {ctx.calendar.format(datetime.fromisoformat(last))}; "
                    f"the next reminder is allowed from {ctx.calendar.format(nxt)}")
    return None


# -- effects ----------------------------------------------------------------------------------
def created(ctx: Ctx) -> dict:
    return {"creator": ctx.actor.login}


def reminded(ctx: Ctx) -> dict:
    return {"last_reminded_at": ctx.now.isoformat(), "reminders": int(ctx.data.get("reminders", 0)) + 1}


def taken(ctx: Ctx) -> dict:
    return {"handler": ctx.actor.login}


def answered(ctx: Ctx) -> dict:
    return {"answer": ctx.comment, "answered_at": ctx.now.isoformat()}


def closed_as(how: str):
    def effect(ctx: Ctx) -> dict:
        return {"closed_how": how, "closed_at": ctx.now.isoformat()}

    effect.__name__ = f"closed_{how}"
    return effect


PARTNER = frozenset({PARTNER_ADMIN, PARTNER_MEMBER})
OPS = frozenset({OPERATIONS_MANAGER, ADMIN})
OPEN = (S.created, S.pending_processing, S.processing, S.pending_confirmation)

WORKFLOW = Workflow(
    name=NAME,
    title="Service ticket",
    faq="FAQ 5.7.6, 5.7.13, 5.7.14, 2.1.10",
    description="created -> pending processing -> processing -> pending confirmation -> closed; messages and "
                "reminders (at most once a day).",
    states=S,
    initial=S.created,
    final=(S.closed,),
    start_schema=START,
    start_roles=PARTNER,
    start_guards=(country_change_states_reason,),
    start_effect=created,
    business_key=lambda d: d.get("type"),
    transitions=(
        Transition("submit", S.created, S.pending_processing, PARTNER, guards=(by_creator,)),
        Transition("take", S.pending_processing, S.processing, OPS, effect=taken),
        Transition("resolve", S.processing, S.pending_confirmation, OPS, comment_required=True, effect=answered),
        Transition("confirm", S.pending_confirmation, S.closed, PARTNER, guards=(by_creator,),
                   effect=closed_as("confirmed")),
        Transition("reopen", S.pending_confirmation, S.processing, PARTNER, guards=(by_creator,),
                   comment_required=True),
        Transition("auto_close", S.pending_confirmation, S.closed, {SYSTEM}, effect=closed_as("automatically")),
        Transition("cancel", (S.created, S.pending_processing), S.closed, PARTNER, guards=(by_creator,),
                   effect=closed_as("cancelled")),
        Transition("leave_message", OPEN, None, PARTNER | OPS, guards=(creator_or_operator,), comment_required=True,
                   label="message"),
        Transition("remind", (S.pending_processing, S.processing), None, PARTNER, guards=(by_creator, once_a_day),
                   effect=reminded, label="reminder"),
    ),
    timers=(Timer(S.pending_confirmation, "auto_close", at=lambda ctx: ctx.now + timedelta(days=confirm_days()),
                  description="PARTNERFLOW_SERVICE_TICKET_CONFIRM_DAYS (7) days after the answer"),),
    tasks=(
        InboxTask(S.pending_processing, OPERATIONS_MANAGER, "Take the service ticket", due_working_days=1),
        InboxTask(S.processing, OPERATIONS_MANAGER, "Answer the service ticket", due_working_days=3),
        InboxTask(S.pending_processing, OPERATIONS_MANAGER, "Reminder: the partner is waiting for this ticket",
                  on_event="remind", name="reminded", due_working_days=1),
    ),
    notifications=(
        Notify("service_ticket/submitted", ["role:operations_manager"], on_enter=S.pending_processing),
        Notify("service_ticket/taken", ["data:creator"], on_enter=S.processing, when=lambda ctx: ctx.event == "take"),
        Notify("service_ticket/answered", ["data:creator"], on_enter=S.pending_confirmation),
        Notify("service_ticket/reopened", ["data:handler"], on_event="reopen"),
        Notify("service_ticket/message_to_operations", ["role:operations_manager"], on_event="leave_message",
               when=lambda ctx: ctx.actor.partner_id is not None),
        Notify("service_ticket/message_to_partner", ["data:creator"], on_event="leave_message",
               when=lambda ctx: ctx.actor.partner_id is None),
        Notify("service_ticket/reminder", ["role:operations_manager"], on_event="remind"),
        Notify("service_ticket/closed", ["data:creator"], on_enter=S.closed),
    ),
)
