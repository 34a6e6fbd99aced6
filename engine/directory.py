"""Reference data the lifecycles check against: partners and users.

Rules check real records, never flags passed in by the caller. Each function
validates its input and writes in one transaction.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from werkzeug.security import generate_password_hash

from .calendar import BusinessCalendar
from .errors import Conflict, NotFound, ValidationError
from .models import Partner, User
from .roles import ALL_ROLES, PARTNER_ROLES
from .schema import Field, Schema

P = Partner.__table__
U = User.__table__

PROGRAMS = ("Cloud Solution Provider", "Distribution", "Service", "Technology", "Consulting")
TIERS = ("Standard", "Advanced", "Premier", "Core")

PARTNER_SCHEMA = Schema(
    Field("code", "str", max_length=64, pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
          pattern_hint="letters, digits, '.', '_' or '-', starting with a letter or digit"),
    Field("name", "str", max_length=200),
    Field("program", "choice", choices=PROGRAMS, required=False, default="Cloud Solution Provider"),
    Field("tier", "choice", choices=TIERS, required=False, default="Standard"),
    Field("region", "str", required=False, default="CN", max_length=8),
    Field("timezone", "str", required=False, default="Asia/Shanghai", max_length=64),
    Field("admin_login", "str", required=False, max_length=128),
    Field("contact_email", "email", required=False),
    Field("data", "json", required=False, default=None),
)

USER_SCHEMA = Schema(
    Field("login", "str", max_length=128, pattern=r"[A-Za-z0-9][A-Za-z0-9_.@+-]*",
          pattern_hint="letters, digits and . _ @ + -"),
    Field("name", "str", max_length=200),
    Field("email", "email", required=False),
    Field("locale", "choice", choices=("en", "zh"), required=False, default="en"),
    Field("timezone", "str", required=False, max_length=64),
    Field("roles", "list", items=Field("role", "choice", choices=tuple(sorted(ALL_ROLES))), required=False, default=None),
    Field("partner", "str", required=False, max_length=64),
    Field("personal_info_complete", "bool", required=False, default=False),
    Field("password", "str", required=False, min_length=8, max_length=200),
    Field("data", "json", required=False, default=None),
)


def add_partner(conn: Connection, values: dict, now: datetime) -> dict:
    """Create a partner; refuses a duplicate code or an unknown region or time zone."""
    clean = PARTNER_SCHEMA.clean(values)
    BusinessCalendar(clean.get("region", "CN"), clean.get("timezone", "Asia/Shanghai"))
    if conn.execute(select(P.c.id).where(P.c.code == clean["code"])).first():
        raise Conflict(f"a partner with code {clean['code']!r} already exists")
    if clean.get("data") is not None and not isinstance(clean["data"], dict):
        raise ValidationError("data", "must be a JSON object")
    clean["data"] = clean.get("data") or {}
    pid = conn.execute(insert(P).values(**clean, created_at=now).returning(P.c.id)).scalar_one()
    return partner_by_id(conn, pid)


def partner_by_code(conn: Connection, code: str) -> dict:
    row = conn.execute(select(P).where(P.c.code == code)).first()
    if row is None:
        raise NotFound(f"no partner with code {code!r}")
    return dict(row._mapping)


def partner_by_id(conn: Connection, pid: int) -> dict:
    row = conn.execute(select(P).where(P.c.id == pid)).first()
    if row is None:
        raise NotFound(f"no partner with id {pid}")
    return dict(row._mapping)


def update_partner(conn: Connection, code: str, changes: dict) -> dict:
    partner = partner_by_code(conn, code)
    allowed = {"name", "program", "tier", "timezone", "admin_login", "contact_email", "data"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationError(unknown[0], f"cannot be changed here (changeable: {', '.join(sorted(allowed))})")
    merged = {k: partner[k] for k in ("code", "name", "program", "tier", "region", "timezone", "admin_login",
                                      "contact_email", "data")}
    merged.update(changes)
    clean = PARTNER_SCHEMA.clean({k: v for k, v in merged.items() if v is not None})
    BusinessCalendar(clean.get("region", "CN"), clean.get("timezone", "Asia/Shanghai"))
    conn.execute(update(P).where(P.c.id == partner["id"]).values(**{k: clean.get(k) for k in changes}))
    return partner_by_code(conn, code)


def add_user(conn: Connection, values: dict, now: datetime) -> dict:
    """Create a user; partner roles need a partner, and a partner's users can hold only partner roles."""
    clean = USER_SCHEMA.clean(values)
    roles = sorted(set(clean.get("roles") or []))
    partner_id = None
    if clean.get("partner"):
        partner_id = partner_by_code(conn, clean["partner"])["id"]
        other = [r for r in roles if r in ALL_ROLES - PARTNER_ROLES - {"account", "customer"}]
        if other:
            raise ValidationError("roles", f"a partner's user cannot hold operator roles ({', '.join(other)})")
    elif any(r in PARTNER_ROLES for r in roles):
        raise ValidationError("partner", "partner roles need the partner's code")
    if clean.get("timezone"):
        BusinessCalendar("CN", clean["timezone"])
    if conn.execute(select(U.c.id).where(U.c.login == clean["login"])).first():
        raise Conflict(f"a user with login {clean['login']!r} already exists")
    password = clean.pop("password", None)
    clean.pop("partner", None)
    clean.pop("roles", None)
    clean["data"] = clean.get("data") or {}
    if not isinstance(clean["data"], dict):
        raise ValidationError("data", "must be a JSON object")
    uid = conn.execute(insert(U).values(
        **clean, roles=roles, partner_id=partner_id,
        password_hash=generate_password_hash(password) if password else None, created_at=now,
    ).returning(U.c.id)).scalar_one()
    return user_by_id(conn, uid)


def user_by_login(conn: Connection, login: str) -> dict | None:
    row = conn.execute(select(U).where(U.c.login == login)).first()
    return dict(row._mapping) if row is not None else None


def user_by_id(conn: Connection, uid: int) -> dict:
    row = conn.execute(select(U).where(U.c.id == uid)).first()
    if row is None:
        raise NotFound(f"no user with id {uid}")
    return dict(row._mapping)


def public_user(user: dict) -> dict:
    """A user record without its password hash."""
    return {k: v for k, v in user.items() if k != "password_hash"}
