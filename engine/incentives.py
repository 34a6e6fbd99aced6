"""Incentive services: amounts earned per period, withholding tax per country, dedicated personnel,
consumption (revenue vs. test coupons) and the payout arithmetic (LIFECYCLES section 6, 8).

Money is `Decimal` throughout and rounded half-up to cents only when a final
amount is produced. Every function validates its input and raises a
`ValidationError` naming the field; callers run it inside one transaction.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import Connection, and_, func, insert, select, update

from .directory import partner_by_code
from .errors import NotFound, ValidationError
from .models_incentives import Consumption, DedicatedPerson, Incentive, WithholdingTaxRate

IN = Incentive.__table__
WT = WithholdingTaxRate.__table__
DP = DedicatedPerson.__table__
CO = Consumption.__table__

CENT = Decimal("0.01")
#: Kinds of incentive and how they are reconciled: monthly ones by the monthly reconciliation,
#: the others per calendar quarter.
KINDS = {"monthly": "month", "reseller_customer": "quarter", "funding_head": "quarter", "competency": "quarter"}
CURRENCIES = ("CNY", "USD", "EUR", "HKD", "SGD")
CONSUMPTION_SOURCES = ("customer", "test_coupon")
#: Consumption sources that count as the partner's revenue; test coupons never do (FAQ 5.6.11).
REVENUE_SOURCES = ("customer",)

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


# -- periods -------------------------------------------------------------------
def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def previous_month(day: date) -> str:
    """The month before the one containing `day`, as ``YYYY-MM``."""
    return month_of(day.replace(day=1) - timedelta(days=1))


def quarter_of(day: date) -> str:
    return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"


def previous_quarter(day: date) -> str:
    first = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return quarter_of(first - timedelta(days=1))


def quarter_bounds(period: str) -> tuple[date, date]:
    """First and last day of a quarter ``YYYY-Qn``."""
    m = _QUARTER.match(period or "")
    if not m:
        raise ValidationError("period", f"{period!r} is not a quarter like 2026-Q1")
    year, q = int(m.group(1)), int(m.group(2))
    first = date(year, 3 * q - 2, 1)
    nxt = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
    return first, nxt - timedelta(days=1)


def check_period(kind: str, period: str) -> str:
    """A period valid for the kind: ``YYYY-MM`` for monthly incentives, ``YYYY-Qn`` for quarterly ones."""
    if kind not in KINDS:
        raise ValidationError("kind", f"{kind!r} is not one of: {', '.join(KINDS)}")
    if KINDS[kind] == "month":
        if not _MONTH.match(period or ""):
            raise ValidationError("period", f"{period!r} is not a month like 2026-02 (monthly incentives)")
    elif not _QUARTER.match(period or ""):
        raise ValidationError("period", f"{period!r} is not a quarter like 2026-Q1 ({kind} incentives are quarterly)")
    return period


def money(value, field: str = "amount", *, positive: bool = True) -> Decimal:
    """Parse money given as text or an integer (never a float); at most two decimal places."""
    if isinstance(value, (float, bool)) or value is None:
        raise ValidationError(field, "must be an amount given as text, for example \"1200.50\"")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError(field, f"{value!r} is not an amount of money") from None
    if not amount.is_finite() or amount.as_tuple().exponent < -2:
        raise ValidationError(field, f"{value!r} must be a finite amount with at most 2 decimal places")
    if positive and amount <= 0:
        raise ValidationError(field, "must be greater than 0")
    return amount.quantize(CENT)


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# -- incentives ----------------------------------------------------------------
def add_incentive(conn: Connection, *, partner: str, kind: str, period: str, item: str, amount, currency: str,
                  by: str, now: datetime) -> dict:
    """Record an incentive line; a second line with the same item for the partner, kind and period is refused."""
    p = partner_by_code(conn, partner)
    check_period(kind, period)
    item = (item or "").strip()
    if not item or len(item) > 200:
        raise ValidationError("item", "is required, at most 200 characters")
    if currency not in CURRENCIES:
        raise ValidationError("currency", f"{currency!r} is not one of: {', '.join(CURRENCIES)}")
    value = money(amount)
    exists = conn.execute(select(IN.c.id).where(IN.c.partner_id == p["id"], IN.c.kind == kind, IN.c.period == period,
                                                IN.c.item == item)).first()
    if exists:
        raise ValidationError("item", f"{partner} already has a {kind} incentive {item!r} for {period}")
    other = conn.execute(select(IN.c.currency).where(IN.c.partner_id == p["id"], IN.c.kind == kind,
                                                     IN.c.period == period)).first()
    if other is not None and other.currency != currency:
        raise ValidationError("currency", f"{partner}'s {kind} incentives for {period} are in {other.currency}, "
                                          f"not {currency}")
    iid = conn.execute(insert(IN).values(partner_id=p["id"], kind=kind, period=period, item=item, amount=value,
                                         currency=currency, created_by=by, created_at=now).returning(IN.c.id)).scalar_one()
    return {"id": iid, "partner": partner, "kind": kind, "period": period, "item": item, "amount": str(value),
            "currency": currency}


def incentive_lines(conn: Connection, partner_id: int, kind: str, period: str) -> list[dict]:
    rows = conn.execute(select(IN).where(IN.c.partner_id == partner_id, IN.c.kind == kind, IN.c.period == period)
                        .order_by(IN.c.id))
    return [{"item": r.item, "amount": str(Decimal(r.amount).quantize(CENT)), "currency": r.currency} for r in rows]


@dataclass(frozen=True)
class PeriodTotal:
    partner_id: int
    total: Decimal
    currency: str
    lines: list


def totals_for_period(conn: Connection, kind: str, period: str) -> list[PeriodTotal]:
    """Every partner with incentives of `kind` in `period`, with the total and the lines."""
    out = []
    for pid in partners_with_incentives(conn, kind, period):
        lines = incentive_lines(conn, pid, kind, period)
        total = sum((Decimal(x["amount"]) for x in lines), Decimal("0"))
        out.append(PeriodTotal(pid, total.quantize(CENT), lines[0]["currency"], lines))
    return out


def list_incentives(conn: Connection, partner: str | None = None, period: str | None = None) -> list[dict]:
    query = select(IN)
    if partner:
        query = query.where(IN.c.partner_id == partner_by_code(conn, partner)["id"])
    if period:
        query = query.where(IN.c.period == period)
    return [{"id": r.id, "partner_id": r.partner_id, "kind": r.kind, "period": r.period, "item": r.item,
             "amount": str(Decimal(r.amount).quantize(CENT)), "currency": r.currency}
            for r in conn.execute(query.order_by(IN.c.period, IN.c.partner_id, IN.c.id))]


# -- withholding tax -------------------------------------------------------------
def set_withholding_rate(conn: Connection, country: str, rate, by: str, now: datetime, note: str | None = None) -> dict:
    """Set the withholding tax rate for a country (a fraction: 0.10 is 10 %)."""
    country = (country or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise ValidationError("country", f"{country!r} is not a two-letter country code")
    if isinstance(rate, float):
        raise ValidationError("rate", "give the rate as text, for example \"0.10\"")
    try:
        value = Decimal(str(rate).strip())
    except InvalidOperation:
        raise ValidationError("rate", f"{rate!r} is not a number") from None
    if not value.is_finite() or value < 0 or value >= 1 or value.as_tuple().exponent < -4:
        raise ValidationError("rate", "must be a fraction from 0 up to (not including) 1, at most 4 decimal places")
    if conn.execute(select(WT.c.country).where(WT.c.country == country)).first():
        conn.execute(update(WT).where(WT.c.country == country).values(rate=value, note=note, updated_by=by,
                                                                       updated_at=now))
    else:
        conn.execute(insert(WT).values(country=country, rate=value, note=note, updated_by=by, updated_at=now))
    return {"country": country, "rate": str(value), "note": note}


def withholding_rate(conn: Connection, country: str | None) -> Decimal | None:
    """The withholding tax rate of a country, or None when finance has not recorded one."""
    row = conn.execute(select(WT.c.rate).where(WT.c.country == (country or "").upper())).first()
    return None if row is None else Decimal(row.rate)


def list_withholding_rates(conn: Connection) -> list[dict]:
    return [{"country": r.country, "rate": str(Decimal(r.rate)), "note": r.note}
            for r in conn.execute(select(WT).order_by(WT.c.country))]


def payout_amounts(incentive: Decimal, vat_rate: Decimal, withholding: Decimal) -> dict:
    """Amount paid = incentive + incentive x VAT rate - incentive x withholding rate (FAQ 2.1.5, 5.5.9).

    VAT and withholding tax are each rounded half-up to cents; the result is
    returned as text so it stores in case data without a float.
    """
    vat = cents(incentive * vat_rate)
    wht = cents(incentive * withholding)
    return {"incentive": str(cents(incentive)), "vat_rate": str(vat_rate), "vat": str(vat),
            "withholding_rate": str(withholding), "withholding_tax": str(wht), "paid": str(cents(incentive + vat - wht))}


# -- dedicated personnel (funding heads) ----------------------------------------
def add_person(conn: Connection, *, partner: str, name: str, started_on: date, ended_on: date | None,
               now: datetime, login: str | None = None) -> dict:
    p = partner_by_code(conn, partner)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError("name", "is required, at most 200 characters")
    if ended_on is not None and ended_on < started_on:
        raise ValidationError("ended_on", f"{ended_on} is before the start {started_on}")
    pid = conn.execute(insert(DP).values(partner_id=p["id"], name=name, login=login, started_on=started_on,
                                         ended_on=ended_on, created_at=now).returning(DP.c.id)).scalar_one()
    return {"id": pid, "partner": partner, "name": name, "started_on": started_on.isoformat(),
            "ended_on": ended_on.isoformat() if ended_on else None}


def personnel(conn: Connection, partner_id: int, first: date, last: date) -> list[dict]:
    """Dedicated people of a partner on the job at any time between `first` and `last`."""
    rows = conn.execute(select(DP).where(DP.c.partner_id == partner_id, DP.c.started_on <= last,
                                         (DP.c.ended_on.is_(None)) | (DP.c.ended_on >= first)).order_by(DP.c.id))
    return [{"id": r.id, "name": r.name, "login": r.login, "started_on": r.started_on.isoformat(),
             "ended_on": r.ended_on.isoformat() if r.ended_on else None} for r in rows]


def partners_with_personnel(conn: Connection, first: date, last: date) -> list[int]:
    return [r.partner_id for r in conn.execute(
        select(DP.c.partner_id).where(DP.c.started_on <= last, (DP.c.ended_on.is_(None)) | (DP.c.ended_on >= first))
        .distinct().order_by(DP.c.partner_id))]


def partners_with_incentives(conn: Connection, kind: str, period: str) -> list[int]:
    """Ids of the partners with incentives of `kind` in `period`, in id order."""
    return [r.partner_id for r in conn.execute(
        select(IN.c.partner_id).where(IN.c.kind == kind, IN.c.period == period).distinct().order_by(IN.c.partner_id))]


def whole_months(started_on: date, ended_on: date | None, first: date, last: date) -> int:
    """Whole calendar months on the job between `first` and `last` (FAQ 4.5.1).

    Only a month worked from its first to its last day counts: Jan 10 to
    Mar 20 is one month (February).
    """
    count = 0
    month = date(first.year, first.month, 1)
    while month <= last:
        nxt = date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)
        month_end = nxt - timedelta(days=1)
        if started_on <= month and (ended_on is None or ended_on >= month_end) and month_end <= last:
            count += 1
        month = nxt
    return count


# -- consumption and revenue -----------------------------------------------------
def record_consumption(conn: Connection, *, partner_id: int, source: str, amount: Decimal, currency: str,
                       at: datetime, by: str, instance_id: int | None = None) -> int:
    if source not in CONSUMPTION_SOURCES:
        raise ValidationError("source", f"{source!r} is not one of: {', '.join(CONSUMPTION_SOURCES)}")
    return conn.execute(insert(CO).values(partner_id=partner_id, source=source, instance_id=instance_id,
                                          amount=money(amount), currency=currency, at=at, recorded_by=by)
                        .returning(CO.c.id)).scalar_one()


def consumed(conn: Connection, instance_id: int) -> Decimal:
    """Total consumption recorded against one case (a test coupon)."""
    value = conn.execute(select(func.coalesce(func.sum(CO.c.amount), 0)).where(CO.c.instance_id == instance_id)).scalar()
    return Decimal(value).quantize(CENT)


def revenue(conn: Connection, partner_id: int, start: datetime, end: datetime) -> Decimal:
    """The partner's revenue in [start, end): paid consumption only; test-coupon consumption never counts."""
    value = conn.execute(select(func.coalesce(func.sum(CO.c.amount), 0)).where(
        and_(CO.c.partner_id == partner_id, CO.c.source.in_(REVENUE_SOURCES), CO.c.at >= start, CO.c.at < end))).scalar()
    return Decimal(value).quantize(CENT)


def partner_id_of(conn: Connection, code: str) -> int:
    try:
        return partner_by_code(conn, code)["id"]
    except NotFound:
        raise ValidationError("partner", f"no partner with code {code!r}") from None
