"""The runtime: start cases, fire events, sweep due timers, run calendar schedules, move simulated time.

Every change happens in one database transaction: load the case (row-locked
on PostgreSQL; SQLite serialises writers with BEGIN IMMEDIATE), check the
event, the actor's roles and the guards, apply the transition through the
lifecycle's shared state machine, bump the version, append a history row,
cancel the timers and close the tasks of the state left, arm the timers and
open the tasks of the state entered, and queue outbox rows. A refusal raises
a typed error inside the transaction, so nothing is saved.

Timers are rows. A sweep claims due rows with a lease (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL) and fires each through the same path as a person,
as the system actor, recording the timer id on the history row, which is
unique: a timer can fire at most once even if two workers race. A crashed
worker's claims return to the pool when their lease ends.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import Boolean, Column, Connection, Text, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from .actors import SYSTEM_ACTOR, Actor
from .calendar import calendar_for
from .clock import Clock, SimulatedClock, SystemClock, require_aware
from .db import Database
from .definition import Ctx, Transition, Workflow, run_guards
from .errors import (
    Conflict,
    EventNotAllowed,
    Forbidden,
    NotFound,
    PartnerflowError,
    StaleVersion,
    ValidationError,
    whole_number,
)
from .fastsql import ID_LIST_BINDS, Fast, each_dialect
from .models import History, Instance, Outbox, Partner, Schedule, Task, Timer, User, UTCDateTime
from .recipients import resolve
from .registry import Registry, default_registry
from .roles import ADMIN, OPERATOR_ROLES
from .schema import COMMENT

log = logging.getLogger("partnerflow.runtime")

I = Instance.__table__
H = History.__table__
TM = Timer.__table__
TK = Task.__table__
OB = Outbox.__table__
P = Partner.__table__
U = User.__table__
SC = Schedule.__table__

MAX_TIMER_ATTEMPTS = 5
#: `Runtime.drain` grows its batch while a sweep takes less than this, up to `MAX_SWEEP_BATCH` timers.
SWEEP_TARGET_SECONDS = 0.25
MAX_SWEEP_BATCH = 10_000

# Hot-path statements, written once and run on the transaction's own DBAPI
# connection (see engine/fastsql.py): a transition pays for the database's
# work, not for building and dispatching SQL.
_UTC = UTCDateTime()
_TM_VIEW = (TM.c.id, TM.c.name, TM.c.event, TM.c.state, TM.c.due_at, TM.c.status)
_TK_VIEW = (TK.c.id, TK.c.name, TK.c.role, TK.c.title, TK.c.status, TK.c.assignee, TK.c.due_at, TK.c.flags,
            TK.c.created_at)
_LOAD = Fast.select(I.c, "WHERE id = :iid")
#: What a change reads of its case (see `Runtime.can_see` and `fire_in`), row-locked on PostgreSQL.
_LOAD_FOR_CHANGE = Fast.select(
    (I.c.id, I.c.workflow, I.c.state, I.c.version, I.c.partner_id, I.c.business_key, I.c.data, I.c.created_by),
    each_dialect("WHERE id = :iid{lock}"))
_PARTNER = Fast.select(P.c, "WHERE id = :pid")


def _update_instance(with_data: bool) -> Fast:
    """A change of a case; the state's entry instant is reset only when the state changed (`moved`)."""
    data = "data = :data, " if with_data else ""
    return Fast(f"UPDATE instances SET state = :state, version = :version, {data}updated_at = :now, "
                "is_final = :is_final, business_key = :business_key, "
                "state_entered_at = CASE WHEN :moved THEN :now ELSE state_entered_at END "
                "WHERE id = :_iid AND version = :_old_version", table=I, binds={"now": _UTC, "moved": Boolean()})


_UPDATE_INSTANCE = _update_instance(with_data=True)
#: The same when the case's data did not change (no effect, or one that changed nothing).
_UPDATE_INSTANCE_STATE = _update_instance(with_data=False)
_INSERT_INSTANCE = Fast(
    "INSERT INTO instances (workflow, state, version, partner_id, business_key, data, is_final, created_by, "
    "created_at, updated_at, state_entered_at) VALUES (:workflow, :state, 1, :partner_id, :business_key, :data, "
    ":is_final, :created_by, :now, :now, :now) RETURNING id", table=I, binds={"now": _UTC}, result=(I.c.id,))
_INSERT_HISTORY = Fast(
    "INSERT INTO history (instance_id, version, at, actor, event, from_state, to_state, comment, payload, timer_id) "
    "VALUES (:instance_id, :version, :at, :actor, :event, :from_state, :to_state, :comment, :payload, :timer_id)",
    table=H)
_INSERT_TIMERS = Fast(
    "INSERT INTO timers (instance_id, name, event, state, armed_version, due_at, status, attempts, created_at) "
    "VALUES (:instance_id, :name, :event, :state, :armed_version, :due_at, 'pending', 0, :created_at)", table=TM)
_CANCEL_TIMERS = Fast("UPDATE timers SET status = 'cancelled', lease_until = NULL "
                      "WHERE instance_id = :iid AND status IN ('pending', 'claimed')")
_CANCEL_OTHER_TIMERS = Fast("UPDATE timers SET status = 'cancelled', lease_until = NULL "
                            "WHERE instance_id = :iid AND status IN ('pending', 'claimed') AND id <> :tid")
_CLOSE_TASKS = Fast("UPDATE tasks SET status = 'done', closed_at = :now, closed_by = :by "
                    "WHERE instance_id = :iid AND status = 'open'", binds={"now": _UTC})
_VIEW_HISTORY = Fast.select(H.c, "WHERE instance_id = :iid ORDER BY version")
_VIEW_TIMERS = Fast.select(_TM_VIEW, "WHERE instance_id = :iid AND status IN ('pending', 'claimed') ORDER BY due_at")
_VIEW_TASKS = Fast.select(_TK_VIEW, "WHERE instance_id = :iid AND status = 'open' ORDER BY id")
_TIMER_MINE = Fast.select((TM.c.status, TM.c.claimed_by), "WHERE id = :tid")
_TIMER_FIRED = Fast("UPDATE timers SET status = 'fired', fired_at = :now, lease_until = NULL "
                    "WHERE id = :tid AND status = 'claimed' AND claimed_by = :worker", binds={"now": _UTC})

# The sweep's statements: one parameter for a whole batch of ids.
#: Claim the `limit` earliest due pending timers (index ``ix_timers_pending_due``; SKIP LOCKED on PostgreSQL).
_CLAIM = Fast(each_dialect(
    "UPDATE timers SET status = 'claimed', claimed_by = :worker, lease_until = :lease_until, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM timers WHERE status = 'pending' AND due_at <= :now ORDER BY due_at, id "
    "LIMIT :limit{skip_locked}) RETURNING id, instance_id, event, state, armed_version, due_at, name"),
    binds={"now": _UTC, "lease_until": _UTC},
    # due_at as the driver gives it: it only orders a case's timers, and its text sorts like its instant
    result=(TM.c.id, TM.c.instance_id, TM.c.event, TM.c.state, TM.c.armed_version, Column("due_at", Text()),
            TM.c.name))
#: The cases of a claimed batch, in id order (row-locked in that order on PostgreSQL).
_BATCH_CASES = Fast.select((I.c.id, I.c.workflow, I.c.state, I.c.version, I.c.partner_id, I.c.business_key),
                           each_dialect("WHERE id {in_ids} ORDER BY id{lock}"), binds=ID_LIST_BINDS)
#: The data of the cases whose timers are planned one case at a time (JSON text on SQLite, decoded when used).
_BATCH_DATA = Fast.select((I.c.id, Column("data", Text())), each_dialect("WHERE id {in_ids}"), binds=ID_LIST_BINDS)
_BATCH_MINE = Fast.select((TM.c.id,), each_dialect("WHERE id {in_ids} AND status = 'claimed' AND claimed_by = :worker"),
                          binds=ID_LIST_BINDS)
_BATCH_PARTNERS = Fast.select(P.c, each_dialect("WHERE id {in_ids}"), binds=ID_LIST_BINDS)
#: The payload of every timer's history row (shared: converted once per batch).
_NO_PAYLOAD: dict = {}
_BATCH_FIRED = Fast(each_dialect("UPDATE timers SET status = 'fired', fired_at = :now, lease_until = NULL "
                                 "WHERE id {in_ids} AND status = 'claimed' AND claimed_by = :worker"),
                    binds={"now": _UTC, **ID_LIST_BINDS})
_BATCH_OBSOLETE = Fast(each_dialect("UPDATE timers SET status = 'obsolete', lease_until = NULL WHERE id {in_ids}"),
                       binds=ID_LIST_BINDS)


def _comment(comment) -> str | None:
    """A person's comment as stored: text, no NUL, at most 4,000 characters; blank is none."""
    if comment is None:
        return None
    return COMMENT.clean(comment, "comment").strip() or None


_REST, _OBSOLETE, _PER_CASE = "rest", "obsolete", "per case"  #: the other answers of `Runtime._route`


@dataclass(frozen=True)
class _Route:
    """A timer's event that leads the same way for every case in a state: decided once per batch.

    The transition is plain (no guard, effect, branch condition, four-eyes or
    payload rule, follow-up, inbox task or email) and every timer of the state
    entered is a fixed duration, so firing it needs nothing of the case but
    its id and version.
    """

    dest: str
    changed: bool
    is_final: bool
    has_tasks: bool
    arm: tuple  #: (name, event, after) of each timer armed on entering `dest`


def clock_from_env(db: Database) -> Clock:
    """`PARTNERFLOW_CLOCK=simulated` selects the shared simulated clock; anything else the wall clock."""
    kind = (os.environ.get("PARTNERFLOW_CLOCK") or "system").strip().lower()
    if kind == "simulated":
        return SimulatedClock(db)
    if kind in ("system", "wall", "real", ""):
        return SystemClock()
    raise ValidationError("PARTNERFLOW_CLOCK", f"unknown clock {kind!r}; use 'system' or 'simulated'")


@dataclass
class SweepResult:
    claimed: int = 0
    fired: int = 0
    obsolete: int = 0
    failed: int = 0
    recovered: int = 0
    #: Second firings refused by the unique timer id on history (should stay 0).
    duplicates: int = 0

    def __iadd__(self, other: "SweepResult"):
        for name in ("claimed", "fired", "obsolete", "failed", "recovered", "duplicates"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


@dataclass
class AdvanceResult:
    start: datetime
    end: datetime
    timers_fired: int = 0
    timers_obsolete: int = 0
    timers_failed: int = 0
    schedules_run: int = 0
    steps: list = field(default_factory=list)


class Runtime:
    """One per process: the database, the clock and the registry of lifecycles."""

    def __init__(self, db: Database | None = None, clock: Clock | None = None, registry: Registry | None = None,
                 *, worker_id: str | None = None, lease: timedelta = timedelta(seconds=60)):
        self.db = db or Database()
        self.clock = clock or clock_from_env(self.db)
        self.registry = registry or default_registry()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = lease

    # ------------------------------------------------------------------ time
    def now(self) -> datetime:
        return self.clock.now()

    # ---------------------------------------------------------------- actors
    def actor(self, login: str) -> Actor:
        """The actor for a user login (``system`` is the built-in system actor)."""
        if login == SYSTEM_ACTOR.login:
            return SYSTEM_ACTOR
        with self.db.read() as conn:
            row = conn.execute(select(U).where(U.c.login == login)).first()
        if row is None:
            raise NotFound(f"no user with login {login!r}")
        if not row.active:
            raise Forbidden(f"user {login!r} is deactivated")
        data = row.data or {}
        return Actor(login=row.login, roles=frozenset(row.roles or []), partner_id=row.partner_id, name=row.name,
                     email=row.email, locale=row.locale or "en", timezone=row.timezone,
                     delegate_of=frozenset(data.get("delegate_of") or []))

    # ------------------------------------------------------------ public API
    def start(self, workflow: str, data: dict | None, actor: Actor, comment: str | None = None, *,
              view: bool = True) -> dict:
        """Start a case of `workflow` with `data` as `actor`; returns the case view.

        With ``view=False`` only ``{"id", "state", "version"}`` is returned and
        the case is not read back (bulk loads, integrations that need no view).
        """
        wf = self.registry.get(workflow)
        now = self.now()
        with self.db.write() as conn:
            iid = self.start_in(conn, wf, data or {}, actor, now, comment)
            if not view:
                return {"id": iid, "state": str(wf.initial), "version": 1}
            return self.view(conn, iid)  # read back in the same transaction, for one commit

    def fire(self, instance_id: int, event: str, actor: Actor, payload: dict | None = None,
             expected_version: int | None = None, comment: str | None = None, *, view: bool = True) -> dict:
        """Fire `event` on case `instance_id` as `actor`; returns the case view after the change.

        With ``view=False`` only ``{"id", "state", "version"}`` is returned and
        the case is not read back.
        """
        now = self.now()
        with self.db.write() as conn:
            version, state = self.fire_in(conn, instance_id, event, actor, payload or {}, expected_version,
                                          comment, now)
            if not view:
                return {"id": int(instance_id), "state": state, "version": version}
            # read back in the same transaction: the view is exactly this change's outcome, for one commit
            try:
                return self.view(conn, instance_id, actor)
            except NotFound as exc:
                hidden = exc  # the change itself stands (commit first): the actor just may not see the case now
        raise hidden

    # --------------------------------------------------- in-transaction core
    def start_in(self, conn: Connection, wf: Workflow, data: dict, actor: Actor, now: datetime,
                 comment: str | None = None) -> int:
        if not isinstance(data, dict):
            raise ValidationError("data", "must be a JSON object")
        comment = _comment(comment)
        if not actor.may(frozenset(wf.start_roles)):
            needed = " or ".join(sorted(wf.start_roles)) or "nobody (started by the system)"
            raise Forbidden(f"starting {wf.name} needs role {needed}; {actor.login} has "
                            f"{', '.join(sorted(actor.roles)) or 'no roles'}")
        raw = dict(data)
        partner = self._start_partner(conn, wf, raw, actor)
        cleaned = wf.start_schema.clean(raw)
        ctx = self._ctx(conn, wf, None, None, cleaned, {}, actor, now, partner, "start", comment)
        run_guards(wf.start_guards, ctx)
        if wf.start_effect is not None:
            cleaned = {**cleaned, **(wf.start_effect(ctx) or {})}
            ctx.data = cleaned
        key = wf.business_key(cleaned) if wf.business_key else None
        iid = _INSERT_INSTANCE.first(conn, {
            "workflow": wf.name, "state": str(wf.initial), "partner_id": partner["id"] if partner else None,
            "business_key": key, "data": cleaned, "is_final": wf.is_final(wf.initial), "created_by": actor.login,
            "now": now}).id
        ctx.instance_id, ctx.state = iid, wf.initial
        _INSERT_HISTORY.execute(conn, {"instance_id": iid, "version": 1, "at": now, "actor": actor.login,
                                       "event": "start", "from_state": None, "to_state": wf.initial,
                                       "comment": comment, "payload": {}, "timer_id": None})
        self._enter(conn, wf, ctx, wf.initial, 1)
        self._notify(conn, wf, ctx, wf.notifications_on_enter(wf.initial))
        self._followups(conn, ctx, now)
        return iid

    def fire_in(self, conn: Connection, instance_id: int, event: str, actor: Actor, payload: dict,
                expected_version: int | None, comment: str | None, now: datetime,
                timer_id: int | None = None, row=None) -> tuple[int, str]:
        """Fire inside an open transaction; returns (new version, new state).

        `row` is the case's row when the caller has just loaded (and locked) it.
        """
        if row is None:
            row = self._load(conn, instance_id, actor)
        wf = self.registry.get(row.workflow)
        if expected_version is not None and expected_version != row.version:
            raise StaleVersion(instance_id, expected_version, row.version)
        if not isinstance(payload, dict):
            raise ValidationError("payload", "must be a JSON object")
        comment = _comment(comment)
        rows = wf.candidates(row.state, event)
        if not rows:
            raise EventNotAllowed(event, row.state, wf.allowed_events(row.state, actor),
                                  last_change=self._last_change(conn, instance_id)
                                  if any(t.event == event for t in wf.transitions) else f"{wf.name} has no event '{event}'",
                                  others=wf.events_from(row.state))
        wf.check_roles(rows, event, actor)  # before the payload: its rules are not for the unauthorised
        cleaned = rows[0].payload.clean(payload)
        partner = self._partner(conn, row.partner_id)
        data = dict(row.data or {})
        ctx = self._ctx(conn, wf, instance_id, row.state, data, cleaned, actor, now, partner, event, comment)
        chosen = wf.select(ctx, event)
        if chosen.four_eyes:
            self._check_four_eyes(conn, wf, row, actor, event)
        updates = chosen.effect(ctx) if chosen.effect else None
        dest = wf.apply(chosen, ctx)
        new_data = {**data, **updates} if updates else data
        version = row.version + 1
        changed = not chosen.internal
        values = {"_iid": instance_id, "_old_version": row.version, "state": dest, "version": version, "now": now,
                  "is_final": wf.is_final(dest), "moved": changed,
                  "business_key": wf.business_key(new_data) if wf.business_key else row.business_key}
        ctx.data, ctx.state = new_data, dest
        if new_data == (row.data or {}):
            updated = _UPDATE_INSTANCE_STATE.execute(conn, values)
        else:
            updated = _UPDATE_INSTANCE.execute(conn, {**values, "data": new_data})
        if updated != 1:  # the case moved on since it was loaded: refuse the whole change
            current = conn.execute(select(I.c.version).where(I.c.id == instance_id)).scalar_one()
            raise StaleVersion(instance_id, row.version, current)
        _INSERT_HISTORY.execute(conn, {"instance_id": instance_id, "version": version, "at": now,
                                       "actor": actor.login, "event": event, "from_state": row.state,
                                       "to_state": dest, "comment": comment, "payload": cleaned,
                                       "timer_id": timer_id})
        if changed:
            self._leave(conn, wf, instance_id, row.state, now, actor, timer_id)
            self._enter(conn, wf, ctx, dest, version)
        for task in wf.tasks_for_event(event):
            self._open_task(conn, wf, ctx, task)
        self._notify(conn, wf, ctx, wf.notifications_on_event(event))
        if changed:
            self._notify(conn, wf, ctx, wf.notifications_on_enter(dest))
        self._followups(conn, ctx, now)
        return version, dest

    # -------------------------------------------------------------- helpers
    def _ctx(self, conn, wf, iid, state, data, payload, actor, now, partner, event, comment) -> Ctx:
        cal = calendar_for(partner.get("region"), partner.get("timezone")) if partner else calendar_for(None, None)
        return Ctx(workflow=wf, instance_id=iid, state=state, data=data, payload=payload, actor=actor, now=now,
                   calendar=cal, partner=partner, conn=conn, runtime=self, event=event, comment=comment)

    def _load(self, conn: Connection, instance_id: int, actor: Actor | None):
        instance_id = whole_number("instance_id", instance_id, "a case number")
        row = _LOAD_FOR_CHANGE.first(conn, {"iid": instance_id})
        if row is None or (actor is not None and not self.can_see(actor, row)):
            raise NotFound(f"case {instance_id} not found")
        return row

    @staticmethod
    def can_see(actor: Actor, row) -> bool:
        """Who may see a case.

        Operators, admins and the system see every case; partner users only
        their own partner's; a person with no partner (an invitee, a customer)
        only the cases they started or that name them (their login or email in
        the case data).
        """
        if actor.is_system or actor.roles & (OPERATOR_ROLES | {ADMIN}):
            return actor.partner_id is None or actor.partner_id == row.partner_id
        if actor.partner_id is not None:
            return actor.partner_id == row.partner_id
        if row.created_by == actor.login:
            return True
        names = {actor.login.lower()} | ({actor.email.lower()} if actor.email else set())
        for value in (row.data or {}).values():
            for item in (value if isinstance(value, list) else [value]):
                if isinstance(item, str) and item.strip().lower() in names:
                    return True
        return False

    def _partner(self, conn: Connection, partner_id: int | None) -> dict | None:
        if partner_id is None:
            return None
        row = _PARTNER.first(conn, {"pid": partner_id})
        return row._asdict() if row is not None else None

    def _start_partner(self, conn: Connection, wf: Workflow, raw: dict, actor: Actor) -> dict | None:
        code = raw.pop("partner", None)
        if code is not None and not isinstance(code, str):
            raise ValidationError("partner", "must be a partner code (text)")
        if actor.partner_id is not None:
            partner = self._partner(conn, actor.partner_id)
            if code is not None and partner is not None and code != partner["code"]:
                raise Forbidden(f"{actor.login} acts for partner {partner['code']} and cannot start a case for {code}")
            return partner
        if code is None:
            if wf.partner_required:
                raise ValidationError("partner", "is required: the code of the partner this case belongs to")
            return None
        row = conn.execute(select(P).where(P.c.code == code)).first()
        if row is None:
            raise ValidationError("partner", f"no partner with code {code!r}")
        return dict(row._mapping)

    def _last_change(self, conn: Connection, instance_id: int) -> str:
        row = conn.execute(select(H.c.actor, H.c.event, H.c.at).where(H.c.instance_id == instance_id)
                           .order_by(H.c.version.desc()).limit(1)).first()
        if row is None:
            return ""
        return f"last change: '{row.event}' by {row.actor} at {row.at.isoformat(timespec='seconds')}"

    def _check_four_eyes(self, conn: Connection, wf: Workflow, row, actor: Actor, event: str) -> None:
        author_events = {t.event for t in wf.transitions if t.authors} | {"start"}
        authors = {r.actor for r in conn.execute(
            select(H.c.actor).where(H.c.instance_id == row.id, H.c.event.in_(author_events)))}
        authors.discard(SYSTEM_ACTOR.login)
        if actor.login in authors:
            raise Forbidden(f"four-eyes rule: {actor.login} submitted or edited case {row.id} and cannot {event} it; "
                            "another approver must decide")
        shared = actor.delegate_of & authors
        if shared:
            raise Forbidden(f"four-eyes rule: {actor.login} is a delegate of {', '.join(sorted(shared))}, who "
                            f"submitted or edited case {row.id}, and cannot {event} it")

    def _leave(self, conn: Connection, wf: Workflow, iid: int, state: str, now: datetime, actor: Actor,
               timer_id: int | None):
        if timer_id is None:
            _CANCEL_TIMERS.execute(conn, {"iid": iid})
        else:
            _CANCEL_OTHER_TIMERS.execute(conn, {"iid": iid, "tid": timer_id})
        if wf.tasks:  # only a lifecycle that declares inbox tasks has any to close
            _CLOSE_TASKS.execute(conn, {"iid": iid, "now": now, "by": actor.login})

    @staticmethod
    def _timer_rows(wf: Workflow, ctx: Ctx, state: str, version: int) -> list[dict]:
        """The timers to arm on entering `state` (their rules read `ctx` as it will be after the change)."""
        return [{"instance_id": ctx.instance_id, "name": tm.key, "event": tm.event, "state": state,
                 "armed_version": version, "due_at": require_aware(tm.due(ctx), f"timer {tm.key}"),
                 "created_at": ctx.now}
                for tm in wf.timers_for(state) if tm.when is None or tm.when(ctx)]

    def _enter(self, conn: Connection, wf: Workflow, ctx: Ctx, state: str, version: int) -> None:
        _INSERT_TIMERS.executemany(conn, self._timer_rows(wf, ctx, state, version))
        for task in wf.tasks_for_state(state):
            self._open_task(conn, wf, ctx, task)

    def _open_task(self, conn: Connection, wf: Workflow, ctx: Ctx, task) -> None:
        amount = None
        if task.amount_field and ctx.data.get(task.amount_field) is not None:
            try:
                amount = Decimal(str(ctx.data[task.amount_field]))
            except InvalidOperation:
                amount = None
        conn.execute(insert(TK).values(
            instance_id=ctx.instance_id, workflow=wf.name, partner_id=ctx.partner["id"] if ctx.partner else None,
            state=ctx.state, name=task.key, role=task.role, title=task.title, status="open",
            due_at=task.due_at(ctx), amount=amount,
            currency=ctx.data.get(task.currency_field) if task.currency_field else None,
            flags=task.flags(ctx) if task.flags else [], created_at=ctx.now,
        ))

    def _notify(self, conn: Connection, wf: Workflow, ctx: Ctx, notes) -> None:
        notes = [n for n in notes if n.when is None or n.when(ctx)]
        if not notes:
            return
        deadlines = [
            {"name": r.name, "event": r.event, "due_at": r.due_at.isoformat(),
             "local": ctx.calendar.format(r.due_at)}
            for r in conn.execute(select(TM.c.name, TM.c.event, TM.c.due_at).where(
                TM.c.instance_id == ctx.instance_id, TM.c.status == "pending").order_by(TM.c.due_at))
        ]
        tasks = [
            {"title": r.title, "role": r.role, "due_at": r.due_at.isoformat() if r.due_at else None,
             "local": ctx.calendar.format(r.due_at) if r.due_at else None}
            for r in conn.execute(select(TK.c.title, TK.c.role, TK.c.due_at).where(
                TK.c.instance_id == ctx.instance_id, TK.c.status == "open").order_by(TK.c.id))
        ]
        base = {
            "case": {"id": ctx.instance_id, "workflow": wf.name, "title": wf.title, "state": ctx.state},
            "data": ctx.data,
            "payload": ctx.payload,
            "event": ctx.event,
            "comment": ctx.comment,
            "actor": {"login": ctx.actor.login, "name": ctx.actor.name or ctx.actor.login},
            "partner": {k: ctx.partner.get(k) for k in ("id", "code", "name", "timezone", "region")} if ctx.partner else None,
            "deadlines": deadlines,
            #: open inbox tasks of the case (title, role, due_at, local): what the reader must do, by when
            "tasks": tasks,
            "now": ctx.now.isoformat(),
        }
        rows = []
        for n in notes:
            for r in resolve(conn, n.to, partner=ctx.partner, data=ctx.data, actor=ctx.actor,
                             category=n.category, reminder=n.reminder):
                rows.append({
                    "instance_id": ctx.instance_id, "template": n.template, "category": n.category,
                    "recipient": r.email, "recipient_login": r.login, "locale": r.locale,
                    "timezone": r.timezone or ctx.calendar.timezone, "context": base,
                    "message_id": f"<{uuid.uuid4().hex}@partnerflow>", "status": "queued", "attempts": 0,
                    "next_attempt_at": ctx.now, "created_at": ctx.now,
                })
        if rows:
            conn.execute(insert(OB), rows)

    def _followups(self, conn: Connection, ctx: Ctx, now: datetime) -> None:
        while ctx.followups:
            item = ctx.followups.pop(0)
            if item[0] == "fire":
                _, iid, event, payload = item
                self.fire_in(conn, iid, event, SYSTEM_ACTOR, payload, None, None, now)
            elif item[0] == "start":
                _, workflow, data = item
                self.start_in(conn, self.registry.get(workflow), data, SYSTEM_ACTOR, now)

    # ---------------------------------------------------------------- reads
    def get(self, instance_id: int, actor: Actor | None = None) -> dict:
        """The case view: state, data, allowed events, history, pending timers, open tasks."""
        with self.db.read() as conn:
            return self.view(conn, instance_id, actor)

    def view(self, conn: Connection, instance_id: int, actor: Actor | None = None) -> dict:
        instance_id = whole_number("instance_id", instance_id, "a case number")
        row = _LOAD.first(conn, {"iid": instance_id})
        if row is None or (actor is not None and not self.can_see(actor, row)):
            raise NotFound(f"case {instance_id} not found")
        wf = self.registry.get(row.workflow)
        partner = self._partner(conn, row.partner_id)
        cal = calendar_for(partner.get("region"), partner.get("timezone")) if partner else calendar_for(None, None)
        history = [
            {"version": h.version, "at": h.at.isoformat(), "actor": h.actor, "event": h.event,
             "from": h.from_state, "to": h.to_state, "comment": h.comment, "payload": h.payload or {},
             "timer_id": h.timer_id}
            for h in _VIEW_HISTORY.all(conn, {"iid": instance_id})
        ]
        timers = []
        for t in _VIEW_TIMERS.all(conn, {"iid": instance_id}):
            tr = next(iter(wf.candidates(t.state, t.event)), None)
            outcome = f"-> {tr.dest}" if tr is not None and tr.dest else "(stays)"
            timers.append({"id": t.id, "name": t.name, "event": t.event, "due_at": t.due_at.isoformat(),
                           "due_local": cal.format(t.due_at), "status": t.status,
                           "does": f"{t.event} {outcome} on {cal.format(t.due_at)}"})
        tasks = [
            {"id": t.id, "name": t.name, "role": t.role, "title": t.title, "status": t.status, "assignee": t.assignee,
             "due_at": t.due_at.isoformat() if t.due_at else None,
             "due_local": cal.format(t.due_at) if t.due_at else None, "flags": t.flags or [],
             "created_at": t.created_at.isoformat()}
            for t in _VIEW_TASKS.all(conn, {"iid": instance_id})
        ]
        return {
            "id": row.id, "workflow": wf.name, "title": wf.title, "state": row.state, "version": row.version,
            "final": row.is_final, "partner": partner["code"] if partner else None,
            "partner_name": partner["name"] if partner else None, "timezone": cal.timezone,
            "business_key": row.business_key, "data": row.data or {}, "created_by": row.created_by,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
            "allowed_events": wf.allowed_events(row.state, actor) if actor else wf.events_from(row.state),
            "history": history, "timers": timers, "tasks": tasks,
        }

    # -------------------------------------------------------------- timers
    def sweep(self, limit: int = 200, now: datetime | None = None) -> SweepResult:
        """Claim up to `limit` due timers and fire them; returns what happened."""
        now = now or self.now()
        result = SweepResult()
        with self.db.write() as conn:
            result.recovered = conn.execute(
                update(TM).where(TM.c.status == "claimed", TM.c.lease_until < now)
                .values(status="pending", claimed_by=None, lease_until=None)).rowcount
            claimed = self._claim(conn, limit, now)
        result.claimed = len(claimed)
        if not claimed:
            return result
        claimed.sort(key=lambda t: (t.instance_id, t.due_at, t.id))  # one lock order for every worker
        errors: list[tuple[int, str, bool | None]] = []  # None: transient
        with self.db.write() as conn:
            for t in self._fire_batch(conn, claimed, now, result):
                try:
                    with conn.begin_nested():
                        outcome = self._fire_timer(conn, t, now)
                except PartnerflowError as exc:
                    errors.append((t.id, f"{type(exc).__name__}: {exc.message}", True))
                    continue
                except DBAPIError as exc:  # deadlock, lost connection: transient, retried with backoff
                    log.warning("timer %s on case %s: database error, will retry: %s", t.id, t.instance_id, exc)
                    errors.append((t.id, f"{type(exc).__name__}: {exc}", None))
                    continue
                except Exception as exc:  # noqa: BLE001 - one broken case must not stop the sweep
                    log.exception("timer %s on case %s failed", t.id, t.instance_id)
                    errors.append((t.id, f"{type(exc).__name__}: {exc}", False))
                    continue
                if outcome == "fired":
                    result.fired += 1
                elif outcome == "obsolete":
                    result.obsolete += 1
            for tid, message, permanent in errors:
                row = conn.execute(select(TM.c.attempts).where(TM.c.id == tid, TM.c.claimed_by == self.worker_id,
                                                               TM.c.status == "claimed")).first()
                if row is None:
                    continue
                if conn.execute(select(H.c.id).where(H.c.timer_id == tid)).first() is not None:
                    # the unique history.timer_id refused a second firing: it already fired once
                    conn.execute(update(TM).where(TM.c.id == tid).values(status="fired", lease_until=None,
                                                                         last_error=message))
                    result.duplicates += 1
                    continue
                if permanent or (permanent is False and row.attempts >= MAX_TIMER_ATTEMPTS):
                    conn.execute(update(TM).where(TM.c.id == tid).values(status="failed", last_error=message,
                                                                         lease_until=None))
                    result.failed += 1
                else:  # back off: keep it claimed by nobody until the backoff ends, then it returns to pending
                    backoff = timedelta(seconds=min(3600, 5 * 2 ** row.attempts))
                    conn.execute(update(TM).where(TM.c.id == tid).values(claimed_by=None, lease_until=now + backoff,
                                                                         last_error=message))
        return result

    def _claim(self, conn: Connection, limit: int, now: datetime) -> list:
        return _CLAIM.all(conn, self._claim_params(limit, now))

    def _claim_params(self, limit: int, now: datetime) -> dict:
        return {"now": now, "limit": limit, "worker": self.worker_id, "lease_until": now + self.lease}

    def _fire_batch(self, conn: Connection, claimed: list, now: datetime, result: SweepResult) -> list:
        """Fire the plain timers of a claimed batch with a few set-based statements; return the rest.

        A timer is plain when its transition has no guards, effect, four-eyes
        rule, payload rule, follow-ups, inbox tasks or emails: firing it is then
        fully decided in memory, and its writes (case update, history row,
        timers and tasks of the state left, timers of the state entered, timer
        marked fired) go to the database as one statement per kind for the
        whole batch, inside one savepoint. Where the event leads the same way
        from a state for every case (`_Route`), it is decided once per batch;
        otherwise per case. Everything else, and the whole batch if that
        savepoint fails, goes back to the caller for the one-by-one path.
        """
        if not claimed:
            return claimed
        insts = {r.id: r for r in _BATCH_CASES.all(conn, {"ids": sorted({t.instance_id for t in claimed})})}
        mine = {r.id for r in _BATCH_MINE.all(conn, {"ids": [t.id for t in claimed], "worker": self.worker_id})}
        routes: dict[tuple[str, str, str], object] = {}
        rest, plans, obsolete, by_case, seen = [], [], [], [], set()
        for t in claimed:
            inst = insts.get(t.instance_id)
            if inst is None or t.instance_id in seen:
                rest.append(t)
                continue
            if t.id not in mine:
                continue  # cancelled by a transition or reclaimed after our lease ended
            key = (inst.workflow, inst.state, t.event)
            route = routes.get(key)
            if route is None:
                route = routes[key] = self._route(*key)
            if route is _REST:
                rest.append(t)
            elif inst.state != t.state or inst.version < t.armed_version or route is _OBSOLETE:
                obsolete.append(t.id)
            elif route is _PER_CASE:
                seen.add(t.instance_id)
                by_case.append((t, inst))
            else:
                seen.add(t.instance_id)
                plans.append(self._plan_route(route, inst, t, now))
        if by_case:
            pids = sorted({inst.partner_id for _, inst in by_case if inst.partner_id is not None})
            partners = {r.id: r._asdict() for r in _BATCH_PARTNERS.all(conn, {"ids": pids})} if pids else {}
            data = {r.id: r.data for r in _BATCH_DATA.all(conn, {"ids": [inst.id for _, inst in by_case]})}
            for t, inst in by_case:
                try:
                    plan = self._plan_per_case(conn, self.registry.workflows[inst.workflow], inst, data[inst.id], t,
                                               partners.get(inst.partner_id), now)
                except Exception:  # noqa: BLE001 - no branch applies, a bad deadline...: the one-by-one path says
                    plan = None
                if plan is None:
                    rest.append(t)
                else:
                    plans.append(plan)
        if obsolete:
            _BATCH_OBSOLETE.execute(conn, {"ids": obsolete})
            result.obsolete += len(obsolete)
        if not plans:
            return rest
        try:
            with conn.begin_nested():
                self._write_plans(conn, plans, now)
        except Exception:  # noqa: BLE001 - the one-by-one path decides each timer and records its error
            log.info("batched firing of %d timers fell back to one by one", len(plans), exc_info=True)
            return [p["timer"] for p in plans] + rest
        result.fired += len(plans)
        return rest

    def _route(self, workflow: str, state: str, event: str):
        """How timers firing `event` on cases of `workflow` in `state` are fired (see `_Route`).

        `_REST` (one by one, in `_fire_timer`) when the transition has a rule
        only the full path runs: a guard, effect, four-eyes or payload rule, a
        required comment, tasks or emails on the event, a role the system
        lacks. `_PER_CASE` when it is plain but where it leads, or what it arms,
        depends on the case: a branch condition, a business key, a timer that
        is not a fixed duration.
        """
        wf = self.registry.workflows.get(workflow)
        if wf is None:
            return _REST
        rows = wf.candidates(state, event)
        if not rows:
            return _OBSOLETE
        if (any(r.guards or r.effect or r.four_eyes or r.payload.fields or r.comment_required for r in rows)
                or wf.tasks_for_event(event) or wf.notifications_on_event(event)):
            return _REST
        try:
            wf.check_roles(rows, event, SYSTEM_ACTOR)
        except PartnerflowError:
            return _REST  # refused for every case: the one-by-one path records why
        dest = wf.fixed_destination(state, event)
        if dest is None or wf.business_key:
            return _PER_CASE
        changed = not rows[0].internal
        arm = wf.timers_for(dest) if changed else []
        if changed and (wf.notifications_on_enter(dest) or wf.tasks_for_state(dest)):
            return _REST
        if any(tm.after is None or tm.when is not None for tm in arm):
            return _PER_CASE
        return _Route(dest=dest, changed=changed, is_final=wf.is_final(dest), has_tasks=bool(wf.tasks),
                      arm=tuple((tm.key, tm.event, tm.after) for tm in arm))

    @staticmethod
    def _plan(t, inst, dest: str, changed: bool, is_final: bool, has_tasks: bool, arm: list, business_key,
              now: datetime) -> dict:
        """The writes of firing timer `t` on case `inst` (see `_write_plans`)."""
        version = inst.version + 1
        return {
            "timer": t, "changed": changed, "arm": arm, "has_tasks": has_tasks,
            "update": {"_iid": inst.id, "_old_version": inst.version, "state": dest, "version": version, "now": now,
                       "is_final": is_final, "moved": changed, "business_key": business_key},
            "history": {"instance_id": inst.id, "version": version, "at": now, "actor": SYSTEM_ACTOR.login,
                        "event": t.event, "from_state": inst.state, "to_state": dest, "comment": None,
                        "payload": _NO_PAYLOAD, "timer_id": t.id},
        }

    def _plan_route(self, route: _Route, inst, t, now: datetime) -> dict:
        version = inst.version + 1
        arm = [{"instance_id": inst.id, "name": name, "event": event, "state": route.dest, "armed_version": version,
                "due_at": now + after, "created_at": now} for name, event, after in route.arm]
        return self._plan(t, inst, route.dest, route.changed, route.is_final, route.has_tasks, arm,
                          inst.business_key, now)

    def _plan_per_case(self, conn: Connection, wf: Workflow, inst, data, t, partner: dict | None, now: datetime):
        """The writes of firing plain timer `t` on `inst`, decided with its data; None when the branch taken
        leads to a state with tasks or emails (the one-by-one path)."""
        data = json.loads(data) if isinstance(data, str) else (data or {})
        ctx = self._ctx(conn, wf, inst.id, inst.state, data, {}, SYSTEM_ACTOR, now, partner, t.event, None)
        chosen = wf.select(ctx, t.event)
        changed = not chosen.internal
        if changed and (wf.notifications_on_enter(chosen.dest) or wf.tasks_for_state(chosen.dest)):
            return None
        dest = ctx.state = wf.apply(chosen, ctx)
        arm = self._timer_rows(wf, ctx, dest, inst.version + 1) if changed else []
        return self._plan(t, inst, dest, changed, wf.is_final(dest), bool(wf.tasks), arm,
                          wf.business_key(data) if wf.business_key else inst.business_key, now)

    def _write_plans(self, conn: Connection, plans: list, now: datetime) -> None:
        count = _UPDATE_INSTANCE_STATE.executemany(conn, [p["update"] for p in plans])  # plain: data unchanged
        if conn.dialect.supports_sane_multi_rowcount and count != len(plans):
            raise Conflict("a case changed while its timer fired")
        _INSERT_HISTORY.executemany(conn, [p["history"] for p in plans])
        fired = [p["timer"].id for p in plans]
        # Per case, through the index on the case: a set-based "instance_id IN (...) AND status IN (...)"
        # lets the planner walk every pending timer instead.
        left = [p for p in plans if p["changed"]]
        _CANCEL_OTHER_TIMERS.executemany(conn, [{"iid": p["timer"].instance_id, "tid": p["timer"].id} for p in left])
        _CLOSE_TASKS.executemany(conn, [{"iid": p["timer"].instance_id, "now": now, "by": SYSTEM_ACTOR.login}
                                        for p in left if p["has_tasks"]])
        arm = [row for p in plans for row in p["arm"]]
        if arm:
            _INSERT_TIMERS.executemany(conn, arm)
        if _BATCH_FIRED.execute(conn, {"ids": fired, "now": now, "worker": self.worker_id}) != len(fired):
            raise Conflict("a timer of the batch was taken by another worker")

    def _fire_timer(self, conn: Connection, t, now: datetime) -> str:
        inst = self._load(conn, t.instance_id, None)
        mine = _TIMER_MINE.first(conn, {"tid": t.id})
        if mine is None or mine.status != "claimed" or mine.claimed_by != self.worker_id:
            return "lost"  # cancelled by a transition or reclaimed after our lease ended
        wf = self.registry.get(inst.workflow)
        if inst.state != t.state or inst.version < t.armed_version or not wf.candidates(inst.state, t.event):
            conn.execute(update(TM).where(TM.c.id == t.id).values(status="obsolete", lease_until=None))
            return "obsolete"
        self.fire_in(conn, t.instance_id, t.event, SYSTEM_ACTOR, {}, None, None, now, timer_id=t.id, row=inst)
        if _TIMER_FIRED.execute(conn, {"tid": t.id, "worker": self.worker_id, "now": now}) != 1:
            raise Conflict(f"timer {t.id} was taken by another worker")
        return "fired"

    def drain(self, now: datetime | None = None, batch: int = 200, max_batch: int = MAX_SWEEP_BATCH) -> SweepResult:
        """Sweep until nothing is due at `now` (timers armed during the drain included).

        A sweep that claims a full batch in less than `SWEEP_TARGET_SECONDS`
        doubles the next one, up to `max_batch`; one that takes four times that
        halves it, down to `batch`. At a month start, when thousands of
        deadlines fall due together, a few large batches fire them several
        times faster than many small ones (fewer commits; a page of cases,
        timers or index is written once for many of them), while no firing
        transaction holds SQLite's write lock, or PostgreSQL's row locks, much
        longer than a quarter of a second.
        """
        total = SweepResult()
        size = batch
        while True:
            began = time.perf_counter()
            step = self.sweep(size, now)
            took = time.perf_counter() - began
            total += step
            if step.claimed == 0:
                return total
            if step.claimed >= size and took < SWEEP_TARGET_SECONDS:
                size = min(max_batch, size * 2)
            elif took > 4 * SWEEP_TARGET_SECONDS:
                size = max(batch, size // 2)

    # ------------------------------------------------------------ schedules
    def run_schedules(self, now: datetime | None = None) -> int:
        """Run every calendar-schedule slot that is due; each slot runs once across all workers."""
        from .schedules import ScheduleCtx

        now = now or self.now()
        ran = 0
        for sched in self.registry.schedules:
            with self.db.write() as conn:
                exists = conn.execute(select(SC.c.name).where(SC.c.name == sched.name)).first()
                if exists is None:
                    # a slot falling exactly on `now` is still due: start just before it
                    conn.execute(insert(SC).values(name=sched.name,
                                                   next_at=sched.next_after(now - timedelta(microseconds=1))))
            while True:
                with self.db.write() as conn:
                    row = conn.execute(select(SC).where(SC.c.name == sched.name)).first()
                    if row is None or row.next_at > now:
                        break
                    slot = row.next_at
                    following = sched.next_after(slot)
                    won = conn.execute(update(SC).where(SC.c.name == sched.name, SC.c.next_at == slot).values(
                        next_at=following, last_slot=slot, last_run_at=now)).rowcount
                    if won != 1:
                        continue
                    result = sched.action(ScheduleCtx(runtime=self, conn=conn, now=now, slot=slot))
                    conn.execute(update(SC).where(SC.c.name == sched.name).values(
                        last_result=str(result) if result is not None else None))
                    ran += 1
        return ran

    def tick(self, now: datetime | None = None) -> SweepResult:
        """One heartbeat: due schedules, then every due timer."""
        now = now or self.now()
        self.run_schedules(now)
        return self.drain(now)

    # ------------------------------------------------------- simulated time
    def advance(self, delta: timedelta) -> AdvanceResult:
        """Move the simulated clock by `delta`, firing every timer and schedule slot due on the way, in due order."""
        if not isinstance(self.clock, SimulatedClock):
            raise Conflict("the clock is the system clock; set PARTNERFLOW_CLOCK=simulated to move time")
        start = self.now()
        return self.advance_to(start + delta)

    def advance_to(self, target: datetime) -> AdvanceResult:
        if not isinstance(self.clock, SimulatedClock):
            raise Conflict("the clock is the system clock; set PARTNERFLOW_CLOCK=simulated to move time")
        target = require_aware(target, "target")
        start = self.now()
        result = AdvanceResult(start=start, end=target)
        if target <= start:  # moving back (or nowhere) fires nothing
            self.clock.set(target)
            return result
        current = start
        for _ in range(1_000_000):
            nxt = self._next_due(current)
            step_to = target if nxt is None or nxt > target else max(nxt, current)
            self.clock.set(step_to)
            current = step_to
            result.schedules_run += self.run_schedules(current)
            swept = self.drain(current)
            result.timers_fired += swept.fired
            result.timers_obsolete += swept.obsolete
            result.timers_failed += swept.failed
            if swept.fired or swept.obsolete:
                result.steps.append({"at": current.isoformat(), "fired": swept.fired})
            if current >= target:
                nxt = self._next_due(current)
                if nxt is None or nxt > target:
                    break
        return result

    def _next_due(self, after: datetime) -> datetime | None:
        with self.db.read() as conn:
            timer = conn.execute(select(func.min(TM.c.due_at)).where(TM.c.status == "pending")).scalar()
            lease = conn.execute(select(func.min(TM.c.lease_until)).where(TM.c.status == "claimed")).scalar()
            names = [s.name for s in self.registry.schedules]
            sched = conn.execute(select(func.min(SC.c.next_at)).where(SC.c.name.in_(names))).scalar() if names else None
            known = {r.name for r in conn.execute(select(SC.c.name))} if names else set()
        # schedules never seen yet get their first slot computed from `after`
        firsts = [s.next_after(after) for s in self.registry.schedules if s.name not in known]
        candidates = [c for c in (timer, lease, sched, *firsts) if c is not None]
        return min(candidates) if candidates else None

    # ----------------------------------------------------------- inbox reads
    def open_tasks(self, actor: Actor, *, roles: Iterable[str] | None = None, limit: int = 50) -> list[dict]:
        """Open tasks for the actor's roles (partner users: only their partner's)."""
        wanted = set(roles or actor.roles)
        with self.db.read() as conn:
            query = select(TK, I.c.state.label("case_state")).join(I, I.c.id == TK.c.instance_id).where(
                TK.c.status == "open", TK.c.role.in_(sorted(wanted)))
            if actor.partner_id is not None:
                query = query.where(TK.c.partner_id == actor.partner_id)
            rows = conn.execute(query.order_by(TK.c.due_at, TK.c.id).limit(limit)).all()
        return [{"id": r.id, "case": r.instance_id, "workflow": r.workflow, "role": r.role, "title": r.title,
                 "state": r.case_state, "due_at": r.due_at.isoformat() if r.due_at else None,
                 "assignee": r.assignee, "flags": r.flags or []} for r in rows]
