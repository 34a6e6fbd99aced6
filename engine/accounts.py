"""Accounts service: person accounts, member-partner associations, procurement suppliers, registered countries.

The rules of LIFECYCLES sections 1 to 3 read these records:
- an invitee is named by login ID and must exist (FAQ 3.3.2); their kind
  (person, enterprise-authenticated, partner account) and their association
  history with dates decide eligibility (FAQ 3.3.1);
- accepting an invitation associates the member with the partner; their
  certificates then count for the partner (FAQ 3.3.4); the partner admin may
  end the association (FAQ 3.3.8);
- the partner account's registered country is compared with the legal
  entity's (FAQ 2.1.1) and is changed only through a service ticket with a
  reason (FAQ 2.1.10);
- a partner listed as a procurement supplier waits for procurement during
  payment-information review (FAQ 2.1.9).

Each function validates its input and writes inside the caller's transaction,
so a refusal saves nothing. Login IDs and email addresses compare
case-insensitively. The `ACCOUNTS_CLI`, `MEMBERS_CLI` and `SUPPLIERS_CLI`
click groups are added to ``partnerflow`` by the lifecycle modules.
"""
from __future__ import annotations

from datetime import UTC, datetime

import click
import pycountry
from sqlalchemy import Connection, func, insert, or_, select, update

from .cliutil import echo_json, handle_errors, open_runtime
from .errors import Conflict, Forbidden, NotFound, ValidationError, whole_number
from .models import Partner, User
from .models_accounts import Account, AccountAssociation, CountryChange, ProcurementSupplier
from .roles import ACCOUNT, ADMIN, OPERATOR_ROLES, PARTNER_ADMIN, PARTNER_MEMBER
from .schema import Field, Schema

A = Account.__table__
AS = AccountAssociation.__table__
PS = ProcurementSupplier.__table__
CC = CountryChange.__table__
P = Partner.__table__
U = User.__table__

KINDS = ("person", "enterprise", "partner")
KIND_TEXT = {"person": "a person account", "enterprise": "authenticated as an enterprise",
             "partner": "a partner account"}


def country_code(value: str, field: str = "country") -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased; refuses unknown codes."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "is required: an ISO 3166-1 alpha-2 country code such as CN or DE")
    code = value.strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise ValidationError(field, f"{value!r} is not an ISO 3166-1 alpha-2 country code (such as CN or DE)")
    return code


def country_name(code: str | None) -> str:
    """'Germany (DE)' for 'DE'."""
    if not code:
        return "none"
    c = pycountry.countries.get(alpha_2=code)
    return f"{getattr(c, 'common_name', None) or c.name} ({code})" if c else code


def normalise_email(value: str | None) -> str:
    """Email addresses compare trimmed and case-insensitively."""
    return (value or "").strip().casefold()


ACCOUNT_SCHEMA = Schema(
    Field("login_id", "str", max_length=128, pattern=r"[A-Za-z0-9][A-Za-z0-9_.@+-]*",
          pattern_hint="letters, digits and . _ @ + -"),
    Field("name", "str", max_length=200),
    Field("email", "email", required=False),
    Field("kind", "choice", choices=KINDS, required=False, default="person"),
    Field("registered_country", "str", required=False, default="CN", check=lambda v: _country_problem(v)),
    Field("partner", "str", required=False, max_length=64),
    Field("certificates", "list", items=Field("certificate", "str", max_length=200), required=False, default=None),
    Field("data", "json", required=False, default=None),
)


def _country_problem(value: str) -> str | None:
    try:
        country_code(value)
    except ValidationError as exc:
        return exc.reason
    return None


# ------------------------------------------------------------------ accounts
def add_account(conn: Connection, values: dict, now: datetime, *, registration_case_id: int | None = None) -> dict:
    """Create an account; refuses a login ID or partner account that already exists."""
    clean = ACCOUNT_SCHEMA.clean(values)
    clean["registered_country"] = country_code(clean.get("registered_country", "CN"), "registered_country")
    partner_id = None
    code = clean.pop("partner", None)
    if clean.get("kind") == "partner":
        if code:
            partner = _partner(conn, code)
            partner_id = partner["id"]
            if partner_account(conn, partner_id) is not None:
                raise Conflict(f"partner {code} already has a partner account")
    elif code:
        raise ValidationError("partner", "only a partner account (kind partner) belongs to a partner; "
                              "members are associated through an accepted invitation")
    if account_by_login(conn, clean["login_id"]) is not None:
        raise Conflict(f"login ID {clean['login_id']!r} is already taken")
    if clean.get("data") is not None and not isinstance(clean["data"], dict):
        raise ValidationError("data", "must be a JSON object")
    aid = conn.execute(insert(A).values(
        login_id=clean["login_id"], name=clean["name"], email=clean.get("email"), kind=clean.get("kind", "person"),
        registered_country=clean["registered_country"], partner_id=partner_id,
        certificates=clean.get("certificates") or [], registration_case_id=registration_case_id,
        data=clean.get("data") or {}, created_at=now,
    ).returning(A.c.id)).scalar_one()
    return _account(conn, aid)


def account_by_login(conn: Connection, login_id: str) -> dict | None:
    """The account with this login ID (case-insensitive), or None."""
    if not isinstance(login_id, str):
        return None
    row = conn.execute(select(A).where(func.lower(A.c.login_id) == login_id.strip().lower())).first()
    return dict(row._mapping) if row is not None else None


def require_account(conn: Connection, login_id: str) -> dict:
    account = account_by_login(conn, login_id)
    if account is None:
        raise NotFound(f"login ID not found: {login_id!r}")
    return account


def _account(conn: Connection, aid: int) -> dict:
    return dict(conn.execute(select(A).where(A.c.id == aid)).first()._mapping)


def partner_account(conn: Connection, partner_id: int) -> dict | None:
    """The partner company's own account (kind partner), whose registered country counts for FAQ 2.1.1."""
    row = conn.execute(select(A).where(A.c.kind == "partner", A.c.partner_id == partner_id)).first()
    return dict(row._mapping) if row is not None else None


def registered_account(conn: Connection, partner: dict) -> dict | None:
    """The account whose registered country is the partner's (FAQ 2.1.1, 2.1.10): the partner account, else the
    partner admin's account; None when neither is on record."""
    acc = partner_account(conn, partner["id"])
    if acc is None and partner.get("admin_login"):
        acc = account_by_login(conn, partner["admin_login"])
    return acc


def list_accounts(conn: Connection) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(select(A).order_by(A.c.login_id))]


def change_registered_country(conn: Connection, login_id: str, country: str, *, ticket: str | int | None,
                              reason: str | None, actor, now: datetime) -> dict:
    """Change an account's registered country: only by an operator, through a service ticket with a reason (FAQ 2.1.10).

    `ticket` is the case number of a ``service_ticket`` of type
    ``registered_country_change`` that is submitted and not yet answered, asks
    for this country and belongs to the account's partner; its reason is
    recorded (or `reason`, when given).
    """
    if not (actor.roles & (OPERATOR_ROLES | {ADMIN})):
        raise Forbidden(f"changing a registered country needs an operator working a service ticket; {actor.login} has "
                        f"{', '.join(sorted(actor.roles)) or 'no roles'}")
    if ticket is None or not str(ticket).strip():
        raise ValidationError("ticket", "the registered country can be changed only through a service ticket "
                              "(FAQ 2.1.10): give the ticket number")
    account = require_account(conn, login_id)
    new = country_code(country)
    if new == account["registered_country"]:
        raise ValidationError("country", f"the registered country already is {country_name(new)}")
    ticket_row = _country_ticket(conn, ticket, account, new)
    reason = (reason or "").strip() or (ticket_row.data.get("reason") or "").strip()
    if not reason:
        raise ValidationError("reason", "a service ticket changing the registered country must state the reason")
    conn.execute(insert(CC).values(account_id=account["id"], old_country=account["registered_country"],
                                   new_country=new, ticket=f"#{ticket_row.id}", reason=reason,
                                   changed_by=actor.login, changed_at=now))
    conn.execute(update(A).where(A.c.id == account["id"]).values(registered_country=new))
    return _account(conn, account["id"])


OPEN_TICKET_STATES = ("pending_processing", "processing")


def _country_ticket(conn: Connection, ticket, account: dict, country: str):
    from .models import Instance

    inst = Instance.__table__
    ref = whole_number("ticket", str(ticket).strip().lstrip("#"),
                       "a service ticket number (the case number of a registered_country_change ticket)", low=1)
    row = conn.execute(select(inst).where(inst.c.id == ref, inst.c.workflow == "service_ticket")).first()
    if row is None:
        raise ValidationError("ticket", f"no service ticket #{ref}")
    data = row.data or {}
    if data.get("type") != "registered_country_change":
        raise ValidationError("ticket", f"service ticket #{ref} is of type {data.get('type')!r}, not "
                              "'registered_country_change'")
    if row.state not in OPEN_TICKET_STATES:
        raise ValidationError("ticket", f"service ticket #{ref} is {row.state.replace('_', ' ')}; the change is made "
                              "while the ticket is submitted and being processed")
    if data.get("new_country") != country:
        raise ValidationError("country", f"service ticket #{ref} asks for {country_name(data.get('new_country'))}, "
                              f"not {country_name(country)}")
    if account["partner_id"] is not None and row.partner_id != account["partner_id"]:
        raise ValidationError("ticket", f"service ticket #{ref} was raised by another partner")
    return row


def country_changes(conn: Connection, login_id: str) -> list[dict]:
    account = require_account(conn, login_id)
    return [dict(r._mapping) for r in conn.execute(select(CC).where(CC.c.account_id == account["id"]).order_by(CC.c.id))]


# -------------------------------------------------------------- associations
def current_association(conn: Connection, account_id: int) -> dict | None:
    """The account's open association (a member has at most one partner), with the partner's code."""
    row = conn.execute(select(AS, P.c.code.label("partner_code")).join(P, P.c.id == AS.c.partner_id)
                       .where(AS.c.account_id == account_id, AS.c.ended_at.is_(None))).first()
    return dict(row._mapping) if row is not None else None


def associations_since(conn: Connection, account_id: int, since: datetime) -> list[dict]:
    """Associations that were current at any moment after `since` (open ones included), oldest first."""
    rows = conn.execute(select(AS, P.c.code.label("partner_code")).join(P, P.c.id == AS.c.partner_id)
                        .where(AS.c.account_id == account_id, or_(AS.c.ended_at.is_(None), AS.c.ended_at > since))
                        .order_by(AS.c.associated_at, AS.c.id))
    return [dict(r._mapping) for r in rows]


def association_history(conn: Connection, login_id: str) -> list[dict]:
    account = require_account(conn, login_id)
    return associations_since(conn, account["id"], datetime(1970, 1, 1, tzinfo=UTC))


def associate(conn: Connection, account_id: int, partner_id: int, now: datetime,
              invitation_case_id: int | None = None, *, associated_at: datetime | None = None,
              ended_at: datetime | None = None) -> dict:
    """Record an association (FAQ 3.3.4); the person's user, if any, becomes a member of the partner.

    `associated_at`/`ended_at` record a past association (reference data for
    the 365-day rule); without them the association starts now and is current.
    """
    if ended_at is None and current_association(conn, account_id) is not None:
        cur = current_association(conn, account_id)
        raise Conflict(f"the account is already associated with partner {cur['partner_code']}")
    aid = conn.execute(insert(AS).values(account_id=account_id, partner_id=partner_id,
                                         associated_at=associated_at or now, ended_at=ended_at,
                                         invitation_case_id=invitation_case_id).returning(AS.c.id)).scalar_one()
    if ended_at is None:
        _set_user_partner(conn, _account(conn, account_id)["login_id"], partner_id)
    return dict(conn.execute(select(AS).where(AS.c.id == aid)).first()._mapping)


def disassociate(conn: Connection, login_id: str, partner_id: int, actor, now: datetime, reason: str | None = None) -> dict:
    """End a member's association with the partner: only that partner's admin may (FAQ 3.3.8)."""
    if PARTNER_ADMIN not in actor.roles or actor.partner_id != partner_id:
        raise Forbidden(f"only the partner admin of this partner may cancel a member's association; {actor.login} "
                        f"has {', '.join(sorted(actor.roles)) or 'no roles'}"
                        + ("" if actor.partner_id in (None, partner_id) else " for another partner"))
    account = require_account(conn, login_id)
    cur = current_association(conn, account["id"])
    if cur is None or cur["partner_id"] != partner_id:
        code = conn.execute(select(P.c.code).where(P.c.id == partner_id)).scalar_one()
        raise Conflict(f"login ID {account['login_id']!r} is not a member of partner {code}")
    conn.execute(update(AS).where(AS.c.id == cur["id"]).values(ended_at=now, ended_by=actor.login,
                                                               end_reason=(reason or "").strip() or None))
    _set_user_partner(conn, account["login_id"], None)
    return dict(conn.execute(select(AS).where(AS.c.id == cur["id"])).first()._mapping)


def _set_user_partner(conn: Connection, login_id: str, partner_id: int | None) -> None:
    """Keep the person's user (same login, if any) in step: a member of the partner, or a plain account again."""
    row = conn.execute(select(U).where(func.lower(U.c.login) == login_id.lower())).first()
    if row is None:
        return
    roles = set(row.roles or [])
    if partner_id is None:
        roles.discard(PARTNER_MEMBER)
        if not roles:
            roles.add(ACCOUNT)
    else:
        roles.discard(ACCOUNT)
        roles.add(PARTNER_MEMBER)
    conn.execute(update(U).where(U.c.id == row.id).values(partner_id=partner_id, roles=sorted(roles)))


def members(conn: Connection, partner_id: int) -> list[dict]:
    """The partner's current members (accounts with an open association)."""
    rows = conn.execute(select(A, AS.c.associated_at, AS.c.invitation_case_id).join(AS, AS.c.account_id == A.c.id)
                        .where(AS.c.partner_id == partner_id, AS.c.ended_at.is_(None)).order_by(A.c.login_id))
    return [dict(r._mapping) for r in rows]


def partner_certificates(conn: Connection, partner_id: int) -> list[dict]:
    """Certificates that count for the partner: those of its current members (FAQ 3.3.4)."""
    return [{"login_id": m["login_id"], "certificate": c} for m in members(conn, partner_id) for c in m["certificates"] or []]


# ---------------------------------------------------------------- suppliers
def add_supplier(conn: Connection, partner_code: str, supplier_number: str, now: datetime) -> dict:
    """Record that a partner is a supplier in the vendor's procurement system (FAQ 2.1.9)."""
    partner = _partner(conn, partner_code)
    number = Field("supplier_number", "str", max_length=64).clean(supplier_number, "supplier_number")
    if supplier(conn, partner["id"]) is not None:
        raise Conflict(f"partner {partner_code} already is procurement supplier {supplier(conn, partner['id'])['supplier_number']}")
    conn.execute(insert(PS).values(partner_id=partner["id"], supplier_number=number, created_at=now))
    return supplier(conn, partner["id"])


def supplier(conn: Connection, partner_id: int) -> dict | None:
    row = conn.execute(select(PS).where(PS.c.partner_id == partner_id)).first()
    return dict(row._mapping) if row is not None else None


def _partner(conn: Connection, code: str) -> dict:
    row = conn.execute(select(P).where(P.c.code == code)).first()
    if row is None:
        raise ValidationError("partner", f"no partner with code {code!r}")
    return dict(row._mapping)


# ---------------------------------------------------------------------- CLI
@click.group("accounts")
def ACCOUNTS_CLI() -> None:
    """Person, enterprise and partner accounts (login IDs) and their registered countries."""


@ACCOUNTS_CLI.command("add")
@click.option("--login-id", required=True)
@click.option("--name", required=True)
@click.option("--email", default=None)
@click.option("--kind", default="person", show_default=True, type=click.Choice(KINDS))
@click.option("--country", "registered_country", default="CN", show_default=True, help="ISO 3166-1 alpha-2.")
@click.option("--partner", default=None, help="Partner code (partner accounts only).")
@click.option("--certificate", "certificates", multiple=True, help="Certificate held (repeatable).")
@handle_errors
def accounts_add(certificates, **values) -> None:
    """Add an account."""
    rt = open_runtime()
    values = {k: v for k, v in values.items() if v is not None}
    values["certificates"] = list(certificates)
    with rt.db.write() as conn:
        acc = add_account(conn, values, rt.now())
    click.echo(f"account {acc['login_id']} added ({acc['kind']}, {country_name(acc['registered_country'])})")


@ACCOUNTS_CLI.command("list")
@click.option("--json", "as_json", is_flag=True)
def accounts_list(as_json: bool) -> None:
    """List accounts with their current partner."""
    rt = open_runtime()
    with rt.db.read() as conn:
        rows = []
        for a in list_accounts(conn):
            cur = current_association(conn, a["id"])
            rows.append({**a, "member_of": cur["partner_code"] if cur else None})
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['login_id']:<24} {r['kind']:<10} {r['registered_country']}  {r['email'] or '-':<28} "
                   f"{('member of ' + r['member_of']) if r['member_of'] else ''}")


@ACCOUNTS_CLI.command("show")
@click.argument("login_id")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def accounts_show(login_id: str, as_json: bool) -> None:
    """An account with its association history and registered-country changes."""
    rt = open_runtime()
    with rt.db.read() as conn:
        acc = require_account(conn, login_id)
        view = {**acc, "associations": association_history(conn, login_id),
                "country_changes": country_changes(conn, login_id)}
    if as_json:
        echo_json(view)
        return
    click.echo(f"{acc['login_id']} ({acc['name']}): {acc['kind']}, registered in {country_name(acc['registered_country'])}")
    for a in view["associations"]:
        end = a["ended_at"].isoformat() if a["ended_at"] else "now"
        click.echo(f"  member of {a['partner_code']} from {a['associated_at'].isoformat()} to {end}")
    for c in view["country_changes"]:
        click.echo(f"  country {c['old_country']} -> {c['new_country']} by {c['changed_by']} (ticket {c['ticket']}: {c['reason']})")


@ACCOUNTS_CLI.command("change-country")
@click.argument("login_id")
@click.option("--country", required=True)
@click.option("--ticket", default=None, help="Case number of the registered_country_change service ticket (FAQ 2.1.10).")
@click.option("--reason", default=None, help="Reason (default: the one stated in the ticket).")
@click.option("--as", "login", envvar="PARTNERFLOW_USER", required=True)
@handle_errors
def accounts_change_country(login_id: str, country: str, ticket, reason, login: str) -> None:
    """Change a registered country through a service ticket."""
    rt = open_runtime()
    actor = rt.actor(login)
    with rt.db.write() as conn:
        acc = change_registered_country(conn, login_id, country, ticket=ticket, reason=reason, actor=actor, now=rt.now())
    click.echo(f"{acc['login_id']}: registered country now {country_name(acc['registered_country'])} "
               f"(ticket #{str(ticket).lstrip('#')})")


@ACCOUNTS_CLI.command("associate")
@click.argument("login_id")
@click.option("--partner", required=True)
@click.option("--since", default=None, help="ISO instant the association began (default: now).")
@click.option("--until", default=None, help="ISO instant it ended (records a past association).")
@handle_errors
def accounts_associate(login_id: str, partner: str, since, until) -> None:
    """Record an association directly (reference data, such as history before this system)."""
    rt = open_runtime()
    clean = lambda v, n: datetime.fromisoformat(Field(n, "datetime").clean(v, n)) if v else None  # noqa: E731
    with rt.db.write() as conn:
        acc = require_account(conn, login_id)
        associate(conn, acc["id"], _partner(conn, partner)["id"], rt.now(), associated_at=clean(since, "since"),
                  ended_at=clean(until, "until"))
    click.echo(f"{acc['login_id']} associated with {partner}" + (f" until {until}" if until else ""))


@click.group("members")
def MEMBERS_CLI() -> None:
    """A partner's members (associated person accounts)."""


@MEMBERS_CLI.command("list")
@click.option("--partner", required=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def members_list(partner: str, as_json: bool) -> None:
    """Current members of a partner, with their certificates."""
    rt = open_runtime()
    with rt.db.read() as conn:
        rows = members(conn, _partner(conn, partner)["id"])
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['login_id']:<24} {r['name']:<28} since {r['associated_at'].isoformat()}  "
                   f"{', '.join(r['certificates'] or []) or 'no certificates'}")
    if not rows:
        click.echo(f"partner {partner} has no members")


@MEMBERS_CLI.command("remove")
@click.argument("login_id")
@click.option("--as", "login", envvar="PARTNERFLOW_USER", required=True, help="The partner admin.")
@click.option("--reason", default=None)
@handle_errors
def members_remove(login_id: str, login: str, reason) -> None:
    """Cancel a member's association (partner admin only, FAQ 3.3.8)."""
    rt = open_runtime()
    actor = rt.actor(login)
    if actor.partner_id is None:
        raise Forbidden(f"only a partner admin may cancel a member's association; {login} acts for no partner")
    with rt.db.write() as conn:
        disassociate(conn, login_id, actor.partner_id, actor, rt.now(), reason)
    click.echo(f"{login_id} is no longer a member")


@click.group("suppliers")
def SUPPLIERS_CLI() -> None:
    """Partners that already are suppliers in the procurement system (FAQ 2.1.9)."""


@SUPPLIERS_CLI.command("add")
@click.option("--partner", required=True)
@click.option("--number", required=True, help="Supplier number in the procurement system.")
@handle_errors
def suppliers_add(partner: str, number: str) -> None:
    rt = open_runtime()
    with rt.db.write() as conn:
        add_supplier(conn, partner, number, rt.now())
    click.echo(f"partner {partner} recorded as procurement supplier {number}")
