"""Market Development Fund reimbursement claim (LIFECYCLES section 5; FAQ 4.4.2, 4.4.4, 4.4.6, 4.4.8, 4.4.10).

Opened by the system when an approved application's last activity ends
(`workflows/mdf_application.py`); one claim per application, covering all
its activities.

open -> submitted -> approved -> paid; submitted -> returned -> submitted
again, or closed; rejected; violation (confirmed order splitting); open ->
overdue when the window ends without a claim.

Rules enforced:
- FAQ 4.4.8 (guard ``within_claim_window``, timer ``close_window``): the claim
  window ends at 23:59:59 on the 90th calendar day after the day the last
  activity ended, both days in the partner's time zone (so a DST change in
  between moves nothing). A reminder email goes to the partner
  ``PARTNERFLOW_MDF_CLAIM_REMINDER_DAYS`` days before (default 7). At the end
  the case moves to overdue.
- FAQ 4.4.8 (event ``grant_delay``): a late claim is refused unless it carries
  a delay approval, recorded on the case by the budget sponsor (role
  mdf_owner) or an authorized approver (admin) with a reason and the new last
  day; it reopens the claim until 23:59:59 of that day.
- FAQ 4.4.4 (guard ``materials_complete``): per activity: event photos or an
  alternative proof; media proofs for advertising and digital-marketing
  activities; an attendance sheet or the reason there is none; when end
  customers attended (stated, or by default when the audience was end
  customers or mixed): the opportunities and customer feedback; when
  sponsorship was paid (stated, or an invoice of category sponsorship): the
  sponsorship contract; a reflection. Per claim: an overall summary; sealed
  receipts (every receipt sealed); invoice scans whose title equals the
  partner's registered name (compared after NFKC folding of full-width
  characters and collapsing whitespace) and whose total is not below the
  claimed amount. An incomplete submission is refused with every missing item
  listed, and nothing is saved.
- FAQ 4.4.8 (event ``return``, timer ``close_incomplete``): the reviewer may
  return a claim for incomplete materials; it stays open for completion until
  23:59:59 on the 45th day after the return (partner's time zone), then
  closes.
- FAQ 4.4.2, 4.4.8 (effect ``cap_reimbursement``): the amount reimbursed
  never exceeds the approved budget; the excess is recorded on the case as
  the partner's own cost (``partner_cost``).
- FAQ 4.4.6 (``split_flags``): a claim for the same event as another claim
  (same activity type, overlapping time; for claims of other partners also
  the same place) is flagged on the reviewer's inbox task, saying whether it
  comes from another claimant and whether the claims are split by invoice
  date or by expense type; the other claim's open review task is flagged too.
  A confirmed violation (event ``confirm_violation``) bars the partner from
  MDF until 23:59:59 on December 31 of that year (table ``mdf_bars``).
- FAQ 4.4.10: while the partner has unpaid bills in the activity's billing
  cycle or earlier, the claim is frozen and can be neither approved nor paid.
- Four-eyes: whoever submitted the claim cannot approve, reject or confirm a
  violation on it.

Settings: ``PARTNERFLOW_MDF_CLAIM_REMINDER_DAYS`` (7).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

import click
from sqlalchemy import select, update

from engine.cliutil import echo_json, handle_errors, open_runtime
from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.mdf import AD_TYPES, ACTIVITY_TYPES, APPLICATION, bar_partner, fmt
from engine.models import Instance, Partner, Task
from engine.roles import ADMIN, ECOSYSTEM_MANAGER, FINANCE, MDF_OWNER, PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.schema import Field, Schema
from engine.settings import setting

from ._mdf import (
    CATEGORY,
    current_freeze,
    freeze_flags,
    freeze_transitions,
    instant,
    normalise_name,
    not_frozen,
)

I = Instance.__table__
P = Partner.__table__
TK = Task.__table__


class S(StrEnum):
    open = "open"  #: the activity ended; the partner may claim until the window ends
    overdue = "overdue"  #: the window ended without a claim; only a delay approval reopens it
    submitted = "submitted"  #: claimed with complete materials; waiting for review
    returned = "returned"  #: returned for incomplete materials; the partner completes it within 45 days
    approved = "approved"  #: reimbursement approved (capped at the budget); waiting for payment
    paid = "paid"  #: reimbursed (final)
    closed = "closed"  #: returned and not completed within 45 days (final)
    rejected = "rejected"  #: refused with a reason (final)
    violation = "violation"  #: confirmed order splitting; the partner is barred for the year (final)


CLAIM_DAYS = 90
RETURN_DAYS = 45
CLAIMED = ("submitted", "returned", "approved", "paid", "violation")


def reminder_days() -> int:
    return setting("mdf_claim_reminder_days", 7)


INVOICE = Schema(
    Field("number", "str", max_length=64),
    Field("title", "str", max_length=200, description="The buyer's name printed on the invoice"),
    Field("total", "money", minimum=Decimal("0.01")),
    Field("date", "date"),
    CATEGORY,
    Field("file", "str", max_length=300, description="The invoice scan"),
)
RECEIPT = Schema(Field("file", "str", max_length=300), Field("sealed", "bool"))
OPPORTUNITY = Schema(Field("customer", "str", max_length=200), Field("description", "text", max_length=2000),
                     Field("estimated_amount", "money", required=False))
MATERIALS = Schema(
    Field("activity", "int", minimum=1, description="Activity number in the application (1-based)"),
    Field("photos", "list", items=Field("file", "str", max_length=300), required=False, max_items=100),
    Field("alternative_proof", "text", required=False, max_length=4000),
    Field("media_proofs", "list", items=Field("file", "str", max_length=300), required=False, max_items=100),
    Field("attendance_sheet", "str", required=False, max_length=300),
    Field("no_attendance_reason", "text", required=False, max_length=2000),
    Field("end_customers_attended", "bool", required=False),
    Field("opportunities", "list", items=OPPORTUNITY, required=False, max_items=200),
    Field("sponsorship_paid", "bool", required=False),
    Field("sponsorship_contract", "str", required=False, max_length=300),
    Field("reflection", "text", required=False, max_length=8000),
    Field("customer_feedback", "text", required=False, max_length=8000),
)
CLAIM = Schema(
    Field("amount", "money", minimum=Decimal("0.01"), description="Claimed amount in USD"),
    Field("summary", "text", required=False, max_length=8000, description="Overall summary"),
    Field("invoices", "list", items=INVOICE, required=False, max_items=200),
    Field("receipts", "list", items=RECEIPT, required=False, max_items=200),
    Field("activities", "list", items=MATERIALS, required=False, max_items=20),
)
START = Schema(Field("application", "int", minimum=1, description="The MDF application whose activity ended"))
DELAY = Schema(Field("until", "date", description="Last day (partner's time zone) the late claim may be filed"))
RETURN = Schema(Field("missing", "list", items=Field("item", "str", max_length=300), min_items=1, max_items=50))
APPROVE = Schema(Field("amount", "money", required=False, minimum=Decimal("0.01"),
                       description="Reimburse less than claimed (default: the claimed amount, capped at the budget)"))
PAY = Schema(Field("reference", "str", required=False, max_length=128))


# -- deadlines ----------------------------------------------------------------
def window_end(ctx: Ctx) -> datetime:
    """23:59:59 local on the 90th day after the activity ended (FAQ 4.4.8)."""
    return ctx.calendar.end_of_nth_day_after(instant(ctx.data["activity_end"]), CLAIM_DAYS)


def claim_deadline(ctx: Ctx) -> datetime:
    """The window's end, or the end of the day a delay approval allows."""
    delay = ctx.data.get("delay_approval")
    if delay:
        return ctx.calendar.end_of_day(date.fromisoformat(delay["until"]))
    return window_end(ctx)


def return_deadline(ctx: Ctx) -> datetime:
    return instant(ctx.data["returned"]["deadline"])


# -- guards -------------------------------------------------------------------
def application_ended_without_claim(ctx: Ctx) -> str | None:
    """A claim belongs to an application of the same partner whose activity ended, once."""
    app = ctx.conn.execute(select(I).where(I.c.id == ctx.data["application"], I.c.workflow == APPLICATION)).first()
    if app is None or app.partner_id != ctx.partner["id"]:
        return f"MDF application {ctx.data['application']} of partner {ctx.partner['code']} not found"
    if app.state != "activity_ended":
        return f"MDF application {app.id} is {app.state}; a claim opens when its activity has ended"
    if ctx.conn.execute(select(I.c.id).where(I.c.workflow == "mdf_claim",
                                             I.c.business_key == f"application:{app.id}")).first():
        return f"MDF application {app.id} already has a claim"
    return None


def within_claim_window(ctx: Ctx) -> str | None:
    """Claimed by 23:59:59 of the 90th day after the activity ended, unless a delay was approved (FAQ 4.4.8)."""
    deadline = claim_deadline(ctx)
    if ctx.now <= deadline:
        return None
    delay = ctx.data.get("delay_approval")
    if delay:
        return (f"the approved delay for this late claim ended at {ctx.calendar.format(deadline)} (approved by "
                f"{delay['by']}); a further delay must be approved (event grant_delay, FAQ 4.4.8)")
    return (f"the claim window ended at {ctx.calendar.format(window_end(ctx))} ({CLAIM_DAYS} days after the activity "
            f"ended on {ctx.calendar.local_date(instant(ctx.data['activity_end']))}); a late claim is refused unless "
            "the budget sponsor (mdf_owner) or an authorized approver (admin) approves the delay (event grant_delay, "
            "FAQ 4.4.8)")


def delay_until_valid(ctx: Ctx) -> str | None:
    until = date.fromisoformat(ctx.payload["until"])
    original = ctx.calendar.local_date(window_end(ctx))
    today = ctx.calendar.local_date(ctx.now)
    if until <= original:
        return f"a delay must extend the window beyond {original.isoformat()}, its original last day"
    if until < today:
        return f"the delay's last day {until.isoformat()} is already past (today is {today.isoformat()})"
    return None


def _materials_problems(ctx: Ctx, claim: dict) -> list[str]:
    problems: list[str] = []
    acts = ctx.data["activities"]
    given = {}
    for m in claim.get("activities") or []:
        n = m["activity"]
        if n > len(acts):
            problems.append(f"materials for activity {n}: the application has {len(acts)} activit"
                            f"{'y' if len(acts) == 1 else 'ies'}")
        elif n in given:
            problems.append(f"materials for activity {n} are given twice")
        given[n] = m
    invoices = claim.get("invoices") or []
    for n, a in enumerate(acts, start=1):
        m = given.get(n)
        label = f"activity {n} ({a['title']})"
        if m is None:
            problems.append(f"{label}: no materials")
            continue
        if not m.get("photos") and not (m.get("alternative_proof") or "").strip():
            problems.append(f"{label}: event photos or an alternative proof")
        if a["type"] in AD_TYPES and not m.get("media_proofs"):
            problems.append(f"{label}: media proofs of the advertisements ({ACTIVITY_TYPES[a['type']]})")
        if not m.get("attendance_sheet") and not (m.get("no_attendance_reason") or "").strip():
            problems.append(f"{label}: an attendance sheet or the reason there is none")
        customers = m.get("end_customers_attended")
        if customers is None:
            customers = a["audience"] in ("end_customers", "mixed")
        if customers and not m.get("opportunities"):
            problems.append(f"{label}: the opportunities (end customers attended)")
        if customers and not (m.get("customer_feedback") or "").strip():
            problems.append(f"{label}: customer feedback (end customers attended)")
        sponsored = m.get("sponsorship_paid") or any(i["category"] == "sponsorship" for i in invoices)
        if sponsored and not m.get("sponsorship_contract"):
            problems.append(f"{label}: the sponsorship contract (sponsorship was paid)")
        if not (m.get("reflection") or "").strip():
            problems.append(f"{label}: a reflection")
    if not (claim.get("summary") or "").strip():
        problems.append("an overall summary")
    receipts = claim.get("receipts") or []
    if not receipts:
        problems.append("sealed receipts")
    problems += [f"receipt {r['file']}: not sealed" for r in receipts if not r["sealed"]]
    if not invoices:
        problems.append("invoice scans")
    name = normalise_name(ctx.partner["name"])
    for inv in invoices:
        if normalise_name(inv["title"]) != name:
            problems.append(f"invoice {inv['number']}: its title {inv['title']!r} is not the partner's name "
                            f"{ctx.partner['name']!r}")
    total = sum((Decimal(i["total"]) for i in invoices), Decimal("0.00"))
    claimed = Decimal(claim["amount"])
    if invoices and total < claimed:
        problems.append(f"invoices: their total {fmt(total)} is below the claimed {fmt(claimed)}")
    return problems


def materials_complete(ctx: Ctx) -> str | None:
    """The claim materials of FAQ 4.4.4, per activity and per claim; every missing item is named."""
    problems = _materials_problems(ctx, ctx.payload)
    if problems:
        return "claim materials incomplete (FAQ 4.4.4): " + "; ".join(problems)
    return None


def approve_amount_within_claim(ctx: Ctx) -> str | None:
    amount = ctx.payload.get("amount")
    if amount is not None and Decimal(amount) > Decimal(ctx.data["claim"]["amount"]):
        return f"the approved amount {fmt(Decimal(amount))} is above the claimed {fmt(Decimal(ctx.data['claim']['amount']))}"
    return None


# -- order splitting (FAQ 4.4.6) ----------------------------------------------
def _overlap(a: dict, b: dict) -> bool:
    return instant(a["starts_at"]) < instant(b["ends_at"]) and instant(b["starts_at"]) < instant(a["ends_at"])


def _span(invoices: list[dict]) -> tuple[date, date] | None:
    days = [date.fromisoformat(i["date"]) for i in invoices]
    return (min(days), max(days)) if days else None


def split_flags(ctx: Ctx, claim: dict) -> list[tuple[int, str, str]]:
    """(other claim id, flag for this claim, flag for the other claim) for every claim that looks split from this one."""
    rows = ctx.conn.execute(select(I.c.id, I.c.partner_id, I.c.data, P.c.code).join(P, P.c.id == I.c.partner_id)
                            .where(I.c.workflow == "mdf_claim", I.c.state.in_(CLAIMED), I.c.id != ctx.instance_id)
                            .order_by(I.c.id)).all()
    out = []
    mine = ctx.data["activities"]
    my_invoices = claim.get("invoices") or []
    for r in rows:
        other = r.data or {}
        same_partner = r.partner_id == ctx.partner["id"]
        match = None
        for a in mine:
            for b in other.get("activities") or []:
                if a["type"] == b["type"] and _overlap(a, b) and (
                        same_partner or normalise_name(a["place"]).casefold() == normalise_name(b["place"]).casefold()):
                    match = (a, b)
                    break
            if match:
                break
        if match is None:
            continue
        a, _ = match
        how = []
        theirs = (other.get("claim") or {})
        if not same_partner:
            how.append(f"claimed by another partner ({r.code})")
        elif theirs.get("by") and theirs["by"] != ctx.actor.login:
            how.append(f"by another claimant ({theirs['by']} and {ctx.actor.login})")
        s1, s2 = _span(my_invoices), _span(theirs.get("invoices") or [])
        if s1 and s2 and (s1[1] < s2[0] or s2[1] < s1[0]):
            how.append(f"split by invoice date ({s1[0]}..{s1[1]} and {s2[0]}..{s2[1]})")
        c1 = {i["category"] for i in my_invoices}
        c2 = {i["category"] for i in theirs.get("invoices") or []}
        if c1 and c2 and not (c1 & c2):
            how.append(f"split by expense type ({', '.join(sorted(c1))} and {', '.join(sorted(c2))})")
        event = (f"{ACTIVITY_TYPES[a['type']]} at {a['place']!r}, "
                 f"{ctx.calendar.format(instant(a['starts_at']))} to {ctx.calendar.format(instant(a['ends_at']))}")
        detail = ("; " + "; ".join(how)) if how else ""
        out.append((r.id,
                    f"possible order splitting (FAQ 4.4.6): claim {r.id} covers the same event ({event}){detail}",
                    f"possible order splitting (FAQ 4.4.6): claim {ctx.instance_id} ({ctx.partner['code']}) covers "
                    f"the same event ({event}){detail}"))
    return out


# -- effects ------------------------------------------------------------------
def open_from_application(ctx: Ctx) -> dict:
    """Copy the facts of the application the claim is checked against (never taken from the caller)."""
    app = ctx.conn.execute(select(I.c.data).where(I.c.id == ctx.data["application"])).scalar_one()
    acts = [{k: a[k] for k in ("title", "type", "starts_at", "ends_at", "place", "audience", "form")}
            for a in app["activities"]]
    data = {"application": ctx.data["application"], "title": app["title"], "activities": acts,
            "activity_type": app["activity_type"], "activity_end": app["last_end"],
            "approved_budget": app.get("approved_total") or app["total"], "currency": app["currency"]}
    ctx.data = {**ctx.data, **data}
    return {**data, "window_ends_at": window_end(ctx).isoformat(), **current_freeze(ctx, app["billing_cycle"])}


def record_claim(ctx: Ctx) -> dict:
    flags = split_flags(ctx, ctx.payload)
    for other_id, _, theirs in flags:  # the other claim's open review task learns of this one too
        for t in ctx.conn.execute(select(TK.c.id, TK.c.flags).where(TK.c.instance_id == other_id, TK.c.status == "open")):
            if theirs not in (t.flags or []):
                ctx.conn.execute(update(TK).where(TK.c.id == t.id).values(flags=[*(t.flags or []), theirs]))
    return {"claim": {**ctx.payload, "by": ctx.actor.login, "at": ctx.now.isoformat()},
            "split_flags": [mine for _, mine, _ in flags], "returned": None}


def record_delay(ctx: Ctx) -> dict:
    until = date.fromisoformat(ctx.payload["until"])
    return {"delay_approval": {"by": ctx.actor.login, "roles": sorted(ctx.actor.roles), "at": ctx.now.isoformat(),
                               "until": until.isoformat(), "reason": ctx.comment,
                               "deadline": ctx.calendar.end_of_day(until).isoformat()}}


def record_return(ctx: Ctx) -> dict:
    deadline = ctx.calendar.end_of_nth_day_after(ctx.now, RETURN_DAYS)
    return {"returned": {"at": ctx.now.isoformat(), "by": ctx.actor.login, "missing": ctx.payload["missing"],
                         "reason": ctx.comment, "deadline": deadline.isoformat()}}


def cap_reimbursement(ctx: Ctx) -> dict:
    """Reimburse at most the approved budget; the excess is the partner's own cost (FAQ 4.4.2, 4.4.8)."""
    claimed = Decimal(ctx.data["claim"]["amount"])
    budget = Decimal(ctx.data["approved_budget"])
    granted = Decimal(ctx.payload["amount"]) if ctx.payload.get("amount") else claimed
    reimbursed = min(granted, budget)
    return {"reimbursed_amount": str(reimbursed), "partner_cost": str(claimed - reimbursed),
            "approved_at": ctx.now.isoformat(), "approved_by": ctx.actor.login}


def record_violation(ctx: Ctx) -> dict:
    bar = bar_partner(ctx.conn, ctx.partner, ctx.instance_id, ctx.comment or "order splitting", ctx.actor.login,
                      ctx.now)
    return {"violation": {"by": ctx.actor.login, "at": ctx.now.isoformat(), "reason": ctx.comment, **bar}}


def record_payment(ctx: Ctx) -> dict:
    return {"paid_at": ctx.now.isoformat(), "paid_by": ctx.actor.login, "payment_reference": ctx.payload.get("reference")}


def review_flags(ctx: Ctx) -> list[str]:
    return list(ctx.data.get("split_flags") or []) + freeze_flags(ctx)


PARTNER = frozenset({PARTNER_ADMIN, PARTNER_MEMBER, ECOSYSTEM_MANAGER})
REVIEWER = frozenset({MDF_OWNER, ADMIN})
OPEN_STATES = (S.open, S.overdue, S.submitted, S.returned, S.approved)

WORKFLOW = Workflow(
    name="mdf_claim",
    title="MDF reimbursement claim",
    faq="FAQ 4.4.2, 4.4.4, 4.4.6, 4.4.8, 4.4.10",
    description="Claim the reimbursement of an MDF activity within 90 days of its end, with complete materials; "
                "reimbursed up to the approved budget.",
    states=S,
    initial=S.open,
    final=(S.paid, S.closed, S.rejected, S.violation),
    start_schema=START,
    start_roles={SYSTEM},
    start_guards=(application_ended_without_claim,),
    start_effect=open_from_application,
    business_key=lambda data: f"application:{data['application']}",
    transitions=(
        Transition("submit", (S.open, S.overdue), S.submitted, PARTNER, payload=CLAIM, authors=True,
                   guards=(within_claim_window, materials_complete), effect=record_claim),
        Transition("grant_delay", (S.open, S.overdue), S.open, REVIEWER, payload=DELAY, comment_required=True,
                   guards=(delay_until_valid,), effect=record_delay, label="late claim approved"),
        Transition("remind_claim", S.open, None, {SYSTEM}, label="reminder"),
        Transition("close_window", S.open, S.overdue, {SYSTEM}),
        Transition("return", S.submitted, S.returned, REVIEWER, payload=RETURN, comment_required=True,
                   effect=record_return, label="materials incomplete"),
        Transition("complete", S.returned, S.submitted, PARTNER, payload=CLAIM, authors=True,
                   guards=(materials_complete,), effect=record_claim),
        Transition("close_incomplete", S.returned, S.closed, {SYSTEM}),
        Transition("approve", S.submitted, S.approved, REVIEWER, payload=APPROVE, four_eyes=True,
                   guards=(not_frozen, approve_amount_within_claim), effect=cap_reimbursement),
        Transition("reject", S.submitted, S.rejected, REVIEWER, comment_required=True, four_eyes=True),
        Transition("confirm_violation", (S.submitted, S.returned), S.violation, REVIEWER, comment_required=True,
                   four_eyes=True, effect=record_violation, label="order splitting confirmed"),
        Transition("pay", S.approved, S.paid, frozenset({FINANCE, ADMIN}), payload=PAY, guards=(not_frozen,),
                   effect=record_payment),
        *freeze_transitions(OPEN_STATES),
    ),
    timers=(
        Timer(S.open, "remind_claim", at=lambda ctx: claim_deadline(ctx) - timedelta(days=reminder_days()),
              when=lambda ctx: claim_deadline(ctx) - timedelta(days=reminder_days()) > ctx.now,
              description="PARTNERFLOW_MDF_CLAIM_REMINDER_DAYS (7) days before the claim window ends"),
        Timer(S.open, "close_window", at=lambda ctx: claim_deadline(ctx) + timedelta(seconds=1),
              description="after 23:59:59 of the 90th day after the activity ended (or the approved delay)"),
        Timer(S.returned, "close_incomplete", at=lambda ctx: return_deadline(ctx) + timedelta(seconds=1),
              description="after 23:59:59 of the 45th day after the return"),
    ),
    tasks=(
        InboxTask(S.submitted, MDF_OWNER, "Review the MDF claim", due_working_days=10, amount_field="approved_budget",
                  currency_field="currency", flags=review_flags),
        InboxTask(S.approved, FINANCE, "Pay the approved MDF reimbursement", due_working_days=10,
                  amount_field="reimbursed_amount", currency_field="currency", flags=freeze_flags),
        InboxTask(S.overdue, MDF_OWNER, "MDF claim window ended without a claim: approve a delay if justified",
                  due_working_days=10),
    ),
    notifications=(
        Notify("mdf_claim/opened", ["partner"], on_enter=S.open, when=lambda ctx: ctx.event == "start"),
        Notify("mdf_claim/window_reminder", ["partner"], on_event="remind_claim", reminder=True),
        Notify("mdf_claim/window_closed", ["partner", "role:mdf_owner"], on_enter=S.overdue),
        Notify("mdf_claim/delay_granted", ["partner"], on_event="grant_delay"),
        Notify("mdf_claim/submitted", ["role:mdf_owner"], on_enter=S.submitted),
        Notify("mdf_claim/returned", ["partner"], on_enter=S.returned),
        Notify("mdf_claim/closed", ["partner", "role:mdf_owner"], on_enter=S.closed),
        Notify("mdf_claim/approved", ["partner", "role:finance"], on_enter=S.approved, category="finance"),
        Notify("mdf_claim/paid", ["partner"], on_enter=S.paid, category="finance"),
        Notify("mdf_claim/rejected", ["partner"], on_enter=S.rejected),
        Notify("mdf_claim/violation", ["partner"], on_enter=S.violation),
        Notify("mdf_claim/frozen", ["partner"], on_event="freeze", category="finance"),
        Notify("mdf_claim/unfrozen", ["partner"], on_event="unfreeze", category="finance"),
    ),
)


# -- command line: the partner bills that freeze MDF (FAQ 4.4.10) ------------------
@click.group("bills")
def CLI() -> None:
    """Partner bills and payments: unpaid bills freeze MDF of their cycle and later (FAQ 4.4.10)."""


@CLI.command("add")
@click.option("--partner", required=True, help="Partner code.")
@click.option("--number", required=True, help="Bill number (unique).")
@click.option("--cycle", required=True, help="Billing cycle, YYYY-MM.")
@click.option("--amount", required=True, help="Amount, for example 1200.00.")
@click.option("--currency", default="CNY", show_default=True)
@click.option("--due-date", default=None, help="YYYY-MM-DD (informational).")
@click.option("--as", "login", default="system", show_default=True, help="Who records it.")
@handle_errors
def bills_add(partner, number, cycle, amount, currency, due_date, login) -> None:
    """Record a bill; freezes the partner's MDF cases of that cycle or later at once."""
    from engine.mdf import add_bill

    rt = open_runtime()
    rt.actor(login)
    with rt.db.write() as conn:
        bill = add_bill(conn, rt, partner, number, cycle, amount, rt.now(), login, currency, due_date)
    frozen = ", ".join(str(i) for i in bill["cases_changed"]) or "none"
    click.echo(f"bill {bill['number']} ({bill['cycle']}, {bill['currency']} {bill['amount']}) recorded; "
               f"MDF cases frozen: {frozen}")


@CLI.command("pay")
@click.argument("number")
@click.option("--amount", default=None, help="Amount paid (default: all that is owed).")
@click.option("--reference", default=None)
@click.option("--as", "login", default="system", show_default=True)
@handle_errors
def bills_pay(number, amount, reference, login) -> None:
    """Record a payment; MDF cases unfreeze at once when no unpaid bill of their cycle or earlier remains."""
    from engine.mdf import bills, pay_bill

    rt = open_runtime()
    rt.actor(login)
    with rt.db.write() as conn:
        if amount is None:
            found = [b for b in bills(conn) if b["number"] == number]
            amount = found[0]["outstanding"] if found else "0.01"
        bill = pay_bill(conn, rt, number, amount, rt.now(), login, reference)
    changed = ", ".join(str(i) for i in bill["cases_changed"]) or "none"
    click.echo(f"bill {bill['number']}: {bill['currency']} {bill['outstanding']} still owed; MDF cases changed: {changed}")


@CLI.command("list")
@click.option("--partner", default=None)
@click.option("--unpaid", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def bills_list(partner, unpaid, as_json) -> None:
    """List bills with what is still owed."""
    from engine.mdf import bills

    rt = open_runtime()
    with rt.db.read() as conn:
        rows = bills(conn, partner, unpaid)
    if as_json:
        echo_json(rows)
        return
    for b in rows:
        click.echo(f"{b['partner']:<10} {b['number']:<16} {b['cycle']} {b['currency']} {b['amount']:>12} "
                   f"owed {b['outstanding']}")
    if not rows:
        click.echo("no bills")
