"""Program windows: programs that accept applications only until (or from) a fixed date (LIFECYCLES section 9).

A window is a row of ``program_windows`` (code, title, opens_on, closes_on);
both dates are inclusive and read in the partner's time zone, so the
competency incentive, closed on 2024-12-31, still accepts an application at
23:59 on December 31 in Beijing and refuses one at 00:00 on January 1
(FAQ 4.6.3). Windows known from the FAQ are built in (`BUILTIN`); a row with
the same code overrides one. A program with neither has no window and is
always open.

`window_open(program)` builds a guard for any lifecycle:
``Transition(..., guards=(window_open("competency_incentive"),))`` or, when
the case names its program, ``window_open(lambda ctx: ctx.get("program"))``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from sqlalchemy import Connection, insert, select, update

from .errors import ValidationError
from .models_incentives import ProgramWindow

PW = ProgramWindow.__table__

#: Program windows fixed by the FAQ; a row in ``program_windows`` with the same code replaces one.
BUILTIN: dict[str, dict] = {
    "competency_incentive": {"code": "competency_incentive", "title": "competency incentive", "opens_on": None,
                             "closes_on": date(2024, 12, 31), "note": "FAQ 4.6.3: closed on December 31, 2024"},
}


def set_window(conn: Connection, code: str, title: str, opens_on: date | None = None, closes_on: date | None = None,
               note: str | None = None) -> dict:
    """Create or change a program window."""
    code = (code or "").strip()
    if not code or len(code) > 64:
        raise ValidationError("code", "is required, at most 64 characters")
    if not (title or "").strip():
        raise ValidationError("title", "is required")
    if opens_on and closes_on and closes_on < opens_on:
        raise ValidationError("closes_on", f"{closes_on} is before the opening date {opens_on}")
    values = {"title": title.strip(), "opens_on": opens_on, "closes_on": closes_on, "note": note}
    if conn.execute(select(PW.c.code).where(PW.c.code == code)).first():
        conn.execute(update(PW).where(PW.c.code == code).values(**values))
    else:
        conn.execute(insert(PW).values(code=code, **values))
    return get_window(conn, code)  # type: ignore[return-value]


def get_window(conn: Connection, code: str) -> dict | None:
    """The window of a program: its row, else the built-in one, else None (always open)."""
    row = conn.execute(select(PW).where(PW.c.code == code)).first()
    if row is not None:
        return dict(row._mapping)
    return dict(BUILTIN[code]) if code in BUILTIN else None


def list_windows(conn: Connection) -> list[dict]:
    rows = {r.code: dict(r._mapping) for r in conn.execute(select(PW))}
    merged = {**{k: dict(v) for k, v in BUILTIN.items()}, **rows}
    return [merged[k] for k in sorted(merged)]


def window_refusal(conn: Connection, code: str, day: date) -> str | None:
    """Why `code` does not accept an application on local date `day`, or None when it does."""
    row = get_window(conn, code)
    if row is None:
        return None
    if row["closes_on"] is not None and day > row["closes_on"]:
        return f"the {row['title']} program closed on {row['closes_on'].isoformat()}"
    if row["opens_on"] is not None and day < row["opens_on"]:
        return f"the {row['title']} program opens on {row['opens_on'].isoformat()}"
    return None


def window_open(program: str | Callable) -> Callable:
    """A guard refusing the event when the program's window is closed on the partner's local date of now."""
    def guard(ctx) -> str | None:
        code = program(ctx) if callable(program) else program
        if not code:
            return None
        return window_refusal(ctx.conn, code, ctx.calendar.local_date(ctx.now))

    guard.__name__ = f"window_open_{program if isinstance(program, str) else 'of_case'}"
    return guard


def is_open(conn: Connection, code: str, instant: datetime, calendar) -> bool:
    return window_refusal(conn, code, calendar.local_date(instant)) is None
