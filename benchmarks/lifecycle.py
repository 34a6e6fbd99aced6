"""The lifecycles the benchmarks drive, registered in a `Registry` of their own (not in `workflows/`).

- ``bench_flip``: two states that each arm a deadline, so every transition
  updates the case, appends history, cancels the timer of the state left and
  arms the timer of the state entered.
- ``bench_approval``: submit, then approve by a person or expire by a timer
  three days later (the peer lifecycle of the SpiffWorkflow comparison).
"""
from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from engine.definition import Timer, Transition, Workflow
from engine.registry import Registry
from engine.schema import Field, Schema


class Flip(StrEnum):
    left = "left"  #: waiting on the left; a deadline is armed
    right = "right"  #: waiting on the right; a deadline is armed
    expired = "expired"  #: nobody moved it in time (final)


FLIP = Workflow(
    name="bench_flip",
    title="Benchmark: flip between two waiting states",
    states=Flip,
    initial=Flip.left,
    final=(Flip.expired,),
    start_schema=Schema(Field("n", "int", required=False, default=0)),
    start_roles={"ecosystem_manager"},
    partner_required=False,
    transitions=(
        Transition("flip", Flip.left, Flip.right, {"ecosystem_manager"}),
        Transition("flop", Flip.right, Flip.left, {"ecosystem_manager"}),
        Transition("expire", (Flip.left, Flip.right), Flip.expired, {"system"}),
    ),
    timers=(
        Timer(Flip.left, "expire", after=timedelta(days=3)),
        Timer(Flip.right, "expire", after=timedelta(days=3)),
    ),
)


class Approval(StrEnum):
    draft = "draft"  #: being written
    pending = "pending"  #: submitted; an approver must decide within three days
    approved = "approved"  #: approved (final)
    expired = "expired"  #: nobody decided within three days (final)


APPROVAL = Workflow(
    name="bench_approval",
    title="Benchmark: approval with a deadline",
    states=Approval,
    initial=Approval.draft,
    final=(Approval.approved, Approval.expired),
    start_schema=Schema(Field("title", "str", max_length=200)),
    start_roles={"partner_admin", "ecosystem_manager"},
    partner_required=False,
    transitions=(
        Transition("submit", Approval.draft, Approval.pending, {"partner_admin", "ecosystem_manager"}),
        Transition("approve", Approval.pending, Approval.approved, {"ecosystem_manager"}),
        Transition("expire", Approval.pending, Approval.expired, {"system"}),
    ),
    timers=(Timer(Approval.pending, "expire", after=timedelta(days=3)),),
)


def registry() -> Registry:
    reg = Registry()
    reg.add(FLIP)
    reg.add(APPROVAL)
    return reg
