"""Funding-head incentives, per calendar quarter (LIFECYCLES section 6, last item; FAQ 4.5.1).

Rules enforced:
- Generation: at the start of each quarter (calendar schedule
  ``funding_head_quarter``, 09:00 Beijing time on January, April, July and
  October 1) the incentive of the previous quarter is generated for every
  partner with at least two dedicated people on the job in that quarter
  (``dedicated_personnel`` table, ``partnerflow incentives person``), and the
  partner is emailed. Operators may generate one by hand.
- Recipients are at most half the dedicated personnel (rounded down): with 5
  dedicated people at most 2 may be named; a confirmation naming more is
  refused, naming the limit.
- Time on the job counts whole calendar months only: someone on the job from
  January 10 to March 20 counts one month (February). A named recipient with
  no whole month in the quarter is refused.
- Amount = whole months x ``PARTNERFLOW_FUNDING_HEAD_MONTHLY_AMOUNT`` in
  ``PARTNERFLOW_FUNDING_HEAD_CURRENCY`` (default CNY). LIFECYCLES.md (FAQ
  4.5.1) gives no amount, so it is a setting; its default, 3000.00, is a
  placeholder for a deployment to replace.
- Flow: generated -> the partner confirms the recipients -> an ecosystem
  manager approves (or returns it with a reason) -> the partner requests
  payment, which starts a quarterly ``incentive_payout`` (paid as cash
  coupons, FAQ 5.1.8).
"""
from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select

from engine.definition import Ctx, InboxTask, Notify, Transition, Workflow
from engine.incentives import partners_with_personnel, personnel, previous_quarter, quarter_bounds, whole_months
from engine.models import Instance
from engine.roles import ADMIN, ECOSYSTEM_MANAGER, PARTNER_ADMIN, SYSTEM
from engine.schedules import CalendarSchedule, ScheduleCtx, once_each, quarter_start
from engine.schema import Field, Schema
from engine.settings import setting

I = Instance.__table__
NAME = "funding_head"


class S(StrEnum):
    generated = "generated"  #: generated at quarter start; the partner must name the recipients
    confirmed = "confirmed"  #: recipients named; an ecosystem manager must approve
    approved = "approved"  #: approved; the partner may request payment
    payment_requested = "payment_requested"  #: a payout case was started (final)


def monthly_amount() -> Decimal:
    return setting("funding_head_monthly_amount", Decimal("3000.00"), Decimal)


def currency() -> str:
    return setting("funding_head_currency", "CNY", str)


START = Schema(Field("quarter", "str", pattern=r"\d{4}-Q[1-4]", pattern_hint="a quarter like 2026-Q1"))
CONFIRM = Schema(Field("recipients", "list", items=Field("person", "int", minimum=1), min_items=1, max_items=500,
                       description="Ids of the dedicated people who receive the incentive"))


def max_recipients(dedicated: int) -> int:
    """At most half the dedicated personnel (rounded down)."""
    return dedicated // 2


def roster(conn, partner_id: int, quarter: str) -> list[dict]:
    """Dedicated people on the job in the quarter, with their whole calendar months."""
    first, last = quarter_bounds(quarter)
    out = []
    for p in personnel(conn, partner_id, first, last):
        ended = date.fromisoformat(p["ended_on"]) if p["ended_on"] else None
        out.append({**p, "months": whole_months(date.fromisoformat(p["started_on"]), ended, first, last)})
    return out


# -- guards and effects ---------------------------------------------------------------------
def one_per_quarter(ctx: Ctx) -> str | None:
    row = ctx.conn.execute(select(I.c.id).where(I.c.workflow == NAME, I.c.partner_id == ctx.partner["id"],
                                                I.c.business_key == ctx.data["quarter"])).first()
    if row is not None:
        return f"the funding-head incentive of {ctx.data['quarter']} for {ctx.partner['code']} is already case {row.id}"
    return None


def has_dedicated_personnel(ctx: Ctx) -> str | None:
    people = roster(ctx.conn, ctx.partner["id"], ctx.data["quarter"])
    if max_recipients(len(people)) < 1:
        return (f"{ctx.partner['code']} had {len(people)} dedicated person(s) in {ctx.data['quarter']}; "
                "recipients are at most half of them, so there is no funding-head incentive")
    return None


def generate(ctx: Ctx) -> dict:
    people = roster(ctx.conn, ctx.partner["id"], ctx.data["quarter"])
    return {"personnel": people, "dedicated": len(people), "max_recipients": max_recipients(len(people)),
            "monthly_amount": str(monthly_amount().quantize(Decimal("0.01"))), "currency": currency()}


def recipients_at_most_half(ctx: Ctx) -> str | None:
    """Recipients are at most half the dedicated personnel (FAQ 4.5.1)."""
    named = ctx.payload["recipients"]
    limit = ctx.data["max_recipients"]
    if len(set(named)) != len(named):
        return "a recipient is named twice"
    if len(named) > limit:
        return (f"{len(named)} recipients named; at most {limit} allowed: half of the {ctx.data['dedicated']} "
                f"dedicated personnel of {ctx.data['quarter']}")
    return None


def recipients_have_whole_months(ctx: Ctx) -> str | None:
    """Each recipient is dedicated personnel with at least one whole calendar month in the quarter."""
    known = {p["id"]: p for p in ctx.data["personnel"]}
    for pid in ctx.payload["recipients"]:
        person = known.get(pid)
        if person is None:
            return f"person {pid} is not dedicated personnel of {ctx.partner['code']} in {ctx.data['quarter']}"
        if person["months"] < 1:
            return (f"{person['name']} (from {person['started_on']} to {person['ended_on'] or 'now'}) has no whole "
                    f"calendar month on the job in {ctx.data['quarter']}")
    return None


def confirm(ctx: Ctx) -> dict:
    known = {p["id"]: p for p in ctx.data["personnel"]}
    chosen = [known[pid] for pid in ctx.payload["recipients"]]
    months = sum(p["months"] for p in chosen)
    amount = (Decimal(ctx.data["monthly_amount"]) * months).quantize(Decimal("0.01"))
    return {"recipients": [{"id": p["id"], "name": p["name"], "months": p["months"]} for p in chosen],
            "months": months, "amount": str(amount)}


def request_payment(ctx: Ctx) -> dict:
    ctx.start_later("incentive_payout", {"partner": ctx.partner["code"], "kind": "funding_head",
                                         "period": ctx.data["quarter"], "amount": ctx.data["amount"],
                                         "currency": ctx.data["currency"], "source_case": ctx.instance_id})
    return {"payment_requested_at": ctx.now.isoformat()}


PARTNER = frozenset({PARTNER_ADMIN})
ECO = frozenset({ECOSYSTEM_MANAGER, ADMIN})

WORKFLOW = Workflow(
    name=NAME,
    title="Funding-head incentive (quarterly)",
    faq="FAQ 4.5.1",
    description="Generated at quarter start; recipients at most half the dedicated personnel; whole calendar "
                "months only; confirm, approve, request payment.",
    states=S,
    initial=S.generated,
    final=(S.payment_requested,),
    start_schema=START,
    start_roles={SYSTEM, ECOSYSTEM_MANAGER},
    start_guards=(one_per_quarter, has_dedicated_personnel),
    start_effect=generate,
    business_key=lambda d: d.get("quarter"),
    transitions=(
        Transition("confirm", S.generated, S.confirmed, PARTNER, payload=CONFIRM,
                   guards=(recipients_at_most_half, recipients_have_whole_months), effect=confirm, authors=True),
        Transition("approve", S.confirmed, S.approved, ECO, four_eyes=True),
        Transition("return", S.confirmed, S.generated, ECO, comment_required=True),
        Transition("request_payment", S.approved, S.payment_requested, PARTNER, effect=request_payment),
    ),
    tasks=(
        InboxTask(S.confirmed, ECOSYSTEM_MANAGER, "Approve the funding-head incentive", due_working_days=5,
                  amount_field="amount", currency_field="currency"),
    ),
    notifications=(
        Notify("funding_head/generated", ["partner"], on_enter=S.generated, category="finance"),
        Notify("funding_head/confirmed", ["role:ecosystem_manager"], on_enter=S.confirmed),
        Notify("funding_head/returned", ["partner"], on_event="return", category="finance"),
        Notify("funding_head/approved", ["partner"], on_enter=S.approved, category="finance"),
        Notify("funding_head/payment_requested", ["partner", "role:finance"], on_enter=S.payment_requested,
               category="finance"),
    ),
)


def generate_quarter(sctx: ScheduleCtx) -> str:
    """Quarter start: generate last quarter's funding-head incentive for every partner with dedicated personnel."""
    quarter = previous_quarter(sctx.program_date())
    first, last = quarter_bounds(quarter)

    def nothing_to_generate(pid: int) -> bool:
        return (sctx.case_exists(NAME, pid, quarter)
                or max_recipients(len(personnel(sctx.conn, pid, first, last))) < 1)

    partners = partners_with_personnel(sctx.conn, first, last)
    codes = sctx.partner_codes(partners)
    made, skipped = once_each(partners, nothing_to_generate,
                              lambda pid: sctx.start(NAME, {"partner": codes[pid], "quarter": quarter}))
    made_names = ", ".join(codes[pid] for pid in made) or "-"
    skipped_names = ", ".join(codes[pid] for pid in skipped) or "-"
    return f"{quarter}: generated {made_names}; skipped {skipped_names}"


SCHEDULES = [CalendarSchedule("funding_head_quarter", quarter_start(time(9, 0)), generate_quarter,
                              "quarter start: funding-head incentives of the previous quarter")]
