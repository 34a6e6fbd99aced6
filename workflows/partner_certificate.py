"""Partner-program certificates and their yearly renewal; program windows (LIFECYCLES section 9; FAQ 5.2.12, 4.6.3).

Rules enforced:
- A certificate is a case: issued by an ecosystem manager for a partner's
  program and tier, valid until January 31 of the following year (Beijing
  time, end of day).
- Renewal (FAQ 5.2.12): certificates renew automatically every January 31.
  The calendar schedule ``certificate_renewal`` (``yearly(1, 31)``, 00:00
  Beijing time) fires ``renew`` on every active certificate: its validity
  moves to January 31 of the next year, its renewal count grows, and the
  partner is emailed. A revoked certificate is not renewed.
- Program windows (FAQ 4.6.3): see `engine.windows`; the ``programs``
  command lists and sets them (the competency incentive closed on
  2024-12-31). Incentive payouts use the window guard.
"""
from __future__ import annotations

from datetime import date
from enum import StrEnum

import click
from sqlalchemy import select

from engine.calendar import calendar_for
from engine.cliutil import date_arg, echo_json, handle_errors, open_runtime
from engine.definition import Ctx, Notify, Transition, Workflow
from engine.directory import PROGRAMS, TIERS
from engine.models import Instance
from engine.roles import ADMIN, ECOSYSTEM_MANAGER, SYSTEM
from engine.schedules import CalendarSchedule, ScheduleCtx, once_each, yearly
from engine.schema import Field, Schema
from engine.windows import list_windows, set_window

I = Instance.__table__
NAME = "partner_certificate"


class S(StrEnum):
    active = "active"  #: valid; renewed every January 31
    revoked = "revoked"  #: withdrawn with a reason; never renewed again (final)


START = Schema(Field("program", "choice", choices=PROGRAMS), Field("tier", "choice", choices=TIERS),
               Field("number", "str", required=False, max_length=64))
RENEW = Schema(Field("year", "int", minimum=2000, maximum=9999))


def next_january_31(day: date) -> date:
    """The first January 31 after `day`."""
    this_year = date(day.year, 1, 31)
    return this_year if day < this_year else date(day.year + 1, 1, 31)


def issue(ctx: Ctx) -> dict:
    cal = calendar_for(None, None)
    until = next_january_31(cal.local_date(ctx.now))
    return {"valid_until": until.isoformat(), "issued_at": ctx.now.isoformat(), "renewals": 0,
            "number": ctx.data.get("number") or f"{ctx.partner['code']}-{ctx.data['program'][:3].upper()}"}


def not_renewed_this_year(ctx: Ctx) -> str | None:
    if ctx.data.get("renewed_for") == ctx.payload["year"]:
        return f"certificate already renewed on January 31, {ctx.payload['year']}"
    return None


def renew(ctx: Ctx) -> dict:
    year = ctx.payload["year"]
    return {"valid_until": date(year + 1, 1, 31).isoformat(), "renewed_for": year,
            "renewals": int(ctx.data.get("renewals", 0)) + 1, "renewed_at": ctx.now.isoformat()}


ECO = frozenset({ECOSYSTEM_MANAGER, ADMIN})

WORKFLOW = Workflow(
    name=NAME,
    title="Partner-program certificate",
    faq="FAQ 5.2.12, 4.6.3",
    description="Issued for a program and tier; renewed automatically every January 31.",
    states=S,
    initial=S.active,
    final=(S.revoked,),
    start_schema=START,
    start_roles=ECO | {SYSTEM},
    start_effect=issue,
    business_key=lambda d: d.get("program"),
    transitions=(
        Transition("renew", S.active, None, {SYSTEM}, payload=RENEW, guards=(not_renewed_this_year,), effect=renew,
                   label="January 31"),
        Transition("revoke", S.active, S.revoked, ECO, comment_required=True),
    ),
    notifications=(
        Notify("partner_certificate/issued", ["partner"], on_enter=S.active),
        Notify("partner_certificate/renewed", ["partner"], on_event="renew"),
        Notify("partner_certificate/revoked", ["partner"], on_enter=S.revoked),
    ),
)


def renew_certificates(sctx: ScheduleCtx) -> str:
    """January 31: renew every active certificate for another year."""
    year = sctx.program_date().year
    active = sctx.conn.execute(select(I.c.id, I.c.data).where(I.c.workflow == NAME, I.c.state == S.active)
                               .order_by(I.c.id)).all()
    renewed, _ = once_each(active, lambda row: (row.data or {}).get("renewed_for") == year,
                           lambda row: sctx.fire(row.id, "renew", {"year": year}))
    return f"renewed {len(renewed)} certificate(s) for {year}"


SCHEDULES = [CalendarSchedule("certificate_renewal", yearly(1, 31), renew_certificates,
                              "January 31: renew every active partner-program certificate")]


# -- command line: program windows ------------------------------------------------------------
@click.group("programs")
def CLI() -> None:
    """Program windows: programs that accept applications only until (or from) a date."""


@CLI.command("list")
def programs_list() -> None:
    """List program windows."""
    with open_runtime().db.read() as conn:
        echo_json(list_windows(conn))


@CLI.command("set")
@click.argument("code")
@click.option("--title", required=True)
@click.option("--opens", default=None, help="First day applications are accepted, YYYY-MM-DD")
@click.option("--closes", default=None, help="Last day applications are accepted, YYYY-MM-DD")
@click.option("--note", default=None)
@handle_errors
def programs_set(code, title, opens, closes, note) -> None:
    """Create or change a program window."""
    with open_runtime().db.write() as conn:
        echo_json(set_window(conn, code, title, date_arg(opens, "opens"), date_arg(closes, "closes"), note))
