"""Tables of incentives, payouts, funding heads, test-coupon consumption and dated program windows.

- ``incentives``: the amounts a partner earned, one row per line, per period
  (``2026-02`` for monthly incentives, ``2026-Q1`` for quarterly kinds). The
  monthly reconciliation totals them (LIFECYCLES section 6).
- ``withholding_tax_rates``: the withholding tax deducted from payouts per
  country (FAQ 5.5.9), kept by finance.
- ``dedicated_personnel``: a partner's dedicated people and their time on
  the job, for funding-head incentives (FAQ 4.5.1).
- ``consumption``: cloud consumption recorded against a partner; rows from
  test coupons never count as revenue (FAQ 5.6.11).
- ``program_windows``: programs that open or close on fixed dates (FAQ 4.6.3).
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, Id


class Incentive(Base):
    """One incentive line a partner earned in a period."""

    __tablename__ = "incentives"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    #: monthly, reseller_customer, funding_head, competency
    kind: Mapped[str] = mapped_column(String(32))
    #: 2026-02 (monthly) or 2026-Q1 (quarterly kinds)
    period: Mapped[str] = mapped_column(String(8))
    item: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("partner_id", "kind", "period", "item"),
        Index("ix_incentives_period", "kind", "period"),
    )


class WithholdingTaxRate(Base):
    """Withholding tax rate deducted from incentive payouts to partners of one country."""

    __tablename__ = "withholding_tax_rates"
    country: Mapped[str] = mapped_column(String(8), primary_key=True)
    #: 0.1000 means 10 %
    rate: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    note: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime]


class DedicatedPerson(Base):
    """A partner's dedicated person (funding-head incentives count their whole months on the job)."""

    __tablename__ = "dedicated_personnel"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    login: Mapped[str | None] = mapped_column(String(128))
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]


class Consumption(Base):
    """Cloud consumption recorded for a partner; `source` test_coupon never counts as revenue."""

    __tablename__ = "consumption"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    #: customer (paid consumption, revenue) or test_coupon (never revenue)
    source: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(128))

    __table_args__ = (Index("ix_consumption_partner_at", "partner_id", "at"),)


class ProgramWindow(Base):
    """A program that accepts applications only between two dates (inclusive, in the partner's time zone)."""

    __tablename__ = "program_windows"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    opens_on: Mapped[date | None] = mapped_column(Date)
    closes_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
