"""Who gets which email: partner recipients per category, reminder opt-outs, daily digests (LIFECYCLES 10).

- Per partner, extra addresses per message category (for example ``finance``:
  account fees, bills) are kept in the partner's data under ``recipients``;
  `engine.recipients.resolve` sends every message of that category addressed
  to the partner to them too.
- A user may opt out of reminders (``users.data.reminders_opt_out``). Only
  notifications declared ``Notify(reminder=True)`` are affected; messages
  about deadlines that change money are never declared reminders and always
  go out.
- A user may receive a daily digest of their open tasks (on working days, at
  a local hour in their time zone, Beijing time by default) instead of one
  email per new task (`notifications.digest`).
"""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from engine.errors import NotFound, ValidationError
from engine.directory import partner_by_code, update_partner
from engine.models import User
from engine.schema import Field

from .models import NotificationPreference

U = User.__table__
NP = NotificationPreference.__table__

_CATEGORY = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_EMAIL = Field("email", "email")
MAX_RECIPIENTS = 20


def _clean_email(value: str) -> str:
    return _EMAIL.clean(value.strip() if isinstance(value, str) else value, "email")


def partner_recipients(conn: Connection, code: str) -> dict[str, list[str]]:
    """Extra recipients of a partner, per category."""
    partner = partner_by_code(conn, code)
    return {k: list(v) for k, v in sorted(((partner.get("data") or {}).get("recipients") or {}).items())}


def set_partner_recipients(conn: Connection, code: str, category: str, *, add=(), remove=(),
                           replace: list[str] | None = None) -> dict[str, list[str]]:
    """Add, remove or replace the extra recipients of one message category of a partner."""
    if not isinstance(category, str) or not _CATEGORY.match(category):
        raise ValidationError("category", f"{category!r} is not a category name (lowercase letters, digits, - or _; "
                                          "for example finance)")
    partner = partner_by_code(conn, code)
    data = dict(partner.get("data") or {})
    recipients = {k: list(v) for k, v in (data.get("recipients") or {}).items()}
    current = [] if replace is not None else list(recipients.get(category, []))
    for address in (replace or []) + list(add):
        clean = _clean_email(address)
        if clean.lower() not in {a.lower() for a in current}:
            current.append(clean)
    for address in remove:
        lowered = address.strip().lower()
        if lowered not in {a.lower() for a in current}:
            raise ValidationError("remove", f"{address} is not a {category} recipient of {code}")
        current = [a for a in current if a.lower() != lowered]
    if len(current) > MAX_RECIPIENTS:
        raise ValidationError("add", f"at most {MAX_RECIPIENTS} extra recipients per category ({len(current)} given)")
    if current:
        recipients[category] = current
    else:
        recipients.pop(category, None)
    data["recipients"] = recipients
    update_partner(conn, code, {"data": data})
    return partner_recipients(conn, code)


def _user(conn: Connection, login: str):
    row = conn.execute(select(U).where(U.c.login == login)).first()
    if row is None:
        raise NotFound(f"no user with login {login!r}")
    return row


def set_reminder_opt_out(conn: Connection, login: str, opt_out: bool) -> dict:
    """Turn reminder emails off (or back on) for a user; money-deadline messages are not reminders."""
    row = _user(conn, login)
    data = dict(row.data or {})
    data["reminders_opt_out"] = bool(opt_out)
    conn.execute(update(U).where(U.c.id == row.id).values(data=data))
    return preferences(conn, login)


def wants_digest(conn: Connection, login: str) -> bool:
    return bool(conn.execute(select(NP.c.digest).where(NP.c.login == login)).scalar())


def set_digest(conn: Connection, login: str, enabled: bool, now: datetime, hour: int | None = None) -> dict:
    """Turn the daily digest of open tasks on or off for a user (at `hour` local time on working days)."""
    from .digest import next_digest_slot

    row = _user(conn, login)
    if hour is not None and (not isinstance(hour, int) or not 0 <= hour <= 23):
        raise ValidationError("hour", f"{hour!r} is not an hour of the day (0-23)")
    existing = conn.execute(select(NP).where(NP.c.login == login)).first()
    hour = hour if hour is not None else (existing.digest_hour if existing else 9)
    next_at = next_digest_slot(now, hour, row.timezone) if enabled else None
    values = {"digest": bool(enabled), "digest_hour": hour, "next_digest_at": next_at, "updated_at": now}
    if existing is None:
        conn.execute(insert(NP).values(login=login, **values))
    else:
        conn.execute(update(NP).where(NP.c.login == login).values(**values))
    return preferences(conn, login)


def preferences(conn: Connection, login: str) -> dict:
    """A user's email preferences."""
    row = _user(conn, login)
    pref = conn.execute(select(NP).where(NP.c.login == login)).first()
    return {
        "login": login, "email": row.email, "locale": row.locale, "timezone": row.timezone,
        "reminders_opt_out": bool((row.data or {}).get("reminders_opt_out")),
        "digest": bool(pref.digest) if pref else False,
        "digest_hour": pref.digest_hour if pref else 9,
        "next_digest_at": pref.next_digest_at.isoformat() if pref and pref.next_digest_at else None,
        "last_digest_at": pref.last_digest_at.isoformat() if pref and pref.last_digest_at else None,
    }
