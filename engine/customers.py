"""Customers: the reference data the customer lifecycles check (LIFECYCLES section 4; FAQ 5.3, 5.1.9, 6).

The customer's identity is its **normalised email address**: surrounding
white space removed and the whole address lower-cased (``" Ann@Example.COM "``
becomes ``"ann@example.com"``). Nothing else is rewritten: dots and ``+tags``
in the local part stay, because they can name different mailboxes, and a
different address is a new customer identity that no lock covers (FAQ 5.3.6).
The same normal form keys the pre-registration subject lock
(``customer-email:<address>``).

The current partner and the model (referral or reseller) change only through
the association lifecycle (`associate`, `change_model`, `disassociate` here,
called by `workflows.customer_association`); `update_customer` refuses them.
Every function validates first and writes in the caller's transaction.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, delete, insert, select, update

from .calendar import BusinessCalendar
from .errors import Conflict, NotFound, ValidationError
from .models import Partner, User
from .models_customers import Customer, ReservedInstance
from .schema import EMAIL_RE, Field, Schema

C = Customer.__table__
RI = ReservedInstance.__table__
P = Partner.__table__
U = User.__table__

MODELS = ("referral", "reseller")
LOCK_PREFIX = "customer-email:"

CUSTOMER_SCHEMA = Schema(
    Field("email", "email"),
    Field("name", "str", max_length=200),
    Field("country", "str", pattern=r"[A-Za-z]{2}", pattern_hint="an ISO 3166 two-letter country code, such as CN"),
    Field("login", "str", required=False, max_length=128),
    Field("in_arrears", "bool", required=False, default=False),
    Field("special_contract", "bool", required=False, default=False),
    Field("internal", "bool", required=False, default=False),
    Field("balance", "money", required=False, default="0.00"),
    Field("topup_rewards", "money", required=False, default="0.00"),
    Field("outstanding_invoices", "money", required=False, default="0.00"),
    Field("data", "json", required=False, default=None),
)
#: Attributes `update_customer` may change (never the partner or the model).
CHANGEABLE = ("name", "country", "login", "in_arrears", "special_contract", "internal", "balance", "topup_rewards",
              "outstanding_invoices", "data")
MONEY = ("balance", "topup_rewards", "outstanding_invoices")


def normalise_email(raw: object, field: str = "email") -> str:
    """The customer's identity: trimmed and lower-cased; refuses what is not an email address."""
    if not isinstance(raw, str):
        raise ValidationError(field, "must be an email address (text)")
    email = raw.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise ValidationError(field, f"{raw!r} is not a valid email address")
    return email


def lock_key(email: str) -> str:
    """The subject-lock key of a customer email (normalised here)."""
    return LOCK_PREFIX + normalise_email(email)


def _clean(values: dict) -> dict:
    clean = CUSTOMER_SCHEMA.clean(values)
    clean["email"] = normalise_email(clean["email"])
    clean["country"] = clean["country"].upper()
    for key in MONEY:
        clean[key] = Decimal(clean[key])
    if clean.get("data") is not None and not isinstance(clean["data"], dict):
        raise ValidationError("data", "must be a JSON object")
    clean["data"] = clean.get("data") or {}
    return clean


def _check_login(conn: Connection, login: str | None) -> None:
    if login and conn.execute(select(U.c.id).where(U.c.login == login)).first() is None:
        raise ValidationError("login", f"no user with login {login!r}; add the customer's user first "
                              "(partnerflow users add --role customer)")


def add_customer(conn: Connection, values: dict, now: datetime) -> dict:
    """Create a customer account; refuses a duplicate email or login, and a login that names no user."""
    clean = _clean(values)
    _check_login(conn, clean.get("login"))
    if conn.execute(select(C.c.id).where(C.c.email == clean["email"])).first():
        raise Conflict(f"a customer with email {clean['email']!r} already exists")
    if clean.get("login") and conn.execute(select(C.c.id).where(C.c.login == clean["login"])).first():
        raise Conflict(f"login {clean['login']!r} already belongs to another customer")
    cid = conn.execute(insert(C).values(**clean, created_at=now, updated_at=now).returning(C.c.id)).scalar_one()
    return get_customer(conn, cid)


def find_customer(conn: Connection, ref: str | int) -> dict | None:
    """A customer by id or by email (normalised), or None."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        row = conn.execute(select(C).where(C.c.id == int(ref))).first()
    else:
        row = conn.execute(select(C).where(C.c.email == normalise_email(ref, "customer"))).first()
    return _view(conn, row) if row is not None else None


def get_customer(conn: Connection, ref: str | int) -> dict:
    """A customer by id or email, or `NotFound` naming it."""
    found = find_customer(conn, ref)
    if found is None:
        raise NotFound(f"no customer account with {'id' if str(ref).strip().isdigit() else 'email'} "
                       f"{str(ref).strip().lower()!r}")
    return found


def _view(conn: Connection, row) -> dict:
    out = dict(row._mapping)
    out["partner"] = None
    if row.partner_id is not None:
        out["partner"] = conn.execute(select(P.c.code).where(P.c.id == row.partner_id)).scalar_one_or_none()
    out["reserved_instances"] = [
        {"id": r.id, "name": r.name, "expires_at": r.expires_at}
        for r in conn.execute(select(RI).where(RI.c.customer_id == row.id).order_by(RI.c.expires_at, RI.c.id))
    ]
    return out


def update_customer(conn: Connection, ref: str | int, changes: dict, now: datetime) -> dict:
    """Change account attributes; the partner and the model change only through the association lifecycle."""
    customer = get_customer(conn, ref)
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        hint = (" (the partner and the model change only through the customer_association lifecycle; "
                "a model change needs an operator, FAQ 5.1.9)") if set(unknown) & {"partner", "partner_id", "model"} else ""
        raise ValidationError(unknown[0], f"cannot be changed here (changeable: {', '.join(CHANGEABLE)}){hint}")
    merged = {k: customer[k] for k in CUSTOMER_SCHEMA_FIELDS}
    merged.update(changes)
    for key in MONEY:
        if isinstance(merged[key], Decimal):
            merged[key] = str(merged[key])
    clean = _clean({k: v for k, v in merged.items() if v is not None})
    if changes.get("login"):
        _check_login(conn, clean["login"])
    if changes.get("login") and conn.execute(select(C.c.id).where(C.c.login == clean["login"],
                                                                  C.c.id != customer["id"])).first():
        raise Conflict(f"login {clean['login']!r} already belongs to another customer")
    conn.execute(update(C).where(C.c.id == customer["id"]).values(
        **{k: clean.get(k) for k in changes}, updated_at=now))
    return get_customer(conn, customer["id"])


CUSTOMER_SCHEMA_FIELDS = tuple(f.name for f in CUSTOMER_SCHEMA.fields)


def add_reserved_instance(conn: Connection, ref: str | int, name: str, expires_at: datetime, now: datetime) -> dict:
    """Record a reserved instance of the customer, expiring at `expires_at` (aware)."""
    customer = get_customer(conn, ref)
    clean = Schema(Field("name", "str", max_length=128), Field("expires_at", "datetime")).clean(
        {"name": name, "expires_at": expires_at})
    conn.execute(insert(RI).values(customer_id=customer["id"], name=clean["name"],
                                   expires_at=datetime.fromisoformat(clean["expires_at"]), created_at=now))
    return get_customer(conn, customer["id"])


def remove_reserved_instance(conn: Connection, ref: str | int, name: str) -> dict:
    customer = get_customer(conn, ref)
    if conn.execute(delete(RI).where(RI.c.customer_id == customer["id"], RI.c.name == name)).rowcount == 0:
        raise NotFound(f"customer {customer['email']} has no reserved instance named {name!r}")
    return get_customer(conn, customer["id"])


def unexpired_reserved_instances(customer: dict, now: datetime) -> list[dict]:
    return [r for r in customer["reserved_instances"] if r["expires_at"] > now]


def association_refusal(customer: dict, now: datetime, calendar: BusinessCalendar, partner_id: int | None = None) -> str | None:
    """Why the account cannot be associated with a partner now (FAQ 5.3.1), or None.

    Checked in this order: already has a partner (only one partner each);
    in arrears; special contract with the vendor; internal account; unexpired
    reserved instances (named, with the latest expiry in the reader's zone).
    """
    email = customer["email"]
    if customer["partner_id"] is not None:
        if partner_id is not None and customer["partner_id"] == partner_id:
            return f"customer {email} is already associated with your partner ({customer['model']} model)"
        return (f"customer {email} already has a partner; a customer can be associated with only one partner "
                "(FAQ 5.3.1)")
    if customer["in_arrears"]:
        return f"customer {email} cannot be associated: the account is in arrears (FAQ 5.3.1)"
    if customer["special_contract"]:
        return f"customer {email} cannot be associated: the account has a special contract with the vendor (FAQ 5.3.1)"
    if customer["internal"]:
        return f"customer {email} cannot be associated: it is an internal account (FAQ 5.3.1)"
    ris = unexpired_reserved_instances(customer, now)
    if ris:
        last = max(r["expires_at"] for r in ris)
        names = ", ".join(r["name"] for r in ris)
        return (f"customer {email} cannot be associated: {len(ris)} unexpired reserved instance(s) ({names}); "
                f"the last expires {calendar.format(last)} (FAQ 5.3.1)")
    return None


def associate(conn: Connection, customer_id: int, partner_id: int, model: str, now: datetime) -> None:
    """Set the customer's one partner and model; a concurrent association by anyone else makes this a `Conflict`."""
    if model not in MODELS:
        raise ValidationError("model", f"{model!r} is not one of: {', '.join(MODELS)}")
    done = conn.execute(update(C).where(C.c.id == customer_id, C.c.partner_id.is_(None)).values(
        partner_id=partner_id, model=model, associated_at=now, updated_at=now)).rowcount
    if done != 1:
        raise Conflict("the customer was associated with a partner in the meantime; a customer can have only one "
                       "partner (FAQ 5.3.1)")


def change_model(conn: Connection, customer_id: int, partner_id: int, model: str, now: datetime) -> None:
    """An operator's model change for an associated customer (FAQ 5.1.9, 5.3.2)."""
    if model not in MODELS:
        raise ValidationError("model", f"{model!r} is not one of: {', '.join(MODELS)}")
    done = conn.execute(update(C).where(C.c.id == customer_id, C.c.partner_id == partner_id).values(
        model=model, updated_at=now)).rowcount
    if done != 1:
        raise Conflict("the customer is no longer associated with this partner")


def disassociate(conn: Connection, customer_id: int, partner_id: int, now: datetime) -> None:
    """End the customer's association with `partner_id` (the customer may then join another partner)."""
    done = conn.execute(update(C).where(C.c.id == customer_id, C.c.partner_id == partner_id).values(
        partner_id=None, model=None, associated_at=None, updated_at=now)).rowcount
    if done != 1:
        raise Conflict("the customer is no longer associated with this partner")


def set_balance(conn: Connection, customer_id: int, balance: Decimal, now: datetime) -> None:
    conn.execute(update(C).where(C.c.id == customer_id).values(balance=balance, updated_at=now))


def public(customer: dict) -> dict:
    """A JSON-ready view (money as text, instants ISO)."""
    out = {}
    for k, v in customer.items():
        if isinstance(v, Decimal):
            out[k] = str(v)
        elif isinstance(v, datetime):
            out[k] = v.isoformat()
        else:
            out[k] = v
    out["reserved_instances"] = [{**r, "expires_at": r["expires_at"].isoformat()}
                                 for r in customer.get("reserved_instances", [])]
    return out
