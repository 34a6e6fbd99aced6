"""Monthly incentive reconciliation (LIFECYCLES section 6; FAQ 5.5.2, 5.5.3, 5.5.5).

Rules enforced:
- Opening (FAQ 5.5.2, 5.5.3): the calendar schedule ``incentive_reconciliation_open``
  runs at 09:00 Beijing time on the N-th working day of every month
  (``PARTNERFLOW_RECONCILIATION_OPEN_WORKING_DAY``, default 3, refused
  outside 1..5: the FAQ says within the first 5 working days) and opens one
  reconciliation of the previous month for every partner with monthly
  incentives recorded in the ``incentives`` table (``partnerflow incentives
  add``). The opening day follows the program's own calendar (mainland
  China, Beijing time, FAQ 5.7.12); holidays are skipped, so January's run
  lands after the New Year holiday. The partner is emailed. Operators may open a missed one by hand
  (``partnerflow start incentive_reconciliation``); a second open
  reconciliation for the same partner and month is refused.
- Period end (FAQ 5.5.5): the partner may confirm until, and reject before,
  the end (23:59:59) of the N-th working day after opening in the partner's
  time zone and working-day calendar
  (``PARTNERFLOW_RECONCILIATION_CONFIRM_WORKING_DAYS``, default 10). At that
  instant the system confirms automatically. A reminder email goes out at
  the opening's local time of day, M working days before the deadline day
  (``PARTNERFLOW_RECONCILIATION_REMINDER_WORKING_DAYS``, default 2).
- Rejection (FAQ 5.5.5): the partner rejects with a reason (comment
  required) before the deadline; this cancels the auto-confirm timer and
  opens an operations-manager task. The operations manager revises the
  amount (or keeps it, explaining why) and re-opens the reconciliation for a
  new confirmation period, or cancels it.
- Race: the partner's click and the deadline timer run in one transaction
  each on the same row (row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite);
  whichever commits first wins, the other sees the state already left (the
  timer becomes obsolete; the click is a conflict naming who confirmed). A
  rejection at or after the deadline is refused even before the timer ran.
- Confirmation, by the partner or the system, starts an ``incentive_payout``
  case for the confirmed amount (LIFECYCLES section 6).
"""
from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from enum import StrEnum

import click
from sqlalchemy import select

from engine.calendar import calendar_for
from engine.cliutil import date_arg, echo_json, handle_errors, open_runtime
from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.errors import ValidationError
from engine.incentives import (
    add_incentive,
    incentive_lines,
    list_incentives,
    list_withholding_rates,
    partners_with_incentives,
    previous_month,
    set_withholding_rate,
)
from engine.models import Instance
from engine.roles import ADMIN, FINANCE, OPERATIONS_MANAGER, PARTNER_ADMIN, SYSTEM
from engine.schedules import CalendarSchedule, ScheduleCtx, monthly_working_day, once_each
from engine.schema import Field, Schema
from engine.settings import setting

I = Instance.__table__
NAME = "incentive_reconciliation"


class S(StrEnum):
    open = "open"  #: waiting for the partner to confirm or reject before the period ends
    confirmed = "confirmed"  #: confirmed by the partner or automatically; a payout case was started (final)
    rejected = "rejected"  #: the partner disagreed; an operations manager follows up
    cancelled = "cancelled"  #: withdrawn by operations after a rejection (final)


# -- settings -------------------------------------------------------------------
def open_working_day() -> int:
    n = setting("reconciliation_open_working_day", 3)
    if not 1 <= n <= 5:
        raise ValidationError("PARTNERFLOW_RECONCILIATION_OPEN_WORKING_DAY",
                              f"{n} is outside 1..5: reconciliations open within the first 5 working days (FAQ 5.5.2)")
    return n


def confirm_working_days() -> int:
    return setting("reconciliation_confirm_working_days", 10)


def reminder_working_days() -> int:
    return setting("reconciliation_reminder_working_days", 2)


# -- schemas ----------------------------------------------------------------------
START = Schema(Field("period", "str", pattern=r"\d{4}-(0[1-9]|1[0-2])", pattern_hint="a month like 2026-02",
                     description="The month reconciled"))
REVISE = Schema(Field("amount", "money", required=False, description="Corrected total; omit to keep it"))


# -- guards and effects ---------------------------------------------------------------
def period_has_incentives(ctx: Ctx) -> str | None:
    """A reconciliation needs monthly incentives recorded for the partner and month."""
    if not incentive_lines(ctx.conn, ctx.partner["id"], "monthly", ctx.data["period"]):
        return f"{ctx.partner['code']} has no monthly incentives recorded for {ctx.data['period']}"
    return None


def one_reconciliation_per_month(ctx: Ctx) -> str | None:
    row = ctx.conn.execute(select(I.c.id, I.c.state).where(
        I.c.workflow == NAME, I.c.partner_id == ctx.partner["id"], I.c.business_key == ctx.data["period"],
        I.c.state != S.cancelled)).first()
    if row is not None:
        return f"the reconciliation of {ctx.data['period']} for {ctx.partner['code']} is already case {row.id} ({row.state})"
    return None


def deadline(ctx: Ctx) -> datetime:
    """End of the N-th working day after now in the partner's calendar."""
    return ctx.calendar.end_of_nth_working_day_after(ctx.now, confirm_working_days())


def open_period(ctx: Ctx) -> dict:
    lines = incentive_lines(ctx.conn, ctx.partner["id"], "monthly", ctx.data["period"])
    total = sum((Decimal(x["amount"]) for x in lines), Decimal("0"))
    return {"lines": lines, "amount": str(total.quantize(Decimal("0.01"))), "currency": lines[0]["currency"],
            "opened_at": ctx.now.isoformat(), "confirm_by": deadline(ctx).isoformat()}


def confirm_by(ctx: Ctx) -> datetime:
    return ctx.instant("confirm_by")


def reminder_at(ctx: Ctx) -> datetime:
    """Opening's local time of day, M working days before the deadline day."""
    cal = ctx.calendar
    day = cal.add_working_days(cal.local_date(confirm_by(ctx)), -reminder_working_days())
    return cal.at(day, cal.local(ctx.now).time().replace(tzinfo=None))


def reminder_still_ahead(ctx: Ctx) -> bool:
    return reminder_at(ctx) > ctx.now


def before_deadline(ctx: Ctx) -> str | None:
    """A rejection must come before the period ends; after it the reconciliation is confirmed automatically."""
    end = confirm_by(ctx)
    if ctx.now >= end:
        return (f"the reconciliation period ended at {ctx.calendar.format(end)}; "
                "it is confirmed automatically and can no longer be rejected")
    return None


def start_payout(ctx: Ctx) -> dict:
    """Confirmation starts the payout of the confirmed amount."""
    ctx.start_later("incentive_payout", {
        "partner": ctx.partner["code"], "kind": "monthly", "period": ctx.data["period"],
        "amount": ctx.data["amount"], "currency": ctx.data["currency"], "source_case": ctx.instance_id,
    })
    return {"confirmed_at": ctx.now.isoformat(), "confirmed_by": ctx.actor.login}


def revise(ctx: Ctx) -> dict:
    changes = {"opened_at": ctx.now.isoformat(), "confirm_by": deadline(ctx).isoformat(),
               "revisions": int(ctx.data.get("revisions", 0)) + 1}
    if ctx.payload.get("amount") is not None:
        changes["amount"] = ctx.payload["amount"]
    return changes


def record_rejection(ctx: Ctx) -> dict:
    return {"rejected_at": ctx.now.isoformat(), "rejection_reason": ctx.comment}


PARTNER = frozenset({PARTNER_ADMIN})
OPS = frozenset({OPERATIONS_MANAGER, ADMIN})

WORKFLOW = Workflow(
    name=NAME,
    title="Monthly incentive reconciliation",
    faq="FAQ 5.5.2, 5.5.3, 5.5.5",
    description="Opened in the first working days of the next month; confirmed by the partner or automatically "
                "when the period ends; a rejection goes to an operations manager.",
    states=S,
    initial=S.open,
    final=(S.confirmed, S.cancelled),
    start_schema=START,
    start_roles={SYSTEM, OPERATIONS_MANAGER, FINANCE},
    start_guards=(period_has_incentives, one_reconciliation_per_month),
    start_effect=open_period,
    business_key=lambda d: d.get("period"),
    transitions=(
        Transition("confirm", S.open, S.confirmed, PARTNER, effect=start_payout),
        Transition("auto_confirm", S.open, S.confirmed, {SYSTEM}, effect=start_payout, label="period ended"),
        Transition("reject", S.open, S.rejected, PARTNER, guards=(before_deadline,), comment_required=True,
                   effect=record_rejection),
        Transition("remind", S.open, None, {SYSTEM}, label="reminder"),
        Transition("revise", S.rejected, S.open, OPS, payload=REVISE, comment_required=True, effect=revise),
        Transition("cancel", S.rejected, S.cancelled, OPS, comment_required=True),
    ),
    timers=(
        Timer(S.open, "auto_confirm", at=confirm_by,
              description="end of the N-th working day after opening, partner's zone "
                          "(PARTNERFLOW_RECONCILIATION_CONFIRM_WORKING_DAYS, default 10)"),
        Timer(S.open, "remind", at=reminder_at, when=reminder_still_ahead,
              description="M working days before the deadline (PARTNERFLOW_RECONCILIATION_REMINDER_WORKING_DAYS, default 2)"),
    ),
    tasks=(
        InboxTask(S.rejected, OPERATIONS_MANAGER, "Follow up the partner's rejected incentive reconciliation",
                  due_working_days=3, amount_field="amount", currency_field="currency"),
    ),
    notifications=(
        Notify("incentive_reconciliation/opened", ["partner"], on_enter=S.open, category="finance"),
        Notify("incentive_reconciliation/reminder", ["partner"], on_event="remind", category="finance", reminder=True),
        Notify("incentive_reconciliation/confirmed", ["partner"], on_enter=S.confirmed, category="finance"),
        Notify("incentive_reconciliation/rejected", ["role:operations_manager"], on_enter=S.rejected),
        Notify("incentive_reconciliation/cancelled", ["partner"], on_enter=S.cancelled, category="finance"),
    ),
)


# -- calendar schedule ---------------------------------------------------------------
def open_slot(after: datetime) -> datetime:
    """09:00 Beijing time on the configured working day (1..5) of each month."""
    return monthly_working_day(open_working_day(), time(9, 0))(after)


def open_reconciliations(sctx: ScheduleCtx) -> str:
    """Open last month's reconciliation for every partner with monthly incentives (idempotent per partner)."""
    period = previous_month(sctx.program_date())
    partners = partners_with_incentives(sctx.conn, "monthly", period)
    codes = sctx.partner_codes(partners)
    opened, skipped = once_each(partners, lambda pid: sctx.case_exists(NAME, pid, period),
                                lambda pid: sctx.start(NAME, {"partner": codes[pid], "period": period}))
    names = ", ".join(codes[pid] for pid in opened) or "-"
    return f"{period}: opened {len(opened)} ({names}); already open {len(skipped)}"


SCHEDULES = [CalendarSchedule("incentive_reconciliation_open", open_slot, open_reconciliations,
                              "N-th working day (1..5) of each month: open last month's reconciliations")]


# -- demo ---------------------------------------------------------------------------------
def seed_demo(runtime, people) -> None:
    """A reconciliation of last month for ACME that will auto-confirm when its period ends."""
    now = runtime.now()
    period = previous_month(calendar_for(None, None).local_date(now))
    with runtime.db.write() as conn:
        add_incentive(conn, partner="ACME", kind="monthly", period=period, item="Resale rebate",
                      amount="18250.00", currency="CNY", by="system", now=now)
        add_incentive(conn, partner="ACME", kind="monthly", period=period, item="New customer bonus",
                      amount="3000.00", currency="CNY", by="system", now=now)
    runtime.start(NAME, {"partner": "ACME", "period": period}, people.actor("oscar"))


# -- command line ------------------------------------------------------------------------
@click.group("incentives")
def CLI() -> None:
    """Incentive amounts, withholding tax rates and dedicated personnel."""


@CLI.command("add")
@click.option("--partner", required=True, help="Partner code")
@click.option("--period", required=True, help="2026-02 (monthly) or 2026-Q1 (quarterly kinds)")
@click.option("--amount", required=True, help="Amount as text, e.g. 1200.50")
@click.option("--currency", default="CNY", show_default=True)
@click.option("--kind", default="monthly", show_default=True,
              type=click.Choice(["monthly", "reseller_customer", "funding_head", "competency"]))
@click.option("--item", default="Incentive", show_default=True, help="What the amount is for")
@click.option("--as", "login", default="system", show_default=True)
@handle_errors
def add_cmd(partner, period, amount, currency, kind, item, login) -> None:
    """Record an incentive amount a partner earned in a period."""
    rt = open_runtime()
    with rt.db.write() as conn:
        echo_json(add_incentive(conn, partner=partner, kind=kind, period=period, item=item, amount=amount,
                                currency=currency, by=login, now=rt.now()))


@CLI.command("list")
@click.option("--partner", default=None)
@click.option("--period", default=None)
@handle_errors
def list_cmd(partner, period) -> None:
    """List recorded incentives."""
    with open_runtime().db.read() as conn:
        echo_json(list_incentives(conn, partner, period))


@CLI.command("withholding")
@click.argument("country", required=False)
@click.argument("rate", required=False)
@click.option("--note", default=None)
@click.option("--as", "login", default="system", show_default=True)
@handle_errors
def withholding_cmd(country, rate, note, login) -> None:
    """Show the withholding tax rates, or set COUNTRY's RATE (a fraction: 0.10 is 10 %)."""
    rt = open_runtime()
    if country is None:
        with rt.db.read() as conn:
            echo_json(list_withholding_rates(conn))
        return
    if rate is None:
        raise ValidationError("rate", "is required when a country is given")
    with rt.db.write() as conn:
        echo_json(set_withholding_rate(conn, country, rate, login, rt.now(), note))


@CLI.command("person")
@click.option("--partner", required=True)
@click.option("--name", required=True)
@click.option("--started", required=True, help="First day on the job, YYYY-MM-DD")
@click.option("--ended", default=None, help="Last day on the job, YYYY-MM-DD")
@click.option("--login", default=None)
@handle_errors
def person_cmd(partner, name, started, ended, login) -> None:
    """Record a partner's dedicated person (funding-head incentives)."""
    from engine.incentives import add_person

    rt = open_runtime()
    with rt.db.write() as conn:
        echo_json(add_person(conn, partner=partner, name=name, started_on=date_arg(started, "started"),
                             ended_on=date_arg(ended, "ended"), now=rt.now(), login=login))
