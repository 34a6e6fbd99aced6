"""Working days and business time zones per partner region.

Holidays come from the maintained `holidays` package, never from a hand-typed
list. For mainland China the package also knows the adjusted working weekends
(a Saturday or Sunday worked in exchange for a longer holiday), which count as
working days here. The default region is mainland China in Beijing time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from .clock import require_aware
from .errors import ValidationError

DEFAULT_REGION = "CN"
DEFAULT_TIMEZONE = "Asia/Shanghai"
END_OF_DAY = time(23, 59, 59)


@lru_cache(maxsize=64)
def _holidays(region: str, subdiv: str | None) -> holidays.HolidayBase:
    try:
        return holidays.country_holidays(region, subdiv=subdiv)
    except NotImplementedError as exc:
        raise ValidationError("region", f"no holiday calendar for region {region!r}") from exc


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError("timezone", f"unknown IANA time zone {name!r}") from exc


@dataclass(frozen=True)
class BusinessCalendar:
    """Working days of one region, deadlines in one time zone."""

    region: str = DEFAULT_REGION
    timezone: str = DEFAULT_TIMEZONE
    subdiv: str | None = None

    def __post_init__(self):
        _holidays(self.region, self.subdiv)
        zone(self.timezone)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    # -- days ---------------------------------------------------------------
    def is_working_day(self, day: date) -> bool:
        """Monday to Friday minus public holidays, plus adjusted working weekends."""
        return _holidays(self.region, self.subdiv).is_working_day(day)

    def holiday_name(self, day: date) -> str | None:
        return _holidays(self.region, self.subdiv).get(day)

    def add_working_days(self, day: date, n: int) -> date:
        """The n-th working day after `day` (n >= 1), or before it (n <= -1); n == 0 returns `day`."""
        step = 1 if n >= 0 else -1
        remaining = abs(n)
        current = day
        while remaining:
            current += timedelta(days=step)
            if self.is_working_day(current):
                remaining -= 1
        return current

    def count_working_days(self, start: date, end: date) -> int:
        """Working days in the half-open range [start, end); negative when end < start."""
        if end < start:
            return -self.count_working_days(end, start)
        count, current = 0, start
        while current < end:
            if self.is_working_day(current):
                count += 1
            current += timedelta(days=1)
        return count

    def nth_working_day_of_month(self, year: int, month: int, n: int) -> date:
        """The n-th working day (1-based) of a month."""
        return self.add_working_days(date(year, month, 1) - timedelta(days=1), n)

    # -- instants -----------------------------------------------------------
    def local_date(self, instant: datetime) -> date:
        """The calendar date of `instant` in this time zone."""
        return require_aware(instant).astimezone(self.tz).date()

    def local(self, instant: datetime) -> datetime:
        return require_aware(instant).astimezone(self.tz)

    def at(self, day: date, at: time) -> datetime:
        """Local wall time `at` on `day`, as a UTC instant (DST gaps resolved forward)."""
        local = datetime.combine(day, at, tzinfo=self.tz)
        # Normalise through UTC so a wall time inside a DST gap lands on a real instant.
        return local.astimezone(UTC)

    def end_of_day(self, day: date) -> datetime:
        """23:59:59 local time on `day`, as a UTC instant: the last moment of that business day."""
        return self.at(day, END_OF_DAY)

    def start_of_day(self, day: date) -> datetime:
        return self.at(day, time(0, 0))

    def end_of_nth_day_after(self, instant: datetime, days: int) -> datetime:
        """End (23:59:59 local) of the calendar day `days` days after the local date of `instant`."""
        return self.end_of_day(self.local_date(instant) + timedelta(days=days))

    def working_days_after(self, instant: datetime, n: int) -> datetime:
        """Same local wall time on the n-th working day after the local date of `instant`."""
        local = self.local(instant)
        day = self.add_working_days(local.date(), n)
        return self.at(day, local.time().replace(tzinfo=None))

    def end_of_nth_working_day_after(self, instant: datetime, n: int) -> datetime:
        """End of the n-th working day after the local date of `instant`."""
        return self.end_of_day(self.add_working_days(self.local_date(instant), n))

    def format(self, instant: datetime) -> str:
        """'2026-12-07 23:59 Asia/Shanghai': an instant as the reader's local time with the zone named."""
        t = self.local(instant)  # %-formatting: pages and emails format many instants, strftime is slow
        return "%04d-%02d-%02d %02d:%02d %s" % (t.year, t.month, t.day, t.hour, t.minute, self.timezone)


def calendar_for(region: str | None, timezone: str | None, subdiv: str | None = None) -> BusinessCalendar:
    """The business calendar of a partner (defaults: mainland China, Beijing time)."""
    return _calendar(region or DEFAULT_REGION, timezone or DEFAULT_TIMEZONE, subdiv)


@lru_cache(maxsize=256)
def _calendar(region: str, timezone: str, subdiv: str | None) -> BusinessCalendar:
    return BusinessCalendar(region, timezone, subdiv)
