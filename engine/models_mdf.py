"""Tables of the Market Development Fund (LIFECYCLES section 5; FAQ 4.4, 4.1.1 item 13).

- `mdf_solutions`: a partner's solutions; only partners with a released one may apply for MDF (4.4.1).
- `partner_bills` / `partner_bill_payments`: the partner's bills per billing cycle and the payments
  against them; unpaid bills of an activity's cycle or earlier freeze its MDF (4.4.10).
- `mdf_bars`: a confirmed order-splitting violation bars a partner from MDF until the end of the
  calendar year (4.4.6).
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, DecimalText, Id


def MoneyText() -> DecimalText:  # noqa: N802 - the name migration 0301 refers to (engine.models_mdf.MoneyText)
    """MDF amounts: `DecimalText` in a VARCHAR(24), as migrated."""
    return DecimalText(24)


class MdfSolution(Base):
    """A partner's solution; `status` is draft, released or withdrawn."""

    __tablename__ = "mdf_solutions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    released_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("partner_id", "name"),)


class PartnerBill(Base):
    """A bill the program issued to a partner for one billing cycle (a month, "YYYY-MM")."""

    __tablename__ = "partner_bills"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    number: Mapped[str] = mapped_column(String(64), unique=True)
    cycle: Mapped[str] = mapped_column(String(7))
    amount: Mapped[Decimal] = mapped_column(MoneyText())
    currency: Mapped[str] = mapped_column(String(8), default="CNY")
    due_date: Mapped[date | None] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    #: Set when payments cover the whole amount.
    paid_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_partner_bills_partner_cycle", "partner_id", "cycle"),)


class PartnerBillPayment(Base):
    """A payment recorded against a bill."""

    __tablename__ = "partner_bill_payments"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("partner_bills.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(MoneyText())
    reference: Mapped[str | None] = mapped_column(String(128))
    recorded_by: Mapped[str] = mapped_column(String(128))
    paid_at: Mapped[datetime]


class MdfBar(Base):
    """A partner barred from MDF until `until` (end of the calendar year) after a confirmed violation."""

    __tablename__ = "mdf_bars"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    until: Mapped[datetime]
    claim_id: Mapped[int | None] = mapped_column(Id)
    reason: Mapped[str] = mapped_column(Text)
    confirmed_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
