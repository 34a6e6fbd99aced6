"""Time as an injected dependency.

`SystemClock` reads the wall clock. `SimulatedClock` keeps "now" in the
database (table ``clock_state``) so the web app, every worker and the CLI see
the same simulated instant; tests, demos and operators move it with
`Runtime.advance`, which fires every timer that falls due on the way.
Naive datetimes are refused everywhere: instants are aware and stored in UTC.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from .errors import ValidationError


@runtime_checkable
class Clock(Protocol):
    """Anything that can tell the current instant (aware, UTC)."""

    simulated: bool

    def now(self) -> datetime: ...


def require_aware(value: datetime, field: str = "datetime") -> datetime:
    """Return `value` in UTC; refuse naive datetimes with a clear error."""
    if not isinstance(value, datetime):
        raise ValidationError(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(field, "naive datetime refused: give a time zone offset (for example 2026-12-01T09:00:00+08:00)")
    return value.astimezone(UTC)


class SystemClock:
    """The wall clock, in UTC."""

    simulated = False

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """An in-memory clock for pure unit tests (not shared between processes)."""

    simulated = True

    def __init__(self, start: datetime):
        self._now = require_aware(start, "start")

    def now(self) -> datetime:
        return self._now

    def set(self, value: datetime) -> None:
        self._now = require_aware(value, "now")

    def advance(self, delta: timedelta) -> None:
        self._now += delta


class SimulatedClock:
    """A clock whose current instant is stored in the database and shared by all processes.

    The first read initialises it to the wall clock (whole seconds). It only
    moves through `set`/`advance` (normally via `Runtime.advance`, which fires
    timers on the way); it may also be moved backwards for tests of time
    travel, which never un-fires anything.
    """

    simulated = True

    def __init__(self, database):
        self._db = database

    def now(self) -> datetime:
        from .models import ClockState

        t = ClockState.__table__
        with self._db.read() as conn:  # a plain read: never waits for a writer, even one in this thread
            row = conn.execute(t.select().where(t.c.id == 1)).first()
        if row is not None:
            return row.now
        with self._db.write() as conn:
            row = conn.execute(t.select().where(t.c.id == 1)).first()
            if row is not None:
                return row.now
            start = datetime.now(UTC).replace(microsecond=0)
            conn.execute(t.insert().values(id=1, now=start))
            return start

    def set(self, value: datetime, conn=None) -> None:
        from .models import ClockState

        value = require_aware(value, "now")
        t = ClockState.__table__
        if conn is None:
            self.now()  # make sure the row exists
            with self._db.write() as c:
                c.execute(t.update().where(t.c.id == 1).values(now=value))
        else:
            conn.execute(t.update().where(t.c.id == 1).values(now=value))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """Parse durations such as ``7d``, ``36h``, ``1d12h``, ``90m``, ``-2h``."""
    raw = (text or "").strip()
    sign = -1 if raw.startswith("-") else 1
    body = raw.lstrip("+-").replace(" ", "")
    if not body:
        raise ValidationError("duration", "empty duration; use for example 7d, 36h, 1d12h, 90m")
    pos, total = 0, timedelta()
    for match in _DURATION.finditer(body):
        if match.start() != pos:
            break
        total += timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
        pos = match.end()
    if pos != len(body):
        raise ValidationError("duration", f"cannot read {text!r}; use for example 7d, 36h, 1d12h, 90m, 30s")
    return sign * total
