"""Monthly budget of a reseller customer (LIFECYCLES section 4, last item; FAQ 5.7.12, 5.1.15).

Rules enforced:
- One budget case per reseller customer, started by its partner (admin or
  member) with a monthly ``budget`` in RMB; the customer must be associated
  with that partner under the reseller model (read from `engine.customers`).
- ``record_spend`` (the billing system as ``system``, or finance) adds an
  amount (money payload, Decimal) to the month's spend.
- Alert emails to the partner and the customer at **75%, 90% and 100%** of the
  budget, each at most once per month. One update that crosses several
  thresholds sends each crossed threshold's alert once (for example 70% ->
  95% sends the 75% and the 90% alerts) and none of them again that month.
  Raising the budget does not re-send an alert already sent that month.
- At 100% (spend >= budget) the customer is ``restricted``: purchases of
  yearly/monthly products (``subscription``) and reserved instances are
  refused; pay-per-use is not. `purchase_allowed(conn, customer_ref,
  product_kind)` answers for other code (and ``partnerflow customers
  purchase-check``) with the reason when refused.
- The partner may raise the budget (only upwards; the restriction is lifted
  when the month's spend falls below the new budget) or freeze the customer
  (``frozen``: every purchase is refused, pay-per-use included, until the
  partner unfreezes).
- The budget starts afresh each month at 00:00 on the 1st in the partner's
  time zone (Beijing time by default, FAQ 5.7.12): spend zero, alerts
  re-armed, restriction lifted (a freeze stays). Each case carries a durable
  ``month_start`` timer for its partner's zone (re-armed by the reset), and
  the calendar schedule ``reseller_budget-month-start``
  (`engine.schedules.monthly_first_day`, Beijing time) sweeps up any budget
  still on a past month. A spend recorded in a new month before the reset
  starts that month itself, and `purchase_allowed` treats a case of a past
  month as fresh.
- The case closes when the customer leaves the partner or the reseller model
  (`customer_association`), or when the partner closes it.
"""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select

from engine import customers as cust
from engine.calendar import calendar_for
from engine.definition import Ctx, Notify, Timer, Transition, Workflow
from engine.errors import ValidationError
from engine.models import Instance, Partner
from engine.roles import ADMIN, FINANCE, PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.schedules import CalendarSchedule, ScheduleCtx, monthly_first_day
from engine.schema import Field, Schema

I = Instance.__table__
P = Partner.__table__
PARTNER_PEOPLE = frozenset({PARTNER_ADMIN, PARTNER_MEMBER})
THRESHOLDS = (75, 90, 100)
#: Product kinds `purchase_allowed` knows; yearly and monthly are both subscriptions.
KINDS = {"pay_per_use": "pay_per_use", "pay-per-use": "pay_per_use", "subscription": "subscription",
         "yearly": "subscription", "monthly": "subscription", "yearly_monthly": "subscription",
         "reserved_instance": "reserved_instance", "reserved-instance": "reserved_instance"}


class S(StrEnum):
    active = "active"  #: spend below the month's budget: every purchase allowed
    restricted = "restricted"  #: budget reached: no yearly/monthly products or reserved instances this month
    frozen = "frozen"  #: frozen by the partner: no purchases at all
    closed = "closed"  #: no longer a reseller customer of the partner, or closed by the partner (final)


START = Schema(
    Field("customer", "email", description="Email of the reseller customer"),
    Field("budget", "money", minimum=Decimal("0.01"), description="Monthly budget (RMB)"),
)
SPEND = Schema(Field("amount", "money", minimum=Decimal("0.01"), description="Amount spent (RMB)"),
               Field("product_kind", "choice", choices=("pay_per_use", "subscription", "reserved_instance"),
                     required=False),
               Field("reference", "str", required=False, max_length=128, description="Bill or order reference"))
RAISE = Schema(Field("budget", "money", minimum=Decimal("0.01"), description="New, higher monthly budget (RMB)"))


# -- facts -------------------------------------------------------------------------
def month_of(ctx: Ctx) -> str:
    """The current month in the partner's time zone (YYYY-MM)."""
    return ctx.calendar.local_date(ctx.now).strftime("%Y-%m")


def spent_after(ctx: Ctx) -> Decimal:
    """The month's spend after this event (a spend in a new month starts from zero)."""
    base = Decimal(ctx.data["spent"]) if ctx.data.get("month") == month_of(ctx) else Decimal("0")
    amount = ctx.money("amount") if ctx.event == "record_spend" else Decimal("0")
    return base + amount


def budget_after(ctx: Ctx) -> Decimal:
    return ctx.money("budget")


def reaches_budget(ctx: Ctx) -> bool:
    return spent_after(ctx) >= budget_after(ctx)


def below_budget(ctx: Ctx) -> bool:
    return not reaches_budget(ctx)


def crossed(threshold: int):
    def alert_due(ctx: Ctx) -> bool:
        return threshold in (ctx.data.get("alerts_new") or [])

    alert_due.__name__ = f"alert_{threshold}_due"
    return alert_due


# -- guards ----------------------------------------------------------------------
def customer_is_your_reseller_customer(ctx: Ctx) -> str | None:
    """A budget exists only for a customer associated with this partner under the reseller model."""
    customer = cust.find_customer(ctx.conn, ctx.data["customer"])
    if customer is None:
        return f"no customer account with email {cust.normalise_email(ctx.data['customer'])}"
    if customer["partner_id"] != ctx.partner["id"] or customer["model"] != "reseller":
        return (f"customer {customer['email']} is not a reseller customer of partner {ctx.partner['code']}: "
                "a monthly budget applies only to your reseller customers (FAQ 5.7.12)")
    existing = open_budget_case(ctx.conn, customer["email"])
    if existing is not None:
        return f"customer {customer['email']} already has a monthly budget (case {existing}); raise it there"
    return None


def budget_is_higher(ctx: Ctx) -> str | None:
    """The partner may only raise the budget (FAQ 5.7.12)."""
    new, old = ctx.money("budget"), Decimal(ctx.data["budget"])
    if new <= old:
        return f"the new budget {new} RMB must be higher than the current budget {old} RMB (the budget can only be raised)"
    return None


# -- effects ---------------------------------------------------------------------
def start_budget(ctx: Ctx) -> dict:
    customer = cust.get_customer(ctx.conn, ctx.data["customer"])
    return {"customer": customer["email"], "customer_id": customer["id"], "customer_name": customer["name"],
            "currency": "CNY", "spent": "0.00", "month": month_of(ctx), "alerts_sent": [], "alerts_new": [],
            "past_months": []}


def _roll(ctx: Ctx) -> dict:
    """Start the current month when the case still holds a past one."""
    if ctx.data.get("month") == month_of(ctx):
        return {}
    past = list(ctx.data.get("past_months") or [])
    past.append({"month": ctx.data.get("month"), "budget": ctx.data["budget"], "spent": ctx.data["spent"],
                 "alerts_sent": ctx.data.get("alerts_sent") or []})
    return {"month": month_of(ctx), "spent": "0.00", "alerts_sent": [], "past_months": past[-24:]}


def record_spend(ctx: Ctx) -> dict:
    rolled = _roll(ctx)
    spent = spent_after(ctx)
    budget = Decimal(ctx.data["budget"])
    sent = list(rolled.get("alerts_sent", ctx.data.get("alerts_sent") or []))
    new = [t for t in THRESHOLDS if t not in sent and spent * 100 >= budget * t]
    return {**rolled, "spent": str(spent.quantize(Decimal("0.01"))), "alerts_sent": sent + new, "alerts_new": new,
            "percent": str((spent * 100 / budget).quantize(Decimal("0.1"))), "last_spend_at": ctx.now.isoformat()}


def raise_budget(ctx: Ctx) -> dict:
    changes = list(ctx.data.get("budget_changes") or [])
    changes.append({"from": ctx.data["budget"], "to": ctx.payload["budget"], "by": ctx.actor.login,
                    "at": ctx.now.isoformat()})
    return {**_roll(ctx), "budget": ctx.payload["budget"], "budget_changes": changes, "alerts_new": []}


def reset_month(ctx: Ctx) -> dict:
    return {**_roll(ctx), "alerts_new": []}


def freeze(ctx: Ctx) -> dict:
    return {"frozen_at": ctx.now.isoformat(), "frozen_by": ctx.actor.login}


# -- queries for other code --------------------------------------------------------
def open_budget_case(conn, customer_email: str) -> int | None:
    """The customer's budget case that is not closed, if any."""
    return conn.execute(select(I.c.id).where(I.c.workflow == "reseller_budget",
                                             I.c.business_key == cust.normalise_email(customer_email),
                                             I.c.is_final.is_(False)).limit(1)).scalar_one_or_none()


def purchase_allowed(conn, customer_ref: str | int, product_kind: str, now: datetime | None = None) -> str | None:
    """None when the customer may buy a product of this kind now, else the reason (FAQ 5.7.12).

    `product_kind`: ``pay_per_use``, ``subscription`` (yearly/monthly;
    ``yearly`` and ``monthly`` are accepted) or ``reserved_instance``. `now`
    defaults to the wall clock; pass the runtime's clock (``runtime.now()``).
    """
    kind = KINDS.get(str(product_kind).strip().lower())
    if kind is None:
        raise ValidationError("product_kind", f"{product_kind!r} is not one of: pay_per_use, subscription, "
                              "reserved_instance")
    customer = cust.get_customer(conn, customer_ref)
    case_id = open_budget_case(conn, customer["email"])
    if case_id is None:
        return None
    row = conn.execute(select(I.c.state, I.c.data, P.c.region, P.c.timezone).join(P, P.c.id == I.c.partner_id)
                       .where(I.c.id == case_id)).first()
    cal = calendar_for(row.region, row.timezone)
    data = row.data or {}
    if row.state == S.frozen:
        return (f"customer {customer['email']} is frozen by its partner: no purchases are allowed until the partner "
                "unfreezes it (FAQ 5.7.12)")
    current = cal.local_date(now or datetime.now(UTC)).strftime("%Y-%m")
    if row.state == S.restricted and data.get("month") == current and kind != "pay_per_use":
        what = "yearly/monthly products" if kind == "subscription" else "reserved instances"
        return (f"customer {customer['email']} has reached its monthly budget ({data['spent']} of {data['budget']} RMB "
                f"in {data['month']}): purchases of {what} are restricted until the partner raises the budget or the "
                "month ends; pay-per-use stays available (FAQ 5.7.12)")
    return None


# -- the monthly reset ---------------------------------------------------------------
def next_month_start(ctx: Ctx) -> datetime:
    """00:00 on the first day of the next month in the partner's time zone."""
    return monthly_first_day(calendar=ctx.calendar)(ctx.now)


def reset_stale_budgets(sctx: ScheduleCtx) -> str:
    """Catch-up sweep: reset every open budget still holding a month that has ended in its partner's zone."""
    rows = sctx.conn.execute(select(I.c.id, I.c.data, P.c.region, P.c.timezone).join(P, P.c.id == I.c.partner_id)
                             .where(I.c.workflow == "reseller_budget", I.c.is_final.is_(False))
                             .order_by(I.c.id)).all()
    done = 0
    for r in rows:
        month = calendar_for(r.region, r.timezone).local_date(sctx.now).strftime("%Y-%m")
        if (r.data or {}).get("month") != month:
            sctx.fire(r.id, "reset_month")
            done += 1
    return f"{done} budget(s) reset"


SCHEDULES = [CalendarSchedule("reseller_budget-month-start", monthly_first_day(), reset_stale_budgets,
                              description="00:00 Beijing time on the 1st of each month: reset budgets of a past month")]


WORKFLOW = Workflow(
    name="reseller_budget",
    title="Reseller customer monthly budget",
    faq="FAQ 5.7.12, 5.1.15",
    description="Monthly budget of a reseller customer: alerts at 75/90/100%, restriction at 100%, raise or freeze, "
                "fresh each month.",
    states=S,
    initial=S.active,
    final=(S.closed,),
    start_schema=START,
    start_roles=PARTNER_PEOPLE,
    start_guards=(customer_is_your_reseller_customer,),
    start_effect=start_budget,
    business_key=lambda data: data.get("customer"),
    transitions=(
        Transition("record_spend", S.active, S.restricted, {SYSTEM, FINANCE, ADMIN}, payload=SPEND,
                   when=reaches_budget, effect=record_spend, label="budget reached"),
        Transition("record_spend", S.active, None, {SYSTEM, FINANCE, ADMIN}, payload=SPEND, effect=record_spend),
        Transition("record_spend", S.restricted, S.active, {SYSTEM, FINANCE, ADMIN}, payload=SPEND,
                   when=below_budget, effect=record_spend, label="new month"),
        Transition("record_spend", (S.restricted, S.frozen), None, {SYSTEM, FINANCE, ADMIN}, payload=SPEND,
                   effect=record_spend),
        Transition("raise_budget", S.restricted, S.active, PARTNER_PEOPLE, payload=RAISE, guards=(budget_is_higher,),
                   when=below_budget, effect=raise_budget, label="restriction lifted"),
        Transition("raise_budget", (S.active, S.restricted, S.frozen), None, PARTNER_PEOPLE, payload=RAISE,
                   guards=(budget_is_higher,), effect=raise_budget),
        Transition("freeze", (S.active, S.restricted), S.frozen, PARTNER_PEOPLE, effect=freeze),
        Transition("unfreeze", S.frozen, S.restricted, PARTNER_PEOPLE, when=reaches_budget),
        Transition("unfreeze", S.frozen, S.active, PARTNER_PEOPLE),
        Transition("reset_month", S.restricted, S.active, {SYSTEM}, effect=reset_month, label="new month"),
        Transition("reset_month", S.active, S.active, {SYSTEM}, effect=reset_month, label="new month"),
        Transition("reset_month", S.frozen, S.frozen, {SYSTEM}, effect=reset_month, label="new month"),
        Transition("close", (S.active, S.restricted, S.frozen), S.closed, PARTNER_PEOPLE | {SYSTEM}),
    ),
    timers=tuple(Timer(state, "reset_month", at=next_month_start, name="month_start",
                       description="00:00 on the 1st of next month in the partner's time zone")
                 for state in (S.active, S.restricted, S.frozen)),
    notifications=(
        Notify("reseller_budget/alert_75", ["partner", "data:customer"], on_event="record_spend", when=crossed(75),
               category="finance"),
        Notify("reseller_budget/alert_90", ["partner", "data:customer"], on_event="record_spend", when=crossed(90),
               category="finance"),
        Notify("reseller_budget/alert_100", ["partner", "data:customer"], on_event="record_spend", when=crossed(100),
               category="finance"),
        Notify("reseller_budget/frozen", ["partner", "data:customer"], on_enter=S.frozen),
        Notify("reseller_budget/unfrozen", ["partner", "data:customer"], on_event="unfreeze"),
    ),
)


def seed_demo(runtime, people) -> None:
    """A budget at 80%: ACME's reseller customer Huaxin Retail spent 8,000 of 10,000 RMB this month."""
    with runtime.db.read() as conn:
        customer = cust.find_customer(conn, "ops@huaxin-retail.example")
    if customer is None or customer["partner"] != "ACME":
        return
    case = runtime.start("reseller_budget", {"customer": customer["email"], "budget": "10000.00"},
                         people.actor("acme-admin"))
    runtime.fire(case["id"], "record_spend", runtime.actor("system"), {"amount": "8000.00", "reference": "demo bill"})
