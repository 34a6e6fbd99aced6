"""Payment-information authentication: bank and tax data (LIFECYCLES section 1; FAQ 2.1).

Rules enforced:
- A certification separate from the business information
  (`workflows/business_authentication.py`); applied together with it
  (`apply_together`, CLI ``partnerflow authentication apply``: both cases in
  one transaction, or neither) or on its own (``partnerflow start``).
- Payout needs both certifications approved and payouts not blocked
  (FAQ 2.1.4): `may_be_paid(conn, partner_id)` answers None or the reason,
  for the incentive reconciliation and payout lifecycles.
- At submission and at every edit, refused with the field named and nothing
  saved:
  - the account's registered country equals the legal entity's registered
    country (FAQ 2.1.1);
  - the company name is Chinese or English text only (FAQ 2.1.2);
  - when the company name is Chinese and the settlement currency is USD, the
    bank account name must be in English (FAQ 2.1.2);
  - the VAT rate is chosen by the partner from the allowed rates
    (``PARTNERFLOW_VAT_RATES``, percent, default ``0,1,3,6,9,13``) and
    recorded; payout later is incentive + incentive x rate (FAQ 2.1.5:
    `vat_rate`, `payout_with_vat`).
- Review (FAQ 2.1): submitted -> automatic review by the system at the next
  heartbeat of the scheduler (``serve`` or ``worker``; with the simulated
  clock, ``partnerflow clock advance 1m``), which sends the case
  - to ``automatic_review_failed`` when the bank's country is not supported
    (``PARTNERFLOW_SUPPORTED_BANK_COUNTRIES``, ISO codes, default below); the
    partner may then ask for an offline review by uploading a bank
    confirmation letter (FAQ 2.1.6), which finance approves or fails;
  - to ``waiting_for_procurement`` when the partner already is a supplier in
    the procurement system (the procurement suppliers table): procurement
    must add the partner's data first, normally one to two weeks (FAQ 2.1.9);
    after ``PARTNERFLOW_PROCUREMENT_ESCALATION_DAYS`` (default 14) days of
    waiting the reviewer (finance) gets an escalation inbox task and email;
  - otherwise to ``under_review``: finance approves, or fails it with a
    reason (a comment is required).
- Wrong or changed bank data (FAQ 2.1.7): the partner admin edits and
  resubmits from any reviewed state; an edit after approval blocks payouts
  from that instant until the new data is approved, then payouts resume
  (`may_be_paid` says "bank data edited on ...; payouts blocked until the new
  data is approved"). Finance and the partner are emailed about the block.
- The registered country is not editable (FAQ 2.1.10): an edit naming it is
  refused, pointing to a service ticket with a reason.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

import click
from sqlalchemy import select

from engine import accounts
from engine.calendar import calendar_for
from engine.cliutil import handle_errors, json_arg, open_runtime
from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.errors import ValidationError
from engine.models import Instance, Partner
from engine.roles import ADMIN, FINANCE, PARTNER_ADMIN, PROCUREMENT, SYSTEM
from engine.schema import Field, Schema
from engine.settings import setting

from . import business_authentication as business

I = Instance.__table__
P = Partner.__table__

NAME = "payment_authentication"
BUSINESS = business.NAME
APPROVED = "approved"
DEFAULT_BANK_COUNTRIES = ("CN,HK,MO,SG,MY,TH,ID,PH,VN,JP,KR,AU,NZ,US,CA,GB,IE,DE,FR,NL,BE,LU,AT,CH,ES,IT,SE,DK,"
                          "NO,FI,PL,AE,SA,QA,TR,EG,ZA,BR,MX,CL")
BANK_FIELDS = ("bank_name", "bank_country", "bank_account_name", "bank_account_number", "swift_code",
               "settlement_currency")


class S(StrEnum):
    submitted = "submitted"  #: received; the automatic review runs at once
    automatic_review_failed = "automatic_review_failed"  #: bank country not supported; offline review possible
    offline_review = "offline_review"  #: finance checks the uploaded bank confirmation letter
    waiting_for_procurement = "waiting_for_procurement"  #: procurement must add the supplier's data first
    under_review = "under_review"  #: finance checks the bank and tax data
    approved = "approved"  #: authenticated; editing it blocks payouts until re-approved
    failed = "failed"  #: refused with a reason; the partner admin edits and resubmits


def supported_bank_countries() -> frozenset[str]:
    raw = setting("supported_bank_countries", DEFAULT_BANK_COUNTRIES, str)
    return frozenset(c.strip().upper() for c in raw.split(",") if c.strip())


def allowed_vat_rates() -> list[str]:
    raw = setting("vat_rates", "0,1,3,6,9,13", str)
    return [r.strip() for r in raw.split(",") if r.strip()]


def escalation_days() -> int:
    return setting("procurement_escalation_days", 14)


# -- field checks ---------------------------------------------------------------
def vat_rate_problem(value: str) -> str | None:
    """The VAT rate is one of the allowed rates, in percent (FAQ 2.1.5)."""
    allowed = allowed_vat_rates()
    text = value.strip().rstrip("%").strip()
    if text not in allowed:
        return f"{value!r} is not an allowed VAT rate; choose one of {', '.join(r + '%' for r in allowed)} (FAQ 2.1.5)"
    return None


def english_text_problem(value: str) -> str | None:
    for ch in value:
        if not (ch.isascii() and (ch.isalnum() or ch in business.PUNCTUATION)):
            return f"contains {ch!r} (U+{ord(ch):04X}); only English letters, digits, spaces and . , & ( ) ' - / allowed"
    return None


def _fields(required: bool) -> tuple[Field, ...]:
    return (
        Field("company_name", "str", required=required, max_length=200, check=business.company_name_problem,
              description="Company name as registered, Chinese or English (FAQ 2.1.2)"),
        Field("legal_entity_country", "str", required=required, check=business.country_problem,
              description="ISO country code where the legal entity is registered (FAQ 2.1.1)"),
        Field("bank_name", "str", required=required, max_length=200),
        Field("bank_country", "str", required=required, check=business.country_problem,
              description="ISO country code of the bank (FAQ 2.1.6)"),
        Field("bank_account_name", "str", required=required, max_length=200,
              description="Account holder name; English when the company name is Chinese and settlement is USD"),
        Field("bank_account_number", "str", required=required, max_length=64, pattern=r"[A-Za-z0-9 -]{4,64}",
              pattern_hint="4 to 64 letters, digits, spaces or '-'"),
        Field("swift_code", "str", required=False, pattern=r"[A-Za-z]{6}[A-Za-z0-9]{2}([A-Za-z0-9]{3})?",
              pattern_hint="a SWIFT/BIC code of 8 or 11 characters"),
        Field("settlement_currency", "choice", required=required, choices=("CNY", "USD")),
        Field("vat_rate_percent", "str", required=required, max_length=8, check=vat_rate_problem,
              description="VAT rate chosen by the partner, percent; payout = incentive x (1 + rate) (FAQ 2.1.5)"),
    )


START = Schema(*_fields(True))
EDIT = Schema(*_fields(False), Field("registered_country", "str", required=False, max_length=8,
                                      description="refused: changeable only through a service ticket"))
OFFLINE = Schema(
    Field("bank_confirmation_letter", "str", max_length=255, pattern=r"[^/\\]+\.(pdf|PDF|jpg|JPG|jpeg|JPEG|png|PNG)",
          pattern_hint="the uploaded letter's file name: a .pdf, .jpg or .png file",
          description="Bank confirmation letter stamped by the bank (FAQ 2.1.6)"),
    Field("note", "text", required=False, max_length=1000),
)


# -- guards -----------------------------------------------------------------------
def bank_account_name_english_for_usd(ctx: Ctx) -> str | None:
    """Chinese company name and USD settlement: the bank account name must be English (FAQ 2.1.2)."""
    if ctx.get("settlement_currency") == "USD" and business.name_is_chinese(ctx.get("company_name", "")):
        problem = english_text_problem(ctx.get("bank_account_name", ""))
        if problem:
            raise ValidationError("bank_account_name", "must be in English when the company name is Chinese and the "
                                  f"settlement currency is USD (FAQ 2.1.2): it {problem}")
    return None


def bank_country_unsupported(ctx: Ctx) -> bool:
    return ctx.data.get("bank_country") not in supported_bank_countries()


def is_procurement_supplier(ctx: Ctx) -> bool:
    return accounts.supplier(ctx.conn, ctx.partner["id"]) is not None


# -- effects --------------------------------------------------------------------
def normalise(ctx: Ctx) -> dict:
    out = {}
    for key in ("legal_entity_country", "bank_country"):
        if ctx.get(key):
            out[key] = accounts.country_code(ctx.get(key), key)
    if ctx.get("vat_rate_percent"):
        out["vat_rate_percent"] = ctx.get("vat_rate_percent").strip().rstrip("%").strip()
    if ctx.get("swift_code"):
        out["swift_code"] = ctx.get("swift_code").upper()
    return out


def start_effect(ctx: Ctx) -> dict:
    business.hold_partner_slot(NAME)(ctx)
    return normalise(ctx)


def record_unsupported_bank(ctx: Ctx) -> dict:
    return {"automatic_review": f"the bank's country, {accounts.country_name(ctx.data['bank_country'])}, is not "
                                "supported by the automatic review (FAQ 2.1.6); upload a bank confirmation letter "
                                "for an offline review, or edit the bank data"}


def record_procurement_wait(ctx: Ctx) -> dict:
    number = accounts.supplier(ctx.conn, ctx.partner["id"])["supplier_number"]
    return {"automatic_review": f"the partner already is procurement supplier {number}; the review waits until "
                                "procurement adds the partner's data, normally one to two weeks (FAQ 2.1.9)",
            "procurement_supplier": number, "waiting_since": ctx.now.isoformat(),
            "escalation_days": escalation_days()}


def record_passed(ctx: Ctx) -> dict:
    return {"automatic_review": "passed"}


def record_letter(ctx: Ctx) -> dict:
    return {"bank_confirmation_letter": ctx.payload["bank_confirmation_letter"],
            "offline_review_requested_at": ctx.now.isoformat()}


def record_failure(ctx: Ctx) -> dict:
    return {"failure_reason": ctx.comment}


def record_approval(ctx: Ctx) -> dict:
    """Snapshot what was approved: the VAT rate used for payouts, and the bank data."""
    rate = (Decimal(ctx.data["vat_rate_percent"]) / 100).normalize()
    snapshot = {k: ctx.data.get(k) for k in BANK_FIELDS}
    return {"approved": {**snapshot, "vat_rate": str(rate), "at": ctx.now.isoformat(), "by": ctx.actor.login},
            "edited_after_approval_at": None, "failure_reason": None}


def apply_edit(ctx: Ctx) -> dict:
    out = {k: v for k, v in ctx.payload.items() if k != "registered_country"}
    out.update(normalise(ctx))
    out.update({"failure_reason": None, "automatic_review": None, "bank_confirmation_letter": None})
    if ctx.state == S.approved:
        out["edited_after_approval_at"] = ctx.now.isoformat()
    return out


def escalation_due(ctx: Ctx) -> datetime:
    """14 days (the setting) after the wait for procurement began."""
    return ctx.now + timedelta(days=escalation_days())


def edited_after_approval(ctx: Ctx) -> bool:
    return ctx.data.get("edited_after_approval_at") == ctx.now.isoformat()


CHECKS = (business.registered_country_matches, bank_account_name_english_for_usd)
REVIEWERS = frozenset({FINANCE, ADMIN})
PROCUREMENT_ROLES = frozenset({PROCUREMENT, ADMIN})
REVIEWED = (S.automatic_review_failed, S.offline_review, S.waiting_for_procurement, S.under_review, S.approved,
            S.failed)

WORKFLOW = Workflow(
    name=NAME,
    title="Payment-information authentication",
    faq="FAQ 2.1",
    description="Bank and tax data: automatic review, procurement wait, offline review, approval; "
                "payouts blocked while edited data awaits approval.",
    states=S,
    initial=S.submitted,
    start_schema=START,
    start_roles={PARTNER_ADMIN},
    start_guards=(business.one_case_per_partner(NAME, "payment-information authentication"), *CHECKS),
    start_effect=start_effect,
    state_descriptions={
        S.submitted: "received; the automatic review runs at once",
        S.automatic_review_failed: "the bank's country is not supported; the partner may upload a bank confirmation "
                                   "letter for an offline review, or edit the bank data",
        S.offline_review: "finance checks the uploaded bank confirmation letter",
        S.waiting_for_procurement: "procurement must add the supplier's data first (normally one to two weeks); "
                                   "escalated to finance after 14 days",
        S.under_review: "finance checks the bank and tax data",
        S.approved: "authenticated; an edit blocks payouts until the new data is approved",
        S.failed: "refused with a reason; the partner admin edits and resubmits",
    },
    transitions=(
        Transition("review_automatically", S.submitted, S.automatic_review_failed, {SYSTEM},
                   when=bank_country_unsupported, effect=record_unsupported_bank, label="bank country not supported"),
        Transition("review_automatically", S.submitted, S.waiting_for_procurement, {SYSTEM},
                   when=is_procurement_supplier, effect=record_procurement_wait, label="procurement supplier"),
        Transition("review_automatically", S.submitted, S.under_review, {SYSTEM}, effect=record_passed),
        Transition("request_offline_review", S.automatic_review_failed, S.offline_review, {PARTNER_ADMIN},
                   payload=OFFLINE, effect=record_letter, authors=True),
        Transition("escalate", S.waiting_for_procurement, None, {SYSTEM}, label="escalation"),
        Transition("add_procurement_data", S.waiting_for_procurement, S.under_review, PROCUREMENT_ROLES),
        Transition("approve", (S.under_review, S.offline_review), S.approved, REVIEWERS, effect=record_approval),
        Transition("fail", (S.under_review, S.offline_review), S.failed, REVIEWERS, comment_required=True,
                   effect=record_failure),
        Transition("edit", REVIEWED, S.submitted, {PARTNER_ADMIN}, payload=EDIT,
                   guards=(business.registered_country_not_edited, business.something_changed,
                           business.on_merged(*CHECKS)),
                   effect=apply_edit, authors=True),
    ),
    timers=(
        Timer(S.submitted, "review_automatically", at=business.at_once, name="automatic_review",
              description="at once (the next heartbeat of the scheduler)"),
        Timer(S.waiting_for_procurement, "escalate", at=escalation_due,
              description="14 days after the wait began (PARTNERFLOW_PROCUREMENT_ESCALATION_DAYS)"),
    ),
    tasks=(
        InboxTask(S.waiting_for_procurement, PROCUREMENT, "Add the supplier's data in the procurement system",
                  due=escalation_due),
        InboxTask(S.waiting_for_procurement, FINANCE,
                  "Escalation: payment authentication is still waiting for procurement",
                  on_event="escalate", name="procurement_overdue", due_working_days=2),
        InboxTask(S.under_review, FINANCE, "Review the partner's bank and tax data", due_working_days=5),
        InboxTask(S.offline_review, FINANCE, "Offline review: check the bank confirmation letter", due_working_days=5),
    ),
    notifications=(
        Notify("payment_authentication/automatic_review_failed", ["partner"], on_enter=S.automatic_review_failed),
        Notify("payment_authentication/waiting_for_procurement", ["partner", "role:procurement"],
               on_enter=S.waiting_for_procurement),
        Notify("payment_authentication/procurement_escalation", ["role:finance", "role:procurement"],
               on_event="escalate"),
        Notify("payment_authentication/offline_review", ["role:finance"], on_enter=S.offline_review),
        Notify("payment_authentication/payouts_blocked", ["partner", "role:finance"], on_event="edit",
               when=edited_after_approval, category="finance"),
        Notify("payment_authentication/approved", ["partner"], on_enter=S.approved, category="finance"),
        Notify("payment_authentication/failed", ["partner"], on_enter=S.failed),
    ),
)


def apply_together(runtime, actor, business_data: dict, payment_data: dict, comment: str | None = None) -> tuple[dict, dict]:
    """Apply for both certifications at once: both cases start in one transaction, or neither (FAQ 2.1)."""
    now = runtime.now()
    with runtime.db.write() as conn:
        bid = runtime.start_in(conn, runtime.registry.get(BUSINESS), dict(business_data), actor, now, comment)
        pid = runtime.start_in(conn, runtime.registry.get(NAME), dict(payment_data), actor, now, comment)
    return runtime.get(bid), runtime.get(pid)


# -- the payout query ---------------------------------------------------------------
def _latest(conn, workflow: str, partner_id: int):
    return conn.execute(select(I.c.id, I.c.state, I.c.data).where(I.c.workflow == workflow, I.c.partner_id == partner_id)
                        .order_by(I.c.id.desc()).limit(1)).first()


def may_be_paid(conn, partner_id: int) -> str | None:
    """None when the partner may be paid (both certifications approved, payouts not blocked), else why not (FAQ 2.1.4, 2.1.7)."""
    reasons = []
    business = _latest(conn, BUSINESS, partner_id)
    if business is None:
        reasons.append("solution-partner certification (business information) has not been applied for")
    elif business.state != APPROVED:
        reasons.append(f"solution-partner certification (business information) is not approved (state: {business.state})")
    payment = _latest(conn, NAME, partner_id)
    if payment is None:
        reasons.append("payment-information authentication has not been applied for")
    elif payment.state != APPROVED:
        edited = (payment.data or {}).get("edited_after_approval_at")
        if edited:
            reasons.append(f"bank data edited on {_local(conn, partner_id, edited)}; "
                           "payouts blocked until the new data is approved")
        else:
            reasons.append(f"payment-information authentication is not approved (state: {payment.state})")
    return "; ".join(reasons) or None


def vat_rate(conn, partner_id: int) -> Decimal | None:
    """The VAT rate (a fraction: 0.06 for 6 %) of the partner's approved payment information, or None (FAQ 2.1.5).

    Payout = incentive + incentive x rate (see `payout_with_vat`). While edited
    data awaits approval, the rate last approved is returned.
    """
    payment = _latest(conn, NAME, partner_id)
    if payment is None:
        return None
    approved = (payment.data or {}).get("approved") or {}
    rate = approved.get("vat_rate")
    return Decimal(rate) if rate is not None else None


def payout_with_vat(incentive: Decimal, rate: Decimal) -> Decimal:
    """Incentive plus incentive times the VAT rate, to the cent (FAQ 2.1.5)."""
    return (incentive + incentive * rate).quantize(Decimal("0.01"))


def _local(conn, partner_id: int, iso: str) -> str:
    row = conn.execute(select(P.c.region, P.c.timezone).where(P.c.id == partner_id)).first()
    cal = calendar_for(row.region if row else None, row.timezone if row else None)
    return cal.format(datetime.fromisoformat(iso))


# -- demo and command line -------------------------------------------------------------
def seed_demo(runtime, people) -> None:
    """ACME waits for procurement (it is a supplier already); NORD is approved, then edits its bank data (payouts blocked)."""
    business.ensure_demo_partner_accounts(runtime, people)
    now = runtime.now()
    with runtime.db.write() as conn:
        if accounts.supplier(conn, people.partners["ACME"]["id"]) is None:
            accounts.add_supplier(conn, "ACME", "SUP-100234", now)
    runtime.start(NAME, {"company_name": "艾克米云服务有限公司", "legal_entity_country": "CN",
                         "bank_name": "Bank of China Shanghai Branch", "bank_country": "CN",
                         "bank_account_name": "Acme Cloud Services Co Ltd", "bank_account_number": "6217 0000 1234 5678",
                         "settlement_currency": "USD", "vat_rate_percent": "6"}, people.actor("acme-admin"))
    nord = runtime.start(NAME, {"company_name": "Nordlicht Systems GmbH", "legal_entity_country": "DE",
                                "bank_name": "Berliner Sparkasse", "bank_country": "DE",
                                "bank_account_name": "Nordlicht Systems GmbH",
                                "bank_account_number": "DE89370400440532013000", "swift_code": "BELADEBE",
                                "settlement_currency": "USD", "vat_rate_percent": "0"}, people.actor("nord-admin"))
    runtime.drain()
    runtime.fire(nord["id"], "approve", people.actor("fiona"), comment="IBAN verified")
    runtime.fire(nord["id"], "edit", people.actor("nord-admin"), {"bank_account_number": "DE02120300000000202051"},
                 comment="new house bank account")
    runtime.drain()


@click.group("authentication")
def CLI() -> None:
    """Business- and payment-information authentication (FAQ 2.1)."""


@CLI.command("apply")
@click.option("--business", "business_text", required=True, help="Business information as JSON (or @file.json).")
@click.option("--payment", "payment_text", required=True, help="Payment information as JSON (or @file.json).")
@click.option("--as", "login", envvar="PARTNERFLOW_USER", required=True)
@handle_errors
def cli_apply(business_text: str, payment_text: str, login: str) -> None:
    """Apply for both certifications together (both cases or neither)."""
    rt = open_runtime()
    b, p = apply_together(rt, rt.actor(login), json_arg(business_text, "business"), json_arg(payment_text, "payment"))
    rt.drain()
    for case in (rt.get(b["id"]), rt.get(p["id"])):
        click.echo(f"case {case['id']} {case['workflow']}: {case['state']}")


@CLI.command("status")
@click.argument("partner")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def cli_status(partner: str, as_json: bool) -> None:
    """May the partner be paid? The reason when not, and the approved VAT rate."""
    rt = open_runtime()
    with rt.db.read() as conn:
        row = conn.execute(select(P.c.id).where(P.c.code == partner)).first()
        if row is None:
            raise ValidationError("partner", f"no partner with code {partner!r}")
        reason, rate = may_be_paid(conn, row.id), vat_rate(conn, row.id)
    if as_json:
        click.echo(json.dumps({"partner": partner, "may_be_paid": reason is None, "reason": reason,
                               "vat_rate": str(rate) if rate is not None else None}))
        return
    click.echo(f"{partner}: " + ("may be paid" if reason is None else f"may not be paid: {reason}")
               + (f"; VAT rate {rate * 100:g}%" if rate is not None else ""))
