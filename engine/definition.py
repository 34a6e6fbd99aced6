"""How a lifecycle is declared: states, transition table, timers, inbox tasks, notifications.

A lifecycle module in `workflows/` builds one `Workflow`. The `transitions`
library holds its state graph: one `Machine` per definition (``model=None``,
``auto_transitions=False``) shared by every instance; the runtime moves an
instance by triggering the machine's event on a light object that carries
only a ``state`` attribute, so nothing is built per instance.

Guards are small functions of a `Ctx` that return ``None`` when the rule
holds, or a sentence saying why it does not (or raise a typed error).
Effects return the data changes a transition makes. Both run inside the
transition's database transaction; when they need facts from the database
(caps, locks, other cases) they use the services on the `Ctx`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as date_, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from transitions import Machine

from .calendar import BusinessCalendar
from .errors import EventNotAllowed, Forbidden, RuleViolation, ValidationError
from .roles import ADMIN, SYSTEM
from .schema import EMPTY, Schema

if TYPE_CHECKING:  # pragma: no cover
    from .actors import Actor

Guard = Callable[["Ctx"], "str | None"]
Effect = Callable[["Ctx"], "Mapping[str, Any] | None"]
When = Callable[["Ctx"], bool]
InstantFn = Callable[["Ctx"], datetime]


@dataclass
class Ctx:
    """What a guard, effect or deadline function may look at: the case, the request, time and services."""

    workflow: "Workflow"
    instance_id: int | None
    state: str | None
    data: dict
    payload: dict
    actor: "Actor"
    now: datetime
    calendar: BusinessCalendar
    partner: dict | None
    conn: Any = None
    runtime: Any = None
    event: str | None = None
    comment: str | None = None
    #: "approved by alice at ..." for conflict messages.
    last_change: str = ""
    #: Follow-up work queued by effects, run in the same transaction after this change.
    followups: list = field(default_factory=list)

    def get(self, key: str, default=None):
        """A value from the payload if given, else from the case data."""
        if key in self.payload:
            return self.payload[key]
        return self.data.get(key, default)

    def money(self, key: str, default: str | None = None) -> Decimal | None:
        """A money field (stored as text) as a `Decimal`."""
        value = self.get(key, default)
        return None if value is None else Decimal(str(value))

    def date(self, key: str) -> date_ | None:
        value = self.get(key)
        return None if value is None else date_.fromisoformat(value)

    def instant(self, key: str) -> datetime | None:
        value = self.get(key)
        return None if value is None else datetime.fromisoformat(value)

    def fire_later(self, instance_id: int, event: str, payload: dict | None = None) -> None:
        """Fire `event` on another case as the system, in this same transaction."""
        self.followups.append(("fire", instance_id, event, payload or {}))

    def start_later(self, workflow: str, data: dict) -> None:
        """Start a case of another lifecycle as the system, in this same transaction."""
        self.followups.append(("start", workflow, data))


@dataclass(frozen=True)
class Transition:
    """One row of the transition table."""

    event: str
    source: str | Sequence[str]
    #: Destination state; ``None`` means an internal transition (stay, keep timers and tasks).
    dest: str | None
    roles: frozenset[str] | Iterable[str] = frozenset()
    guards: Sequence[Guard] = ()
    payload: Schema = EMPTY
    effect: Effect | None = None
    #: Branch condition: among rows with the same event and source, the first whose `when` holds is taken.
    when: When | None = None
    comment_required: bool = False
    #: The actor who authored (submitted / last edited) the case may not fire this event.
    four_eyes: bool = False
    #: Firing this event makes the actor an author of the case (for the four-eyes rule).
    authors: bool = False
    label: str = ""

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) if isinstance(self.source, str) else tuple(self.source)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(self.roles)

    @property
    def internal(self) -> bool:
        return self.dest is None


@dataclass(frozen=True)
class Timer:
    """A durable deadline armed when `state` is entered; fires `event` as the system when due.

    Exactly one of: `after` (a duration), `working_days` (same local time on the
    n-th working day in the partner's region), `at` (an instant computed from
    the case, such as the end of the 90th day after the activity ends).
    """

    state: str
    event: str
    after: timedelta | None = None
    working_days: int | None = None
    at: InstantFn | None = None
    name: str | None = None
    description: str = ""
    #: Arm only when this holds at state entry.
    when: When | None = None

    def __post_init__(self):
        if sum(x is not None for x in (self.after, self.working_days, self.at)) != 1:
            raise ValueError(f"timer {self.key}: give exactly one of after, working_days, at")

    @property
    def key(self) -> str:
        return self.name or self.event

    def due(self, ctx: Ctx) -> datetime:
        if self.after is not None:
            return ctx.now + self.after
        if self.working_days is not None:
            return ctx.calendar.working_days_after(ctx.now, self.working_days)
        return self.at(ctx)  # type: ignore[misc]


@dataclass(frozen=True)
class InboxTask:
    """A task for a role: opened on entering `state` (or when `on_event` fires), closed on leaving it."""

    state: str
    role: str
    title: str
    due_after: timedelta | None = None
    due_working_days: int | None = None
    due: InstantFn | None = None
    on_event: str | None = None
    name: str | None = None
    #: Data field shown as the task's amount in the inbox.
    amount_field: str | None = None
    currency_field: str | None = None
    #: Flags shown on the task (for example a split-claim warning): function of the ctx.
    flags: Callable[[Ctx], list[str]] | None = None

    @property
    def key(self) -> str:
        return self.name or f"{self.state}:{self.role}"

    def due_at(self, ctx: Ctx) -> datetime | None:
        if self.due is not None:
            return self.due(ctx)
        if self.due_after is not None:
            return ctx.now + self.due_after
        if self.due_working_days is not None:
            return ctx.calendar.end_of_nth_working_day_after(ctx.now, self.due_working_days)
        return None


@dataclass(frozen=True)
class Notify:
    """An email: on entering `on_enter`, or when `on_event` fires; `to` lists recipient specs.

    Recipient specs: ``actor``; ``partner`` (the partner's default contact and
    admin); ``partner_admin``; ``role:<role>`` (operators with the role, or the
    partner's own users for partner roles); ``data:<field>`` (an email address
    or login stored in the case); ``user:<login>``.
    """

    template: str
    to: Sequence[str]
    on_enter: str | None = None
    on_event: str | None = None
    category: str = "general"
    #: Reminders may be turned off by a recipient; messages about money deadlines may not.
    reminder: bool = False
    when: When | None = None

    def __post_init__(self):
        if (self.on_enter is None) == (self.on_event is None):
            raise ValueError(f"notification {self.template}: give exactly one of on_enter, on_event")


@dataclass
class Workflow:
    """A lifecycle: everything the engine needs to run, check and draw it."""

    name: str
    title: str
    states: type[StrEnum]
    initial: str
    transitions: Sequence[Transition]
    final: Sequence[str] = ()
    timers: Sequence[Timer] = ()
    tasks: Sequence[InboxTask] = ()
    notifications: Sequence[Notify] = ()
    start_schema: Schema = EMPTY
    start_roles: Iterable[str] = frozenset()
    start_guards: Sequence[Guard] = ()
    start_effect: Effect | None = None
    #: Does a case belong to a partner (named by `partner` in the start data, or the actor's own)?
    partner_required: bool = True
    business_key: Callable[[dict], str | None] | None = None
    description: str = ""
    faq: str = ""
    #: Start the case in a state other than `initial`? (the initial state is entered through 'start').
    state_descriptions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        names = {s.value for s in self.states}
        problems = []
        if self.initial not in names:
            problems.append(f"initial state {self.initial!r} is not a state")
        for t in self.transitions:
            for s in t.sources:
                if s not in names:
                    problems.append(f"{t.event}: unknown source {s!r}")
            if t.dest is not None and t.dest not in names:
                problems.append(f"{t.event}: unknown destination {t.dest!r}")
            if not t.role_set:
                problems.append(f"{t.event}: no role may fire it")
        for tm in self.timers:
            if tm.state not in names:
                problems.append(f"timer {tm.key}: unknown state {tm.state!r}")
            if not any(tm.state in t.sources and t.event == tm.event and SYSTEM in t.role_set for t in self.transitions):
                problems.append(f"timer {tm.key}: no transition '{tm.event}' from {tm.state!r} the system may fire")
        for task in self.tasks:
            if task.state not in names:
                problems.append(f"task {task.key}: unknown state {task.state!r}")
        for n in self.notifications:
            if n.on_enter and n.on_enter not in names:
                problems.append(f"notification {n.template}: unknown state {n.on_enter!r}")
            if n.on_event and not any(t.event == n.on_event for t in self.transitions):
                problems.append(f"notification {n.template}: unknown event {n.on_event!r}")
        for f in self.final:
            if f not in names:
                problems.append(f"final state {f!r} is not a state")
        if problems:
            raise ValueError(f"workflow {self.name}: " + "; ".join(problems))
        self._by_event: dict[tuple[str, str], list[Transition]] = {}
        for t in self.transitions:
            for s in t.sources:
                self._by_event.setdefault((s, t.event), []).append(t)
        self._timers_by_state = _group(self.timers, lambda x: x.state)
        self._tasks_by_state = _group([t for t in self.tasks if t.on_event is None], lambda x: x.state)
        self._tasks_by_event = _group([t for t in self.tasks if t.on_event], lambda x: x.on_event)
        self._notify_enter = _group([n for n in self.notifications if n.on_enter], lambda x: x.on_enter)
        self._notify_event = _group([n for n in self.notifications if n.on_event], lambda x: x.on_event)
        self.machine = self._build_machine()
        #: (state, event) -> the machine's destination, where its first row from that state is unconditional
        self._fixed_dest: dict[tuple[str, str], str] = {}

    # -- the shared state machine ------------------------------------------
    def _build_machine(self) -> Machine:
        rows = []
        for t in self.transitions:
            cond = []
            if t.when is not None:
                cond = [_when_condition(t.when)]
            rows.append({"trigger": t.event, "source": list(t.sources), "dest": t.dest, "conditions": cond})
        return Machine(
            model=None,
            states=[s.value for s in self.states],
            transitions=rows,
            initial=self.initial,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
        )

    # -- lookups used by the runtime ----------------------------------------
    @property
    def state_names(self) -> list[str]:
        return [s.value for s in self.states]

    def is_final(self, state: str) -> bool:
        return state in self.final

    def events_from(self, state: str) -> list[str]:
        return sorted({t.event for t in self.transitions if state in t.sources})

    def allowed_events(self, state: str, actor: "Actor | None" = None) -> list[str]:
        """Events that can fire from `state`, by `actor` when given (system-only events excluded for people)."""
        out = set()
        for t in self.transitions:
            if state in t.sources and (actor is None or actor.may(t.role_set)):
                out.add(t.event)
        return sorted(out)

    def candidates(self, state: str, event: str) -> list[Transition]:
        return self._by_event.get((state, event), [])

    def timers_for(self, state: str) -> list[Timer]:
        return self._timers_by_state.get(state, [])

    def tasks_for_state(self, state: str) -> list[InboxTask]:
        return self._tasks_by_state.get(state, [])

    def tasks_for_event(self, event: str) -> list[InboxTask]:
        return self._tasks_by_event.get(event, [])

    def notifications_on_enter(self, state: str) -> list[Notify]:
        return self._notify_enter.get(state, [])

    def notifications_on_event(self, event: str) -> list[Notify]:
        return self._notify_event.get(event, [])

    def select(self, ctx: Ctx, event: str) -> Transition:
        """Check the event, the actor's roles and the guards; return the transition to take, or refuse."""
        state = ctx.state or ""
        rows = self.candidates(state, event)
        if not rows:
            known = any(t.event == event for t in self.transitions)
            raise EventNotAllowed(event, state, self.allowed_events(state, ctx.actor),
                                  last_change=ctx.last_change if known else f"{self.name} has no event '{event}'",
                                  others=self.events_from(state))
        self.check_roles(rows, event, ctx.actor)
        chosen = next((t for t in rows if t.when is None or t.when(ctx)), None)
        if chosen is None:
            raise RuleViolation(f"event '{event}' has no branch that applies to this case", rule="branch")
        if chosen.comment_required and not (ctx.comment or "").strip():
            raise ValidationError("comment", f"a comment is required to {event}")
        run_guards(chosen.guards, ctx)
        return chosen

    def check_roles(self, rows: Sequence[Transition], event: str, actor: "Actor") -> None:
        """Refuse with `Forbidden` naming the roles needed when the actor has none of them."""
        roles = frozenset().union(*(t.role_set for t in rows))
        if not actor.may(roles):
            needed = " or ".join(sorted(r for r in roles if r != SYSTEM))
            if not needed:
                raise Forbidden(f"event '{event}' on {self.name} happens automatically (system only)")
            raise Forbidden(f"event '{event}' on {self.name} needs role {needed}; {actor.login} has "
                            f"{', '.join(sorted(actor.roles)) or 'no roles'}")

    def apply(self, transition: Transition, ctx: Ctx) -> str:
        """Move a light model through the shared machine; returns the destination state.

        Where the machine's first row for the event from this state has no
        condition, it always takes that row, so its answer is kept and later
        calls skip the machine (`fixed_destination`).
        """
        key = (ctx.state, transition.event)
        dest = self._fixed_dest.get(key)
        if dest is not None:
            return dest
        model = _Model(ctx.state)
        ok = self.machine.events[transition.event].trigger(model, ctx=ctx)
        if not ok:  # the machine's branch choice must match the table's
            raise RuleViolation(f"event '{transition.event}' was refused by the state machine", rule="machine")
        rows = self.candidates(ctx.state, transition.event)
        if rows and rows[0] is transition and transition.when is None:
            self._fixed_dest[key] = model.state
        return model.state

    def fixed_destination(self, state: str, event: str) -> str | None:
        """Where `event` always leads from `state` (its first row there is unconditional), asked of the machine
        once; None when the destination depends on the case (a branch condition) or the event is not allowed."""
        rows = self.candidates(state, event)
        if not rows or rows[0].when is not None:
            return None
        return self.apply(rows[0], _Model(state))  # no condition to evaluate: the machine sees only the state

    # -- presentation -------------------------------------------------------
    def describe(self) -> dict:
        """The definition as plain data (CLI `workflows show`, API)."""
        def fn_name(f):
            return getattr(f, "__name__", repr(f))

        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "faq": self.faq,
            "states": [{"name": s, "final": s in self.final, "description": self.state_descriptions.get(s, "")}
                       for s in self.state_names],
            "initial": self.initial,
            "start": {"roles": sorted(self.start_roles), "guards": [fn_name(g) for g in self.start_guards],
                      "schema": self.start_schema.json_schema()},
            "transitions": [
                {"event": t.event, "from": list(t.sources), "to": t.dest, "roles": sorted(t.role_set),
                 "guards": [fn_name(g) for g in t.guards], "internal": t.internal,
                 "comment_required": t.comment_required, "four_eyes": t.four_eyes,
                 "payload": t.payload.json_schema(), "label": t.label}
                for t in self.transitions
            ],
            "timers": [
                {"name": tm.key, "state": tm.state, "event": tm.event, "when": _timer_text(tm), "description": tm.description}
                for tm in self.timers
            ],
            "tasks": [
                {"name": t.key, "state": t.state, "role": t.role, "title": t.title,
                 "on_event": t.on_event, "due": _task_due_text(t)}
                for t in self.tasks
            ],
            "notifications": [
                {"template": n.template, "to": list(n.to), "on_enter": n.on_enter, "on_event": n.on_event,
                 "category": n.category, "reminder": n.reminder}
                for n in self.notifications
            ],
        }

    def mermaid(self, current: str | None = None, actor: "Actor | None" = None) -> str:
        """A Mermaid ``stateDiagram-v2``; the current state and the states reachable from it are highlighted."""
        ids = {s: f"s_{s}" for s in self.state_names}
        lines = ["stateDiagram-v2"]
        for s in self.state_names:
            lines.append(f"    state \"{s.replace('_', ' ')}\" as {ids[s]}")
        lines.append(f"    [*] --> {ids[self.initial]}")
        seen = set()
        for t in self.transitions:
            for src in t.sources:
                dst = t.dest or src
                label = t.event + (" ⏱" if SYSTEM in t.role_set and len(t.role_set) == 1 else "")
                key = (src, dst, label)
                if key in seen:
                    continue
                seen.add(key)
                lines.append(f"    {ids[src]} --> {ids[dst]}: {label}")
        for s in self.final:
            lines.append(f"    {ids[s]} --> [*]")
        if current in ids:
            reachable = {t.dest for t in self.transitions if current in t.sources and t.dest and t.dest != current
                         and (actor is None or actor.may(t.role_set))}
            lines.append("    classDef current fill:#1d4ed8,color:#ffffff,stroke:#1e3a8a,stroke-width:3px")
            lines.append("    classDef reachable fill:#dbeafe,color:#1e3a8a,stroke:#1d4ed8,stroke-dasharray:4 2")
            lines.append(f"    class {ids[current]} current")
            if reachable:
                lines.append("    class " + ",".join(ids[r] for r in sorted(reachable)) + " reachable")
        return "\n".join(lines)


class _Model:
    __slots__ = ("state",)

    def __init__(self, state):
        self.state = state


def _when_condition(when: When):
    def condition(event_data) -> bool:
        return bool(when(event_data.kwargs["ctx"]))

    return condition


def run_guards(guards: Sequence[Guard], ctx: Ctx) -> None:
    """Run guards in order; the first that returns a reason refuses the request with it."""
    for guard in guards:
        reason = guard(ctx)
        if reason:
            raise RuleViolation(reason, rule=getattr(guard, "__name__", None))


def _group(items, key) -> dict:
    out: dict = {}
    for item in items:
        out.setdefault(key(item), []).append(item)
    return out


def _timer_text(tm: Timer) -> str:
    if tm.after is not None:
        return f"after {_td(tm.after)}"
    if tm.working_days is not None:
        return f"after {tm.working_days} working days"
    return tm.description or f"at {getattr(tm.at, '__name__', 'a computed instant')}"


def _task_due_text(t: InboxTask) -> str | None:
    if t.due_after is not None:
        return f"{_td(t.due_after)} after opening"
    if t.due_working_days is not None:
        return f"end of the {t.due_working_days}th working day after opening"
    if t.due is not None:
        return getattr(t.due, "__name__", "computed")
    return None


def _td(delta: timedelta) -> str:
    secs = int(delta.total_seconds())
    if secs % 86400 == 0:
        return f"{secs // 86400} days"
    if secs % 3600 == 0:
        return f"{secs // 3600} hours"
    return f"{secs // 60} minutes"


def any_role(*roles: str) -> frozenset[str]:
    return frozenset(roles)


__all__ = ["Ctx", "Transition", "Timer", "InboxTask", "Notify", "Workflow", "run_guards", "any_role", "ADMIN"]
