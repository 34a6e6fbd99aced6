"""Deadline arithmetic checked against a simple oracle, over dates, four time zones and both DST changes.

The oracle enumerates calendar days one by one and builds local wall times
with `zoneinfo` directly; the engine's `BusinessCalendar` and `Timer.due`
must agree with it for every rule the lifecycles use: fixed durations
(7 days, 24 hours), the end of the n-th day after (15, 30, 45, 90 days,
one year), the same wall time n working days later (5, 10) and the end of
the n-th working day after (5, 10). Zones: Asia/Shanghai (no DST),
Europe/Berlin, America/Los_Angeles, Australia/Lord_Howe (a 30-minute DST
shift, in the southern summer). A last property moves the simulated clock
by hours forwards and backwards and checks that nothing fires twice, nothing
un-fires and everything due by the furthest instant reached has fired.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine.actors import SYSTEM_ACTOR
from engine.calendar import calendar_for
from engine.clock import SimulatedClock
from engine.definition import Ctx, Timer
from engine.models import History, Timer as TimerRow
from engine.runtime import Runtime

from .harness import seed_deadlines
from .lifecycles import DEADLINE, registry

ZONES = {
    "Asia/Shanghai": ("CN", None),
    "Europe/Berlin": ("DE", None),
    "America/Los_Angeles": ("US", "CA"),
    "Australia/Lord_Howe": ("AU", "NSW"),
}
#: Local dates on which the clocks change in 2026 (spring forward, fall back) per zone.
DST_DAYS = {
    "Europe/Berlin": (date(2026, 3, 29), date(2026, 10, 25)),
    "America/Los_Angeles": (date(2026, 3, 8), date(2026, 11, 1)),
    "Australia/Lord_Howe": (date(2026, 10, 4), date(2026, 4, 5)),
}
FIXED = (timedelta(days=7), timedelta(hours=24))
DAYS_AFTER = (15, 30, 45, 90, 365)
WORKING = (5, 10)

zones = st.sampled_from(sorted(ZONES))
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                        timezones=st.just(UTC))
COMMON = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cal(zone: str):
    region, subdiv = ZONES[zone]
    return calendar_for(region, zone, subdiv)


# ------------------------------------------------------------------ oracle
_HOLIDAYS: dict = {}


def o_working(zone: str, day: date) -> bool:
    region, subdiv = ZONES[zone]
    key = (region, subdiv)
    if key not in _HOLIDAYS:
        _HOLIDAYS[key] = holidays.country_holidays(region, subdiv=subdiv, years=range(2024, 2031))
    return _HOLIDAYS[key].is_working_day(day)


def o_add_working(zone: str, day: date, n: int) -> date:
    days = [day + timedelta(days=k) for k in range(1, 40 * n + 60)]
    return [d for d in days if o_working(zone, d)][n - 1]


def o_wall(zone: str, day: date, wall: time) -> datetime:
    """The earliest instant showing `wall` on `day` in `zone`; in a DST gap, the wall time pushed forward."""
    tz = ZoneInfo(zone)
    real = []
    for fold in (0, 1):
        candidate = datetime.combine(day, wall, tzinfo=tz).replace(fold=fold).astimezone(UTC)
        back = candidate.astimezone(tz)
        if (back.date(), back.time().replace(tzinfo=None)) == (day, wall):
            real.append(candidate)
    if real:
        return min(real)
    return datetime.combine(day, wall, tzinfo=tz).replace(fold=0).astimezone(UTC)


def o_end_of_day(zone: str, day: date) -> datetime:
    return o_wall(zone, day, time(23, 59, 59))


def ctx_at(zone: str, now: datetime) -> Ctx:
    return Ctx(workflow=DEADLINE, instance_id=1, state="waiting", data={}, payload={}, actor=SYSTEM_ACTOR,
               now=now, calendar=cal(zone), partner=None)


# ------------------------------------------------------------------ days
@COMMON
@given(zone=zones, day=st.dates(date(2025, 1, 1), date(2028, 6, 30)), n=st.sampled_from(WORKING + (1, 2, 3)))
def test_add_working_days_matches_the_oracle(zone, day, n):
    c = cal(zone)
    got = c.add_working_days(day, n)
    assert got == o_add_working(zone, day, n)
    assert c.is_working_day(got) and got > day
    assert c.count_working_days(day + timedelta(days=1), got + timedelta(days=1)) == n
    assert c.add_working_days(got, -n) <= day  # going back n working days never passes the start


@COMMON
@given(zone=zones, start=st.dates(date(2025, 1, 1), date(2028, 6, 30)), length=st.integers(-60, 60))
def test_count_working_days_matches_the_oracle(zone, start, length):
    end = start + timedelta(days=length)
    lo, hi = min(start, end), max(start, end)
    expected = sum(o_working(zone, lo + timedelta(days=k)) for k in range((hi - lo).days))
    assert cal(zone).count_working_days(start, end) == (expected if end >= start else -expected)


# ------------------------------------------------------------------ instants
@COMMON
@given(zone=zones, now=instants, n=st.sampled_from(DAYS_AFTER))
@example(zone="Europe/Berlin", now=datetime(2026, 3, 28, 22, 30, tzinfo=UTC), n=15)
@example(zone="America/Los_Angeles", now=datetime(2026, 10, 17, 7, 59, 59, tzinfo=UTC), n=15)
@example(zone="Australia/Lord_Howe", now=datetime(2026, 9, 3, 13, 0, tzinfo=UTC), n=30)
def test_end_of_nth_day_after_matches_the_oracle(zone, now, n):
    c = cal(zone)
    got = c.end_of_nth_day_after(now, n)
    target = now.astimezone(ZoneInfo(zone)).date() + timedelta(days=n)
    assert got == o_end_of_day(zone, target)
    local = got.astimezone(ZoneInfo(zone))
    assert (local.date(), local.time()) == (target, time(23, 59, 59))
    assert (got + timedelta(seconds=1)).astimezone(ZoneInfo(zone)).date() == target + timedelta(days=1)
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


@COMMON
@given(zone=zones, now=instants, n=st.sampled_from(WORKING))
@example(zone="Europe/Berlin", now=datetime(2026, 3, 20, 1, 30, tzinfo=UTC), n=5)  # 02:30 Berlin -> a gap day?
@example(zone="America/Los_Angeles", now=datetime(2026, 10, 23, 8, 30, tzinfo=UTC), n=5)  # 01:30, the repeated hour
@example(zone="Australia/Lord_Howe", now=datetime(2026, 9, 27, 15, 45, tzinfo=UTC), n=5)
def test_working_days_after_keeps_the_wall_time(zone, now, n):
    c = cal(zone)
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    day = o_add_working(zone, local.date(), n)
    wall = local.time().replace(tzinfo=None)
    got = c.working_days_after(now, n)
    assert got == o_wall(zone, day, wall)
    shown = got.astimezone(tz)
    assert shown.date() == day
    assert timedelta(0) <= datetime.combine(day, shown.time()) - datetime.combine(day, wall) <= timedelta(hours=1)
    # the Timer kind the lifecycles use for "n working days" is the same rule
    assert Timer("waiting", "expire", working_days=n).due(ctx_at(zone, now)) == got


@COMMON
@given(zone=zones, now=instants, n=st.sampled_from(WORKING))
def test_end_of_nth_working_day_after_matches_the_oracle(zone, now, n):
    got = cal(zone).end_of_nth_working_day_after(now, n)
    day = o_add_working(zone, now.astimezone(ZoneInfo(zone)).date(), n)
    assert got == o_end_of_day(zone, day)


@COMMON
@given(zone=zones, now=instants, after=st.sampled_from(FIXED))
@example(zone="Europe/Berlin", now=datetime(2026, 3, 25, 10, 0, tzinfo=UTC), after=timedelta(days=7))
@example(zone="Australia/Lord_Howe", now=datetime(2026, 4, 4, 14, 0, tzinfo=UTC), after=timedelta(hours=24))
def test_fixed_durations_are_elapsed_time_across_dst(zone, now, after):
    """7 days and 24 hours are elapsed time: across a DST change the local wall time moves, the duration does not."""
    due = Timer("waiting", "expire", after=after).due(ctx_at(zone, now))
    assert due - now == after
    assert due.utcoffset() == timedelta(0)


def test_every_hour_across_both_dst_changes():
    """Hour by hour through the days around each change: end-of-day and working-day rules stay on their day."""
    for zone, days in DST_DAYS.items():
        c, tz = cal(zone), ZoneInfo(zone)
        for change in days:
            start = datetime.combine(change - timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
            for h in range(72):
                now = start + timedelta(hours=h)
                local_day = now.astimezone(tz).date()
                assert c.end_of_nth_day_after(now, 0) == o_end_of_day(zone, local_day)
                eod = c.end_of_day(local_day).astimezone(tz)
                assert (eod.date(), eod.time()) == (local_day, time(23, 59, 59))
                assert c.end_of_nth_working_day_after(now, 5) == o_end_of_day(zone, o_add_working(zone, local_day, 5))
                assert c.working_days_after(now, 10) == o_wall(zone, o_add_working(zone, local_day, 10),
                                                               now.astimezone(tz).time().replace(tzinfo=None))


# ------------------------------------------------------------------ simulated clock moves
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(st.integers(-72, 72).filter(lambda h: h != 0), min_size=3, max_size=10))
def test_clock_moved_by_hours_both_ways_fires_each_timer_once(db, moves):
    I = TimerRow.__table__
    H = History.__table__
    clock = SimulatedClock(db)
    base = datetime(2026, 3, 27, 0, 0, tzinfo=UTC)  # the Berlin DST change falls inside the moves
    clock.set(base)
    rt = Runtime(db, clock, registry())
    with db.write() as conn:  # a fresh set of timers for this example
        conn.execute(I.update().where(I.c.status == "pending").values(status="cancelled"))
    ids = seed_deadlines(db, 24, base, timedelta(hours=60))
    with db.read() as conn:
        mine = [r.id for r in conn.execute(select(I.c.id).where(I.c.instance_id.in_(ids)))]
    furthest = base - timedelta(microseconds=1)  # only a forward move sweeps; nothing has run at `base` yet
    fired_before: set[int] = set()
    for hours in moves:
        target = rt.now() + timedelta(hours=hours)
        moved_forward = target > rt.now()
        rt.advance_to(target)
        assert rt.now() == target
        if moved_forward:
            furthest = max(furthest, target)
        with db.read() as conn:
            per_timer = dict(conn.execute(select(H.c.timer_id, func.count()).where(H.c.timer_id.in_(mine))
                                          .group_by(H.c.timer_id)).all())
            rows = {r.id: (r.status, r.due_at) for r in conn.execute(select(I).where(I.c.id.in_(mine)))}
        assert all(c == 1 for c in per_timer.values()), "a timer fired twice"
        fired = set(per_timer)
        assert fired_before <= fired, "moving the clock back un-fired a timer"
        fired_before = fired
        for tid, (status, due) in rows.items():
            assert (status == "fired") == (due <= furthest), (tid, status, due, furthest)
            assert (tid in fired) == (status == "fired")
