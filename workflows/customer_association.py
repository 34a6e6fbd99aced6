"""Customer invitation and association with a partner (LIFECYCLES section 4; FAQ 5.3, 5.1.9-5.1.11, 6).

Rules enforced (every refusal names its rule and FAQ section, and saves nothing):
- Invitation by email: the link is valid for
  ``PARTNERFLOW_CUSTOMER_INVITATION_DAYS`` days (default 7; the email states
  the end in the customer's time zone) and then expires by timer. A
  registration link or QR code handed over offline (``channel: offline``)
  never expires (FAQ 6.5). One open invitation per partner and email.
- Another partner's pre-registration lock refuses the invitation and the
  acceptance, naming when the lock ends in the refused partner's zone
  (FAQ 5.3.6). Acceptance of the locking partner's invitation within the lock
  associates the customer and closes the pre-registration as ``associated``.
- Across countries (partner's country differs from the customer's)
  association needs this partner's live pre-registration; in the same country
  pre-registration is optional (FAQ 5.3.6).
- Association is refused, with the reason, when the customer account: already
  has a partner (only one partner each); is in arrears; has a special
  contract with the vendor; is internal; has unexpired reserved instances
  (FAQ 5.3.1). These are read from the customer's record (`engine.customers`)
  at invitation (when the account exists) and again at every step that
  associates.
- Only the invited customer (a user with role ``customer`` whose login or
  email is the customer's) may accept, decline or choose about the balance.
- Exactly one model per customer, ``referral`` or ``reseller``, fixed when
  associated (FAQ 5.1.9, 5.3.2); only an operator changes it afterwards
  (``change_model``, comment required, recorded in the case data and history).
- Reseller (prepaid) balance rules (FAQ 5.3.1): with top-up rewards, or
  outstanding invoices above ``PARTNERFLOW_CUSTOMER_REVIEW_OUTSTANDING_RMB``
  (default 2,000.00 RMB; exactly 2,000.00 is not above), association goes to
  manual review (an inbox task for an ecosystem manager, who approves with
  the balance decision or rejects with a reason); otherwise, with a balance,
  the customer chooses to keep it (transferred to the reseller account) or
  withdraw it first (``withdraw_balance`` sets the account balance to zero).
  The referral model keeps its own billing and has no balance step.
- The customer (and the partner) are emailed when associated (FAQ 6.3).
- A reseller customer may request disassociation (FAQ 6.7); an operator
  confirms (the customer is then free, its reseller budget is closed) or
  declines with a reason.

Settings: ``PARTNERFLOW_CUSTOMER_INVITATION_DAYS`` (7),
``PARTNERFLOW_CUSTOMER_REVIEW_OUTSTANDING_RMB`` (2000.00),
``PARTNERFLOW_BASE_URL`` (http://127.0.0.1:8000) for the invitation link
``<base>/join/customer/<code>``; `invitation_by_code` resolves a code to its
case for the registration page (`open_invitation` also gives what decides who may see it).
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

import click
from sqlalchemy import select

from engine import customers as cust
from engine.cliutil import echo_json, handle_errors, open_runtime
from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.errors import Forbidden, ValidationError
from engine.models import Instance
from engine.roles import ADMIN, CUSTOMER, ECOSYSTEM_MANAGER, OPERATIONS_MANAGER, PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.schema import Field, Schema
from engine.settings import setting

from . import customer_preregistration as prereg

I = Instance.__table__
PARTNER_PEOPLE = frozenset({PARTNER_ADMIN, PARTNER_MEMBER})
OPERATORS = frozenset({ECOSYSTEM_MANAGER, OPERATIONS_MANAGER, ADMIN})


class S(StrEnum):
    invited = "invited"  #: waiting for the customer to accept the invitation (email: until it expires; offline: no end)
    choosing_balance = "choosing_balance"  #: reseller customer with a balance: keep (transfer) or withdraw it
    manual_review = "manual_review"  #: top-up rewards or outstanding invoices above the limit: an operator decides
    associated = "associated"  #: the customer belongs to the partner under one model
    disassociation_requested = "disassociation_requested"  #: the reseller customer asked to leave; an operator confirms
    disassociated = "disassociated"  #: the association ended at the customer's request (final)
    declined = "declined"  #: the customer declined the invitation (final)
    cancelled = "cancelled"  #: the partner withdrew the invitation (final)
    expired = "expired"  #: the emailed invitation lapsed unaccepted (final)
    rejected = "rejected"  #: the operator refused the association in manual review (final)


OPEN = (S.invited, S.choosing_balance, S.manual_review)


def invitation_days() -> int:
    return setting("customer_invitation_days", 7)


def review_limit() -> Decimal:
    return setting("customer_review_outstanding_rmb", Decimal("2000.00"), Decimal)


def base_url() -> str:
    """Where links point (``PARTNERFLOW_BASE_URL``, as for every email link)."""
    return setting("base_url", "http://127.0.0.1:8000", str).rstrip("/")


START = Schema(
    Field("email", "email", description="The customer's email address"),
    Field("model", "choice", choices=cust.MODELS, description="referral or reseller (permanent once associated)"),
    Field("channel", "choice", choices=("email", "offline"), required=False, default="email",
          description="email: link valid for a set period; offline: registration link or QR code, valid permanently"),
    Field("country", "str", required=False, pattern=r"[A-Za-z]{2}", pattern_hint="an ISO 3166 two-letter country code",
          description="Customer's country when it has no account yet"),
    Field("message", "text", required=False, max_length=1000),
)
APPROVE = Schema(Field("balance", "choice", choices=("keep", "withdraw"), required=False, default="keep",
                       description="What happens to the customer's balance: transferred (keep) or withdrawn first"))
CHANGE_MODEL = Schema(Field("model", "choice", choices=cust.MODELS))


# -- facts -------------------------------------------------------------------------
def _customer(ctx: Ctx, required: bool = True) -> dict | None:
    found = cust.find_customer(ctx.conn, ctx.data["email"])
    if found is None and required:
        raise ValidationError("email", f"no customer account with email {ctx.data['email']}: the customer must "
                              "register an account (through the invitation link) before accepting")
    return found


def needs_manual_review(ctx: Ctx) -> bool:
    """Reseller model with top-up rewards or outstanding invoices above the limit (FAQ 5.3.1)."""
    if ctx.data["model"] != "reseller":
        return False
    c = _customer(ctx)
    return c["topup_rewards"] > 0 or c["outstanding_invoices"] > review_limit()


def has_balance_to_choose(ctx: Ctx) -> bool:
    """Reseller model, a balance, no top-up rewards and outstanding invoices within the limit (FAQ 5.3.1)."""
    return ctx.data["model"] == "reseller" and not needs_manual_review(ctx) and _customer(ctx)["balance"] > 0


def review_reasons(ctx: Ctx) -> list[str]:
    c = cust.find_customer(ctx.conn, ctx.data["email"])
    if c is None:
        return []
    out = []
    if c["topup_rewards"] > 0:
        out.append(f"top-up rewards {c['topup_rewards']} RMB")
    if c["outstanding_invoices"] > review_limit():
        out.append(f"outstanding invoices {c['outstanding_invoices']} RMB > {review_limit()} RMB")
    return out


# -- guards ----------------------------------------------------------------------
def not_locked_by_another_partner(ctx: Ctx) -> str | None:
    """Another partner's pre-registration lock refuses association until it ends (FAQ 5.3.6)."""
    prereg.check_not_locked_by_another(ctx, ctx.data["email"])
    return None


def preregistered_when_countries_differ(ctx: Ctx) -> str | None:
    """Pre-registration is optional only in the same country (FAQ 5.3.6)."""
    customer = _customer(ctx, required=False)
    country = customer["country"] if customer else ctx.data.get("country")
    if country is None:
        return None  # checked again at acceptance, when the account exists
    ours = prereg.partner_country(ctx.partner)
    if country.upper() != ours and prereg.own_lock(ctx, ctx.data["email"]) is None:
        return (f"customer {ctx.data['email']} is in {country.upper()} and partner {ctx.partner['code']} in {ours}: "
                "across countries a customer is associated only within your live pre-registration (15-day lock); "
                "pre-register the customer first (FAQ 5.3.6)")
    return None


def account_may_be_associated(ctx: Ctx) -> str | None:
    """Only one partner each; not in arrears, no special contract, not internal, no unexpired reserved instances (FAQ 5.3.1)."""
    customer = _customer(ctx, required=ctx.event != "start")
    if customer is None:
        return None
    return cust.association_refusal(customer, ctx.now, ctx.calendar, ctx.partner["id"])


def one_open_invitation(ctx: Ctx) -> str | None:
    rows = ctx.conn.execute(select(I.c.id, I.c.state).where(
        I.c.workflow == "customer_association", I.c.business_key == ctx.data["email"],
        I.c.partner_id == ctx.partner["id"], I.c.state.in_([s.value for s in OPEN]))).first()
    if rows is not None:
        return f"your invitation of {ctx.data['email']} is already open (case {rows.id}, {rows.state})"
    return None


def actor_is_the_customer(ctx: Ctx) -> str | None:
    """Only the invited customer answers the invitation."""
    customer = _customer(ctx)
    mine = (customer["login"] and customer["login"] == ctx.actor.login) or (
        ctx.actor.email and ctx.actor.email.strip().lower() == customer["email"])
    if not mine:
        raise Forbidden(f"only the invited customer ({customer['email']}) may {ctx.event} this invitation; "
                        f"{ctx.actor.login} is not that customer")
    return None


def is_reseller(ctx: Ctx) -> str | None:
    """Only a reseller customer may request disassociation (FAQ 6.7)."""
    if ctx.data["model"] != "reseller":
        return (f"only a reseller customer may request disassociation (FAQ 6.7); {ctx.data['email']} is under the "
                f"{ctx.data['model']} model")
    return None


def model_differs(ctx: Ctx) -> str | None:
    if ctx.payload["model"] == ctx.data["model"]:
        return f"the customer is already under the {ctx.data['model']} model"
    return None


def normalise_start(ctx: Ctx) -> str | None:
    """The email is the customer's normalised identity (trimmed, lower-case)."""
    ctx.data["email"] = cust.normalise_email(ctx.data["email"])
    return None


ASSOCIATION_GUARDS = (not_locked_by_another_partner, preregistered_when_countries_differ, account_may_be_associated)


# -- effects ---------------------------------------------------------------------
def start_invitation(ctx: Ctx) -> dict:
    code = secrets.token_urlsafe(18)
    customer = _customer(ctx, required=False)
    out = {"customer_name": customer["name"] if customer else None,"code": code, "link": f"{base_url()}/join/customer/{code}", "valid": "permanently"}
    if ctx.data["channel"] == "email":
        until = ctx.now + timedelta(days=invitation_days())
        out.update(valid=f"{invitation_days()} days", valid_days=invitation_days(), expires_at=until.isoformat())
    else:
        out["qr_payload"] = out["link"]  # the QR code handed over offline encodes the same permanent link
    return out


#: What `start_invitation` issues: `secrets.token_urlsafe(18)`, 24 URL-safe characters.
CODE_RE = re.compile(r"[A-Za-z0-9_-]{24}")


def open_invitation(conn, code: str):
    """The open invitation case a registration link or QR code names, if any, with what `Runtime.can_see`
    reads (the code is compared in SQL, among open invitations only: ``ix_instances_workflow_state``)."""
    if not isinstance(code, str) or not CODE_RE.fullmatch(code):
        return None
    return conn.execute(select(I.c.id, I.c.partner_id, I.c.created_by, I.c.data).where(
        I.c.workflow == "customer_association", I.c.state == S.invited,
        I.c.data["code"].as_string() == code).limit(1)).first()


def invitation_by_code(conn, code: str) -> int | None:
    """The id of the open invitation case a registration link or QR code names, if any."""
    row = open_invitation(conn, code)
    return row.id if row is not None else None


def invitation_end(ctx: Ctx) -> datetime:
    return ctx.instant("expires_at")


def _associate(ctx: Ctx, balance: str | None) -> dict:
    customer = _customer(ctx)
    updates: dict = {"associated_at": ctx.now.isoformat(), "customer_id": customer["id"],
                     "customer_name": customer["name"]}
    if balance == "withdraw":
        updates["balance_withdrawn"] = str(customer["balance"])
        cust.set_balance(ctx.conn, customer["id"], Decimal("0.00"), ctx.now)
    elif balance == "keep":
        updates["balance_transferred"] = str(customer["balance"])
    cust.associate(ctx.conn, customer["id"], ctx.partner["id"], ctx.data["model"], ctx.now)
    case = prereg.locked_case_of(ctx.conn, customer["email"], ctx.partner["id"])
    if case is not None:
        updates["preregistration_case"] = case
        ctx.fire_later(case, "associate")
    return updates


def associate_direct(ctx: Ctx) -> dict:
    return _associate(ctx, None)


def associate_keep(ctx: Ctx) -> dict:
    return _associate(ctx, "keep")


def associate_withdraw(ctx: Ctx) -> dict:
    return _associate(ctx, "withdraw")


def associate_reviewed(ctx: Ctx) -> dict:
    return {**_associate(ctx, ctx.payload.get("balance") or "keep"), "reviewed_by": ctx.actor.login}


def record_balance(ctx: Ctx) -> dict:
    return {"balance": str(_customer(ctx)["balance"])}


def record_review(ctx: Ctx) -> dict:
    return {"review_reasons": review_reasons(ctx)}


def change_model(ctx: Ctx) -> dict:
    cust.change_model(ctx.conn, ctx.data["customer_id"], ctx.partner["id"], ctx.payload["model"], ctx.now)
    changes = list(ctx.data.get("model_changes") or [])
    changes.append({"from": ctx.data["model"], "to": ctx.payload["model"], "by": ctx.actor.login,
                    "at": ctx.now.isoformat(), "comment": ctx.comment})
    if ctx.payload["model"] != "reseller":
        _close_budget(ctx)
    return {"model": ctx.payload["model"], "model_changes": changes}


def disassociate(ctx: Ctx) -> dict:
    cust.disassociate(ctx.conn, ctx.data["customer_id"], ctx.partner["id"], ctx.now)
    _close_budget(ctx)
    return {"disassociated_at": ctx.now.isoformat()}


def _close_budget(ctx: Ctx) -> None:
    from .reseller_budget import open_budget_case

    case = open_budget_case(ctx.conn, ctx.data["email"])
    if case is not None:
        ctx.fire_later(case, "close")


REVIEW_ROWS = dict(when=needs_manual_review, effect=record_review)

WORKFLOW = Workflow(
    name="customer_association",
    title="Customer invitation and association",
    faq="FAQ 5.3.1, 5.3.2, 5.3.6, 5.1.9-5.1.11, 6.3, 6.5, 6.7",
    description="Invite a customer by email (limited validity) or offline link/QR (permanent); associate it under "
                "one model, with the association preconditions and the reseller balance rules.",
    states=S,
    initial=S.invited,
    final=(S.disassociated, S.declined, S.cancelled, S.expired, S.rejected),
    start_schema=START,
    start_roles=PARTNER_PEOPLE,
    start_guards=(normalise_start, not_locked_by_another_partner, preregistered_when_countries_differ,
                  account_may_be_associated, one_open_invitation),
    start_effect=start_invitation,
    business_key=lambda data: data.get("email"),
    transitions=(
        Transition("accept", S.invited, S.manual_review, {CUSTOMER},
                   guards=(actor_is_the_customer, *ASSOCIATION_GUARDS), **REVIEW_ROWS),
        Transition("accept", S.invited, S.choosing_balance, {CUSTOMER},
                   guards=(actor_is_the_customer, *ASSOCIATION_GUARDS), when=has_balance_to_choose,
                   effect=record_balance),
        Transition("accept", S.invited, S.associated, {CUSTOMER},
                   guards=(actor_is_the_customer, *ASSOCIATION_GUARDS), effect=associate_direct),
        Transition("keep_balance", S.choosing_balance, S.manual_review, {CUSTOMER},
                   guards=(actor_is_the_customer, *ASSOCIATION_GUARDS), **REVIEW_ROWS),
        Transition("keep_balance", S.choosing_balance, S.associated, {CUSTOMER},
                   guards=(actor_is_the_customer, *ASSOCIATION_GUARDS), effect=associate_keep,
                   label="balance transferred to the reseller account"),
        Transition("withdraw_balance", S.choosing_balance, S.manual_review, {CUSTOMER},
                   guards=(actor_is_the_customer, *ASSOCIATION_GUARDS), **REVIEW_ROWS),
        Transition("withdraw_balance", S.choosing_balance, S.associated, {CUSTOMER},
                   guards=(actor_is_the_customer, *ASSOCIATION_GUARDS), effect=associate_withdraw,
                   label="balance withdrawn before association"),
        Transition("decline", (S.invited, S.choosing_balance), S.declined, {CUSTOMER},
                   guards=(actor_is_the_customer,)),
        Transition("cancel", OPEN, S.cancelled, PARTNER_PEOPLE),
        Transition("expire", S.invited, S.expired, {SYSTEM}, label="email invitation lapsed"),
        Transition("approve", S.manual_review, S.associated, OPERATORS, payload=APPROVE,
                   guards=ASSOCIATION_GUARDS, effect=associate_reviewed),
        Transition("reject", S.manual_review, S.rejected, OPERATORS, comment_required=True),
        Transition("change_model", S.associated, None, OPERATORS, payload=CHANGE_MODEL, guards=(model_differs,),
                   effect=change_model, comment_required=True, label="operator changes the model"),
        Transition("request_disassociation", S.associated, S.disassociation_requested, {CUSTOMER},
                   guards=(actor_is_the_customer, is_reseller)),
        Transition("approve_disassociation", S.disassociation_requested, S.disassociated, OPERATORS,
                   effect=disassociate),
        Transition("decline_disassociation", S.disassociation_requested, S.associated, OPERATORS,
                   comment_required=True),
    ),
    timers=(
        Timer(S.invited, "expire", at=invitation_end, name="invitation_end",
              when=lambda ctx: ctx.data.get("channel") == "email",
              description="email invitations only: PARTNERFLOW_CUSTOMER_INVITATION_DAYS (default 7) after sending"),
    ),
    tasks=(
        InboxTask(S.manual_review, ECOSYSTEM_MANAGER, "Review a reseller customer association (balance rules)",
                  due_working_days=5, flags=review_reasons),
        InboxTask(S.disassociation_requested, ECOSYSTEM_MANAGER, "Confirm a reseller customer's disassociation",
                  due_working_days=5),
    ),
    notifications=(
        Notify("customer_association/invitation", ["data:email"], on_enter=S.invited,
               when=lambda ctx: ctx.data.get("channel") == "email"),
        Notify("customer_association/offline_link", ["actor"], on_enter=S.invited,
               when=lambda ctx: ctx.data.get("channel") == "offline"),
        Notify("customer_association/choose_balance", ["data:email"], on_enter=S.choosing_balance),
        Notify("customer_association/manual_review", ["role:ecosystem_manager", "partner"], on_enter=S.manual_review),
        Notify("customer_association/associated", ["data:email", "partner"], on_enter=S.associated,
               when=lambda ctx: ctx.event != "decline_disassociation"),
        Notify("customer_association/expired", ["partner"], on_enter=S.expired),
        Notify("customer_association/rejected", ["partner", "data:email"], on_enter=S.rejected),
        Notify("customer_association/model_changed", ["partner", "data:email"], on_event="change_model"),
        Notify("customer_association/disassociation_requested", ["role:ecosystem_manager", "partner"],
               on_enter=S.disassociation_requested),
        Notify("customer_association/disassociated", ["data:email", "partner"], on_enter=S.disassociated),
    ),
)


# -- command line: customer reference data ---------------------------------------
def _print(customer: dict, as_json: bool) -> None:
    view = cust.public(customer)
    if as_json:
        echo_json(view)
        return
    flags = [k for k in ("in_arrears", "special_contract", "internal") if customer[k]]
    click.echo(f"{view['email']} ({view['name']}, {view['country']})"
               f" partner: {view['partner'] or '-'} model: {view['model'] or '-'}")
    click.echo(f"  balance {view['balance']} RMB, top-up rewards {view['topup_rewards']} RMB, "
               f"outstanding invoices {view['outstanding_invoices']} RMB; flags: {', '.join(flags) or 'none'}")
    for r in view["reserved_instances"]:
        click.echo(f"  reserved instance {r['name']} expires {r['expires_at']}")


def _opts(fn, options):
    for opt in reversed(options):
        fn = opt(fn)
    return fn


@click.group("customers")
def CLI() -> None:
    """Customer accounts (reference data for pre-registration, association and budgets)."""


def customers_add(as_json: bool, **values) -> None:
    """Add a customer account."""
    rt = open_runtime()
    values = {k: v for k, v in values.items() if v is not None}
    with rt.db.write() as conn:
        customer = cust.add_customer(conn, values, rt.now())
    _print(customer, as_json)


def customers_set(customer: str, as_json: bool, **values) -> None:
    """Change a customer's account attributes (never its partner or model: see customer_association)."""
    rt = open_runtime()
    changes = {k: v for k, v in values.items() if v is not None}
    if not changes:
        raise ValidationError("", "nothing to change: give at least one option")
    with rt.db.write() as conn:
        updated = cust.update_customer(conn, customer, changes, rt.now())
    _print(updated, as_json)


ATTRIBUTE_OPTS = [
    click.option("--name", default=None),
    click.option("--country", default=None, help="ISO two-letter country code."),
    click.option("--login", default=None, help="Login of the customer's own user (role customer)."),
    click.option("--balance", default=None, help="Cash balance (RMB)."),
    click.option("--topup-rewards", default=None, help="Top-up rewards on the account (RMB)."),
    click.option("--outstanding-invoices", default=None, help="Outstanding invoices (RMB)."),
    click.option("--in-arrears/--not-in-arrears", default=None),
    click.option("--special-contract/--no-special-contract", default=None),
    click.option("--internal/--external", default=None),
    click.option("--json", "as_json", is_flag=True),
]
CLI.command("add")(_opts(handle_errors(customers_add), [click.option("--email", required=True), *ATTRIBUTE_OPTS]))
CLI.command("set")(_opts(handle_errors(customers_set), [click.argument("customer"), *ATTRIBUTE_OPTS]))


@CLI.command("show")
@click.argument("customer")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def customers_show(customer: str, as_json: bool) -> None:
    """Show a customer by email or id."""
    rt = open_runtime()
    with rt.db.read() as conn:
        found = cust.get_customer(conn, customer)
    _print(found, as_json)


@CLI.command("list")
@click.option("--partner", default=None, help="Only the customers of this partner code.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def customers_list(partner: str | None, as_json: bool) -> None:
    """List customers."""
    rt = open_runtime()
    with rt.db.read() as conn:
        rows = [cust.get_customer(conn, r.id) for r in conn.execute(select(cust.C.c.id).order_by(cust.C.c.email))]
    if partner:
        rows = [r for r in rows if r["partner"] == partner]
    if as_json:
        echo_json([cust.public(r) for r in rows])
        return
    for r in rows:
        click.echo(f"{r['email']:<36} {r['country']} {r['partner'] or '-':<10} {r['model'] or '-'}")


@CLI.command("reserve")
@click.argument("customer")
@click.option("--name", required=True, help="Reserved instance name.")
@click.option("--expires", required=True, help="Expiry instant, ISO 8601 with offset.")
@handle_errors
def customers_reserve(customer: str, name: str, expires: str) -> None:
    """Record a reserved instance of a customer (an unexpired one blocks association)."""
    rt = open_runtime()
    instant = datetime.fromisoformat(Field("expires", "datetime").clean(expires, "expires"))
    with rt.db.write() as conn:
        updated = cust.add_reserved_instance(conn, customer, name, instant, rt.now())
    _print(updated, False)


@CLI.command("purchase-check")
@click.argument("customer")
@click.argument("kind", type=click.Choice(["pay_per_use", "subscription", "reserved_instance"]))
@handle_errors
def customers_purchase_check(customer: str, kind: str) -> None:
    """May the customer buy a product of KIND now? (reseller budget restriction, FAQ 5.7.12)"""
    from .reseller_budget import purchase_allowed

    rt = open_runtime()
    with rt.db.read() as conn:
        reason = purchase_allowed(conn, customer, kind, now=rt.now())
    if reason:
        click.echo(f"refused: {reason}")
        raise SystemExit(1)
    click.echo("allowed")


def seed_demo(runtime, people) -> None:
    """An associated reseller customer (with a reseller budget, seeded by reseller_budget) and a pending invitation."""
    from engine.directory import add_user

    now = runtime.now()
    with runtime.db.write() as conn:
        if cust.find_customer(conn, "ops@huaxin-retail.example") is None:
            add_user(conn, {"login": "huaxin", "name": "Huaxin Retail (customer)", "email": "ops@huaxin-retail.example",
                            "roles": [CUSTOMER], "password": "partnerflow-demo", "locale": "zh"}, now)
            cust.add_customer(conn, {"email": "ops@huaxin-retail.example", "name": "Huaxin Retail", "country": "CN",
                                     "login": "huaxin"}, now)
        if cust.find_customer(conn, "cto@blauwal.example") is None:
            cust.add_customer(conn, {"email": "cto@blauwal.example", "name": "Blauwal AG", "country": "DE"}, now)
    case = runtime.start("customer_association", {"email": "ops@huaxin-retail.example", "model": "reseller"},
                         people.actor("acme-admin"))
    runtime.fire(case["id"], "accept", runtime.actor("huaxin"))
    runtime.start("customer_association", {"email": "cto@blauwal.example", "model": "referral"},
                  people.actor("nord-admin"))
