"""Small lifecycles used only by the reliability tests.

``deadline``: a case waits for one durable timer (due at the instant given in
its start data) that moves it to ``expired`` and queues one email per partner
recipient; the crash, outage and no-worker tests count its firings.

``settlement``: a reconciliation-like case the partner may confirm or reject
while an auto-confirm timer runs to the end of the period; each outcome
queues its own email. The races test rejects at the instant the timer is due.

They borrow existing email templates (each outcome a different one) and put
the fields those templates read (``title``, ``exam``) into the case data,
so every row they queue renders in both locales like any other.
"""
from __future__ import annotations

from enum import StrEnum

from engine.definition import Notify, Timer, Transition, Workflow
from engine.registry import Registry, default_registry
from engine.schema import Field, Schema


EXPIRED_MAIL = "service_ticket/taken"
#: The email each settlement outcome queues (event -> template).
MAIL = {"auto_confirm": "service_ticket/taken", "reject": "exam_voucher/rejected", "confirm": "mdf_claim/unfrozen"}


class D(StrEnum):
    waiting = "waiting"  #: the timer is armed
    expired = "expired"  #: the timer fired (final)
    cancelled = "cancelled"  #: a person closed it first (final)


DEADLINE = Workflow(
    name="rel_deadline",
    title="Deadline (reliability tests)",
    states=D,
    initial=D.waiting,
    final=(D.expired, D.cancelled),
    start_schema=Schema(Field("due", "datetime")),
    start_roles={"partner_admin", "ecosystem_manager"},
    transitions=(
        Transition("expire", D.waiting, D.expired, {"system"}),
        Transition("cancel", D.waiting, D.cancelled, {"partner_admin", "ecosystem_manager"}),
    ),
    start_effect=lambda ctx: {"title": "Deadline case", "exam": "Deadline case"},
    timers=(Timer(D.waiting, "expire", at=lambda ctx: ctx.instant("due"), description="at the given instant"),),
    notifications=(Notify(EXPIRED_MAIL, ["partner"], on_enter=D.expired),),
)


class R(StrEnum):
    open = "open"  #: waiting for the partner until the period ends
    confirmed = "confirmed"  #: confirmed by the partner (final)
    auto_confirmed = "auto_confirmed"  #: confirmed automatically at the period end (final)
    rejected = "rejected"  #: rejected by the partner before the period end (final)
    approved = "approved"  #: approved by an operator (final)


SETTLEMENT = Workflow(
    name="rel_settlement",
    title="Settlement (reliability tests)",
    states=R,
    initial=R.open,
    final=(R.confirmed, R.auto_confirmed, R.rejected, R.approved),
    start_schema=Schema(Field("period_end", "datetime")),
    start_roles={"partner_admin", "ecosystem_manager"},
    transitions=(
        Transition("confirm", R.open, R.confirmed, {"partner_admin"}),
        Transition("reject", R.open, R.rejected, {"partner_admin", "ecosystem_manager"}),
        Transition("approve", R.open, R.approved, {"ecosystem_manager"}),
        Transition("auto_confirm", R.open, R.auto_confirmed, {"system"}),
    ),
    start_effect=lambda ctx: {"title": "Settlement case", "exam": "Settlement case"},
    timers=(Timer(R.open, "auto_confirm", at=lambda ctx: ctx.instant("period_end"), description="period end"),),
    notifications=(
        Notify(MAIL["auto_confirm"], ["partner"], on_enter=R.auto_confirmed),
        Notify(MAIL["reject"], ["partner"], on_enter=R.rejected),
        Notify(MAIL["confirm"], ["partner"], on_enter=R.confirmed),
    ),
)


def registry() -> Registry:
    """Every installed lifecycle plus the two test lifecycles."""
    reg = Registry()
    for wf in default_registry():
        reg.add(wf)
    reg.add(DEADLINE)
    reg.add(SETTLEMENT)
    return reg
