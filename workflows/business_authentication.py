"""Solution-partner certification: business-information authentication (LIFECYCLES section 1; FAQ 2.1).

Rules enforced:
- Two separate certifications exist, this one (business information) and
  payment-information authentication (`workflows/payment_authentication.py`);
  a partner applies for them together (`payment_authentication.apply_together`,
  CLI ``partnerflow authentication apply``: both cases or neither) or one at a
  time (``partnerflow start``). Incentives are paid only when both are
  approved (FAQ 2.1.4: `payment_authentication.may_be_paid`).
- One business-information case per partner; later changes are edits of it.
- At submission and at every edit (FAQ 2.1.1, 2.1.2), refused with the field
  named and nothing saved:
  - the account's registered country (the partner account's, from the
    accounts table; else the partner admin's account) must equal the legal
    entity's registered country (`registered_country_matches`);
  - the company name must be Chinese or English text only
    (`company_name_problem`: CJK ideographs, ASCII letters and digits, spaces
    and common punctuation).
- Review (FAQ 2.1): submitted -> (automatic review by the system, at once)
  -> under review -> approved by an ecosystem manager, or failed with a
  reason (a comment is required); a failed or approved case is edited and
  resubmitted by the partner admin. The automatic review re-checks the
  registered country, which a service ticket may have changed meanwhile.
- The registered country cannot be changed by editing (FAQ 2.1.10): an edit
  naming ``registered_country`` is refused with the way to do it: a
  ``service_ticket`` of type ``registered_country_change`` stating the
  reason; while it is processed an operator applies it
  (`engine.accounts.change_registered_country`, ``partnerflow accounts
  change-country --ticket N``), which checks the ticket's type, state,
  country and partner and records the change with the ticket and reason.

Also here: `SUPPLIERS_CLI` (``partnerflow suppliers add``), the procurement
suppliers that payment-information review waits for (FAQ 2.1.9).
"""
from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select

from engine import accounts
from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.errors import ValidationError
from engine.locks import acquire
from engine.models import Instance
from engine.roles import ADMIN, ECOSYSTEM_MANAGER, PARTNER_ADMIN, SYSTEM
from engine.schema import Field, Schema

I = Instance.__table__
NAME = "business_authentication"
#: Cases exist once per partner: the lock is held for good.
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


class S(StrEnum):
    submitted = "submitted"  #: received; the automatic review runs at once
    under_review = "under_review"  #: an ecosystem manager checks the business information
    approved = "approved"  #: certified (may be edited, which sends it back to review)
    failed = "failed"  #: refused with a reason; the partner admin edits and resubmits


# -- shared checks (also used by payment-information authentication) ---------------
PUNCTUATION = set(" .,&()'-/+#@:;") | set("（）·、，。：；－—《》“”‘’")


def is_chinese(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def company_name_problem(name: str) -> str | None:
    """The company name is Chinese or English text only (FAQ 2.1.2)."""
    for ch in name:
        if is_chinese(ch) or (ch.isascii() and ch.isalnum()) or ch in PUNCTUATION:
            continue
        return (f"contains {ch!r} (U+{ord(ch):04X}), which is neither Chinese nor English; the company name "
                "must be Chinese or English text only (FAQ 2.1.2)")
    if not any(is_chinese(ch) or (ch.isascii() and ch.isalpha()) for ch in name):
        return "must contain Chinese characters or English letters (FAQ 2.1.2)"
    return None


def name_is_chinese(name: str) -> bool:
    return any(is_chinese(ch) for ch in name or "")


def country_problem(value: str) -> str | None:
    try:
        accounts.country_code(value)
    except ValidationError as exc:
        return exc.reason
    return None


def account_country(ctx: Ctx) -> tuple[str, str]:
    """(registered country, whose) of the partner's account: the partner account, else the admin's account."""
    partner = ctx.partner or {}
    acc = accounts.registered_account(ctx.conn, partner) if partner else None
    if acc is None:
        raise ValidationError("partner", f"partner {partner.get('code')} has no account on record to compare the "
                              "registered country with; add it with `partnerflow accounts add --kind partner "
                              f"--partner {partner.get('code')} ...`")
    return acc["registered_country"], acc["login_id"]


def registered_country_matches(ctx: Ctx) -> str | None:
    """The account's registered country equals the legal entity's registered country (FAQ 2.1.1)."""
    legal = accounts.country_code(ctx.get("legal_entity_country"), "legal_entity_country")
    registered, login = account_country(ctx)
    if registered != legal:
        return (f"the account's registered country, {accounts.country_name(registered)} (account {login}), differs "
                f"from the legal entity's registered country, {accounts.country_name(legal)} (FAQ 2.1.1); the "
                "registered country can be changed only through a service ticket stating the reason (FAQ 2.1.10)")
    return None


def registered_country_not_edited(ctx: Ctx) -> str | None:
    """The registered country is not changed in the normal flow (FAQ 2.1.10)."""
    if "registered_country" in ctx.payload:
        return ("the registered country cannot be changed by editing (FAQ 2.1.10): open a service ticket of type "
                "registered_country_change stating the reason; an operator then changes it "
                "(partnerflow accounts change-country --ticket N)")
    return None


def something_changed(ctx: Ctx) -> str | None:
    changed = {k for k, v in ctx.payload.items() if k != "registered_country" and ctx.data.get(k) != v}
    if not changed and "registered_country" not in ctx.payload:
        return "the edit changes nothing: give at least one field with a new value"
    return None


def one_case_per_partner(workflow: str, title: str):
    def guard(ctx: Ctx) -> str | None:
        row = ctx.conn.execute(select(I.c.id, I.c.state).where(I.c.workflow == workflow,
                                                              I.c.partner_id == ctx.partner["id"])).first()
        if row is not None:
            return (f"partner {ctx.partner['code']} already has a {title} (case {row.id}, state {row.state}); "
                    "edit that case instead")
        return None

    guard.__name__ = "one_case_per_partner"
    return guard


def hold_partner_slot(workflow: str):
    """A permanent subject lock per partner, so two racing submissions cannot both create a case."""
    def effect(ctx: Ctx) -> dict:
        acquire(ctx.conn, f"{workflow}:{ctx.partner['code']}", f"case:{uuid.uuid4().hex}", FOREVER, ctx.now,
                message=f"partner {ctx.partner['code']} is already applying; edit the existing case")
        return {}

    return effect


def merged_ctx(ctx: Ctx) -> Ctx:
    """The guards of an edit look at the data as it would be after the edit."""
    return Ctx(**{**ctx.__dict__, "data": {**ctx.data, **{k: v for k, v in ctx.payload.items()}}, "payload": {}})


def on_merged(*guards):
    def guard(ctx: Ctx) -> str | None:
        merged = merged_ctx(ctx)
        for g in guards:
            reason = g(merged)
            if reason:
                return reason
        return None

    guard.__name__ = "+".join(g.__name__ for g in guards)
    return guard


# -- schemas --------------------------------------------------------------------
def _fields(required: bool) -> tuple[Field, ...]:
    return (
        Field("company_name", "str", required=required, max_length=200, check=company_name_problem,
              description="Legal name of the company, Chinese or English (FAQ 2.1.2)"),
        Field("legal_entity_country", "str", required=required, check=country_problem,
              description="ISO country code where the legal entity is registered (FAQ 2.1.1)"),
        Field("registration_number", "str", required=required, max_length=64,
              description="Business registration number (unified social credit code or equivalent)"),
        Field("address", "str", required=False, max_length=300),
        Field("business_scope", "text", required=False, max_length=2000),
    )


START = Schema(*_fields(True))
EDIT = Schema(*_fields(False), Field("registered_country", "str", required=False, max_length=8,
                                      description="refused: changeable only through a service ticket"))


def at_once(ctx: Ctx) -> datetime:
    """The automatic review is due as soon as the case is submitted."""
    return ctx.now


def normalise_countries(ctx: Ctx) -> dict:
    out = {}
    for key in ("legal_entity_country",):
        if ctx.get(key):
            out[key] = accounts.country_code(ctx.get(key), key)
    return out


def start_effect(ctx: Ctx) -> dict:
    hold_partner_slot(NAME)(ctx)
    return normalise_countries(ctx)


def apply_edit(ctx: Ctx) -> dict:
    out = {k: v for k, v in ctx.payload.items() if k != "registered_country"}
    out.update(normalise_countries(ctx))
    out["failure_reason"] = None
    if ctx.state == S.approved:
        out["edited_after_approval_at"] = ctx.now.isoformat()
    return out


def record_failure(ctx: Ctx) -> dict:
    return {"failure_reason": ctx.comment}


def record_approval(ctx: Ctx) -> dict:
    return {"approved_at": ctx.now.isoformat(), "approved_by": ctx.actor.login, "edited_after_approval_at": None,
            "failure_reason": None}


def country_mismatch_now(ctx: Ctx) -> bool:
    try:
        return registered_country_matches(ctx) is not None
    except ValidationError:
        return True


def record_automatic_failure(ctx: Ctx) -> dict:
    try:
        reason = registered_country_matches(ctx)
    except ValidationError as exc:
        reason = exc.message
    return {"failure_reason": f"automatic review: {reason}"}


REVIEWERS = frozenset({ECOSYSTEM_MANAGER, ADMIN})

WORKFLOW = Workflow(
    name=NAME,
    title="Solution-partner certification (business information)",
    faq="FAQ 2.1",
    description="Business information: submitted -> under review -> approved, or failed with a reason.",
    states=S,
    initial=S.submitted,
    start_schema=START,
    start_roles={PARTNER_ADMIN},
    start_guards=(one_case_per_partner(NAME, "solution-partner certification (business information)"),
                  registered_country_matches),
    start_effect=start_effect,
    state_descriptions={
        S.submitted: "received; the automatic review runs at once",
        S.under_review: "an ecosystem manager checks the business information",
        S.approved: "certified; an edit sends it back to review",
        S.failed: "refused with a reason; the partner admin edits and resubmits",
    },
    transitions=(
        Transition("review_automatically", S.submitted, S.failed, {SYSTEM}, when=country_mismatch_now,
                   effect=record_automatic_failure, label="registered countries differ"),
        Transition("review_automatically", S.submitted, S.under_review, {SYSTEM}),
        Transition("approve", S.under_review, S.approved, REVIEWERS, effect=record_approval),
        Transition("fail", S.under_review, S.failed, REVIEWERS, comment_required=True, effect=record_failure),
        Transition("edit", (S.under_review, S.approved, S.failed), S.submitted, {PARTNER_ADMIN}, payload=EDIT,
                   guards=(registered_country_not_edited, something_changed,
                           on_merged(registered_country_matches)),
                   effect=apply_edit, authors=True),
    ),
    timers=(
        Timer(S.submitted, "review_automatically", at=at_once, name="automatic_review",
              description="at once (the next heartbeat of the scheduler)"),
    ),
    tasks=(
        InboxTask(S.under_review, ECOSYSTEM_MANAGER, "Review the partner's business information", due_working_days=5),
    ),
    notifications=(
        Notify("business_authentication/approved", ["partner"], on_enter=S.approved),
        Notify("business_authentication/failed", ["partner"], on_enter=S.failed),
    ),
)


def ensure_demo_partner_accounts(runtime, people) -> None:
    """The demo partners' own accounts (registered in China and Germany), created once."""
    now = runtime.now()
    with runtime.db.write() as conn:
        for code, country in (("ACME", "CN"), ("NORD", "DE")):
            partner = people.partners[code]
            if accounts.partner_account(conn, partner["id"]) is None:
                accounts.add_account(conn, {"login_id": f"{code.lower()}-partner", "name": partner["name"],
                                            "kind": "partner", "partner": code, "registered_country": country,
                                            "email": partner.get("contact_email")}, now)


def seed_demo(runtime, people) -> None:
    """A business-information case under review for ACME, an approved one for NORD."""
    ensure_demo_partner_accounts(runtime, people)
    runtime.start(NAME, {"company_name": "Acme Cloud Services Co., Ltd.", "legal_entity_country": "CN",
                         "registration_number": "91310000MA1FL0XX1X"}, people.actor("acme-admin"))
    nord = runtime.start(NAME, {"company_name": "Nordlicht Systems GmbH", "legal_entity_country": "DE",
                                "registration_number": "HRB 123456"}, people.actor("nord-admin"))
    runtime.drain()
    runtime.fire(nord["id"], "approve", people.actor("alice"), comment="Commercial register extract checked")


CLI = accounts.SUPPLIERS_CLI
