"""Incentive payout (LIFECYCLES section 6; FAQ 5.5.2, 5.5.4, 5.5.9-5.5.12, 5.1.8, 2.1.4, 2.1.5, 4.6.3).

A payout case is the notice asking the partner to apply for an earning. It is
started by a confirmed monthly reconciliation, by the quarter-start schedule
for reseller-customer incentives, by a funding-head payment request, or by
finance.

Rules enforced:
- Validity (FAQ 5.5.12): an earning is valid for one year from the notice:
  until the end (23:59:59, partner's zone) of the notice's anniversary date
  (29 February -> 28 February). Then the system expires it. A reminder goes
  out ``PARTNERFLOW_PAYOUT_EXPIRY_REMINDER_DAYS`` (default 30) days before.
- Methods (FAQ 5.5.10, 5.5.11): bank transfer or account top-up -> the
  partner must issue an invoice within 5 working days
  (``PARTNERFLOW_PAYOUT_INVOICE_WORKING_DAYS``); once the invoice is received,
  payment is due within 30 calendar days
  (``PARTNERFLOW_PAYOUT_PAYMENT_DAYS``), i.e. by the end of the 30th day after
  receipt in the partner's zone. Cash coupons need no invoice and are issued
  within 5 working days (``PARTNERFLOW_PAYOUT_COUPON_WORKING_DAYS``). Each
  missed deadline opens an overdue task for finance and emails them.
- Bank transfer needs an amount above USD 200 (FAQ 5.1.8): USD 200.00 is
  refused, 200.01 accepted. The minimum per currency is
  ``BANK_TRANSFER_MINIMUM`` (USD 200.00); another currency's minimum can be set
  with ``PARTNERFLOW_BANK_TRANSFER_MINIMUM_<CUR>`` (none by default).
- Quarterly payouts (reseller-customer, funding-head and competency
  incentives) are paid only as cash coupons (FAQ 5.1.8).
- Reseller-customer incentives are quarterly only and exist only when the
  quarter's total reaches ``PARTNERFLOW_RESELLER_QUARTER_THRESHOLD`` (in the
  incentive's currency) (FAQ 5.5.4); LIFECYCLES.md gives no figure, so the
  default, 10000.00, is a placeholder for a deployment to replace. The
  ``quarter_start`` schedule starts them for the previous quarter.
- Program windows (FAQ 4.6.3): a payout of a closed program (the competency
  incentive closed on 2024-12-31) is refused at start and at application
  (`engine.windows.window_open`).
- Certifications (FAQ 2.1.4): paying or issuing coupons is refused, with the
  reason, unless both certifications of section 1 are approved
  (`workflows.payment_authentication.may_be_paid`); finance tasks carry the
  reason as a flag.
- Amount paid (FAQ 2.1.5, 5.5.9): incentive + incentive x VAT rate (the
  partner's approved rate, `payment_authentication.vat_rate`) - incentive x
  the withholding tax rate of the partner's country (table
  ``withholding_tax_rates``, set by finance with ``partnerflow incentives
  withholding CN 0.00``; a country without a rate cannot be paid). Decimal,
  each tax rounded half-up to cents.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select

from engine.calendar import calendar_for
from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.errors import RuleViolation
from engine.incentives import KINDS, check_period, payout_amounts, previous_quarter, totals_for_period, withholding_rate
from engine.models import Instance
from engine.roles import ADMIN, FINANCE, OPERATIONS_MANAGER, PARTNER_ADMIN, SYSTEM
from engine.schedules import CalendarSchedule, ScheduleCtx, quarter_start
from engine.schema import Field, Schema
from engine.settings import setting
from engine.windows import window_open

I = Instance.__table__
NAME = "incentive_payout"
INVOICED = ("bank_transfer", "top_up")
METHODS = ("bank_transfer", "top_up", "cash_coupon")
#: Bank transfer only above these amounts (FAQ 5.1.8); other currencies: PARTNERFLOW_BANK_TRANSFER_MINIMUM_<CUR>.
BANK_TRANSFER_MINIMUM = {"USD": Decimal("200.00")}
#: Program of each incentive kind, for program windows (engine.windows).
PROGRAM_OF_KIND = {"monthly": "monthly_incentive", "reseller_customer": "reseller_customer_incentive",
                   "funding_head": "funding_head_incentive", "competency": "competency_incentive"}


class S(StrEnum):
    awaiting_application = "awaiting_application"  #: notice sent; the partner must apply within one year
    awaiting_invoice = "awaiting_invoice"  #: bank transfer / top-up: the partner must issue an invoice
    invoice_received = "invoice_received"  #: finance must pay within 30 calendar days
    awaiting_coupons = "awaiting_coupons"  #: cash coupons: finance must issue them within 5 working days
    paid = "paid"  #: paid or coupons issued (final)
    expired = "expired"  #: not applied for within one year of the notice (final)
    cancelled = "cancelled"  #: withdrawn by finance with a reason (final)


# -- settings -------------------------------------------------------------------------
def invoice_working_days() -> int:
    return setting("payout_invoice_working_days", 5)


def payment_days() -> int:
    return setting("payout_payment_days", 30)


def coupon_working_days() -> int:
    return setting("payout_coupon_working_days", 5)


def expiry_reminder_days() -> int:
    return setting("payout_expiry_reminder_days", 30)


def reseller_threshold() -> Decimal:
    return setting("reseller_quarter_threshold", Decimal("10000.00"), Decimal)


def bank_transfer_minimum(currency: str) -> Decimal | None:
    return setting(f"bank_transfer_minimum_{currency.lower()}", BANK_TRANSFER_MINIMUM.get(currency), Decimal)


# -- schemas --------------------------------------------------------------------------------
START = Schema(
    Field("kind", "choice", choices=tuple(KINDS)),
    Field("period", "str", max_length=8, description="2026-02 (monthly) or 2026-Q1 (quarterly kinds)"),
    Field("amount", "money", minimum=Decimal("0.01")),
    Field("currency", "choice", choices=("CNY", "USD", "EUR", "HKD", "SGD")),
    Field("source_case", "int", required=False, description="The reconciliation or funding-head case"),
    Field("program", "str", required=False, max_length=64, description="Program window checked (default by kind)"),
)
APPLY = Schema(Field("method", "choice", choices=METHODS, description="bank_transfer, top_up or cash_coupon"))
INVOICE = Schema(Field("invoice_number", "str", max_length=64),
                 Field("invoice_amount", "money", required=False))
PAY = Schema(Field("reference", "str", required=False, max_length=128, description="Transfer or top-up reference"),
             Field("coupon_codes", "list", items=Field("code", "str", max_length=64), required=False, max_items=100))


# -- guards --------------------------------------------------------------------------------
def period_matches_kind(ctx: Ctx) -> str | None:
    check_period(ctx.data["kind"], ctx.data["period"])
    return None


def reseller_quarter_reaches_threshold(ctx: Ctx) -> str | None:
    """Reseller-customer incentives exist only when the quarter reaches its threshold (FAQ 5.5.4)."""
    if ctx.data["kind"] != "reseller_customer":
        return None
    threshold = reseller_threshold()
    amount = ctx.money("amount")
    if amount < threshold:
        return (f"reseller-customer incentive for {ctx.data['period']} is {amount} {ctx.data['currency']}, below the "
                f"quarterly threshold of {threshold}: no incentive for this quarter")
    return None


def one_payout_per_earning(ctx: Ctx) -> str | None:
    key = f"{ctx.data['kind']}:{ctx.data['period']}"
    row = ctx.conn.execute(select(I.c.id, I.c.state).where(
        I.c.workflow == NAME, I.c.partner_id == ctx.partner["id"], I.c.business_key == key,
        I.c.state != S.cancelled)).first()
    if row is not None:
        return f"the {ctx.data['kind']} incentive of {ctx.data['period']} already has payout case {row.id} ({row.state})"
    return None


def program_of(ctx: Ctx) -> str:
    return ctx.data.get("program") or PROGRAM_OF_KIND[ctx.data["kind"]]


program_window_open = window_open(program_of)


def quarterly_only_as_coupons(ctx: Ctx) -> str | None:
    """Quarterly payouts are paid only as cash coupons (FAQ 5.1.8)."""
    if ctx.data.get("frequency") == "quarterly" and ctx.payload["method"] != "cash_coupon":
        return (f"{ctx.data['kind']} incentives are paid quarterly, and quarterly payouts are paid only as cash "
                f"coupons; {ctx.payload['method']} is not available")
    return None


def bank_transfer_above_minimum(ctx: Ctx) -> str | None:
    """Bank transfer needs an amount above USD 200 (FAQ 5.1.8)."""
    if ctx.payload["method"] != "bank_transfer":
        return None
    minimum = bank_transfer_minimum(ctx.data["currency"])
    amount = ctx.money("amount")
    if minimum is not None and amount <= minimum:
        return (f"bank transfer needs an amount above {ctx.data['currency']} {minimum}; this earning is "
                f"{ctx.data['currency']} {amount}: choose top_up or cash_coupon")
    return None


def certifications_approved(ctx: Ctx) -> str | None:
    """Both certifications of section 1 approved, payouts not blocked (FAQ 2.1.4, 2.1.7)."""
    reason = _may_be_paid(ctx.conn, ctx.partner["id"])
    return f"payout blocked: {reason}" if reason else None


def _may_be_paid(conn, partner_id: int) -> str | None:
    from workflows.payment_authentication import may_be_paid

    return may_be_paid(conn, partner_id)


def blocked_flags(ctx: Ctx) -> list[str]:
    reason = _may_be_paid(ctx.conn, ctx.partner["id"])
    return [f"payout blocked: {reason}"] if reason else []


# -- effects and deadlines --------------------------------------------------------------------------
def notice(ctx: Ctx) -> dict:
    """The notice: frequency by kind, and the end of the one-year validity (FAQ 5.5.12)."""
    day = ctx.calendar.local_date(ctx.now)
    try:
        anniversary = day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        anniversary = date(day.year + 1, 2, 28)
    return {"frequency": "monthly" if KINDS[ctx.data["kind"]] == "month" else "quarterly",
            "program": program_of(ctx), "notice_at": ctx.now.isoformat(),
            "valid_until": ctx.calendar.end_of_day(anniversary).isoformat()}


def valid_until(ctx: Ctx) -> datetime:
    return ctx.instant("valid_until")


def expiry_reminder_at(ctx: Ctx) -> datetime:
    return valid_until(ctx) - timedelta(days=expiry_reminder_days())


def reminder_ahead(ctx: Ctx) -> bool:
    return expiry_reminder_at(ctx) > ctx.now


def record_application(ctx: Ctx) -> dict:
    return {"method": ctx.payload["method"], "applied_at": ctx.now.isoformat(), "applied_by": ctx.actor.login}


def invoice_due(ctx: Ctx) -> datetime:
    return ctx.calendar.end_of_nth_working_day_after(ctx.now, invoice_working_days())


def coupons_due(ctx: Ctx) -> datetime:
    return ctx.calendar.end_of_nth_working_day_after(ctx.now, coupon_working_days())


def payment_due(ctx: Ctx) -> datetime:
    """End of the 30th calendar day after the invoice was received, in the partner's zone."""
    return ctx.calendar.end_of_nth_day_after(ctx.instant("invoice_received_at"), payment_days())


def record_invoice(ctx: Ctx) -> dict:
    return {"invoice_number": ctx.payload["invoice_number"], "invoice_amount": ctx.payload.get("invoice_amount"),
            "invoice_received_at": ctx.now.isoformat(), "invoice_received_by": ctx.actor.login}


def settle(ctx: Ctx) -> dict:
    """Compute what is paid: incentive + VAT - withholding tax of the partner's country."""
    from workflows.payment_authentication import vat_rate

    country = ctx.partner.get("region")
    wht = withholding_rate(ctx.conn, country)
    if wht is None:
        raise RuleViolation(f"no withholding tax rate is recorded for country {country}; finance must set it "
                            f"(partnerflow incentives withholding {country} <rate>) before paying",
                            rule="withholding_rate_recorded")
    vat = vat_rate(ctx.conn, ctx.partner["id"])
    if vat is None:
        raise RuleViolation("the partner's approved payment information has no VAT rate", rule="vat_rate_known")
    return {**payout_amounts(ctx.money("amount"), vat, wht), "paid_at": ctx.now.isoformat(),
            "paid_by": ctx.actor.login, "reference": ctx.payload.get("reference"),
            "coupon_codes": ctx.payload.get("coupon_codes") or []}


PARTNER = frozenset({PARTNER_ADMIN})
FIN = frozenset({FINANCE, ADMIN})

WORKFLOW = Workflow(
    name=NAME,
    title="Incentive payout",
    faq="FAQ 5.5.2, 5.5.4, 5.5.9-5.5.12, 5.1.8, 2.1.4, 2.1.5",
    description="Notice -> application by method -> invoice and payment within 30 days, or cash coupons within "
                "5 working days; expires one year after the notice.",
    states=S,
    initial=S.awaiting_application,
    final=(S.paid, S.expired, S.cancelled),
    start_schema=START,
    start_roles={SYSTEM, FINANCE, OPERATIONS_MANAGER},
    start_guards=(period_matches_kind, reseller_quarter_reaches_threshold, one_payout_per_earning,
                  program_window_open),
    start_effect=notice,
    business_key=lambda d: f"{d['kind']}:{d['period']}",
    transitions=(
        Transition("apply", S.awaiting_application, S.awaiting_invoice, PARTNER, payload=APPLY,
                   when=lambda ctx: ctx.payload["method"] in INVOICED,
                   guards=(program_window_open, quarterly_only_as_coupons, bank_transfer_above_minimum),
                   effect=record_application),
        Transition("apply", S.awaiting_application, S.awaiting_coupons, PARTNER, payload=APPLY,
                   guards=(program_window_open, quarterly_only_as_coupons), effect=record_application),
        Transition("expire", S.awaiting_application, S.expired, {SYSTEM}, label="one year after the notice"),
        Transition("remind_expiry", S.awaiting_application, None, {SYSTEM}, label="reminder"),
        Transition("receive_invoice", S.awaiting_invoice, S.invoice_received, {PARTNER_ADMIN, FINANCE, ADMIN},
                   payload=INVOICE, effect=record_invoice),
        Transition("invoice_overdue", S.awaiting_invoice, None, {SYSTEM}, label="invoice overdue"),
        Transition("return_invoice", S.invoice_received, S.awaiting_invoice, FIN, comment_required=True),
        Transition("pay", S.invoice_received, S.paid, FIN, payload=PAY, guards=(certifications_approved,),
                   effect=settle),
        Transition("payment_overdue", S.invoice_received, None, {SYSTEM}, label="payment overdue"),
        Transition("issue_coupons", S.awaiting_coupons, S.paid, FIN, payload=PAY, guards=(certifications_approved,),
                   effect=settle),
        Transition("coupons_overdue", S.awaiting_coupons, None, {SYSTEM}, label="coupons overdue"),
        Transition("cancel", (S.awaiting_application, S.awaiting_invoice, S.invoice_received, S.awaiting_coupons),
                   S.cancelled, FIN, comment_required=True),
    ),
    timers=(
        Timer(S.awaiting_application, "expire", at=valid_until, description="end of the notice's anniversary date"),
        Timer(S.awaiting_application, "remind_expiry", at=expiry_reminder_at, when=reminder_ahead,
              description="PARTNERFLOW_PAYOUT_EXPIRY_REMINDER_DAYS (30) days before expiry"),
        Timer(S.awaiting_invoice, "invoice_overdue", at=invoice_due,
              description="end of the 5th working day (PARTNERFLOW_PAYOUT_INVOICE_WORKING_DAYS)"),
        Timer(S.invoice_received, "payment_overdue", at=payment_due,
              description="end of the 30th calendar day after receipt (PARTNERFLOW_PAYOUT_PAYMENT_DAYS)"),
        Timer(S.awaiting_coupons, "coupons_overdue", at=coupons_due,
              description="end of the 5th working day (PARTNERFLOW_PAYOUT_COUPON_WORKING_DAYS)"),
    ),
    tasks=(
        InboxTask(S.awaiting_invoice, FINANCE, "Invoice overdue: chase the partner's invoice", on_event="invoice_overdue",
                  name="invoice_overdue", due_working_days=3, amount_field="amount", currency_field="currency"),
        InboxTask(S.invoice_received, FINANCE, "Pay the incentive (invoice received)", due=payment_due,
                  amount_field="amount", currency_field="currency", flags=blocked_flags),
        InboxTask(S.invoice_received, FINANCE, "Payment overdue: the 30-day payment deadline has passed",
                  on_event="payment_overdue", name="payment_overdue", due_working_days=1,
                  amount_field="amount", currency_field="currency", flags=blocked_flags),
        InboxTask(S.awaiting_coupons, FINANCE, "Issue the cash coupons", due=coupons_due,
                  amount_field="amount", currency_field="currency", flags=blocked_flags),
        InboxTask(S.awaiting_coupons, FINANCE, "Coupons overdue: issue the cash coupons now", on_event="coupons_overdue",
                  name="coupons_overdue", due_working_days=1, amount_field="amount", currency_field="currency",
                  flags=blocked_flags),
    ),
    notifications=(
        Notify("incentive_payout/notice", ["partner"], on_enter=S.awaiting_application, category="finance"),
        Notify("incentive_payout/expiry_reminder", ["partner"], on_event="remind_expiry", category="finance",
               reminder=True),
        Notify("incentive_payout/expired", ["partner"], on_enter=S.expired, category="finance"),
        Notify("incentive_payout/invoice_requested", ["partner"], on_enter=S.awaiting_invoice, category="finance"),
        Notify("incentive_payout/invoice_overdue", ["partner", "role:finance"], on_event="invoice_overdue",
               category="finance"),
        Notify("incentive_payout/invoice_received", ["partner", "role:finance"], on_enter=S.invoice_received,
               category="finance"),
        Notify("incentive_payout/invoice_returned", ["partner"], on_event="return_invoice", category="finance"),
        Notify("incentive_payout/payment_overdue", ["role:finance"], on_event="payment_overdue", category="finance"),
        Notify("incentive_payout/coupons_pending", ["partner", "role:finance"], on_enter=S.awaiting_coupons,
               category="finance"),
        Notify("incentive_payout/coupons_overdue", ["role:finance"], on_event="coupons_overdue", category="finance"),
        Notify("incentive_payout/paid", ["partner"], on_enter=S.paid, category="finance"),
        Notify("incentive_payout/cancelled", ["partner"], on_enter=S.cancelled, category="finance"),
    ),
)


# -- calendar schedule: reseller-customer incentives per quarter ---------------------------------------
def start_reseller_payouts(sctx: ScheduleCtx) -> str:
    """At each quarter start: a payout for every partner whose reseller-customer incentives of the previous
    quarter reach the threshold (FAQ 5.5.4); below it there is no incentive. A partner whose payout of the
    quarter exists already (started by hand, or by an earlier slot of a catch-up) is reported as skipped."""
    period = previous_quarter(sctx.program_date())
    threshold = reseller_threshold()
    totals = totals_for_period(sctx.conn, "reseller_customer", period)
    codes = sctx.partner_codes(t.partner_id for t in totals)
    started, below, skipped = [], [], []
    for total in totals:
        code = codes[total.partner_id]
        if total.total < threshold:
            below.append(code)
            continue
        if sctx.case_exists(NAME, total.partner_id, f"reseller_customer:{period}"):
            skipped.append(code)
            continue
        sctx.start(NAME, {"partner": code, "kind": "reseller_customer", "period": period,
                          "amount": str(total.total), "currency": total.currency})
        started.append(code)
    return (f"{period}: started {', '.join(started) or '-'}; below threshold {', '.join(below) or '-'}; "
            f"skipped {', '.join(skipped) or '-'}")


SCHEDULES = [CalendarSchedule("reseller_incentive_quarter", quarter_start(time(9, 0)), start_reseller_payouts,
                              "quarter start: reseller-customer payouts of the previous quarter above the threshold")]


def seed_demo(runtime, people) -> None:
    """A payout of USD 1,250.00 by bank transfer for the month before last, waiting for the partner's invoice."""
    from engine.incentives import previous_month

    last = calendar_for(None, None).local_date(runtime.now()).replace(day=1) - timedelta(days=1)
    case = runtime.start(NAME, {"partner": "ACME", "kind": "monthly", "period": previous_month(last),
                                "amount": "1250.00", "currency": "USD"}, people.actor("fiona"))
    runtime.fire(case["id"], "apply", people.actor("acme-admin"), {"method": "bank_transfer"})
