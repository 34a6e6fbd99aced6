"""Payment-information authentication (LIFECYCLES section 1; FAQ 2.1).

The lifecycle definition follows; this first part is the query other
lifecycles (incentive reconciliation and payout, FAQ 2.1.4 / 5.5) call.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from engine.calendar import calendar_for
from engine.models import Instance, Partner

I = Instance.__table__
P = Partner.__table__

NAME = "payment_authentication"
BUSINESS = "business_authentication"
APPROVED = "approved"


def _latest(conn, workflow: str, partner_id: int):
    return conn.execute(select(I.c.id, I.c.state, I.c.data).where(I.c.workflow == workflow, I.c.partner_id == partner_id)
                        .order_by(I.c.id.desc()).limit(1)).first()


def may_be_paid(conn, partner_id: int) -> str | None:
    """None when the partner may be paid (both certifications approved, payouts not blocked), else why not (FAQ 2.1.4, 2.1.7)."""
    reasons = []
    business = _latest(conn, BUSINESS, partner_id)
    if business is None:
        reasons.append("solution-partner certification (business information) has not been applied for")
    elif business.state != APPROVED:
        reasons.append(f"solution-partner certification (business information) is not approved (state: {business.state})")
    payment = _latest(conn, NAME, partner_id)
    if payment is None:
        reasons.append("payment-information authentication has not been applied for")
    elif payment.state != APPROVED:
        edited = (payment.data or {}).get("edited_after_approval_at")
        if edited:
            reasons.append(f"bank data edited on {_local(conn, partner_id, edited)}; "
                           "payouts blocked until the new data is approved")
        else:
            reasons.append(f"payment-information authentication is not approved (state: {payment.state})")
    return "; ".join(reasons) or None


def vat_rate(conn, partner_id: int) -> Decimal | None:
    """The VAT rate (a fraction: 0.06 for 6 %) of the partner's approved payment information, or None (FAQ 2.1.5).

    Payout = incentive + incentive x rate (see `payout_with_vat`). While edited
    data awaits approval, the rate last approved is returned.
    """
    payment = _latest(conn, NAME, partner_id)
    if payment is None:
        return None
    approved = (payment.data or {}).get("approved") or {}
    rate = approved.get("vat_rate")
    return Decimal(rate) if rate is not None else None


def payout_with_vat(incentive: Decimal, rate: Decimal) -> Decimal:
    """Incentive plus incentive times the VAT rate, to the cent (FAQ 2.1.5)."""
    return (incentive + incentive * rate).quantize(Decimal("0.01"))


def _local(conn, partner_id: int, iso: str) -> str:
    row = conn.execute(select(P.c.region, P.c.timezone).where(P.c.id == partner_id)).first()
    cal = calendar_for(row.region if row else None, row.timezone if row else None)
    return cal.format(datetime.fromisoformat(iso))
