"""Shared pieces of the MDF lifecycles: activity facts, the freeze rule, expense categories.

Not a lifecycle itself (the registry skips modules starting with ``_``).
"""
from __future__ import annotations

import unicodedata
from datetime import datetime
from decimal import Decimal

from engine.calendar import BusinessCalendar
from engine.definition import Ctx, Transition
from engine.mdf import EXPENSE_CATEGORIES, NON_REIMBURSABLE, freeze_state, frozen_reason
from engine.roles import SYSTEM
from engine.schema import Field, Schema


# ----------------------------------------------------------- activities
def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def first_start(activities: list[dict]) -> datetime:
    """When the first activity of an application starts."""
    return min(instant(a["starts_at"]) for a in activities)


def last_end(activities: list[dict]) -> datetime:
    """When the last activity of an application ends."""
    return max(instant(a["ends_at"]) for a in activities)


def billing_cycle(cal: BusinessCalendar, activities: list[dict]) -> str:
    """The activity's billing cycle: the month ("YYYY-MM", partner's time zone) in which the last activity ends.

    Bills of this cycle or earlier freeze the MDF (FAQ 4.4.10); with several
    activities this is the latest month, so an unpaid bill of any activity's
    month or earlier freezes the application.
    """
    return cal.local_date(last_end(activities)).strftime("%Y-%m")


def quarter(cal: BusinessCalendar, value: str) -> str:
    day = cal.local_date(instant(value))
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def normalise_name(text: str) -> str:
    """Compare names as printed: NFKC (full-width brackets and letters folded), whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


# -------------------------------------------------------------- expenses
def category_check(value: str) -> str | None:
    """An expense category must be a known one; the FAQ 4.4.5 non-reimbursable ones are refused by name."""
    if value in NON_REIMBURSABLE:
        return (f"'{value}' ({NON_REIMBURSABLE[value]}) is never reimbursable from MDF (FAQ 4.4.5); "
                "remove this expense item")
    if value not in EXPENSE_CATEGORIES:
        return f"{value!r} is not an expense category; use one of: {', '.join(EXPENSE_CATEGORIES)}"
    return None


CATEGORY = Field("category", "str", max_length=64, check=category_check,
                 description="Expense category: " + ", ".join(EXPENSE_CATEGORIES)
                 + ". Never reimbursable (refused): " + ", ".join(NON_REIMBURSABLE))


# ---------------------------------------------------------------- freeze
FREEZE = Schema(Field("bills", "list", items=Field("bill", "json"), min_items=1,
                      description="The unpaid bills that freeze this case"))


def _retag_open_tasks(ctx: Ctx, frozen: dict | None) -> None:
    """Show the freeze (or its end) on the case's open inbox tasks at once."""
    from sqlalchemy import select, update

    from engine.models import Task

    tk = Task.__table__
    reason = frozen_reason(frozen)
    for t in ctx.conn.execute(select(tk.c.id, tk.c.flags).where(tk.c.instance_id == ctx.instance_id,
                                                                 tk.c.status == "open")):
        flags = [f for f in (t.flags or []) if not f.startswith("frozen: ")]
        if reason:
            flags.append(f"frozen: {reason}")
        ctx.conn.execute(update(tk).where(tk.c.id == t.id).values(flags=flags))


def record_freeze(ctx: Ctx) -> dict:
    frozen = {"bills": ctx.payload["bills"], "since": ctx.now.isoformat()}
    _retag_open_tasks(ctx, frozen)
    return {"frozen": frozen}


def record_unfreeze(ctx: Ctx) -> dict:
    _retag_open_tasks(ctx, None)
    return {"frozen": None, "unfrozen_at": ctx.now.isoformat()}


def freeze_transitions(states) -> tuple[Transition, ...]:
    """``freeze`` / ``unfreeze``: internal events fired by the bill service (FAQ 4.4.10)."""
    return (
        Transition("freeze", states, None, {SYSTEM}, payload=FREEZE, effect=record_freeze,
                   label="unpaid bills in the activity's cycle or earlier"),
        Transition("unfreeze", states, None, {SYSTEM}, effect=record_unfreeze, label="those bills are paid"),
    )


def current_freeze(ctx: Ctx, cycle: str) -> dict:
    """Case data for a case entering (or changing) billing cycle: the cycle and any freeze its bills cause now."""
    bills = freeze_state(ctx.conn, ctx.partner["id"] if ctx.partner else None, cycle)
    return {"billing_cycle": cycle,
            "frozen": {"bills": bills, "since": ctx.now.isoformat()} if bills else None}


def not_frozen(ctx: Ctx) -> str | None:
    """Frozen MDF cannot be approved or paid (FAQ 4.4.10).

    Checked against the bills as they are now (not only the case's recorded freeze), so a bill recorded
    concurrently with the case's start still blocks the approval or payment.
    """
    live = freeze_state(ctx.conn, ctx.partner["id"] if ctx.partner else None, ctx.data.get("billing_cycle"))
    reason = frozen_reason({"bills": live})
    if reason:
        done = {"approve": "approved", "pay": "paid"}.get(ctx.event or "", ctx.event)
        return (f"this MDF {ctx.workflow.name.replace('mdf_', '')} is frozen (FAQ 4.4.10): {reason} in its billing "
                f"cycle {ctx.data.get('billing_cycle')} or earlier; it cannot be {done} until they are paid")
    return None


def freeze_flags(ctx: Ctx) -> list[str]:
    reason = frozen_reason(ctx.data.get("frozen"))
    return [f"frozen: {reason}"] if reason else []


def money(value) -> Decimal:
    return Decimal(str(value))
