"""Who receives a notification: recipient specs resolved against partners, users and case data.

Per partner, extra addresses per message category (LIFECYCLES section 10) are
kept in the partner's data under ``recipients`` (for example
``{"finance": ["ap@example.com"]}``) and receive every message of that
category sent to the partner. A user may opt out of reminders
(``data.reminders_opt_out``); messages about deadlines that change money are
not reminders and always go out.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, String, cast, select

from .models import User
from .roles import PARTNER_ROLES

U = User.__table__


@dataclass(frozen=True)
class Recipient:
    email: str
    login: str | None = None
    locale: str = "en"
    timezone: str | None = None


def _from_user(row) -> Recipient | None:
    if row is None or not row.email or not row.active:
        return None
    return Recipient(row.email, row.login, row.locale or "en", row.timezone)


def _opted_out(row) -> bool:
    return bool(row is not None and (row.data or {}).get("reminders_opt_out"))


def resolve(conn: Connection, specs, *, partner: dict | None, data: dict, actor, category: str = "general",
            reminder: bool = False) -> list[Recipient]:
    """Resolve recipient specs to unique addresses (see `engine.definition.Notify`)."""
    out: dict[str, Recipient] = {}
    skip_logins: set[str] = set()
    tz = partner.get("timezone") if partner else None

    def add_user_row(row):
        if row is None:
            return
        if reminder and _opted_out(row):
            skip_logins.add(row.login)
            return
        r = _from_user(row)
        if r is not None:
            out.setdefault(r.email.lower(), Recipient(r.email, r.login, r.locale, r.timezone or tz))

    def add_address(address: str, locale: str = "en"):
        if address and "@" in address:
            out.setdefault(address.lower(), Recipient(address, None, locale, tz))

    def user_by_login(login: str):
        return conn.execute(select(U).where(U.c.login == login)).first()

    for spec in specs:
        kind, _, arg = spec.partition(":")
        if kind == "actor":
            if actor is not None and not actor.is_system:
                add_user_row(user_by_login(actor.login))
        elif kind == "partner_admin":
            if partner and partner.get("admin_login"):
                add_user_row(user_by_login(partner["admin_login"]))
        elif kind == "partner":
            if partner:
                if partner.get("admin_login"):
                    add_user_row(user_by_login(partner["admin_login"]))
                add_address(partner.get("contact_email") or "")
                for extra in ((partner.get("data") or {}).get("recipients") or {}).get(category, []):
                    add_address(extra)
        elif kind == "role":
            # roles are a JSON list: narrow in the database by its text, decide exactly below
            query = select(U).where(U.c.active.is_(True), cast(U.c.roles, String).like(f'%"{arg}"%'))
            if arg in PARTNER_ROLES:
                if not partner:
                    continue
                query = query.where(U.c.partner_id == partner["id"])
            for row in conn.execute(query.order_by(U.c.login)):
                if arg in (row.roles or []):
                    add_user_row(row)
        elif kind == "data":
            value = data.get(arg)
            values = value if isinstance(value, list) else [value]
            for v in values:
                if not isinstance(v, str):
                    continue
                if "@" in v:
                    row = conn.execute(select(U).where(U.c.email == v)).first()
                    if row is not None:
                        add_user_row(row)
                    elif v.lower() not in out:
                        add_address(v)
                else:
                    add_user_row(user_by_login(v))
        elif kind == "user":
            add_user_row(user_by_login(arg))
        else:
            raise ValueError(f"unknown recipient spec {spec!r}")
    return list(out.values())
