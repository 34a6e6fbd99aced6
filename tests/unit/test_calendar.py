"""Working days and business time zones: China's holiday weeks and adjusted weekends, DST in Berlin."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from engine.calendar import BusinessCalendar, calendar_for
from engine.clock import ManualClock, parse_duration, require_aware
from engine.errors import ValidationError

CN = calendar_for("CN", "Asia/Shanghai")
DE = calendar_for("DE", "Europe/Berlin")


def test_national_day_week_is_not_working_and_adjusted_weekends_are():
    # 2026: Oct 1-7 off; Sunday Sep 20 and Saturday Oct 10 are worked in exchange.
    for d in range(1, 8):
        assert not CN.is_working_day(date(2026, 10, d)), d
    assert CN.is_working_day(date(2026, 9, 20))  # a Sunday
    assert CN.is_working_day(date(2026, 10, 10))  # a Saturday
    assert not CN.is_working_day(date(2026, 10, 11))  # an ordinary Sunday


def test_add_working_days_across_national_day():
    # Wednesday 2026-09-30: next working days are Oct 8 (Thu), Oct 9 (Fri), Oct 10 (Sat, adjusted), Oct 12 (Mon)
    assert CN.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert CN.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)
    assert CN.add_working_days(date(2026, 9, 30), 4) == date(2026, 10, 12)
    assert CN.add_working_days(date(2026, 10, 12), -4) == date(2026, 9, 30)
    assert CN.add_working_days(date(2026, 10, 12), 0) == date(2026, 10, 12)


def test_count_working_days_half_open():
    # [Sep 28, Oct 12): Sep 28, 29, 30, Oct 8, 9, 10 -> 6
    assert CN.count_working_days(date(2026, 9, 28), date(2026, 10, 12)) == 6
    assert CN.count_working_days(date(2026, 10, 12), date(2026, 9, 28)) == -6
    assert CN.count_working_days(date(2026, 10, 1), date(2026, 10, 1)) == 0


def test_new_year_holiday_and_first_working_days_of_january_2027():
    assert not CN.is_working_day(date(2027, 1, 1))
    assert CN.nth_working_day_of_month(2027, 1, 1) == date(2027, 1, 4)
    assert CN.nth_working_day_of_month(2027, 1, 5) == date(2027, 1, 8)
    # January 2026: Jan 1 and 2 off, Sunday Jan 4 worked
    assert CN.nth_working_day_of_month(2026, 1, 1) == date(2026, 1, 4)


def test_german_holidays_are_the_partners_not_chinas():
    assert not DE.is_working_day(date(2026, 12, 25))
    assert DE.is_working_day(date(2026, 10, 1))  # China's National Day is an ordinary Thursday in Berlin
    assert not DE.is_working_day(date(2026, 10, 3))  # German Unity Day (a Saturday anyway)
    assert not DE.is_working_day(date(2026, 4, 6))  # Easter Monday


def test_end_of_day_in_berlin_across_dst_change():
    # DST ends on 2026-10-25 in Berlin: 23:59:59 local is UTC+1 after, UTC+2 before.
    before = DE.end_of_day(date(2026, 10, 24))
    after = DE.end_of_day(date(2026, 10, 25))
    assert before == datetime(2026, 10, 24, 21, 59, 59, tzinfo=UTC)
    assert after == datetime(2026, 10, 25, 22, 59, 59, tzinfo=UTC)
    assert after - before == timedelta(hours=25)
    # 90 days after an activity ending 2026-08-01 (summer time) lands on 2026-10-30 (winter time)
    end = DE.end_of_nth_day_after(datetime(2026, 8, 1, 15, 0, tzinfo=UTC), 90)
    assert end == datetime(2026, 10, 30, 22, 59, 59, tzinfo=UTC)
    assert DE.format(end) == "2026-10-30 23:59 Europe/Berlin"


def test_end_of_day_shanghai_is_utc_plus_8():
    assert CN.end_of_day(date(2026, 12, 7)) == datetime(2026, 12, 7, 15, 59, 59, tzinfo=UTC)
    assert CN.format(CN.end_of_day(date(2026, 12, 7))) == "2026-12-07 23:59 Asia/Shanghai"


def test_working_days_after_keeps_local_wall_time():
    t = datetime(2026, 9, 30, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai
    due = CN.working_days_after(t, 3)
    assert CN.local(due).date() == date(2026, 10, 10)
    assert CN.local(due).time() == time(10, 30)


def test_local_date_uses_the_partner_zone():
    t = datetime(2026, 3, 1, 17, 0, tzinfo=UTC)  # already March 2 in Shanghai, still March 1 in Berlin
    assert CN.local_date(t) == date(2026, 3, 2)
    assert DE.local_date(t) == date(2026, 3, 1)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValidationError, match="naive datetime refused"):
        CN.local_date(datetime(2026, 1, 1, 12, 0))
    with pytest.raises(ValidationError, match="naive"):
        require_aware(datetime(2026, 1, 1))
    with pytest.raises(ValidationError):
        ManualClock(datetime(2026, 1, 1))


def test_unknown_zone_and_region_are_clear_errors():
    with pytest.raises(ValidationError, match="unknown IANA time zone 'Mars/Olympus'"):
        BusinessCalendar("CN", "Mars/Olympus")
    with pytest.raises(ValidationError, match="no holiday calendar for region 'XX'"):
        BusinessCalendar("XX", "UTC")


@pytest.mark.parametrize("text,expected", [
    ("7d", timedelta(days=7)), ("36h", timedelta(hours=36)), ("1d12h", timedelta(days=1, hours=12)),
    ("90m", timedelta(minutes=90)), ("30s", timedelta(seconds=30)), ("2w", timedelta(weeks=2)),
    ("-2h", timedelta(hours=-2)), ("1.5h", timedelta(minutes=90)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "7", "d", "7x", "7d junk", "1h-2h"])
def test_parse_duration_refuses_garbage(bad):
    with pytest.raises(ValidationError, match="duration"):
        parse_duration(bad)
