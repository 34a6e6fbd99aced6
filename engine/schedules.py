"""Calendar schedules: actions due on calendar slots (a working day of each month, quarter starts, January 31).

A schedule is a function giving the next slot after an instant and an action.
Slots are tracked in the ``schedules`` table: the runtime moves ``next_at``
forward with a compare-and-set in the same transaction as the action, so a
slot runs exactly once even with several workers, and missed slots run in
order when a worker comes back. The slots follow the runtime's clock, so the
simulated clock drives them like timers. APScheduler only provides the
heartbeat that asks "is anything due?".
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from .actors import SYSTEM_ACTOR
from .calendar import BusinessCalendar, calendar_for


@dataclass(frozen=True)
class CalendarSchedule:
    name: str
    next_after: Callable[[datetime], datetime]
    action: Callable[["ScheduleCtx"], Any]
    description: str = ""


@dataclass
class ScheduleCtx:
    runtime: Any
    conn: Connection
    now: datetime
    slot: datetime

    def start(self, workflow: str, data: dict) -> int:
        """Start a case as the system in the schedule's transaction."""
        rt = self.runtime
        return rt.start_in(self.conn, rt.registry.get(workflow), data, SYSTEM_ACTOR, self.now)

    def fire(self, instance_id: int, event: str, payload: dict | None = None) -> None:
        self.runtime.fire_in(self.conn, instance_id, event, SYSTEM_ACTOR, payload or {}, None, None, self.now)

    def program_date(self) -> date:
        """The slot's date in the program's own calendar (mainland China, Beijing time: FAQ 5.7.12)."""
        return calendar_for(None, None).local_date(self.slot)

    def partner_codes(self, partner_ids: Iterable[int]) -> dict[int, str]:
        """The codes of the given partners in one query, by partner id."""
        from .models import Partner

        p = Partner.__table__
        ids = list(partner_ids)
        if not ids:
            return {}
        return {r.id: r.code for r in self.conn.execute(select(p.c.id, p.c.code).where(p.c.id.in_(ids)))}

    def case_exists(self, workflow: str, partner_id: int, business_key: str) -> bool:
        """Has the partner a case of `workflow` with this business key (a period, say) already?"""
        from .models import Instance

        i = Instance.__table__
        return self.conn.execute(select(i.c.id).where(i.c.workflow == workflow, i.c.partner_id == partner_id,
                                                      i.c.business_key == business_key)).first() is not None


T = TypeVar("T")


def once_each(items: Iterable[T], done: Callable[[T], bool], act: Callable[[T], Any]) -> tuple[list[T], list[T]]:
    """Act on every item that is not `done` yet; return (acted on, skipped).

    A schedule action runs once per slot, but what it would do may be done
    already (an operator started the case by hand, or an earlier slot of a
    catch-up did it), so each item is checked first and the action stays
    idempotent.
    """
    acted: list[T] = []
    skipped: list[T] = []
    for item in items:
        if done(item):
            skipped.append(item)
            continue
        act(item)
        acted.append(item)
    return acted, skipped


def _month_after(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def monthly_working_day(n: int, at: time = time(9, 0), calendar: BusinessCalendar | None = None):
    """Slots at local time `at` on the n-th working day of every month."""
    cal = calendar or calendar_for(None, None)

    def next_after(after: datetime) -> datetime:
        local = cal.local(after)
        year, month = local.year, local.month
        for _ in range(24):
            slot = cal.at(cal.nth_working_day_of_month(year, month, n), at)
            if slot > after:
                return slot
            year, month = _month_after(year, month)
        raise RuntimeError("no slot found")

    return next_after


def quarter_start(at: time = time(9, 0), calendar: BusinessCalendar | None = None, working_day: int | None = None):
    """Slots on the first day (or the n-th working day) of January, April, July and October."""
    cal = calendar or calendar_for(None, None)

    def next_after(after: datetime) -> datetime:
        local = cal.local(after)
        year = local.year
        for _ in range(12):
            for month in (1, 4, 7, 10):
                day = cal.nth_working_day_of_month(year, month, working_day) if working_day else date(year, month, 1)
                slot = cal.at(day, at)
                if slot > after:
                    return slot
            year += 1
        raise RuntimeError("no slot found")

    return next_after


def yearly(month: int, day: int, at: time = time(0, 0), calendar: BusinessCalendar | None = None):
    """Slots at local time `at` on a fixed date every year (for example January 31)."""
    cal = calendar or calendar_for(None, None)

    def next_after(after: datetime) -> datetime:
        year = cal.local(after).year
        for y in (year, year + 1, year + 2):
            slot = cal.at(date(y, month, day), at)
            if slot > after:
                return slot
        raise RuntimeError("no slot found")

    return next_after


def monthly_first_day(at: time = time(0, 0), calendar: BusinessCalendar | None = None):
    """Slots at local time `at` on the first calendar day of every month."""
    cal = calendar or calendar_for(None, None)

    def next_after(after: datetime) -> datetime:
        local = cal.local(after)
        year, month = local.year, local.month
        for _ in range(3):
            slot = cal.at(date(year, month, 1), at)
            if slot > after:
                return slot
            year, month = _month_after(year, month)
        raise RuntimeError("no slot found")

    return next_after


def every(interval: timedelta, anchor: datetime):
    """Slots every `interval` from `anchor` (digests, housekeeping)."""

    def next_after(after: datetime) -> datetime:
        if after < anchor:
            return anchor
        steps = int((after - anchor) / interval) + 1
        return anchor + steps * interval

    return next_after
