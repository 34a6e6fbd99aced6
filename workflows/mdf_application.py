"""Market Development Fund application (LIFECYCLES section 5; FAQ 4.4, 4.1.1 item 13).

draft -> submitted -> approved -> activity_running -> activity_ended, or
rejected (with a reason), withdrawn by the partner, or expired when the
activity starts before a decision.

Rules enforced:
- FAQ 4.4.1 (guard ``within_yearly_cap``): yearly cap per partner in USD:
  Distribution 50,000; Cloud Solution Provider Standard 5,000, Advanced
  15,000, Premier 30,000, Core 50,000. Counted: the amounts of the partner's
  applications that are pending (submitted, awaiting re-approval) or approved
  (approved, running, ended) for activities in the same calendar year (the
  year of the first activity's start in the partner's time zone). A refusal
  states the cap, what is used and what remains. MDF amounts are in USD, the
  cap's currency.
- FAQ 4.4.1 (``partner_has_released_solution``): only partners with a
  released solution (`partnerflow solutions add/release`) may apply; a named
  solution must be one of them.
- FAQ 4.4.3: each activity's type is one of the twelve types
  (`engine.mdf.ACTIVITY_TYPES`); FAQ 4.4.2: each activity names its time,
  place, audience and form, and its expense items with amounts and categories.
- FAQ 4.4.5 (``CATEGORY`` check, ``gifts_within_cny_200``): the
  non-reimbursable categories (gifts not for marketing, vendor products and
  coupons, tickets to the vendor's mega events, entertainment, cash cards,
  profit-making association fees, personal items, device assets, sales
  software) are refused by name; a marketing gift states its value per unit
  in CNY (``unit_value_cny``; the rule is in CNY, so no exchange rate is
  involved) and, with ``heads``, the value per head (units x unit value /
  heads): above CNY 200.00 either way is refused.
- FAQ 4.4.2 (``submitted_10_working_days_before``): submitted at least
  ``PARTNERFLOW_MDF_MIN_WORKING_DAYS`` (default 10) working days before the
  first activity starts. Counting rule: take the local start day of the first
  activity in the partner's time zone; count back that many working days of
  the partner's region (the start day itself does not count; weekends and
  public holidays are skipped, adjusted working weekends count); the day
  reached is the last day to submit, all of it (until 23:59:59 local).
  Equivalently, the working days from the submission day (inclusive) to the
  start day (exclusive) must be at least 10.
- FAQ 4.4.2 (``activity_not_started``): never submitted after the activity
  started; approved before it (``approved_before_activity``): a decision
  still pending when the first activity starts expires the application
  (timer ``lapse``).
- FAQ 4.4.2 (event ``change``): changing the time, place, audience or form of
  an approved activity, before it starts, sends the application back for
  approval (state pending_reapproval, a new inbox task for the MDF owner);
  it must be re-approved before the activity starts or it expires. Expenses
  and types cannot change after approval (withdraw and apply again).
- FAQ 4.4.7 (``activities_of_one_quarter_alike``): one application may cover
  several activities of one calendar quarter (start and end, partner's time
  zone) with the same audience, type and approving department; a refusal
  names which differs.
- Four-eyes: whoever started, edited, submitted or changed the application
  cannot approve or reject it (Transition ``four_eyes``).
- Timers: approved -> activity_running at the first activity's start;
  activity_running -> activity_ended at the last activity's end, which opens
  the reimbursement claim (`workflows/mdf_claim.py`).
- FAQ 4.4.10 (freeze): while the partner has unpaid bills in the billing cycle
  of the activity's month (the month the last activity ends) or earlier, the
  application is frozen (events ``freeze``/``unfreeze`` fired by
  `engine.mdf.sync_freeze` when bills or payments are recorded) and cannot be
  approved; the refusal names the bills.
- FAQ 4.4.6: a partner barred after a confirmed order-splitting violation
  cannot start or submit applications until the end of that calendar year;
  the refusal says until when.

Settings: ``PARTNERFLOW_MDF_MIN_WORKING_DAYS`` (10).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

import click

from engine.cliutil import echo_json, handle_errors, open_runtime
from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.errors import ValidationError
from engine.mdf import (
    ACTIVITY_TYPES,
    CAP_CURRENCY,
    GIFT_CATEGORY,
    GIFT_LIMIT_CNY,
    active_bar,
    cap_usage,
    fmt,
    released_solutions,
    yearly_cap,
)
from engine.roles import ADMIN, ECOSYSTEM_MANAGER, MDF_OWNER, PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.schema import Field, Schema
from engine.settings import setting

from ._mdf import (
    CATEGORY,
    billing_cycle,
    current_freeze,
    first_start,
    freeze_flags,
    freeze_transitions,
    instant,
    last_end,
    not_frozen,
    quarter,
)


class S(StrEnum):
    draft = "draft"  #: being prepared by the partner; not yet counted against the cap
    submitted = "submitted"  #: waiting for the MDF owner's decision; counted against the cap
    approved = "approved"  #: approved; the activity has not started yet
    pending_reapproval = "pending_reapproval"  #: time, place, audience or form changed after approval
    activity_running = "activity_running"  #: the first activity started
    activity_ended = "activity_ended"  #: the last activity ended; the claim is open (final)
    rejected = "rejected"  #: refused with a reason (final)
    withdrawn = "withdrawn"  #: withdrawn by the partner (final)
    expired = "expired"  #: not (re-)approved before the activity started (final)


AUDIENCES = ("end_customers", "partners", "developers", "mixed", "public")
FORMS = ("offline", "online", "hybrid")
CHANGEABLE = ("starts_at", "ends_at", "place", "audience", "form")


def min_working_days() -> int:
    return setting("mdf_min_working_days", 10)


EXPENSE = Schema(
    Field("description", "str", max_length=200),
    CATEGORY,
    Field("amount", "money", minimum=Decimal("0.01"), description="Budgeted amount in USD"),
    Field("unit_value_cny", "money", required=False, description="Marketing gifts: value of one gift in CNY"),
    Field("units", "int", required=False, minimum=1, description="Marketing gifts: number of gifts"),
    Field("heads", "int", required=False, minimum=1, description="Marketing gifts: number of people receiving them"),
)
ACTIVITY = Schema(
    Field("title", "str", max_length=200),
    Field("type", "choice", choices=tuple(ACTIVITY_TYPES)),
    Field("starts_at", "datetime"),
    Field("ends_at", "datetime"),
    Field("place", "str", max_length=300),
    Field("audience", "choice", choices=AUDIENCES),
    Field("form", "choice", choices=FORMS),
    Field("approving_department", "str", max_length=120),
    Field("expected_attendees", "int", required=False, minimum=0),
    Field("expenses", "list", items=EXPENSE, min_items=1, max_items=100),
)
START = Schema(
    Field("title", "str", max_length=200),
    Field("solution", "str", required=False, max_length=200, description="The released solution promoted"),
    Field("activities", "list", items=ACTIVITY, min_items=1, max_items=20),
    Field("notes", "text", required=False, max_length=4000),
)
CHANGE_ITEM = Schema(
    Field("activity", "int", minimum=1, description="Activity number (1-based)"),
    Field("starts_at", "datetime", required=False),
    Field("ends_at", "datetime", required=False),
    Field("place", "str", required=False, max_length=300),
    Field("audience", "choice", choices=AUDIENCES, required=False),
    Field("form", "choice", choices=FORMS, required=False),
)
CHANGE = Schema(Field("changes", "list", items=CHANGE_ITEM, min_items=1, max_items=20))


# -- guards -------------------------------------------------------------------
def _activities(ctx: Ctx) -> list[dict]:
    return ctx.payload.get("activities") or ctx.data["activities"]


def _check_activities(ctx: Ctx, activities: list[dict]) -> str | None:
    for i, a in enumerate(activities, start=1):
        if instant(a["ends_at"]) <= instant(a["starts_at"]):
            raise ValidationError(f"activities[{i - 1}].ends_at", f"activity {i} must end after it starts")
    first = activities[0]
    for i, a in enumerate(activities[1:], start=2):
        diffs = [f"{label} ({a[key]!r}, activity 1 has {first[key]!r})"
                 for key, label in (("audience", "audience"), ("type", "type"),
                                    ("approving_department", "approving department")) if a[key] != first[key]]
        if diffs:
            return ("one application may cover several activities only with the same audience, type and approving "
                    f"department (FAQ 4.4.7): activity {i} differs in " + "; ".join(diffs))
    q = quarter(ctx.calendar, first["starts_at"])
    for i, a in enumerate(activities, start=1):
        for key in ("starts_at", "ends_at"):
            other = quarter(ctx.calendar, a[key])
            if other != q:
                word = "starts" if key == "starts_at" else "ends"
                return (f"one application may cover activities of one quarter only (FAQ 4.4.7): activity {i} "
                        f"{word} in {other}, activity 1 starts in {q} ({ctx.calendar.timezone})")
    return None


def activities_of_one_quarter_alike(ctx: Ctx) -> str | None:
    """Several activities: one quarter, same audience, type and approving department (FAQ 4.4.7)."""
    return _check_activities(ctx, _activities(ctx))


def gifts_within_cny_200(ctx: Ctx) -> str | None:
    """Marketing gifts at most CNY 200 per unit and per head (FAQ 4.4.5)."""
    for i, a in enumerate(_activities(ctx)):
        for j, e in enumerate(a["expenses"]):
            if e["category"] != GIFT_CATEGORY:
                continue
            path = f"activities[{i}].expenses[{j}]"
            if e.get("unit_value_cny") is None:
                raise ValidationError(f"{path}.unit_value_cny", "a marketing gift must state its value per unit in CNY")
            unit = Decimal(e["unit_value_cny"])
            if unit > GIFT_LIMIT_CNY:
                return (f"activity {i + 1}, expense {j + 1} ({e['description']}): a gift worth CNY {unit:,} per unit "
                        f"is above the limit of CNY {GIFT_LIMIT_CNY:,} per unit and per head (FAQ 4.4.5)")
            if e.get("heads"):
                per_head = (unit * (e.get("units") or 1) / e["heads"]).quantize(Decimal("0.01"))
                if per_head > GIFT_LIMIT_CNY:
                    return (f"activity {i + 1}, expense {j + 1} ({e['description']}): gifts worth CNY {per_head:,} per "
                            f"head ({e.get('units') or 1} x CNY {unit:,} for {e['heads']} people) are above the limit "
                            f"of CNY {GIFT_LIMIT_CNY:,} per unit and per head (FAQ 4.4.5)")
    return None


def partner_not_barred(ctx: Ctx) -> str | None:
    """A confirmed order-splitting violation bars the partner until the end of the year (FAQ 4.4.6)."""
    bar = active_bar(ctx.conn, ctx.partner["id"], ctx.now)
    if bar is not None:
        return (f"partner {ctx.partner['code']} is barred from MDF until {ctx.calendar.format(bar.until)} after a "
                f"confirmed order-splitting violation (claim {bar.claim_id}, FAQ 4.4.6); new MDF applications are "
                "refused until then")
    return None


def partner_has_released_solution(ctx: Ctx) -> str | None:
    """Only partners whose solution is released may apply (FAQ 4.4.1)."""
    released = released_solutions(ctx.conn, ctx.partner["id"])
    if not released:
        return (f"only partners with a released solution may apply for MDF (FAQ 4.4.1): partner "
                f"{ctx.partner['code']} has no released solution")
    named = ctx.get("solution")
    if named and named not in released:
        return (f"solution {named!r} of partner {ctx.partner['code']} is not released; released solutions: "
                + ", ".join(released))
    return None


def activity_not_started(ctx: Ctx) -> str | None:
    """Never submitted (or changed) once the activity has started (FAQ 4.4.2)."""
    start = first_start(ctx.data["activities"])
    if ctx.now >= start:
        return (f"the activity already started at {ctx.calendar.format(start)}; an MDF application must be "
                f"submitted before the activity (FAQ 4.4.2)")
    return None


def submitted_10_working_days_before(ctx: Ctx) -> str | None:
    """Submitted at least 10 working days before the first activity starts, in the partner's region (FAQ 4.4.2)."""
    n = min_working_days()
    cal = ctx.calendar
    start_day = cal.local_date(first_start(ctx.data["activities"]))
    last_day = cal.add_working_days(start_day, -n)
    today = cal.local_date(ctx.now)
    if today <= last_day:
        return None
    left = cal.count_working_days(today, start_day)
    return (f"an MDF application must be submitted at least {n} working days before the activity starts (FAQ 4.4.2): "
            f"the activity starts on {start_day.isoformat()} ({cal.timezone}); the last day to submit was "
            f"{last_day.isoformat()}; today, {today.isoformat()}, is only {left} working day(s) before it "
            f"(region {cal.region}: weekends and public holidays do not count)")


def within_yearly_cap(ctx: Ctx) -> str | None:
    """Approved and pending amounts of the year within the program's and tier's cap (FAQ 4.4.1)."""
    cap = yearly_cap(ctx.partner)
    year = ctx.data["year"]
    used = cap_usage(ctx.conn, ctx.partner["id"], year, exclude_id=ctx.instance_id)
    asked = Decimal(ctx.data["total"])
    if used + asked > cap:
        remaining = max(cap - used, Decimal("0.00"))
        return (f"MDF yearly cap exceeded (FAQ 4.4.1): partner {ctx.partner['code']} ({ctx.partner['program']} / "
                f"{ctx.partner['tier']}) may use at most {fmt(cap)} for activities in {year}; {fmt(used)} is already "
                f"approved or pending, so {fmt(remaining)} remains, and this application asks for {fmt(asked)}")
    return None


def approved_before_activity(ctx: Ctx) -> str | None:
    """Approved (or re-approved) before the activity starts (FAQ 4.4.2)."""
    start = first_start(ctx.data["activities"])
    if ctx.now >= start:
        return f"the activity started at {ctx.calendar.format(start)}; it can no longer be approved (FAQ 4.4.2)"
    return None


def change_alters_time_place_audience_or_form(ctx: Ctx) -> str | None:
    """A change names existing activities and alters at least one of time, place, audience or form."""
    acts = ctx.data["activities"]
    changed = False
    for c in ctx.payload["changes"]:
        if c["activity"] > len(acts):
            raise ValidationError("changes", f"activity {c['activity']} does not exist (the application has {len(acts)})")
        a = acts[c["activity"] - 1]
        changed |= any(k in c and c[k] != a[k] for k in CHANGEABLE)
    if not changed:
        return "the change alters no time, place, audience or form of any activity"
    new = _changed_activities(ctx)
    if first_start(new) <= ctx.now:
        return "the changed activity would already have started; a change must lie in the future"
    return _check_activities(ctx, new)


# -- effects ------------------------------------------------------------------
def _derived(ctx: Ctx, activities: list[dict]) -> dict:
    total = sum((Decimal(e["amount"]) for a in activities for e in a["expenses"]), Decimal("0.00"))
    start, end = first_start(activities), last_end(activities)
    return {"total": str(total), "currency": CAP_CURRENCY, "year": ctx.calendar.local_date(start).year,
            "quarter": quarter(ctx.calendar, activities[0]["starts_at"]), "activity_type": activities[0]["type"],
            "first_start": start.isoformat(), "last_end": end.isoformat(),
            **current_freeze(ctx, billing_cycle(ctx.calendar, activities))}


def prepare(ctx: Ctx) -> dict:
    return _derived(ctx, ctx.data["activities"])


def record_edit(ctx: Ctx) -> dict:
    return {**ctx.payload, **_derived(ctx, ctx.payload["activities"])}


def record_submission(ctx: Ctx) -> dict:
    return {"submitted_at": ctx.now.isoformat(), "submitted_by": ctx.actor.login}


def record_approval(ctx: Ctx) -> dict:
    return {"approved_at": ctx.now.isoformat(), "approved_by": ctx.actor.login, "approved_total": ctx.data["total"],
            "changes_pending": None}


def _changed_activities(ctx: Ctx) -> list[dict]:
    acts = [dict(a) for a in ctx.data["activities"]]
    for c in ctx.payload["changes"]:
        acts[c["activity"] - 1].update({k: c[k] for k in CHANGEABLE if k in c})
    return acts


def record_change(ctx: Ctx) -> dict:
    before = ctx.data["activities"]
    after = _changed_activities(ctx)
    changes = [{"activity": i + 1, "field": k, "from": b[k], "to": a[k]}
               for i, (b, a) in enumerate(zip(before, after)) for k in CHANGEABLE if b[k] != a[k]]
    history = list(ctx.data.get("change_log") or [])
    history.append({"at": ctx.now.isoformat(), "by": ctx.actor.login, "changes": changes})
    return {"activities": after, **_derived(ctx, after), "changes_pending": changes, "change_log": history}


def open_claim(ctx: Ctx) -> dict:
    """The activity ended: open the reimbursement claim (FAQ 4.4.8)."""
    ctx.start_later("mdf_claim", {"partner": ctx.partner["code"], "application": ctx.instance_id})
    return {"ended_at": ctx.now.isoformat()}


def change_flags(ctx: Ctx) -> list[str]:
    return [f"activity {c['activity']}: {c['field']} {c['from']} -> {c['to']}"
            for c in ctx.data.get("changes_pending") or []] + freeze_flags(ctx)


PARTNER_SIDE = frozenset({PARTNER_ADMIN, PARTNER_MEMBER, ECOSYSTEM_MANAGER})
APPROVER = frozenset({MDF_OWNER, ADMIN})
OPEN_STATES = (S.draft, S.submitted, S.approved, S.pending_reapproval, S.activity_running)
SUBMIT_GUARDS = (partner_not_barred, partner_has_released_solution, activities_of_one_quarter_alike,
                 gifts_within_cny_200, activity_not_started, submitted_10_working_days_before, within_yearly_cap)

WORKFLOW = Workflow(
    name="mdf_application",
    title="MDF application",
    faq="FAQ 4.4, 4.1.1 item 13",
    description="Apply for Market Development Fund for one or several activities of a quarter; approved before the "
                "activity, at least 10 working days ahead, within the yearly cap.",
    states=S,
    initial=S.draft,
    final=(S.activity_ended, S.rejected, S.withdrawn, S.expired),
    start_schema=START,
    start_roles=PARTNER_SIDE,
    start_guards=(partner_not_barred, partner_has_released_solution, activities_of_one_quarter_alike,
                  gifts_within_cny_200),
    start_effect=prepare,
    business_key=lambda data: data.get("quarter"),
    transitions=(
        Transition("edit", S.draft, S.draft, PARTNER_SIDE, payload=START, authors=True,
                   guards=(partner_has_released_solution, activities_of_one_quarter_alike, gifts_within_cny_200),
                   effect=record_edit),
        Transition("submit", S.draft, S.submitted, PARTNER_SIDE, guards=SUBMIT_GUARDS, authors=True,
                   effect=record_submission),
        Transition("approve", (S.submitted, S.pending_reapproval), S.approved, APPROVER, four_eyes=True,
                   guards=(approved_before_activity, not_frozen), effect=record_approval),
        Transition("reject", (S.submitted, S.pending_reapproval), S.rejected, APPROVER, comment_required=True,
                   four_eyes=True),
        Transition("change", S.approved, S.pending_reapproval, PARTNER_SIDE, payload=CHANGE, authors=True,
                   guards=(activity_not_started, change_alters_time_place_audience_or_form), effect=record_change,
                   label="time, place, audience or form changed"),
        Transition("withdraw", (S.draft, S.submitted, S.approved, S.pending_reapproval), S.withdrawn, PARTNER_SIDE),
        Transition("lapse", (S.submitted, S.pending_reapproval), S.expired, {SYSTEM},
                   label="activity started before approval"),
        Transition("start_activity", S.approved, S.activity_running, {SYSTEM}),
        Transition("end_activity", S.activity_running, S.activity_ended, {SYSTEM}, effect=open_claim),
        *freeze_transitions(OPEN_STATES),
    ),
    timers=(
        Timer(S.submitted, "lapse", at=lambda ctx: first_start(ctx.data["activities"]),
              description="when the first activity starts"),
        Timer(S.pending_reapproval, "lapse", at=lambda ctx: first_start(ctx.data["activities"]),
              description="when the first activity starts"),
        Timer(S.approved, "start_activity", at=lambda ctx: first_start(ctx.data["activities"]),
              description="when the first activity starts"),
        Timer(S.activity_running, "end_activity", at=lambda ctx: last_end(ctx.data["activities"]),
              description="when the last activity ends"),
    ),
    tasks=(
        InboxTask(S.submitted, MDF_OWNER, "Decide on the MDF application before the activity starts",
                  due=lambda ctx: first_start(ctx.data["activities"]), amount_field="total",
                  currency_field="currency", flags=freeze_flags),
        InboxTask(S.pending_reapproval, MDF_OWNER,
                  "Re-approve the MDF application: time, place, audience or form changed",
                  due=lambda ctx: first_start(ctx.data["activities"]), amount_field="total",
                  currency_field="currency", flags=change_flags),
    ),
    notifications=(
        Notify("mdf_application/submitted", ["role:mdf_owner"], on_enter=S.submitted),
        Notify("mdf_application/changed", ["role:mdf_owner"], on_enter=S.pending_reapproval),
        Notify("mdf_application/approved", ["partner"], on_enter=S.approved),
        Notify("mdf_application/rejected", ["partner"], on_enter=S.rejected),
        Notify("mdf_application/expired", ["partner", "role:mdf_owner"], on_enter=S.expired),
        Notify("mdf_application/frozen", ["partner"], on_event="freeze", category="finance"),
        Notify("mdf_application/unfrozen", ["partner"], on_event="unfreeze", category="finance"),
    ),
)


# -- demo ---------------------------------------------------------------------
def _demo_activity(title: str, start: datetime, hours: int, place: str, amount: str) -> dict:
    return {"title": title, "type": "customer_communication", "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=hours)).isoformat(), "place": place, "audience": "end_customers",
            "form": "offline", "approving_department": "Ecosystem Marketing East",
            "expenses": [{"description": "Venue", "category": "venue", "amount": amount}]}


def seed_demo(runtime, people) -> None:
    """An application waiting for approval, and an approved one whose activity ended 85 days ago: its claim
    (`mdf_claim`) is then 5 days from the end of its 90-day window.

    The second case is replayed at past instants through the same transactional core (`start_in`/`fire_in`),
    so every rule is checked as it was then; the due activity timers then fire and open the claim.
    """
    from engine.calendar import calendar_for
    from engine.mdf import add_solution, released_solutions

    now = runtime.now()
    cal = calendar_for("CN", "Asia/Shanghai")
    admin, mona = people.actor("acme-admin"), people.actor("mona")
    with runtime.db.write() as conn:
        if not released_solutions(conn, people.partners["ACME"]["id"]):
            add_solution(conn, "ACME", "Acme Smart Retail Cloud", now, released=True)
    start = cal.at(cal.add_working_days(cal.local_date(now), 15), datetime.min.time().replace(hour=9))
    case = runtime.start("mdf_application", {
        "title": "Smart retail customer day", "solution": "Acme Smart Retail Cloud",
        "activities": [_demo_activity("Customer day Shanghai", start, 6, "Shanghai Expo Center, Hall 2", "3000.00")],
    }, admin)
    runtime.fire(case["id"], "submit", admin)
    ended = now - timedelta(days=85)
    began = ended - timedelta(hours=6)
    with runtime.db.write() as conn:
        past = runtime.start_in(conn, WORKFLOW, {
            "title": "Partner training on retail analytics", "solution": "Acme Smart Retail Cloud",
            "activities": [_demo_activity("Retail analytics workshop", began, 6, "Acme office, Hangzhou", "4200.00")],
        }, admin, began - timedelta(days=40))
        runtime.fire_in(conn, past, "submit", admin, {}, None, None, began - timedelta(days=40))
        runtime.fire_in(conn, past, "approve", mona, {}, None, "Budget available", began - timedelta(days=35))
    runtime.drain(now)


# -- command line: the partner solutions MDF checks ------------------------------
@click.group("solutions")
def CLI() -> None:
    """Partner solutions: only partners with a released solution may apply for MDF (FAQ 4.4.1)."""


@CLI.command("add")
@click.option("--partner", required=True, help="Partner code.")
@click.option("--name", required=True, help="Solution name.")
@click.option("--released", is_flag=True, help="Record it as released already.")
@handle_errors
def solutions_add(partner: str, name: str, released: bool) -> None:
    """Record a partner's solution."""
    from engine.mdf import add_solution

    rt = open_runtime()
    with rt.db.write() as conn:
        row = add_solution(conn, partner, name, rt.now(), released=released)
    click.echo(f"solution {row['name']!r} of {partner} recorded ({row['status']})")


def _set_status(partner: str, name: str, status: str) -> None:
    from engine.mdf import set_solution_status

    rt = open_runtime()
    with rt.db.write() as conn:
        row = set_solution_status(conn, partner, name, status, rt.now())
    click.echo(f"solution {row['name']!r} of {partner} is {row['status']}")


@CLI.command("release")
@click.option("--partner", required=True)
@click.option("--name", required=True)
@handle_errors
def solutions_release(partner: str, name: str) -> None:
    """Mark a solution released."""
    _set_status(partner, name, "released")


@CLI.command("withdraw")
@click.option("--partner", required=True)
@click.option("--name", required=True)
@handle_errors
def solutions_withdraw(partner: str, name: str) -> None:
    """Withdraw a released solution."""
    _set_status(partner, name, "withdrawn")


@CLI.command("list")
@click.option("--partner", default=None)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def solutions_list(partner: str | None, as_json: bool) -> None:
    """List solutions."""
    from engine.mdf import _partner, solutions

    rt = open_runtime()
    with rt.db.read() as conn:
        rows = solutions(conn, _partner(conn, partner)["id"] if partner else None)
    if as_json:
        echo_json([{k: r[k] for k in ("partner", "name", "status", "released_at")} for r in rows])
        return
    for r in rows:
        click.echo(f"{r['partner']:<12} {r['status']:<10} {r['name']}")
    if not rows:
        click.echo("no solutions")
