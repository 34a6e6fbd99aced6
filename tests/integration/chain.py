"""A small lifecycle used only by engine tests: timers of every kind, a branch, an internal event."""
from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.registry import Registry, default_registry
from engine.schedules import CalendarSchedule, monthly_working_day
from engine.schema import Field, Schema


class S(StrEnum):
    waiting = "waiting"
    one = "one"
    two = "two"
    done = "done"
    big = "big"
    cancelled = "cancelled"


def ends_at_deadline(ctx: Ctx):
    return ctx.calendar.end_of_day(ctx.date("deadline"))


WORKFLOW = Workflow(
    name="chain",
    title="Chain (test)",
    states=S,
    initial=S.waiting,
    final=(S.done, S.cancelled, S.big),
    start_schema=Schema(Field("deadline", "date"), Field("size", "int", required=False, default=1)),
    start_roles={"partner_admin", "ecosystem_manager"},
    partner_required=True,
    transitions=(
        Transition("step", S.waiting, S.big, {"system"}, when=lambda ctx: ctx.data.get("size", 1) > 9),
        Transition("step", S.waiting, S.one, {"system"}),
        Transition("step", S.one, S.two, {"system"}),
        Transition("step", S.two, S.done, {"system"}),
        Transition("poke", (S.waiting, S.one), None, {"ecosystem_manager"}),
        Transition("cancel", (S.waiting, S.one, S.two), S.cancelled, {"partner_admin"}),
    ),
    timers=(
        Timer(S.waiting, "step", after=timedelta(hours=1)),
        Timer(S.one, "step", working_days=2),
        Timer(S.two, "step", at=ends_at_deadline, description="end of the deadline day"),
    ),
    tasks=(InboxTask(S.one, "ecosystem_manager", "Look at it", due_working_days=1),
           InboxTask(S.one, "ecosystem_manager", "Poked", on_event="poke", name="poked")),
    notifications=(Notify("chain/done", ["partner"], on_enter=S.done),),
)

RUNS: list = []


def monthly(ctx):
    RUNS.append(ctx.slot)
    return f"ran for {ctx.slot.isoformat()}"


SCHEDULE = CalendarSchedule("chain-monthly", monthly_working_day(3), monthly)


def registry() -> Registry:
    reg = Registry()
    for wf in default_registry():
        reg.add(wf)
    reg.add(WORKFLOW, [SCHEDULE])
    return reg
