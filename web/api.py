"""JSON API under /api/v1 (token authentication; errors as application/problem+json).

Every lifecycle in the registry is reachable here without code of its own:
start a case, read it (history, timers, tasks), fire events with an optional
`expected_version`, work the inbox tasks, move the simulated clock and read
the outbox. Request bodies are checked with the engine's `Schema` (the same
declarations feed `openapi.json`), so a bad field is a 422 naming the field.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from engine.clock import parse_duration
from engine.errors import Conflict, Forbidden, ValidationError, whole_number
from engine.schema import Schema

from . import services
from .errors import problem
from .openapi import (
    ADVANCE_BODY,
    BULK_CLAIM_BODY,
    EVENT_BODY,
    FIRE_BODY,
    GENERIC_START_BODY,
    REASSIGN_BODY,
    START_BODY,
    build_openapi,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_ADVANCE = timedelta(days=3 * 366)
PUBLIC = {"api.openapi"}


def rt():
    return current_app.config["RUNTIME"]


@bp.before_request
def authenticate():
    g.actor = None
    if request.endpoint in PUBLIC:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return problem(401, "send an API token as 'Authorization: Bearer <token>' "
                            "(create one with `partnerflow tokens create --user LOGIN`)", "unauthenticated")
    actor = services.token_actor(rt(), token.strip())
    if actor is None:
        return problem(401, "the API token is unknown or revoked", "unauthenticated")
    g.actor = actor
    return None


def body(schema: Schema | None = None, allow_empty: bool = False) -> dict:
    """The JSON object in the request, checked against `schema` (field-named 422 errors)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if allow_empty:
            data: object = {}
        else:
            raise ValidationError("body", "is empty: send a JSON object")
    else:
        if not request.is_json:
            raise UnsupportedMediaType("send the body as application/json")
        try:
            data = request.get_json(force=True)
        except BadRequest:
            raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("body", f"must be a JSON object, got {type(data).__name__}")
    return schema.clean(data) if schema is not None else data


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    return whole_number(name, raw)


def _object(value, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field, f"must be a JSON object, got {type(value).__name__}")
    return value


def _payload(data: dict) -> dict:
    return _object(data.get("payload"), "payload")


# ------------------------------------------------------------------ meta
@bp.get("/openapi.json")
def openapi():
    return jsonify(build_openapi(rt().registry, request.host_url.rstrip("/")))


@bp.get("/me")
def me():
    a = g.actor
    return jsonify({"login": a.login, "name": a.name, "roles": sorted(a.roles), "partner_id": a.partner_id,
                    "timezone": a.timezone, "delegate_of": sorted(a.delegate_of)})


# ------------------------------------------------------------- workflows
@bp.get("/workflows")
def workflows():
    return jsonify({"items": services.workflow_summaries(rt())})


@bp.get("/workflows/<name>")
def workflow(name: str):
    return jsonify(services.workflow_detail(rt(), name))


# ----------------------------------------------------------------- cases
@bp.post("/workflows/<name>/cases")
def start_named(name: str):
    rt().registry.get(name)
    data = body(START_BODY)
    view = rt().start(name, _object(data.get("data"), "data"), g.actor, data.get("comment"))
    return jsonify(view), 201, {"Location": f"/api/v1/cases/{view['id']}"}


@bp.post("/cases")
def start():
    data = body(GENERIC_START_BODY)
    view = rt().start(data["workflow"], _object(data.get("data"), "data"), g.actor, data.get("comment"))
    return jsonify(view), 201, {"Location": f"/api/v1/cases/{view['id']}"}


@bp.get("/cases")
def cases():
    return jsonify(services.list_cases(rt(), g.actor, request.args))


@bp.get("/cases/<id:case_id>")
def case(case_id: int):
    return jsonify(rt().get(case_id, g.actor))


@bp.post("/cases/<id:case_id>/events")
def fire(case_id: int):
    data = body(FIRE_BODY)
    view = rt().fire(case_id, data["event"], g.actor, _payload(data), data.get("expected_version"),
                     data.get("comment"))
    return jsonify(view)


@bp.post("/cases/<id:case_id>/events/<event>")
def fire_named(case_id: int, event: str):
    data = body(EVENT_BODY, allow_empty=True)
    view = rt().fire(case_id, event, g.actor, _payload(data), data.get("expected_version"),
                     data.get("comment"))
    return jsonify(view)


# ----------------------------------------------------------------- tasks
@bp.get("/tasks")
def tasks():
    return jsonify(services.inbox(rt(), g.actor, services.parse_inbox_query(request.args, rt())))


@bp.get("/tasks/<id:task_id>")
def task(task_id: int):
    return jsonify(services.get_task(rt(), g.actor, task_id))


@bp.post("/tasks/<id:task_id>/claim")
def claim(task_id: int):
    body(None, allow_empty=True)
    return jsonify(services.claim(rt(), g.actor, task_id))


@bp.post("/tasks/<id:task_id>/unclaim")
def unclaim(task_id: int):
    body(None, allow_empty=True)
    return jsonify(services.unclaim(rt(), g.actor, task_id))


@bp.post("/tasks/<id:task_id>/reassign")
def reassign(task_id: int):
    data = body(REASSIGN_BODY)
    return jsonify(services.reassign(rt(), g.actor, task_id, data["assignee"]))


@bp.post("/tasks/claim")
def bulk_claim():
    data = body(BULK_CLAIM_BODY)
    return jsonify(services.bulk_claim(rt(), g.actor, data["tasks"]))


@bp.post("/tasks/<id:task_id>/decide")
def decide(task_id: int):
    data = body(FIRE_BODY)
    case_id = services.case_of_task(rt(), g.actor, task_id)
    view = rt().fire(case_id, data["event"], g.actor, _payload(data), data.get("expected_version"),
                     data.get("comment"))
    return jsonify(view)


# ----------------------------------------------------------------- clock
@bp.get("/clock")
def clock():
    r = rt()
    return jsonify({"now": r.now().isoformat(), "simulated": bool(r.clock.simulated)})


@bp.post("/clock/advance")
def advance():
    r = rt()
    if not (services.is_operator(g.actor)):
        raise Forbidden("moving the simulated clock needs an operator or admin role")
    if not r.clock.simulated or not hasattr(r.clock, "set"):
        raise Conflict("the clock is the system clock; set PARTNERFLOW_CLOCK=simulated to move time")
    data = body(ADVANCE_BODY)
    if ("duration" in data) == ("to" in data):
        raise ValidationError("duration", "give exactly one of 'duration' (for example \"7d\") or 'to' (an instant)")
    try:
        if "duration" in data:
            delta = parse_duration(data["duration"])
            if delta < timedelta(0):
                raise ValidationError("duration", "time only moves forward through the API")
            if delta > MAX_ADVANCE:
                raise ValidationError("duration", "at most 1098 days at once")
            result = r.advance(delta)
        else:
            target = datetime.fromisoformat(data["to"])
            if target < r.now():
                raise ValidationError("to", f"is before the current instant {r.now().isoformat()}")
            if target - r.now() > MAX_ADVANCE:
                raise ValidationError("to", "at most 1098 days ahead at once")
            result = r.advance_to(target)
    except OverflowError:
        raise ValidationError("duration", "is out of range") from None
    from engine.cli import heartbeat_hooks

    for hook in heartbeat_hooks():
        hook(r)
    return jsonify({"from": result.start.isoformat(), "to": result.end.isoformat(), "now": r.now().isoformat(),
                    "timers_fired": result.timers_fired, "timers_obsolete": result.timers_obsolete,
                    "timers_failed": result.timers_failed, "schedules_run": result.schedules_run})


# ---------------------------------------------------------------- outbox
@bp.get("/outbox")
def outbox():
    _int_arg("case")
    _int_arg("after")
    return jsonify(services.list_outbox(rt(), g.actor, request.args))


@bp.get("/outbox/<id:message_id>")
def outbox_message(message_id: int):
    row, rendered = services.outbox_message(rt(), g.actor, message_id)
    return jsonify({"id": row["id"], "case": row["instance_id"], "template": row["template"],
                    "recipient": row["recipient"], "recipient_login": row["recipient_login"],
                    "locale": row["locale"], "status": row["status"], "context": row["context"],
                    "created_at": row["created_at"].isoformat(), "subject": rendered.subject,
                    "text": rendered.text, "html": rendered.html, "rendered": rendered.rendered})


# -------------------------------------------------------- reference data
@bp.get("/partners")
def partners():
    return jsonify({"items": services.list_partners(rt(), g.actor)})


@bp.post("/partners")
def add_partner():
    services.require_admin(g.actor)
    return jsonify(services.create_partner(rt(), g.actor, body())), 201


@bp.get("/users")
def users():
    return jsonify({"items": services.list_users(rt(), g.actor)})


@bp.post("/users")
def add_user():
    services.require_admin(g.actor)
    return jsonify(services.create_user(rt(), g.actor, body())), 201


@bp.put("/users/<login>/delegates")
def delegates(login: str):
    services.require_admin(g.actor)
    return jsonify(services.set_delegates(rt(), g.actor, login, body()))

