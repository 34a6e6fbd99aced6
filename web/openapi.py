"""The OpenAPI 3.1 document of /api/v1, generated from the registry and the engine's input schemas.

Request bodies of the API are declared here as engine `Schema`s (the API
validates with them); each lifecycle's start data and event payloads come from
its own declarations (`Schema.json_schema()`), so a new lifecycle appears in
the document with no code of its own.
"""
from __future__ import annotations

from engine.registry import Registry
from engine.roles import SYSTEM
from engine.schema import COMMENT, Field, Schema

MAX_VERSION = 2**31 - 1

START_BODY = Schema(Field("data", "json", required=False, description="Start data (see the lifecycle's schema)"),
                    COMMENT)
GENERIC_START_BODY = Schema(Field("workflow", "str", max_length=64, description="Lifecycle name"),
                            Field("data", "json", required=False), COMMENT)
EXPECTED = Field("expected_version", "int", required=False, minimum=1, maximum=MAX_VERSION,
                 description="Refuse with 409 if the case is no longer at this version")
FIRE_BODY = Schema(Field("event", "str", max_length=64), Field("payload", "json", required=False), COMMENT, EXPECTED)
EVENT_BODY = Schema(Field("payload", "json", required=False), COMMENT, EXPECTED)
REASSIGN_BODY = Schema(Field("assignee", "str", max_length=128, description="Login of the new assignee"))
BULK_CLAIM_BODY = Schema(Field("tasks", "list", items=Field("task", "int", minimum=1, maximum=2**62),
                               min_items=1, max_items=200))
ADVANCE_BODY = Schema(Field("duration", "str", required=False, max_length=32, description="7d, 36h, 1d12h, 90m"),
                      Field("to", "datetime", required=False, description="Instant with offset"))

PROBLEM = {"$ref": "#/components/schemas/Problem"}
OBJ = {"type": "object"}


def _problem_responses(*codes: int) -> dict:
    texts = {400: "Bad request (invalid JSON, bad CSRF)", 401: "No or unknown API token",
             403: "Role, partner scope or four-eyes rule refuses", 404: "Not found",
             409: "Event not allowed in this state (lists allowed events) or stale version",
             413: "Body too large", 415: "Body is not JSON", 422: "Invalid input (names the field) or rule refused"}
    return {str(c): {"description": texts[c], "content": {"application/problem+json": {"schema": PROBLEM}}}
            for c in codes}


def _ok(description: str, schema: dict | None = None, status: str = "200") -> dict:
    return {status: {"description": description, "content": {"application/json": {"schema": schema or OBJ}}}}


def _op(op_id: str, summary: str, ok: dict, errors=(401, 404, 422), params=(), body: dict | None = None,
        tag: str = "", public: bool = False) -> dict:
    op: dict = {"operationId": op_id, "summary": summary, "responses": {**ok, **_problem_responses(*errors)}}
    if tag:
        op["tags"] = [tag]
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if public:
        op["security"] = []
    return op


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 999999999999999999}}


def _query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _start_data_schema(wf) -> dict:
    schema = wf.start_schema.json_schema()
    props = dict(schema["properties"])
    props["partner"] = {"type": "string", "maxLength": 64,
                        "description": "Partner code (operators; partner users act for their own partner)"}
    return {**schema, "properties": props}


def build_openapi(registry: Registry, server: str = "") -> dict:
    workflows = list(registry)
    events = sorted({t.event for wf in workflows for t in wf.transitions if t.role_set != {SYSTEM}})
    components: dict = {
        "Problem": {
            "type": "object", "required": ["title", "status", "detail"],
            "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                           "detail": {"type": "string"}, "code": {"type": "string"},
                           "field": {"type": ["string", "null"]}, "allowed": {"type": "array", "items": {"type": "string"}},
                           "state": {"type": "string"}, "version": {"type": "integer"},
                           "expected_version": {"type": "integer"}, "rule": {"type": ["string", "null"]}},
        },
        "Case": {
            "type": "object",
            "required": ["id", "workflow", "state", "version", "data", "allowed_events", "history", "timers", "tasks"],
            "properties": {
                "id": {"type": "integer"}, "workflow": {"type": "string"}, "title": {"type": "string"},
                "state": {"type": "string"}, "version": {"type": "integer"}, "final": {"type": "boolean"},
                "partner": {"type": ["string", "null"]}, "timezone": {"type": "string"}, "data": OBJ,
                "allowed_events": {"type": "array", "items": {"type": "string"}},
                "history": {"type": "array", "items": OBJ}, "timers": {"type": "array", "items": OBJ},
                "tasks": {"type": "array", "items": OBJ},
            },
        },
        "Page": {"type": "object", "required": ["items"],
                 "properties": {"items": {"type": "array", "items": OBJ}, "next": {"type": ["string", "null"]}}},
        "FireBody": FIRE_BODY.json_schema(),
        "EventBody": EVENT_BODY.json_schema(),
        "StartBody": GENERIC_START_BODY.json_schema(),
        "AdvanceBody": ADVANCE_BODY.json_schema(),
    }
    case_ref = {"$ref": "#/components/schemas/Case"}
    page_ref = {"$ref": "#/components/schemas/Page"}
    paths: dict = {
        "/api/v1/openapi.json": {"get": _op("openapi", "This document", _ok("OpenAPI 3.1"), errors=(), tag="meta",
                                            public=True)},
        "/api/v1/me": {"get": _op("me", "The token's user", _ok("User"), errors=(401,), tag="meta")},
        "/api/v1/workflows": {"get": _op("listWorkflows", "Lifecycles", _ok("Lifecycles", page_ref), errors=(401,),
                                         tag="workflows")},
        "/api/v1/workflows/{name}": {"get": _op(
            "getWorkflow", "A lifecycle: states, transitions with payload schemas, timers, tasks, Mermaid diagram",
            _ok("Definition"), errors=(401, 404), tag="workflows",
            params=[{"name": "name", "in": "path", "required": True, "schema": {"type": "string",
                                                                                 "enum": [w.name for w in workflows]}}])},
        "/api/v1/cases": {
            "get": _op("listCases", "Cases I may see, newest first (keyset: pass `next` as `after`)",
                       _ok("Cases", page_ref), errors=(401, 403, 422), tag="cases", params=[
                           _query("workflow", {"type": "string"}), _query("state", {"type": "string"}),
                           _query("partner", {"type": "string"}), _query("final", {"type": "string", "enum": ["true", "false"]}),
                           _query("after", {"type": "string"}), _query("limit", {"type": "integer", "minimum": 1, "maximum": 200})]),
            "post": _op("startCase", "Start a case of any lifecycle", _ok("The new case", case_ref, "201"),
                        errors=(400, 401, 403, 404, 409, 413, 415, 422), tag="cases",
                        body={"$ref": "#/components/schemas/StartBody"}),
        },
        "/api/v1/cases/{case_id}": {"get": _op("getCase", "A case with history, pending timers and open tasks",
                                               _ok("Case", case_ref), errors=(401, 404), tag="cases",
                                               params=[_path_id("case_id")])},
        "/api/v1/cases/{case_id}/events": {"post": _op(
            "fireEvent", "Fire an event (optionally only at `expected_version`)", _ok("The case after", case_ref),
            errors=(400, 401, 403, 404, 409, 413, 415, 422), tag="cases", params=[_path_id("case_id")],
            body={"$ref": "#/components/schemas/FireBody"})},
        "/api/v1/cases/{case_id}/events/{event}": {"post": _op(
            "fireNamedEvent", "Fire the named event", _ok("The case after", case_ref),
            errors=(400, 401, 403, 404, 409, 413, 415, 422), tag="cases",
            params=[_path_id("case_id"), {"name": "event", "in": "path", "required": True,
                                          "schema": {"type": "string", "enum": events or ["none"]}}],
            body={"$ref": "#/components/schemas/EventBody"})},
        "/api/v1/tasks": {"get": _op(
            "listTasks", "Open tasks for my roles, by due date (keyset: pass `next` as `after`)", _ok("Tasks", page_ref),
            errors=(401, 403, 422), tag="tasks", params=[
                _query("workflow", {"type": "string"}), _query("partner", {"type": "string"}),
                _query("due", {"type": "string", "enum": ["overdue", "today", "week", "none"]}),
                _query("assigned", {"type": "string", "enum": ["me", "unassigned"]}),
                _query("after", {"type": "string"}), _query("limit", {"type": "integer", "minimum": 1, "maximum": 200})])},
        "/api/v1/tasks/claim": {"post": _op("bulkClaim", "Claim several tasks", _ok("Claimed and skipped"),
                                            errors=(400, 401, 413, 415, 422), tag="tasks",
                                            body=BULK_CLAIM_BODY.json_schema())},
        "/api/v1/tasks/{task_id}": {"get": _op("getTask", "A task", _ok("Task"), errors=(401, 404), tag="tasks",
                                               params=[_path_id("task_id")])},
        "/api/v1/tasks/{task_id}/claim": {"post": _op("claimTask", "Claim a task", _ok("Claimed"),
                                                      errors=(401, 403, 404, 409), tag="tasks",
                                                      params=[_path_id("task_id")])},
        "/api/v1/tasks/{task_id}/unclaim": {"post": _op("unclaimTask", "Release a task", _ok("Released"),
                                                        errors=(401, 403, 404, 409), tag="tasks",
                                                        params=[_path_id("task_id")])},
        "/api/v1/tasks/{task_id}/reassign": {"post": _op("reassignTask", "Give a task to another holder of its role",
                                                         _ok("Reassigned"), errors=(400, 401, 403, 404, 409, 415, 422),
                                                         tag="tasks", params=[_path_id("task_id")],
                                                         body=REASSIGN_BODY.json_schema())},
        "/api/v1/tasks/{task_id}/decide": {"post": _op(
            "decideTask", "Fire an event on the task's case", _ok("The case after", case_ref),
            errors=(400, 401, 403, 404, 409, 413, 415, 422), tag="tasks", params=[_path_id("task_id")],
            body={"$ref": "#/components/schemas/FireBody"})},
        "/api/v1/clock": {"get": _op("getClock", "Current instant and whether it is simulated", _ok("Clock"),
                                     errors=(401,), tag="clock")},
        "/api/v1/clock/advance": {"post": _op(
            "advanceClock", "Move the simulated clock forward, firing every timer and schedule due on the way",
            _ok("What fired"), errors=(400, 401, 403, 409, 415, 422), tag="clock",
            body={"$ref": "#/components/schemas/AdvanceBody"})},
        "/api/v1/outbox": {"get": _op("listOutbox", "Emails queued, sent or captured (newest first)",
                                      _ok("Messages", page_ref), errors=(401, 422), tag="outbox", params=[
                                          _query("case", {"type": "integer"}), _query("status", {"type": "string"}),
                                          _query("after", {"type": "integer"})])},
        "/api/v1/outbox/{message_id}": {"get": _op("getMessage", "A message, rendered (subject, text, html)",
                                                   _ok("Message"), errors=(401, 404), tag="outbox",
                                                   params=[_path_id("message_id")])},
        "/api/v1/partners": {
            "get": _op("listPartners", "Partners", _ok("Partners", page_ref), errors=(401,), tag="reference"),
            "post": _op("createPartner", "Add a partner (admin)", _ok("Partner", status="201"),
                        errors=(400, 401, 403, 409, 415, 422), tag="reference", body=OBJ),
        },
        "/api/v1/users": {
            "get": _op("listUsers", "Users", _ok("Users", page_ref), errors=(401,), tag="reference"),
            "post": _op("createUser", "Add a user (admin)", _ok("User", status="201"),
                        errors=(400, 401, 403, 404, 409, 415, 422), tag="reference", body=OBJ),
        },
        "/api/v1/users/{login}/delegates": {"put": _op(
            "setDelegates", "Whose delegate a user is (four-eyes rule; admin)", _ok("User"),
            errors=(400, 401, 403, 404, 415, 422), tag="reference",
            params=[{"name": "login", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 128}}],
            body={"type": "object", "properties": {"delegate_of": {"type": "array", "items": {"type": "string"}}},
                  "additionalProperties": False})},
    }
    for wf in workflows:
        start_schema = _start_data_schema(wf)
        components[f"{wf.name}.start"] = start_schema
        for t in wf.transitions:
            if t.role_set != {SYSTEM}:
                components[f"{wf.name}.{t.event}"] = t.payload.json_schema()
        paths[f"/api/v1/workflows/{wf.name}/cases"] = {"post": _op(
            f"start_{wf.name}", f"Start a case: {wf.title}", _ok("The new case", case_ref, "201"),
            errors=(400, 401, 403, 404, 409, 413, 415, 422), tag="cases",
            body={"type": "object", "properties": {"data": {"$ref": f"#/components/schemas/{wf.name}.start"},
                                                   "comment": COMMENT.json_schema()},
                  "required": ["data"], "additionalProperties": False})}
    return {
        "openapi": "3.1.0",
        "info": {"title": "partnerflow API", "version": "1",
                 "description": "Start and follow cases of every lifecycle, fire events, work inbox tasks, move the "
                                "simulated clock and read the outbox. Errors are application/problem+json with a "
                                "`detail` naming what is wrong."},
        "servers": [{"url": server or "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": n} for n in ("meta", "workflows", "cases", "tasks", "clock", "outbox", "reference")],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "partnerflow tokens create --user LOGIN"}}},
    }
