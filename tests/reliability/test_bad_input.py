"""Bad input never breaks the server and never half-saves.

- schemathesis generates requests for every operation of the OpenAPI
  document (valid and invalid bodies, parameters and ids): no 5xx; every
  refusal is a 4xx ``application/problem+json`` whose ``detail`` names the
  problem; a refused request leaves every table's row count unchanged.
- Targeted bodies: oversized, invalid JSON, non-UTF-8, wrong types, unknown
  events, huge numbers, negative money, naive datetimes, CR/LF in email fields.
- hypothesis over every HTML form (start a case, decide, admin forms): no 5xx,
  refusals name the problem, nothing half saved.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.helpers import counts
from tests.web.conftest import start_probe
from web.services import create_token

EXAMPLES = int(os.environ.get("PARTNERFLOW_FUZZ_EXAMPLES", "5"))
#: Requests sent and 5xx answers seen in this process, and what the first 5xx answers were asked (read by
#: `python -m benchmarks chaos`).
FUZZ_STATS = {"cases": 0, "server_errors": 0, "server_error_requests": []}


def _count(status: int, request: dict) -> None:
    FUZZ_STATS["cases"] += 1
    if status >= 500:
        FUZZ_STATS["server_errors"] += 1
        if len(FUZZ_STATS["server_error_requests"]) < 20:
            FUZZ_STATS["server_error_requests"].append({"status": status, **request})


def assert_refusal_names_problem(resp) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True)[:300])
    if resp.status_code >= 400:
        assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers["content-type"]
        detail = resp.get_json()["detail"]
        assert isinstance(detail, str) and len(detail) >= 8, detail


# ---------------------------------------------------------------- schemathesis
@pytest.fixture
def fuzz_schema(app, rt, users):
    start_probe(rt, users)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    if EXAMPLES < 50:  # the bounded run: generated cases only (the chaos run also walks the coverage phase)
        schema.config.phases.coverage.enabled = False
    schema.token = create_token(rt, "root", "fuzz")["token"]  # type: ignore[attr-defined]
    schema.rt = rt  # type: ignore[attr-defined]
    return schema


fuzz = schemathesis.pytest.from_fixture("fuzz_schema")


@fuzz.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_fuzzed_api_requests_answer_4xx_naming_the_problem_and_save_nothing(case, fuzz_schema):
    before = counts(fuzz_schema.rt.db)
    response = case.call(headers={"Authorization": f"Bearer {fuzz_schema.token}"})
    _count(response.status_code, {"method": case.method, "path": case.path, "path_parameters": case.path_parameters,
                                  "query": case.query, "body": repr(case.body)[:300]})
    case.validate_response(response, checks=(not_a_server_error,))
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json"), response.text
        assert len(response.json()["detail"]) >= 8
        after = counts(fuzz_schema.rt.db)
        changed = {k: (v, after[k]) for k, v in before.items() if after[k] != v}
        assert not changed, f"refused {case.method} {case.path} saved rows: {changed}"


# ---------------------------------------------------------------- targeted bodies
def test_targeted_bad_bodies_are_refused_by_name(app, rt, users, api):
    case = start_probe(rt, users)
    partner, root, mona = api("acme-admin"), api("root"), api("mona")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {root.token}"}
    big = b'{"workflow": "web_probe", "data": {"note": "' + b"x" * (app.config["MAX_CONTENT_LENGTH"] + 10) + b'"}}'
    attempts = [
        ("oversized", lambda: client.post("/api/v1/cases", data=big, headers={**auth, "Content-Type": "application/json"}),
         413, "larger than"),
        ("invalid JSON", lambda: client.post("/api/v1/cases", data=b'{"workflow": "web_probe",',
                                             headers={**auth, "Content-Type": "application/json"}), 400, "JSON"),
        ("non-UTF-8", lambda: client.post("/api/v1/cases", data=b'{"workflow": "web_probe", "data": {"note": "\xff\xfe"}}',
                                          headers={**auth, "Content-Type": "application/json"}), 400, "JSON"),
        ("not an object", lambda: partner("POST", "/api/v1/workflows/web_probe/cases", [1, 2]), 422, "JSON object"),
        ("wrong type", lambda: partner("POST", "/api/v1/workflows/web_probe/cases", {"amount": ["12"]}), 422, "amount"),
        ("huge number", lambda: partner("POST", "/api/v1/workflows/web_probe/cases", {"amount": "1" + "0" * 40}),
         422, "amount"),
        ("huge float", lambda: partner("POST", "/api/v1/workflows/web_probe/cases", {"amount": 1e308}), 422, "amount"),
        ("negative money", lambda: partner("POST", "/api/v1/workflows/web_probe/cases", {"amount": "-5.00"}),
         422, "amount"),
        ("unknown event", lambda: root("POST", f"/api/v1/cases/{case['id']}/events/explode", {"payload": {}}),
         409, "explode"),
        ("unknown workflow", lambda: root("POST", "/api/v1/workflows/nope/cases", {}), 404, "nope"),
        ("naive datetime", lambda: root("POST", "/api/v1/clock/advance", {"to": "2026-12-01T09:00:00"}), 422, "naive"),
        ("huge id", lambda: root("GET", "/api/v1/cases/99999999999999999999999"), 404, "not"),
        ("CR/LF in email", lambda: root("POST", "/api/v1/users", {"login": "crlf", "name": "C",
                                                                  "email": "a@example.com\r\nBcc: evil@example.com",
                                                                  "roles": ["ecosystem_manager"]}), 422, "email"),
        ("CR/LF in partner email", lambda: root("POST", "/api/v1/partners", {
            "code": "EVIL", "name": "Evil", "contact_email": "x@example.com\nBcc: y@example.com"}), 422, "email"),
        ("bad payload field", lambda: mona("POST", f"/api/v1/cases/{case['id']}/events/approve",
                                                  {"payload": {"count": 10**30}}), 422, "count"),
    ]
    for label, call, status, words in attempts:
        before = counts(rt.db)
        resp = call()
        assert resp.status_code == status, (label, resp.status_code, resp.get_data(as_text=True)[:300])
        assert_refusal_names_problem(resp)
        assert words.lower() in resp.get_json()["detail"].lower(), (label, resp.get_json()["detail"])
        assert counts(rt.db) == before, label


# ---------------------------------------------------------------- HTML forms
junk = st.one_of(st.text(max_size=40), st.sampled_from(["", "-1", "1e400", "NaN", "0.001", "99999999999999999999",
                                                        "2026-02-30", "a@b.c\r\nBcc: x@y.z", "\x00", "<script>"]))


@settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
@given(form=st.fixed_dictionaries({}, optional={k: junk for k in (
    "amount", "currency", "note", "comment", "approved_amount", "level", "urgent", "count", "on", "codes",
    "login", "name", "email", "roles", "partner", "code", "region", "timezone", "assignee", "tasks", "delegate_of",
    "exam", "users", "password")}), target=st.integers(0, 5))
def test_every_html_form_survives_junk(app, rt, users, browser, form, target):
    if not hasattr(test_every_html_form_survives_junk, "ctx"):
        test_every_html_form_survives_junk.ctx = {}
    key = id(rt)
    ctx = test_every_html_form_survives_junk.ctx.get(key)
    if ctx is None:
        case = start_probe(rt, users)
        ctx = {"case": case, "browsers": {w: browser(w) for w in ("acme-admin", "mona", "root")}}
        test_every_html_form_survives_junk.ctx = {key: ctx}
    case = ctx["case"]
    who, url = [("acme-admin", "/cases/new/web_probe"), ("mona", f"/cases/{case['id']}/events/approve"),
                ("mona", f"/cases/{case['id']}/events/return_to_partner"), ("root", "/admin/users"),
                ("root", "/admin/partners"), ("root", "/admin/users/acme-dev1/delegates")][target]
    b = ctx["browsers"][who]
    before = counts(rt.db)
    resp = b.post(url, data=form)
    _count(resp.status_code, {"method": "POST", "path": url, "form": form})
    assert resp.status_code < 500, (url, form, resp.status_code)
    if resp.status_code >= 400:
        page = resp.get_data(as_text=True)
        assert resp.status_code in (400, 403, 404, 409, 413, 422), (url, resp.status_code)
        assert "error" in page.lower() or "refused" in page.lower() or "must" in page.lower() or "required" in page.lower(), page[:500]
        assert counts(rt.db) == before, (url, form)
