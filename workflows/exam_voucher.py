"""Exam vouchers (LIFECYCLES section 7; FAQ 3.1, 4.3).

Rules enforced:
- Applied -> approved (the vendor accepted the application) -> issued
  (operations distributed the vouchers to each employee's personal account);
  an application may be rejected with a reason, or withdrawn by the partner
  before a decision.
- Approved-but-not-issued is its own visible state: operations get an inbox
  task on approval, and a reminder task and email when the vouchers are still
  not issued after ``PARTNERFLOW_VOUCHER_REMINDER_WORKING_DAYS`` working days
  (default 3) in the partner's region.
- Every named voucher user must be a known person of the applying partner who
  has maintained their personal information (FAQ 3.1); an unknown login is
  refused by name.
- Employees see a voucher only once it is issued (`vouchers_for`).
"""
from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select

from engine.definition import Ctx, InboxTask, Notify, Timer, Transition, Workflow
from engine.models import Instance, User
from engine.roles import ADMIN, ECOSYSTEM_MANAGER, OPERATIONS_MANAGER, PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.schema import Field, Schema
from engine.settings import setting


class S(StrEnum):
    applied = "applied"  #: waiting for the vendor's decision
    approved = "approved"  #: accepted; operations must still issue the vouchers
    issued = "issued"  #: in each employee's personal account (final)
    rejected = "rejected"  #: refused with a reason (final)
    withdrawn = "withdrawn"  #: withdrawn by the partner before a decision (final)


def reminder_working_days() -> int:
    return setting("voucher_reminder_working_days", 3)


START = Schema(
    Field("exam", "str", max_length=200, description="Certification exam the vouchers are for"),
    Field("users", "list", items=Field("login", "str", max_length=128), min_items=1, max_items=200,
          description="Logins of the employees who receive a voucher"),
    Field("reason", "text", required=False, max_length=1000),
)
ISSUE = Schema(Field("codes", "list", items=Field("code", "str", max_length=64), required=False, max_items=200))


# -- guards -------------------------------------------------------------------
def named_users_known_with_personal_info(ctx: Ctx) -> str | None:
    """Every named user exists, belongs to the partner and has maintained their personal information."""
    logins = ctx.data["users"]
    if len(set(logins)) != len(logins):
        return "a voucher user is named twice"
    rows = {r.login: r for r in ctx.conn.execute(select(User.__table__).where(User.__table__.c.login.in_(logins)))}
    for login in logins:
        row = rows.get(login)
        if row is None:
            return f"voucher user {login!r} is unknown: login ID not found"
        if ctx.partner is None or row.partner_id != ctx.partner["id"]:
            return f"voucher user {login!r} is not a member of partner {ctx.partner['code'] if ctx.partner else '?'}"
        if not row.personal_info_complete:
            return f"voucher user {login!r} has not maintained their personal information"
    return None


def issue_codes_match_users(ctx: Ctx) -> str | None:
    codes = ctx.payload.get("codes")
    if codes and len(codes) != len(ctx.data["users"]):
        return f"{len(codes)} voucher codes given for {len(ctx.data['users'])} users"
    return None


def record_codes(ctx: Ctx) -> dict:
    codes = ctx.payload.get("codes") or []
    return {"codes": dict(zip(ctx.data["users"], codes))} if codes else {}


OPERATOR = frozenset({ECOSYSTEM_MANAGER, ADMIN})
OPS = frozenset({OPERATIONS_MANAGER, ADMIN})

WORKFLOW = Workflow(
    name="exam_voucher",
    title="Exam voucher application",
    faq="FAQ 3.1, 4.3",
    description="Applied -> approved -> issued; employees see vouchers once issued.",
    states=S,
    initial=S.applied,
    final=(S.issued, S.rejected, S.withdrawn),
    start_schema=START,
    start_roles={PARTNER_ADMIN, PARTNER_MEMBER},
    start_guards=(named_users_known_with_personal_info,),
    transitions=(
        Transition("approve", S.applied, S.approved, OPERATOR),
        Transition("reject", S.applied, S.rejected, OPERATOR, comment_required=True),
        Transition("withdraw", S.applied, S.withdrawn, {PARTNER_ADMIN, PARTNER_MEMBER}),
        Transition("issue", S.approved, S.issued, OPS, payload=ISSUE, guards=(issue_codes_match_users,),
                   effect=record_codes),
        Transition("remind_issue", S.approved, None, {SYSTEM}, label="reminder"),
    ),
    timers=(
        Timer(S.approved, "remind_issue", at=lambda ctx: ctx.calendar.working_days_after(ctx.now, reminder_working_days()),
              description="N working days after approval (PARTNERFLOW_VOUCHER_REMINDER_WORKING_DAYS, default 3)"),
    ),
    tasks=(
        InboxTask(S.applied, ECOSYSTEM_MANAGER, "Decide on the exam voucher application", due_working_days=5),
        InboxTask(S.approved, OPERATIONS_MANAGER, "Issue the approved exam vouchers",
                  due=lambda ctx: ctx.calendar.end_of_nth_working_day_after(ctx.now, reminder_working_days())),
        InboxTask(S.approved, OPERATIONS_MANAGER, "Reminder: approved exam vouchers are still not issued",
                  on_event="remind_issue", name="issue_overdue", due_working_days=1),
    ),
    notifications=(
        Notify("exam_voucher/applied", ["role:ecosystem_manager"], on_enter=S.applied),
        Notify("exam_voucher/approved", ["partner", "role:operations_manager"], on_enter=S.approved),
        Notify("exam_voucher/issue_reminder", ["role:operations_manager"], on_event="remind_issue", reminder=True),
        Notify("exam_voucher/issued", ["partner", "data:users"], on_enter=S.issued),
        Notify("exam_voucher/rejected", ["partner"], on_enter=S.rejected),
    ),
)


def vouchers_for(conn, login: str) -> list[dict]:
    """Vouchers an employee can see: only those already issued that name them."""
    rows = conn.execute(select(Instance.__table__).where(Instance.__table__.c.workflow == WORKFLOW.name,
                                                         Instance.__table__.c.state == S.issued)
                        .order_by(Instance.__table__.c.id))
    out = []
    for r in rows:
        if login in (r.data or {}).get("users", []):
            out.append({"case": r.id, "exam": r.data["exam"], "code": (r.data.get("codes") or {}).get(login)})
    return out
