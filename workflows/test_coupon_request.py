"""Test-coupon requests (LIFECYCLES section 8; FAQ 4.2.1, 4.1.1 item 4, 5.6.9-5.6.11, 5.6.14).

Rules enforced (each refusal names the field):
- solution: required, at most 200 characters.
- amount: money above 0, in CNY.
- description: required, at most 1,000 characters.
- proof_files: 1 to 20 files, each ``{"name", "size_bytes"}``; the type (file
  extension) is one of ``PROOF_FILE_TYPES``; at most 21 MB (22,020,096 bytes)
  each; names free of ``! ; ? " @ # $ % ^ & * - > |``.
- resource_config_link: an http(s) link of at most 1,000 characters.
- resource_start must be before resource_end (dates of resource use).
- Cumulative amount (FAQ 4.1.1 item 4, 5.6.14): the partner's requests of a
  calendar year (partner's zone), counting pending, issued, exhausted and
  expired ones, plus this one, must stay within the tier's limit. Exactly at
  the limit is allowed, 0.01 over is refused with the remaining amount.
  LIFECYCLES.md names the rule but gives no figures, so the limits are
  settings: ``PARTNERFLOW_TEST_COUPON_LIMIT_<TIER>`` (CNY per calendar year,
  for example ``PARTNERFLOW_TEST_COUPON_LIMIT_ADVANCED=30000``). The defaults
  in ``TIER_LIMITS`` below are placeholders for a deployment to replace; a
  tier without a limit of its own uses the Standard one.

  ========  =============
  tier      limit (CNY)
  ========  =============
  Standard  10,000.00
  Advanced  30,000.00
  Premier   60,000.00
  Core      100,000.00
  ========  =============
- approve -> issued: an ecosystem manager's approval issues the coupon (code
  ``TC-<case>``, balance = amount) valid until the end of resource_end.
- Consumption (``record_consumption``, by operations, finance or the system)
  is stored in the ``consumption`` table with source ``test_coupon``, so it
  never counts as revenue (FAQ 5.6.11; `engine.incentives.revenue`). It may
  not exceed the balance; reaching zero exhausts the coupon.
- Low balance (FAQ 5.6.9, 5.6.10): when the balance falls to or below each
  threshold of ``PARTNERFLOW_TEST_COUPON_WARNING_PERCENTS`` (default
  ``50,20,10``, percent of the issued amount) the partner is emailed once per
  threshold.
"""
from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select

from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.errors import ValidationError
from engine.incentives import consumed, record_consumption
from engine.models import Instance
from engine.roles import ADMIN, ECOSYSTEM_MANAGER, FINANCE, OPERATIONS_MANAGER, PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.schema import Field, Schema
from engine.settings import setting

I = Instance.__table__
NAME = "test_coupon_request"

MAX_FILE_BYTES = 21 * 1024 * 1024
PROOF_FILE_TYPES = ("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "jpg", "jpeg", "png", "txt", "zip", "rar")
FORBIDDEN_NAME_CHARS = '!;?"@#$%^&*->|'
#: Placeholder defaults of the cumulative test-coupon amount per calendar year, CNY (FAQ 4.1.1 item 4, 5.6.14);
#: LIFECYCLES.md gives no figures: set PARTNERFLOW_TEST_COUPON_LIMIT_<TIER>.
TIER_LIMITS = {"Standard": Decimal("10000.00"), "Advanced": Decimal("30000.00"), "Premier": Decimal("60000.00"),
               "Core": Decimal("100000.00")}
COUNTED = ("submitted", "issued", "exhausted", "expired")


class S(StrEnum):
    submitted = "submitted"  #: waiting for an ecosystem manager
    issued = "issued"  #: approved and issued; consumption is recorded against its balance
    exhausted = "exhausted"  #: balance used up (final)
    expired = "expired"  #: the resource-use period ended (final)
    rejected = "rejected"  #: refused with a reason (final)
    withdrawn = "withdrawn"  #: withdrawn by the partner before a decision (final)


def tier_limit(tier: str) -> Decimal:
    return setting(f"test_coupon_limit_{tier.lower()}", TIER_LIMITS.get(tier, TIER_LIMITS["Standard"]), Decimal)


def warning_percents() -> list[int]:
    def parse(text: str) -> list[int]:
        values = sorted({int(x) for x in text.split(",") if x.strip()}, reverse=True)
        if any(not 0 < v < 100 for v in values):
            raise ValueError("percentages must be between 1 and 99")
        return values

    return setting("test_coupon_warning_percents", [50, 20, 10], parse)


# -- field checks --------------------------------------------------------------------------------
def file_name_ok(name: str) -> str | None:
    bad = sorted({c for c in name if c in FORBIDDEN_NAME_CHARS})
    if bad:
        return f"{name!r} contains {' '.join(bad)}; file names may not contain {' '.join(FORBIDDEN_NAME_CHARS)}"
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in PROOF_FILE_TYPES:
        return f"{name!r} is not an accepted type ({', '.join(PROOF_FILE_TYPES)})"
    return None


def file_size_ok(size: int) -> str | None:
    if size > MAX_FILE_BYTES:
        return f"is {size} bytes; at most 21 MB ({MAX_FILE_BYTES} bytes) per file"
    return None


def link_ok(link: str) -> str | None:
    if not re.match(r"^https?://[^\s/$.?#][^\s]*$", link):
        return "must be an http:// or https:// link"
    return None


PROOF_FILE = Schema(
    Field("name", "str", max_length=255, check=file_name_ok),
    Field("size_bytes", "int", minimum=1, check=file_size_ok),
)
START = Schema(
    Field("solution", "str", max_length=200),
    Field("amount", "money", minimum=Decimal("0.01")),
    Field("description", "text", max_length=1000, min_length=1),
    Field("proof_files", "list", items=PROOF_FILE, min_items=1, max_items=20),
    Field("resource_config_link", "str", max_length=1000, check=link_ok),
    Field("resource_start", "date"),
    Field("resource_end", "date"),
)
CONSUME = Schema(Field("amount", "money", minimum=Decimal("0.01")), Field("note", "str", required=False, max_length=200))


# -- guards --------------------------------------------------------------------------------------
def start_before_end(ctx: Ctx) -> str | None:
    if ctx.date("resource_start") >= ctx.date("resource_end"):
        raise ValidationError("resource_end", f"{ctx.data['resource_end']} must be after resource_start "
                                              f"{ctx.data['resource_start']}")
    return None


def requested_this_year(ctx: Ctx, year: int, exclude: int | None = None) -> Decimal:
    total = Decimal("0")
    query = select(I.c.id, I.c.data, I.c.created_at).where(I.c.workflow == NAME, I.c.partner_id == ctx.partner["id"],
                                                           I.c.state.in_(COUNTED))
    for row in ctx.conn.execute(query):
        if row.id != exclude and ctx.calendar.local_date(row.created_at).year == year:
            total += Decimal(row.data["amount"])
    return total


def within_tier_limit(ctx: Ctx) -> str | None:
    """Cumulative requested amount of the year within the tier's limit (FAQ 4.1.1 item 4, 5.6.14)."""
    tier = ctx.partner.get("tier") or "Standard"
    limit = tier_limit(tier)
    year = ctx.calendar.local_date(ctx.now).year
    already = requested_this_year(ctx, year, exclude=ctx.instance_id)
    amount = ctx.money("amount")
    if already + amount > limit:
        return (f"test-coupon requests of {year} would total CNY {already + amount}, above the {tier} tier limit of "
                f"CNY {limit} (already requested {already}; remaining {max(limit - already, Decimal('0.00'))})")
    return None


def within_balance(ctx: Ctx) -> str | None:
    balance = Decimal(ctx.data["balance"])
    if ctx.money("amount") > balance:
        return f"consumption of {ctx.money('amount')} exceeds the coupon's remaining balance of {balance}"
    return None


# -- effects -------------------------------------------------------------------------------------
def issue(ctx: Ctx) -> dict:
    return {"coupon_code": f"TC-{ctx.instance_id}", "balance": ctx.data["amount"], "issued_at": ctx.now.isoformat(),
            "valid_until": ctx.calendar.end_of_day(ctx.date("resource_end")).isoformat(), "warned": [],
            "warning": None}


def valid_until(ctx: Ctx):
    return ctx.instant("valid_until")


def consume(ctx: Ctx) -> dict:
    """Record the consumption (never revenue) and warn once per low-balance threshold crossed."""
    amount = ctx.money("amount")
    record_consumption(ctx.conn, partner_id=ctx.partner["id"], source="test_coupon", amount=amount, currency="CNY",
                       at=ctx.now, by=ctx.actor.login, instance_id=ctx.instance_id)
    issued = Decimal(ctx.data["amount"])
    balance = (issued - consumed(ctx.conn, ctx.instance_id)).quantize(Decimal("0.01"))
    warned = list(ctx.data.get("warned") or [])
    crossed = [p for p in warning_percents() if balance * 100 <= issued * p and p not in warned]
    return {"balance": str(balance), "warned": warned + crossed, "warning": min(crossed) if crossed else None}


def uses_up_balance(ctx: Ctx) -> bool:
    return ctx.money("amount") >= Decimal(ctx.data["balance"])


PARTNER = frozenset({PARTNER_ADMIN, PARTNER_MEMBER})
ECO = frozenset({ECOSYSTEM_MANAGER, ADMIN})
METER = frozenset({OPERATIONS_MANAGER, FINANCE, ADMIN, SYSTEM})

WORKFLOW = Workflow(
    name=NAME,
    title="Test coupon request",
    faq="FAQ 4.2.1, 4.1.1 item 4, 5.6.9-5.6.11, 5.6.14",
    description="Field rules, cumulative tier limit, approve -> issued, consumption and low-balance warnings.",
    states=S,
    initial=S.submitted,
    final=(S.exhausted, S.expired, S.rejected, S.withdrawn),
    start_schema=START,
    start_roles=PARTNER,
    start_guards=(start_before_end, within_tier_limit),
    transitions=(
        Transition("approve", S.submitted, S.issued, ECO, guards=(within_tier_limit,), effect=issue, four_eyes=True),
        Transition("reject", S.submitted, S.rejected, ECO, comment_required=True),
        Transition("withdraw", S.submitted, S.withdrawn, PARTNER),
        Transition("record_consumption", S.issued, S.exhausted, METER, payload=CONSUME, when=uses_up_balance,
                   guards=(within_balance,), effect=consume),
        Transition("record_consumption", S.issued, None, METER, payload=CONSUME, guards=(within_balance,),
                   effect=consume, label="consumption"),
        Transition("expire", S.issued, S.expired, {SYSTEM}, label="resource use ended"),
    ),
    timers=(Timer(S.issued, "expire", at=valid_until, description="end of resource_end, partner's zone"),),
    tasks=(InboxTask(S.submitted, ECOSYSTEM_MANAGER, "Decide on the test coupon request", due_working_days=5,
                     amount_field="amount"),),
    notifications=(
        Notify("test_coupon_request/submitted", ["role:ecosystem_manager"], on_enter=S.submitted),
        Notify("test_coupon_request/issued", ["partner"], on_enter=S.issued),
        Notify("test_coupon_request/rejected", ["partner"], on_enter=S.rejected),
        Notify("test_coupon_request/low_balance", ["partner"], on_event="record_consumption",
               when=lambda ctx: ctx.data.get("warning") is not None and ctx.state == S.issued),
        Notify("test_coupon_request/exhausted", ["partner"], on_enter=S.exhausted),
        Notify("test_coupon_request/expired", ["partner"], on_enter=S.expired),
    ),
)


def requested_total(conn, partner_id: int) -> Decimal:
    """All test-coupon amounts ever requested and counted by a partner (reporting)."""
    rows = conn.execute(select(I.c.data).where(I.c.workflow == NAME, I.c.partner_id == partner_id,
                                               I.c.state.in_(COUNTED)))
    return sum((Decimal(r.data["amount"]) for r in rows), Decimal("0"))

