"""Query and command services of the web layer; views call these and the runtime, never SQL.

Everything here takes the `Runtime` and the acting `Actor` and returns plain
data or raises the engine's typed errors (`ValidationError`, `Forbidden`,
`NotFound`, `Conflict`), so the HTML pages and the JSON API share one set of
rules and messages.

The inbox is read with keyset pagination: for each role of the reader one
index range scan on ``tasks (status, role[, workflow | partner_id], due_at, id)``
(``tasks (status, assignee, due_at, id)`` for "assigned to me") fetches at most
a page plus one row after the cursor, with the partner joined on its key, and
the per-role lists are merged in order. Tasks without a due date come after all
dated ones, in id order. Neither the first page nor a deep one counts or skips
rows, so both cost the same at a million cases (tests/web/test_inbox_plans.py
checks the plans).
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Column, String, delete, func, insert, select, update
from werkzeug.security import check_password_hash

from engine.actors import Actor
from engine.calendar import calendar_for
from engine.directory import add_partner, add_user, public_user, user_by_login
from engine.errors import Conflict, Forbidden, NotFound, ValidationError, MAX_ID, whole_number
from engine.fastsql import Fast
from engine.models import History, Instance, Outbox, Partner, Task, User
from engine.roles import ADMIN, OPERATOR_ROLES, PARTNER_ROLES, SYSTEM
from engine.schema import Field, Schema

from .models_web import ApiToken, LoginAttempt

TK = Task.__table__
I = Instance.__table__
H = History.__table__
P = Partner.__table__
U = User.__table__
OB = Outbox.__table__
AT = ApiToken.__table__
LA = LoginAttempt.__table__

PAGE_SIZE = 50
DUE_FILTERS = ("overdue", "today", "week", "none")
ASSIGNED_FILTERS = ("me", "unassigned")
DEMO_PASSWORD = "partnerflow-demo"


# ------------------------------------------------------------------ people
def is_operator(actor: Actor) -> bool:
    """A vendor employee (or admin): sees every partner's cases."""
    return actor.partner_id is None and bool(actor.roles & (OPERATOR_ROLES | {ADMIN}))


def is_admin(actor: Actor) -> bool:
    return ADMIN in actor.roles


def require_admin(actor: Actor) -> None:
    if not is_admin(actor):
        raise Forbidden(f"this needs the admin role; {actor.login} has {', '.join(sorted(actor.roles)) or 'no roles'}")


def inbox_roles(actor: Actor) -> list[str]:
    """Roles whose tasks the actor sees: their own, and every operator role for an admin."""
    roles = set(actor.roles) - {SYSTEM}
    if ADMIN in roles:
        roles |= OPERATOR_ROLES
    return sorted(roles)


def authenticate(rt, login: str, password: str) -> Actor | None:
    """The actor when `login` and `password` match an active user with a password, else None."""
    with rt.db.read() as conn:
        user = user_by_login(conn, login) if login else None
    if user is None or not user["active"] or not user["password_hash"]:
        # same work for unknown users, so timing does not reveal which logins exist
        check_password_hash("scrypt:32768:8:1$AAAAAAAAAAAAAAAA$" + "0" * 128, password or "")
        return None
    if not check_password_hash(user["password_hash"], password or ""):
        return None
    return rt.actor(login)


def demo_users(rt) -> list[dict]:
    """Users who can sign in with the demo password (listed on the login page in demo mode)."""
    with rt.db.read() as conn:
        rows = conn.execute(select(U.c.login, U.c.name, U.c.roles, U.c.password_hash, U.c.partner_id)
                            .where(U.c.active.is_(True), U.c.password_hash.is_not(None)).order_by(U.c.login)).all()
        codes = {r.id: r.code for r in conn.execute(select(P.c.id, P.c.code))}
    return [{"login": r.login, "name": r.name, "roles": list(r.roles or []), "partner": codes.get(r.partner_id)}
            for r in rows if check_password_hash(r.password_hash, DEMO_PASSWORD)]


# ------------------------------------------------------- login rate limit
def _wall_now() -> datetime:
    return datetime.now(UTC)


def login_limited(rt, keys: list[str], limit: int, window: timedelta = timedelta(minutes=1),
                  now: datetime | None = None) -> bool:
    """Have any of `keys` (login, client address) reached `limit` failed attempts within `window`?"""
    now = now or _wall_now()
    with rt.db.read() as conn:
        for key in keys:
            n = conn.execute(select(func.count()).select_from(LA).where(LA.c.key == key, LA.c.at > now - window)).scalar()
            if n >= limit:
                return True
    return False


def record_login_failure(rt, keys: list[str], now: datetime | None = None) -> None:
    """Count a failed attempt under each key; rows older than a day are dropped on the way."""
    now = now or _wall_now()
    with rt.db.write() as conn:
        conn.execute(insert(LA), [{"key": k[:300], "at": now} for k in keys])
        conn.execute(delete(LA).where(LA.c.at < now - timedelta(days=1)))


# ------------------------------------------------------------- API tokens
def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(rt, login: str, name: str = "api") -> dict:
    """Create a token for `login`; the token itself is returned once and only its hash is stored."""
    with rt.db.write() as conn:
        user = user_by_login(conn, login)
        if user is None:
            raise NotFound(f"no user with login {login!r}")
        if not user["active"]:
            raise Forbidden(f"user {login!r} is deactivated")
        token = "pf_" + secrets.token_urlsafe(32)
        now = rt.now() if not rt.clock.simulated else _wall_now()
        tid = conn.execute(insert(AT).values(login=login, name=(name or "api")[:200], token_hash=_hash_token(token),
                                             prefix=token[:10], created_at=now).returning(AT.c.id)).scalar_one()
    return {"id": tid, "login": login, "name": name, "token": token, "prefix": token[:10]}


def token_actor(rt, token: str) -> Actor | None:
    """The actor a bearer token stands for, or None when unknown or revoked."""
    if not token or len(token) > 200:
        return None
    with rt.db.read() as conn:
        row = conn.execute(select(AT.c.login).where(AT.c.token_hash == _hash_token(token),
                                                    AT.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    try:
        return rt.actor(row.login)
    except (NotFound, Forbidden):
        return None


def list_tokens(rt, login: str | None = None) -> list[dict]:
    with rt.db.read() as conn:
        q = select(AT.c.id, AT.c.login, AT.c.name, AT.c.prefix, AT.c.created_at, AT.c.revoked_at).order_by(AT.c.id)
        if login:
            q = q.where(AT.c.login == login)
        return [dict(r._mapping) for r in conn.execute(q)]


def revoke_token(rt, token_id: int) -> None:
    with rt.db.write() as conn:
        done = conn.execute(update(AT).where(AT.c.id == token_id, AT.c.revoked_at.is_(None))
                            .values(revoked_at=_wall_now())).rowcount
    if not done:
        raise NotFound(f"no active token with id {token_id}")


# ------------------------------------------------------------------ inbox
@dataclass(frozen=True)
class InboxQuery:
    workflow: str | None = None
    partner: str | None = None
    due: str | None = None
    assigned: str | None = None
    after: str | None = None
    limit: int = PAGE_SIZE


def parse_inbox_query(args, rt) -> InboxQuery:
    """Read and check the inbox filters from request arguments (field-named errors)."""
    def arg(name):
        value = args.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    workflow, partner, due, assigned = arg("workflow"), arg("partner"), arg("due"), arg("assigned")
    if workflow is not None and workflow not in rt.registry.workflows:
        _bad("workflow", workflow, sorted(rt.registry.workflows))
    if due is not None and due not in DUE_FILTERS:
        _bad("due", due, DUE_FILTERS)
    if assigned is not None and assigned not in ASSIGNED_FILTERS:
        _bad("assigned", assigned, ASSIGNED_FILTERS)
    if partner is not None and len(partner) > 64:
        raise ValidationError("partner", "is not a partner code")
    limit = arg("limit")
    size = PAGE_SIZE if limit is None else whole_number("limit", limit, low=1, high=200)
    after = arg("after")
    if after is not None:
        _decode_cursor(after)
    return InboxQuery(workflow, partner, due, assigned, after, size)


def _bad(field: str, value, allowed) -> None:
    raise ValidationError(field, f"{value!r} is not one of: {', '.join(allowed)}")


def _encode_cursor(due_at: datetime | None, tid: int) -> str:
    if due_at is None:
        return f"n.{tid}"
    return f"{int(due_at.timestamp() * 1_000_000)}.{tid}"


def _decode_cursor(text: str) -> tuple[datetime | None, int]:
    try:
        head, tail = text.split(".", 1)
        tid = int(tail)
        if not 0 <= tid <= MAX_ID:
            raise ValueError(tail)
        if head == "n":
            return None, tid
        return datetime.fromtimestamp(int(head) / 1_000_000, UTC), tid
    except (ValueError, OverflowError, OSError):
        raise ValidationError("after", f"{text[:40]!r} is not a page cursor from this inbox") from None


def _zone(actor: Actor) -> str | None:
    return actor.timezone


def _due_bounds(cal, now: datetime) -> tuple[datetime, datetime]:
    """(now, end of the reader's day): a task due before the first is overdue, before the second due today."""
    return now, cal.end_of_day(cal.local_date(now))


# Columns of an inbox row: the task's, plus its partner's code and name (LEFT JOIN on the primary key).
_INBOX_COLS = (TK.c.id, TK.c.instance_id, TK.c.workflow, TK.c.partner_id, TK.c.state, TK.c.role, TK.c.title,
               TK.c.assignee, TK.c.due_at, TK.c.amount, TK.c.currency, TK.c.flags, TK.c.created_at)
_INBOX_SELECT = ("SELECT " + ", ".join(f"t.{c.name}" for c in _INBOX_COLS) + ", p.code, p.name "
                 "FROM tasks AS t {hint}LEFT JOIN partners AS p ON p.id = t.partner_id WHERE ")
_INBOX_RESULT = _INBOX_COLS + (Column("partner_code", String()), Column("partner_name", String()))
_INBOX_BINDS = {"lo": TK.c.due_at.type, "hi": TK.c.due_at.type, "c_due": TK.c.due_at.type}
_inbox_statements: dict[tuple, Fast] = {}


def _inbox_statement(dialect: str, conds: tuple[str, ...], hint: str = "") -> Fast:
    """The inbox SELECT for one shape of conditions (built once per shape and dialect, then reused).

    Undated tasks are ordered by (due_at, id) too: all their due_at are NULL, so that is id order, and it is
    the order of the index, which PostgreSQL only sees when it is spelt out (else it scans the primary key).
    """
    key = (dialect, conds, hint)
    stmt = _inbox_statements.get(key)
    if stmt is None:
        sql = _INBOX_SELECT.format(hint=hint) + " AND ".join(conds) + " ORDER BY t.due_at, t.id LIMIT :lim"
        stmt = _inbox_statements[key] = Fast(sql, table=TK, binds=_INBOX_BINDS, result=_INBOX_RESULT)
    return stmt


def inbox(rt, actor: Actor, q: InboxQuery, now: datetime | None = None) -> dict:
    """A page of open tasks for the actor's roles: items, the cursor of the next page, and the filters used.

    Each query is an index range in (due_at, id) order that stops after a page plus one row; whether there
    is a next page is known from that extra row, never from a count. `now` (default: the runtime's clock)
    lets a page that also shows the time read the clock once.
    """
    now = now or rt.now()
    cal = calendar_for(None, _zone(actor))
    bounds = _due_bounds(cal, now)
    dialect = rt.db.dialect
    with rt.db.read() as conn:
        partner_id = None
        if actor.partner_id is not None:
            partner_id = actor.partner_id
            if q.partner:
                own = conn.execute(select(P.c.code).where(P.c.id == actor.partner_id)).scalar()
                if q.partner != own:
                    raise Forbidden(f"{actor.login} acts for partner {own} and cannot see tasks of {q.partner}")
        elif q.partner:
            partner_id = conn.execute(select(P.c.id).where(P.c.code == q.partner)).scalar()
            if partner_id is None:
                raise ValidationError("partner", f"no partner with code {q.partner!r}")
        lo = hi = None
        only_null = False
        if q.due == "overdue":
            hi = now
        elif q.due == "today":
            lo, hi = cal.start_of_day(cal.local_date(now)), bounds[1]
        elif q.due == "week":
            hi = now + timedelta(days=7)
        elif q.due == "none":
            only_null = True
        cursor = _decode_cursor(q.after) if q.after else None
        roles = inbox_roles(actor)
        want = q.limit + 1
        params: dict = {"lim": want}
        base = ["t.status = 'open'"]
        if q.workflow:
            base.append("t.workflow = :workflow")
            params["workflow"] = q.workflow
        if partner_id is not None:
            base.append("t.partner_id = :partner_id")
            params["partner_id"] = partner_id
        hint = ""
        names = [f"r{i}" for i in range(len(roles))]
        params.update(zip(names, roles))
        if q.assigned == "me":
            # One range of the (status, assignee, due_at, id) index: my tasks are few, my role's are many.
            # SQLite's statistics cannot tell (most assignees are NULL), so it is told which index to use.
            params["assignee"] = actor.login
            groups = [("t.assignee = :assignee", f"t.role IN ({', '.join(':' + n for n in names)})")] if roles else []
            hint = "INDEXED BY ix_tasks_assignee " if dialect == "sqlite" else ""
        else:
            unassigned = ("t.assignee IS NULL",) if q.assigned == "unassigned" else ()
            groups = [(f"t.role = :{n}", *unassigned) for n in names]
        rows: list = []
        if not (only_null or (cursor is not None and cursor[0] is None)):
            dated = ["t.due_at IS NOT NULL"]
            if lo is not None:
                dated.append("t.due_at >= :lo")
                params["lo"] = lo
            if hi is not None:
                dated.append("t.due_at <= :hi")
                params["hi"] = hi
            if cursor is not None:  # (due_at, id) > cursor, written so the index range starts at the cursor
                dated.append("t.due_at >= :c_due AND (t.due_at > :c_due OR t.id > :c_id)")
                params["c_due"], params["c_id"] = cursor
            for group in groups:
                rows.extend(_inbox_statement(dialect, (*base, *group, *dated), hint).all(conn, params))
            if len(groups) > 1:
                rows.sort(key=lambda r: (r.due_at, r.id))
                del rows[want:]
        if len(rows) < want and q.due in (None, "none"):
            undated = ["t.due_at IS NULL"]
            if cursor is not None and cursor[0] is None:
                undated.append("t.id > :c_id")
                params["c_id"] = cursor[1]
            params["lim"] = want - len(rows)
            extra: list = []
            for group in groups:
                extra.extend(_inbox_statement(dialect, (*base, *group, *undated), hint).all(conn, params))
            if len(groups) > 1:
                extra.sort(key=lambda r: r.id)
            rows.extend(extra[:want - len(rows)])
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    local = cal.format
    login = actor.login
    items = [_task_item(r, r.partner_code, r.partner_name, login, bounds, local) for r in rows]
    nxt = _encode_cursor(rows[-1].due_at, rows[-1].id) if more and rows else None
    return {"items": items, "next": nxt, "now": now.isoformat(), "timezone": cal.timezone,
            "filters": {"workflow": q.workflow, "partner": q.partner, "due": q.due, "assigned": q.assigned}}


def _task_item(r, partner_code: str | None, partner_name: str | None, login: str, bounds: tuple, local) -> dict:
    """One inbox row; `bounds` is (now, end of the reader's day) and `local` formats an instant for the reader."""
    due = r.due_at
    due_mark = None
    if due is not None:
        if due < bounds[0]:
            due_mark = "overdue"
        elif due <= bounds[1]:
            due_mark = "due today"
    return {
        "id": r.id, "case": r.instance_id, "workflow": r.workflow, "state": r.state, "role": r.role,
        "title": r.title, "partner": partner_code, "partner_name": partner_name,
        "waiting_since": r.created_at.isoformat(), "waiting_since_local": local(r.created_at),
        "due_at": due.isoformat() if due is not None else None,
        "due_local": local(due) if due is not None else None, "due_mark": due_mark,
        "amount": str(r.amount) if r.amount is not None else None, "currency": r.currency,
        "assignee": r.assignee, "mine": r.assignee == login, "flags": list(r.flags or []),
    }


def _load_task(conn, actor: Actor, task_id) -> object:
    task_id = whole_number("task", task_id, "a task number")
    row = conn.execute(select(TK).where(TK.c.id == task_id)).first()
    if row is None or (actor.partner_id is not None and row.partner_id != actor.partner_id):
        raise NotFound(f"task {task_id} not found")
    return row


def invitation_case(rt, actor: Actor, code: str) -> int:
    """The case a customer invitation link names, when it is open and `actor` may see it (the invited
    customer, the inviting partner, operators); otherwise a NotFound that says why a link stops working."""
    row = None
    if "customer_association" in rt.registry.workflows:
        from workflows.customer_association import open_invitation

        with rt.db.read() as conn:
            row = open_invitation(conn, code)
    if row is None or not rt.can_see(actor, row):
        raise NotFound("this invitation link is not open for you: it was accepted, declined, withdrawn or has "
                       "expired, or it was sent to another customer. Sign in as the invited customer, or ask the "
                       "partner for a new invitation")
    return row.id


def get_task(rt, actor: Actor, task_id) -> dict:
    with rt.db.read() as conn:
        row = _load_task(conn, actor, task_id)
        partner = conn.execute(select(P.c.code, P.c.name).where(P.c.id == row.partner_id)).first() \
            if row.partner_id is not None else None
    now = rt.now()
    cal = calendar_for(None, _zone(actor))
    item = _task_item(row, partner.code if partner else None, partner.name if partner else None, actor.login,
                      _due_bounds(cal, now), cal.format)
    item["status"] = row.status
    return item


def _check_may_work(actor: Actor, row) -> None:
    if row.status != "open":
        raise Conflict(f"task {row.id} is {row.status}: the case has moved on")
    if not actor.may(frozenset({row.role})):
        raise Forbidden(f"task {row.id} is for role {row.role}; {actor.login} has "
                        f"{', '.join(sorted(actor.roles)) or 'no roles'}")


def claim(rt, actor: Actor, task_id) -> dict:
    """Take an open, unassigned task of one of my roles."""
    with rt.db.write() as conn:
        row = _load_task(conn, actor, task_id)
        _check_may_work(actor, row)
        if row.assignee == actor.login:
            return {"id": row.id, "assignee": actor.login}
        done = conn.execute(update(TK).where(TK.c.id == row.id, TK.c.status == "open", TK.c.assignee.is_(None))
                            .values(assignee=actor.login)).rowcount
        if not done:
            raise Conflict(f"task {row.id} is already claimed by {row.assignee}; ask them or an admin to reassign it")
    return {"id": row.id, "assignee": actor.login}


def unclaim(rt, actor: Actor, task_id) -> dict:
    """Give a task back to the role's pool: its assignee or an admin may."""
    with rt.db.write() as conn:
        row = _load_task(conn, actor, task_id)
        _check_may_work(actor, row)
        if row.assignee is None:
            raise Conflict(f"task {row.id} is not claimed by anyone")
        if row.assignee != actor.login and not is_admin(actor):
            raise Forbidden(f"task {row.id} is claimed by {row.assignee}; only they or an admin may release it")
        conn.execute(update(TK).where(TK.c.id == row.id).values(assignee=None))
    return {"id": row.id, "assignee": None}


def reassign(rt, actor: Actor, task_id, to_login: str) -> dict:
    """Hand a task to another user who holds its role (the current assignee, an unclaimed task's role holder, or an admin)."""
    if not isinstance(to_login, str) or not to_login.strip():
        raise ValidationError("assignee", "is required: the login of the person who takes the task")
    to_login = to_login.strip()
    with rt.db.write() as conn:
        row = _load_task(conn, actor, task_id)
        _check_may_work(actor, row)
        if row.assignee not in (None, actor.login) and not is_admin(actor):
            raise Forbidden(f"task {row.id} is claimed by {row.assignee}; only they or an admin may reassign it")
        target = user_by_login(conn, to_login)
        if target is None or not target["active"]:
            raise ValidationError("assignee", f"no active user with login {to_login!r}")
        other = Actor(login=target["login"], roles=frozenset(target["roles"] or []), partner_id=target["partner_id"])
        if not other.may(frozenset({row.role})) or (row.role in PARTNER_ROLES and target["partner_id"] != row.partner_id):
            raise ValidationError("assignee", f"{to_login} does not hold role {row.role} for this task")
        conn.execute(update(TK).where(TK.c.id == row.id).values(assignee=to_login))
    return {"id": row.id, "assignee": to_login}


def bulk_claim(rt, actor: Actor, task_ids) -> dict:
    """Claim several tasks; each is claimed or reported with the reason it was not."""
    if not isinstance(task_ids, list) or not task_ids:
        raise ValidationError("tasks", "choose at least one task")
    if len(task_ids) > 200:
        raise ValidationError("tasks", f"{len(task_ids)} tasks chosen; at most 200 at once")
    claimed, skipped = [], []
    for tid in task_ids:
        try:
            claim(rt, actor, tid)
            claimed.append(int(tid))
        except (Conflict, Forbidden, NotFound, ValidationError) as exc:
            skipped.append({"id": tid, "reason": exc.message})
    return {"claimed": claimed, "skipped": skipped}


# ------------------------------------------------------------------ cases
def case_page(rt, actor: Actor, case_id) -> dict:
    """The case as the actor sees it, plus what the page needs: diagram, decision forms, four-eyes notes, zone."""
    view = rt.get(case_id, actor)
    wf = rt.registry.get(view["workflow"])
    decisions = []
    authors = set()
    author_events = {t.event for t in wf.transitions if t.authors} | {"start"}
    for h in view["history"]:
        if h["event"] in author_events and h["actor"] != "system":
            authors.add(h["actor"])
    for event in view["allowed_events"]:
        rows = wf.candidates(view["state"], event)
        if not rows or all(r.role_set == {SYSTEM} for r in rows):
            continue
        first = rows[0]
        blocked = None
        if any(r.four_eyes for r in rows):
            if actor.login in authors:
                blocked = f"four-eyes rule: you submitted or edited this case, so another approver must {event} it"
            elif actor.delegate_of & authors:
                blocked = (f"four-eyes rule: you are a delegate of {', '.join(sorted(actor.delegate_of & authors))}, "
                           f"who submitted or edited this case")
        decisions.append({
            "event": event, "label": first.label or event.replace("_", " "),
            "comment_required": any(r.comment_required for r in rows), "four_eyes": any(r.four_eyes for r in rows),
            "fields": form_fields(first.payload), "blocked": blocked,
            "destinations": sorted({r.dest for r in rows if r.dest}),
        })
    cal = calendar_for(None, _zone(actor))
    for h in view["history"]:
        h["at_local"] = cal.format(datetime.fromisoformat(h["at"]))
    for t in view["tasks"]:
        t["mine"] = t["assignee"] == actor.login
    return {"case": view, "decisions": decisions, "diagram": wf.mermaid(view["state"], actor),
            "reachable": sorted({t.dest for t in wf.transitions if view["state"] in t.sources and t.dest
                                 and t.dest != view["state"] and actor.may(t.role_set)}),
            "state_description": wf.state_descriptions.get(view["state"], ""), "workflow": wf}


def form_fields(schema: Schema) -> list[dict]:
    """The payload fields of a transition as HTML form controls."""
    out = []
    for f in schema.fields:
        widget = {"str": "text", "email": "email", "int": "number", "money": "money", "bool": "checkbox",
                  "date": "date", "datetime": "datetime", "choice": "select", "text": "textarea"}.get(f.kind, "json")
        if f.kind == "list" and isinstance(f.items, Field) and f.items.kind in ("str", "email", "int", "money", "date"):
            widget = "lines"
        out.append({"name": f.name, "kind": f.kind, "widget": widget, "required": f.required,
                    "choices": list(f.choices or ()), "description": f.description, "max_length": f.max_length})
    return out


def payload_from_form(schema: Schema, form) -> dict:
    """Turn submitted form text into the JSON payload the schema validates (the engine checks it)."""
    data: dict = {}
    for f in schema.fields:
        key = f"field_{f.name}"
        raw = form.get(key)
        if f.kind == "bool":
            data[f.name] = key in form
            continue
        if raw is None or raw.strip() == "":
            continue
        if f.kind == "list" and isinstance(f.items, Field) and f.items.kind in ("str", "email", "int", "money", "date"):
            data[f.name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif f.kind in ("list", "object", "json"):
            try:
                data[f.name] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValidationError(f.name, f"is not valid JSON: {exc.msg} at character {exc.pos}") from None
        else:
            data[f.name] = raw
    return data


def list_cases(rt, actor: Actor, args) -> dict:
    """Cases the actor may see, newest first, filtered by workflow, state, partner and open/final; keyset on id."""
    def arg(name):
        v = args.get(name)
        return v.strip() if isinstance(v, str) and v.strip() else None

    workflow, state, partner, final, after, limit = (arg(n) for n in ("workflow", "state", "partner", "final",
                                                                      "after", "limit"))
    conds = []
    if workflow:
        if workflow not in rt.registry.workflows:
            _bad("workflow", workflow, sorted(rt.registry.workflows))
        conds.append(I.c.workflow == workflow)
    if state:
        if len(state) > 64:
            raise ValidationError("state", "is too long")
        conds.append(I.c.state == state)
    if final is not None:
        if final not in ("true", "false"):
            _bad("final", final, ("true", "false"))
        conds.append(I.c.is_final.is_(final == "true"))
    size = 50 if limit is None else whole_number("limit", limit, low=1, high=200)
    if after is not None:
        conds.append(I.c.id < whole_number("after", after, "a case number"))
    with rt.db.read() as conn:
        if actor.partner_id is not None:
            conds.append(I.c.partner_id == actor.partner_id)
            if partner:
                own = conn.execute(select(P.c.code).where(P.c.id == actor.partner_id)).scalar()
                if partner != own:
                    raise Forbidden(f"{actor.login} acts for partner {own} and cannot list cases of {partner}")
        elif not is_operator(actor):  # a person with no partner: only the cases they started
            conds.append(I.c.created_by == actor.login)
        elif partner:
            pid = conn.execute(select(P.c.id).where(P.c.code == partner)).scalar()
            if pid is None:
                raise ValidationError("partner", f"no partner with code {partner!r}")
            conds.append(I.c.partner_id == pid)
        rows = conn.execute(select(I.c.id, I.c.workflow, I.c.state, I.c.version, I.c.partner_id, I.c.business_key,
                                   I.c.is_final, I.c.created_by, I.c.created_at, I.c.updated_at)
                            .where(*conds).order_by(I.c.id.desc()).limit(size + 1)).all()
        pids = {r.partner_id for r in rows if r.partner_id is not None}
        codes = {p.id: p.code for p in conn.execute(select(P.c.id, P.c.code).where(P.c.id.in_(pids)))} if pids else {}
    more = len(rows) > size
    rows = rows[:size]
    items = [{"id": r.id, "workflow": r.workflow, "state": r.state, "version": r.version,
              "partner": codes.get(r.partner_id), "business_key": r.business_key, "final": r.is_final,
              "created_by": r.created_by, "created_at": r.created_at.isoformat(),
              "updated_at": r.updated_at.isoformat()} for r in rows]
    return {"items": items, "next": str(rows[-1].id) if more and rows else None}


def case_of_task(rt, actor: Actor, task_id) -> int:
    with rt.db.read() as conn:
        return _load_task(conn, actor, task_id).instance_id


# ------------------------------------------------------------------ outbox
def _outbox_scope(actor: Actor):
    if is_operator(actor):
        return []
    return [OB.c.recipient_login == actor.login]


def list_outbox(rt, actor: Actor, args=None) -> dict:
    """Outbox messages, newest first: all of them for operators, one's own for everyone else."""
    args = args or {}
    conds = list(_outbox_scope(actor))
    case, status, after = args.get("case"), args.get("status"), args.get("after")
    if case:
        conds.append(OB.c.instance_id == whole_number("case", case))
    if after:
        conds.append(OB.c.id < whole_number("after", after))
    if status:
        conds.append(OB.c.status == status)
    with rt.db.read() as conn:
        rows = conn.execute(select(OB.c.id, OB.c.instance_id, OB.c.template, OB.c.recipient, OB.c.recipient_login,
                                   OB.c.locale, OB.c.status, OB.c.created_at, OB.c.sent_at, OB.c.category,
                                   OB.c.message_id)
                            .where(*conds).order_by(OB.c.id.desc()).limit(101)).all()
    more = len(rows) > 100
    rows = rows[:100]
    items = [{"id": r.id, "case": r.instance_id, "template": r.template, "recipient": r.recipient,
              "recipient_login": r.recipient_login, "locale": r.locale, "status": r.status,
              "category": r.category, "message_id": r.message_id, "created_at": r.created_at.isoformat(),
              "sent_at": r.sent_at.isoformat() if r.sent_at else None} for r in rows]
    return {"items": items, "next": str(rows[-1].id) if more and rows else None}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    rendered: bool


def outbox_message(rt, actor: Actor, message_id) -> tuple[dict, Rendered]:
    """One outbox row (if the actor may see it) and its rendering by the notifications renderer."""
    message_id = whole_number("message", message_id, "a message number")
    with rt.db.read() as conn:
        row = conn.execute(select(OB).where(OB.c.id == message_id, *_outbox_scope(actor))).first()
    if row is None:
        raise NotFound(f"message {message_id} not found")
    data = dict(row._mapping)
    return data, render(data)


def render(row: dict) -> Rendered:
    """Render with `notifications.render.render_message` when installed; otherwise show the raw context."""
    try:
        from notifications.render import render_message
    except ImportError:
        ctx = json.dumps(row.get("context") or {}, indent=2, ensure_ascii=False, default=str)
        return Rendered(subject=f"[{row['template']}]", text=ctx, html="", rendered=False)
    from engine.errors import PartnerflowError

    try:
        msg = render_message(row)
    except PartnerflowError as exc:
        return Rendered(subject=f"[{row['template']}] cannot be rendered", text=exc.message, html="", rendered=False)
    return Rendered(subject=msg.subject, text=msg.text, html=msg.html, rendered=True)


# ------------------------------------------------------- reference data
def partner_choices(rt, actor: Actor) -> list[dict]:
    """Codes and names of the partners an operator may filter by (empty for partner users)."""
    if not is_operator(actor):
        return []
    with rt.db.read() as conn:
        return [{"code": r.code, "name": r.name} for r in conn.execute(select(P.c.code, P.c.name).order_by(P.c.code))]


def list_partners(rt, actor: Actor) -> list[dict]:
    with rt.db.read() as conn:
        q = select(P).order_by(P.c.code)
        if actor.partner_id is not None:
            q = q.where(P.c.id == actor.partner_id)
        return [_partner_out(dict(r._mapping)) for r in conn.execute(q)]


def _partner_out(p: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in p.items()}


def create_partner(rt, actor: Actor, values: dict) -> dict:
    require_admin(actor)
    with rt.db.write() as conn:
        return _partner_out(add_partner(conn, values, rt.now()))


def list_users(rt, actor: Actor) -> list[dict]:
    with rt.db.read() as conn:
        q = select(U).order_by(U.c.login)
        if actor.partner_id is not None:
            q = q.where(U.c.partner_id == actor.partner_id)
        codes = {r.id: r.code for r in conn.execute(select(P.c.id, P.c.code))}
        return [_user_out(dict(r._mapping), codes) for r in conn.execute(q)]


def _user_out(u: dict, codes: dict) -> dict:
    out = public_user(u)
    out["partner"] = codes.get(u.get("partner_id"))
    out["delegate_of"] = list((u.get("data") or {}).get("delegate_of") or [])
    out["has_password"] = bool(u.get("password_hash"))
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in out.items()}


def create_user(rt, actor: Actor, values: dict) -> dict:
    require_admin(actor)
    if not isinstance(values, dict):
        raise ValidationError("body", "must be a JSON object")
    with rt.db.write() as conn:
        user = add_user(conn, values, rt.now())
        codes = {r.id: r.code for r in conn.execute(select(P.c.id, P.c.code))}
    return _user_out(user, codes)


DELEGATES = Schema(Field("delegate_of", "list", items=Field("login", "str", max_length=128), max_items=50,
                         required=False, default=None))


def set_delegates(rt, actor: Actor, login: str, values: dict) -> dict:
    """Record whose delegate `login` is (admin only); the four-eyes rule then also bars them from approving
    what those people submitted or edited."""
    require_admin(actor)
    clean = DELEGATES.clean(values)
    logins = sorted(set(clean.get("delegate_of") or []))
    with rt.db.write() as conn:
        user = user_by_login(conn, login)
        if user is None:
            raise NotFound(f"no user with login {login!r}")
        if login in logins:
            raise ValidationError("delegate_of", f"{login} cannot be their own delegate")
        known = {r.login for r in conn.execute(select(U.c.login).where(U.c.login.in_(logins)))} if logins else set()
        missing = [x for x in logins if x not in known]
        if missing:
            raise ValidationError("delegate_of", f"no user with login {missing[0]!r}")
        data = dict(user["data"] or {})
        data["delegate_of"] = logins
        conn.execute(update(U).where(U.c.id == user["id"]).values(data=data))
        codes = {r.id: r.code for r in conn.execute(select(P.c.id, P.c.code))}
        return _user_out({**user, "data": data}, codes)


def workflow_choices(rt) -> list[dict]:
    """Name and title of every lifecycle, for a filter's options (the summaries also list states and roles)."""
    return [{"name": wf.name, "title": wf.title} for wf in rt.registry]


def workflow_summaries(rt) -> list[dict]:
    return [{"name": wf.name, "title": wf.title, "faq": wf.faq, "description": wf.description,
             "initial": wf.initial, "states": wf.state_names, "final": list(wf.final),
             "start_roles": sorted(wf.start_roles)} for wf in rt.registry]


def workflow_detail(rt, name: str) -> dict:
    wf = rt.registry.get(name)
    return {**wf.describe(), "mermaid": wf.mermaid()}


def startable_workflows(rt, actor: Actor) -> list[dict]:
    return [{"name": wf.name, "title": wf.title, "fields": form_fields(wf.start_schema),
             "partner_field": actor.partner_id is None and wf.partner_required}
            for wf in rt.registry if actor.may(frozenset(wf.start_roles))]


def money(value) -> str:
    return f"{Decimal(value):,.2f}"
