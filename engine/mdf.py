"""Market Development Fund services: solutions, caps, bills and payments, freezes, bars (LIFECYCLES section 5).

The MDF lifecycles (`workflows/mdf_application.py`, `workflows/mdf_claim.py`)
check their rules against these records, never against flags passed in by a
caller:

- FAQ 4.4.1: yearly caps per program and tier (`yearly_cap`, `cap_usage`);
  only partners with a released solution may apply (`released_solutions`).
- FAQ 4.4.10: a partner's bills per billing cycle ("YYYY-MM") and payments;
  an MDF case whose activity cycle has unpaid bills at or before it is frozen
  (`freeze_state`). Recording a bill or a payment re-checks every open MDF
  case of the partner and fires ``freeze`` / ``unfreeze`` on it in the same
  transaction (`sync_freeze`), so the freeze can never lag behind the bills.
- FAQ 4.4.6: a confirmed order-splitting violation bars the partner from MDF
  until the end of that calendar year in the partner's time zone
  (`bar_partner`, `active_bar`).
"""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, insert, select, update

from .actors import SYSTEM_ACTOR
from .calendar import calendar_for
from .errors import Conflict, NotFound, RuleViolation, ValidationError
from .models import Instance, Partner
from .models_mdf import MdfBar, MdfSolution, PartnerBill, PartnerBillPayment
from .schema import Field

I = Instance.__table__
P = Partner.__table__
SOL = MdfSolution.__table__
BILL = PartnerBill.__table__
PAY = PartnerBillPayment.__table__
BAR = MdfBar.__table__

APPLICATION = "mdf_application"
CLAIM = "mdf_claim"
CAP_CURRENCY = "USD"

#: FAQ 4.4.3: the twelve activity types.
ACTIVITY_TYPES: dict[str, str] = {
    "customer_cxo_visit": "customer CXO visit",
    "customer_communication": "customer communication",
    "partner_cxo_visit": "partner CXO visit",
    "partner_discussion_training": "partner discussion and training",
    "partner_development": "partner development",
    "advertising_brand_promotion": "advertising and brand promotion",
    "joint_marketing": "joint marketing",
    "digital_marketing": "digital marketing",
    "marketing_materials": "marketing materials",
    "exhibition": "exhibition",
    "joint_exhibition_hall": "joint exhibition hall",
    "success_stories": "success stories",
}
#: Activity types whose claims need media proofs (published advertisements), FAQ 4.4.4.
AD_TYPES = frozenset({"advertising_brand_promotion", "digital_marketing"})

#: Expense categories an application may budget.
EXPENSE_CATEGORIES: dict[str, str] = {
    "venue": "venue rental", "catering": "catering", "travel": "travel and accommodation",
    "speaker": "speakers and hosts", "production": "booth and stage production",
    "printing": "printing and marketing materials", "advertising": "advertising placement",
    "digital_promotion": "digital promotion", "marketing_gifts": "marketing gifts",
    "sponsorship": "sponsorship", "design": "design and content", "logistics": "logistics",
    "translation": "translation", "other_marketing": "other marketing services",
}
#: FAQ 4.4.5: categories that are never reimbursable.
NON_REIMBURSABLE: dict[str, str] = {
    "gifts_not_for_marketing": "gifts not for marketing",
    "vendor_products_and_coupons": "the vendor's own products and coupons",
    "vendor_mega_event_tickets": "tickets to the vendor's own mega events",
    "entertainment": "entertainment",
    "cash_cards": "cash cards",
    "profit_making_association_fees": "fees of profit-making associations",
    "personal_items": "personal items",
    "device_assets": "device assets",
    "sales_software": "sales software",
}
GIFT_CATEGORY = "marketing_gifts"
#: FAQ 4.4.5: a gift may be worth at most CNY 200 per unit and per head.
GIFT_LIMIT_CNY = Decimal("200.00")

#: FAQ 4.4.1: yearly MDF caps in USD.
DISTRIBUTION_CAP = Decimal("50000.00")
CSP_CAPS = {"Standard": Decimal("5000.00"), "Advanced": Decimal("15000.00"), "Premier": Decimal("30000.00"),
            "Core": Decimal("50000.00")}
#: Application states whose amounts count against the cap: pending (submitted, awaiting re-approval) and approved.
COUNTED_STATES = ("submitted", "approved", "pending_reapproval", "activity_running", "activity_ended")

CYCLE_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def fmt(amount: Decimal, currency: str = CAP_CURRENCY) -> str:
    """'USD 15,000.00'."""
    return f"{currency} {Decimal(amount).quantize(Decimal('0.01')):,}"


# ------------------------------------------------------------------ caps
def yearly_cap(partner: dict) -> Decimal:
    """The partner's yearly MDF cap in USD by program and tier (FAQ 4.4.1), or a refusal naming why none applies."""
    program, tier = partner.get("program"), partner.get("tier")
    if program == "Distribution":
        return DISTRIBUTION_CAP
    if program == "Cloud Solution Provider" and tier in CSP_CAPS:
        return CSP_CAPS[tier]
    raise RuleViolation(f"partner {partner['code']} ({program} / {tier}) has no MDF budget: MDF caps exist for the "
                        "Distribution program and the Cloud Solution Provider tiers (FAQ 4.4.1)", rule="yearly_cap")


def cap_usage(conn: Connection, partner_id: int, year: int, exclude_id: int | None = None) -> Decimal:
    """Approved and pending application amounts of the partner for activities in `year`."""
    rows = conn.execute(select(I.c.id, I.c.data).where(I.c.workflow == APPLICATION, I.c.partner_id == partner_id,
                                                       I.c.state.in_(COUNTED_STATES)))
    total = Decimal("0.00")
    for r in rows:
        if r.id == exclude_id or (r.data or {}).get("year") != year:
            continue
        total += Decimal(str(r.data.get("total", "0")))
    return total


def budget(conn: Connection, partner_code: str, year: int, now: datetime) -> dict:
    """The partner's MDF position for `year`: cap, approved and pending amounts, remaining, bar, unpaid bills."""
    partner = _partner(conn, partner_code)
    try:
        cap = yearly_cap(partner)
    except RuleViolation:
        cap = Decimal("0.00")
    approved_total, pending_total = Decimal("0.00"), Decimal("0.00")
    for r in conn.execute(select(I.c.state, I.c.data).where(I.c.workflow == APPLICATION, I.c.partner_id == partner["id"],
                                                            I.c.state.in_(COUNTED_STATES))):
        if (r.data or {}).get("year") != year:
            continue
        amount = Decimal(str(r.data.get("total", "0")))
        if r.state in ("submitted", "pending_reapproval"):
            pending_total += amount
        else:
            approved_total += amount
    bar = active_bar(conn, partner["id"], now)
    return {"partner": partner["code"], "program": partner["program"], "tier": partner["tier"], "year": year,
            "currency": CAP_CURRENCY, "cap": str(cap), "approved": str(approved_total), "pending": str(pending_total),
            "remaining": str(max(cap - approved_total - pending_total, Decimal("0.00"))),
            "released_solutions": released_solutions(conn, partner["id"]),
            "barred_until": bar.until.isoformat() if bar is not None else None,
            "unpaid_bills": [b for b in bills(conn, partner["code"], unpaid_only=True)]}


# ------------------------------------------------------------- solutions
def add_solution(conn: Connection, partner_code: str, name: str, now: datetime, released: bool = False) -> dict:
    """Record a partner's solution (draft, or released at once)."""
    partner = _partner(conn, partner_code)
    name = Field("name", "str", max_length=200).clean(name, "name")
    if conn.execute(select(SOL.c.id).where(SOL.c.partner_id == partner["id"], SOL.c.name == name)).first():
        raise Conflict(f"partner {partner_code} already has a solution named {name!r}")
    sid = conn.execute(insert(SOL).values(partner_id=partner["id"], name=name,
                                          status="released" if released else "draft",
                                          released_at=now if released else None, created_at=now)
                       .returning(SOL.c.id)).scalar_one()
    return dict(conn.execute(select(SOL).where(SOL.c.id == sid)).one()._mapping)


def set_solution_status(conn: Connection, partner_code: str, name: str, status: str, now: datetime) -> dict:
    """Release or withdraw a solution."""
    if status not in ("draft", "released", "withdrawn"):
        raise ValidationError("status", f"{status!r} is not one of: draft, released, withdrawn")
    partner = _partner(conn, partner_code)
    row = conn.execute(select(SOL).where(SOL.c.partner_id == partner["id"], SOL.c.name == name)).first()
    if row is None:
        raise NotFound(f"partner {partner_code} has no solution named {name!r}")
    conn.execute(update(SOL).where(SOL.c.id == row.id).values(
        status=status, released_at=now if status == "released" else row.released_at))
    return dict(conn.execute(select(SOL).where(SOL.c.id == row.id)).one()._mapping)


def solutions(conn: Connection, partner_id: int | None = None) -> list[dict]:
    query = select(SOL, P.c.code.label("partner")).join(P, P.c.id == SOL.c.partner_id).order_by(P.c.code, SOL.c.name)
    if partner_id is not None:
        query = query.where(SOL.c.partner_id == partner_id)
    return [dict(r._mapping) for r in conn.execute(query)]


def released_solutions(conn: Connection, partner_id: int) -> list[str]:
    return [r.name for r in conn.execute(select(SOL.c.name).where(SOL.c.partner_id == partner_id,
                                                                  SOL.c.status == "released").order_by(SOL.c.name))]


# ------------------------------------------------------- bills, payments
def add_bill(conn: Connection, runtime, partner_code: str, number: str, cycle: str, amount, now: datetime,
             by: str, currency: str = "CNY", due_date: str | None = None) -> dict:
    """Record a partner bill; freezes the partner's open MDF cases whose activity cycle is at or after `cycle`."""
    partner = _partner(conn, partner_code)
    number = Field("number", "str", max_length=64).clean(number, "number")
    cycle = _cycle(cycle)
    amount = Decimal(Field("amount", "money", minimum=Decimal("0.01")).clean(amount, "amount"))
    currency = Field("currency", "str", max_length=8, pattern=r"[A-Z]{3}", pattern_hint="a 3-letter currency code"
                     ).clean(currency, "currency")
    due = date.fromisoformat(Field("due_date", "date").clean(due_date, "due_date")) if due_date else None
    if conn.execute(select(BILL.c.id).where(BILL.c.number == number)).first():
        raise Conflict(f"a bill numbered {number!r} is already recorded")
    bid = conn.execute(insert(BILL).values(partner_id=partner["id"], number=number, cycle=cycle, amount=amount,
                                           currency=currency, due_date=due, recorded_by=by, created_at=now)
                       .returning(BILL.c.id)).scalar_one()
    changed = sync_freeze(conn, runtime, partner["id"], now)
    return {**bill_view(conn, bid), "cases_changed": changed}


def pay_bill(conn: Connection, runtime, number: str, amount, now: datetime, by: str,
             reference: str | None = None) -> dict:
    """Record a payment; a bill paid in full unfreezes the MDF cases it alone was freezing."""
    row = conn.execute(select(BILL).where(BILL.c.number == number)).first()
    if row is None:
        raise NotFound(f"no bill numbered {number!r}")
    amount = Decimal(Field("amount", "money", minimum=Decimal("0.01")).clean(amount, "amount"))
    outstanding = row.amount - _paid(conn, row.id)
    if outstanding <= 0:
        raise Conflict(f"bill {number} is already paid in full")
    if amount > outstanding:
        raise ValidationError("amount", f"{fmt(amount, row.currency)} exceeds what bill {number} still owes "
                                        f"({fmt(outstanding, row.currency)})")
    conn.execute(insert(PAY).values(bill_id=row.id, amount=amount, reference=reference, recorded_by=by, paid_at=now))
    if amount == outstanding:
        conn.execute(update(BILL).where(BILL.c.id == row.id).values(paid_at=now))
    changed = sync_freeze(conn, runtime, row.partner_id, now)
    return {**bill_view(conn, row.id), "cases_changed": changed}


def bill_view(conn: Connection, bill_id: int) -> dict:
    row = conn.execute(select(BILL, P.c.code.label("partner")).join(P, P.c.id == BILL.c.partner_id)
                       .where(BILL.c.id == bill_id)).one()
    paid = _paid(conn, bill_id)
    return {"number": row.number, "partner": row.partner, "cycle": row.cycle, "amount": str(row.amount),
            "currency": row.currency, "paid": str(paid), "outstanding": str(row.amount - paid),
            "due_date": row.due_date.isoformat() if row.due_date else None,
            "paid_at": row.paid_at.isoformat() if row.paid_at else None}


def bills(conn: Connection, partner_code: str | None = None, unpaid_only: bool = False) -> list[dict]:
    query = select(BILL.c.id).join(P, P.c.id == BILL.c.partner_id).order_by(P.c.code, BILL.c.cycle, BILL.c.number)
    if partner_code:
        query = query.where(P.c.code == partner_code)
    if unpaid_only:
        query = query.where(BILL.c.paid_at.is_(None))
    return [bill_view(conn, r.id) for r in conn.execute(query)]


def unpaid_bills(conn: Connection, partner_id: int, up_to_cycle: str) -> list[dict]:
    """Bills of the partner with something still owed, in cycle `up_to_cycle` or earlier."""
    rows = conn.execute(select(BILL).where(BILL.c.partner_id == partner_id, BILL.c.paid_at.is_(None),
                                           BILL.c.cycle <= up_to_cycle).order_by(BILL.c.cycle, BILL.c.number))
    out = []
    for r in rows:
        outstanding = r.amount - _paid(conn, r.id)
        if outstanding > 0:
            out.append({"number": r.number, "cycle": r.cycle, "currency": r.currency,
                        "outstanding": str(outstanding)})
    return out


def freeze_state(conn: Connection, partner_id: int | None, cycle: str | None) -> list[dict]:
    """The unpaid bills that freeze an MDF case of `partner_id` whose activity is in `cycle` (empty: not frozen)."""
    if partner_id is None or not cycle:
        return []
    return unpaid_bills(conn, partner_id, cycle)


def frozen_reason(frozen: dict | None) -> str | None:
    """'unpaid bills B-1 (2026-09, CNY 1,200.00 owed)...' for refusals, or None."""
    if not frozen or not frozen.get("bills"):
        return None
    parts = [f"{b['number']} (cycle {b['cycle']}, {fmt(Decimal(b['outstanding']), b['currency'])} owed)"
             for b in frozen["bills"]]
    return "unpaid bill" + ("s " if len(parts) > 1 else " ") + ", ".join(parts)


def sync_freeze(conn: Connection, runtime, partner_id: int, now: datetime) -> list[int]:
    """Fire ``freeze`` / ``unfreeze`` on every open MDF case of the partner whose freeze no longer matches its bills.

    Runs in the caller's transaction (the one that recorded the bill or payment). Returns the case ids changed.
    """
    changed = []
    rows = conn.execute(select(I.c.id, I.c.workflow, I.c.data).where(
        I.c.partner_id == partner_id, I.c.workflow.in_((APPLICATION, CLAIM)), I.c.is_final.is_(False))
        .order_by(I.c.id)).all()
    for r in rows:
        data = r.data or {}
        wanted = freeze_state(conn, partner_id, data.get("billing_cycle"))
        current = (data.get("frozen") or {}).get("bills") or []
        if wanted == current:
            continue
        if wanted:
            runtime.fire_in(conn, r.id, "freeze", SYSTEM_ACTOR, {"bills": wanted}, None, None, now)
        else:
            runtime.fire_in(conn, r.id, "unfreeze", SYSTEM_ACTOR, {}, None, None, now)
        changed.append(r.id)
    return changed


# ------------------------------------------------------------------ bars
def bar_partner(conn: Connection, partner: dict, claim_id: int | None, reason: str, by: str, now: datetime) -> dict:
    """Bar the partner from MDF until 23:59:59 on December 31 of this year in its time zone (FAQ 4.4.6)."""
    cal = calendar_for(partner.get("region"), partner.get("timezone"))
    year = cal.local_date(now).year
    until = cal.end_of_day(date(year, 12, 31))
    conn.execute(insert(BAR).values(partner_id=partner["id"], year=year, until=until, claim_id=claim_id,
                                    reason=reason, confirmed_by=by, created_at=now))
    return {"year": year, "until": until.isoformat(), "until_local": cal.format(until)}


def active_bar(conn: Connection, partner_id: int, now: datetime):
    """The bar in force for the partner at `now`, or None."""
    return conn.execute(select(BAR).where(BAR.c.partner_id == partner_id, BAR.c.until >= now)
                        .order_by(BAR.c.until.desc())).first()


def bars(conn: Connection, partner_code: str | None = None) -> list[dict]:
    query = select(BAR, P.c.code.label("partner")).join(P, P.c.id == BAR.c.partner_id).order_by(BAR.c.id)
    if partner_code:
        query = query.where(P.c.code == partner_code)
    return [{"partner": r.partner, "year": r.year, "until": r.until.isoformat(), "claim": r.claim_id,
             "reason": r.reason, "confirmed_by": r.confirmed_by} for r in conn.execute(query)]


# --------------------------------------------------------------- helpers
def _paid(conn: Connection, bill_id: int) -> Decimal:
    paid = conn.execute(select(PAY.c.amount).where(PAY.c.bill_id == bill_id)).scalars()
    return sum(paid, Decimal("0.00"))


def _cycle(cycle) -> str:
    if not isinstance(cycle, str) or not CYCLE_RE.match(cycle.strip()):
        raise ValidationError("cycle", f"{cycle!r} is not a billing cycle as YYYY-MM")
    return cycle.strip()


def _partner(conn: Connection, code: str) -> dict:
    row = conn.execute(select(P).where(P.c.code == code)).first()
    if row is None:
        raise NotFound(f"no partner with code {code!r}")
    return dict(row._mapping)
