"""The JSON API: tokens, cases, events, tasks, clock, outbox, reference data; every refusal as problem+json."""
from __future__ import annotations

import pytest

from tests.helpers import counts
from tests.web.conftest import start_probe

PROBLEM = "application/problem+json"


def problem(resp, status: int) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == PROBLEM
    body = resp.get_json()
    assert body["status"] == status and body["detail"]
    return body


def test_no_token_or_bad_token_is_401(app, api, users):
    client = app.test_client()
    body = problem(client.get("/api/v1/cases"), 401)
    assert "Authorization: Bearer" in body["detail"]
    assert client.get("/api/v1/cases").headers["WWW-Authenticate"].startswith("Bearer")
    problem(client.get("/api/v1/cases", headers={"Authorization": "Bearer pf_nope"}), 401)
    # a session cookie does not authenticate the API
    from tests.web.conftest import login

    login(client, "mona")
    problem(client.get("/api/v1/cases"), 401)


def test_start_get_fire_with_expected_version_and_history(api, rt, users):
    acme, mona = api("acme-admin"), api("mona")
    resp = acme("POST", "/api/v1/workflows/web_probe/cases", {"data": {"amount": "1500"}, "comment": "please"})
    assert resp.status_code == 201
    case = resp.get_json()
    assert resp.headers["Location"] == f"/api/v1/cases/{case['id']}"
    assert case["state"] == "submitted" and case["data"]["amount"] == "1500.00" and case["partner"] == "ACME"
    got = mona("GET", f"/api/v1/cases/{case['id']}").get_json()
    assert got["allowed_events"] == ["approve", "edit", "return_to_partner"]
    assert got["timers"][0]["does"] == "expire -> expired on 2026-03-12 09:00 Asia/Shanghai"
    assert got["tasks"][0]["role"] == "mdf_owner"
    after = mona("POST", f"/api/v1/cases/{case['id']}/events",
                 {"event": "approve", "payload": {"approved_amount": "1400"}, "comment": "ok", "expected_version": 1})
    assert after.status_code == 200
    view = after.get_json()
    assert view["state"] == "approved" and view["version"] == 2
    assert [(h["event"], h["actor"], h["comment"]) for h in view["history"]] == [
        ("start", "acme-admin", "please"), ("approve", "mona", "ok")]


def test_generic_start_and_named_event_route(api, users):
    acme, mona = api("acme-admin"), api("mona")
    case = acme("POST", "/api/v1/cases", {"workflow": "web_probe", "data": {"amount": "10"}}).get_json()
    resp = mona("POST", f"/api/v1/cases/{case['id']}/events/return_to_partner", {"comment": "missing"})
    assert resp.get_json()["state"] == "returned"
    resp = acme("POST", f"/api/v1/cases/{case['id']}/events/resubmit")  # empty body allowed
    assert resp.status_code == 200 and resp.get_json()["state"] == "submitted"


def test_event_not_allowed_is_409_with_allowed_events(api, rt, users):
    case = start_probe(rt, users)
    mona = api("mona")
    mona("POST", f"/api/v1/cases/{case['id']}/events", {"event": "approve"})
    body = problem(mona("POST", f"/api/v1/cases/{case['id']}/events", {"event": "approve"}), 409)
    assert body["code"] == "event_not_allowed" and body["state"] == "approved" and body["allowed"] == []
    assert "event 'approve' is not allowed in state 'approved'" in body["detail"]
    body = problem(mona("POST", f"/api/v1/cases/{case['id']}/events", {"event": "fly"}), 409)
    assert "web_probe has no event 'fly'" in body["detail"]


def test_stale_version_is_409_and_saves_nothing(api, rt, users):
    case = start_probe(rt, users)
    rt.fire(case["id"], "edit", users["alice"], {"note": "x"})
    mona = api("mona")
    before = counts(rt.db)
    body = problem(mona("POST", f"/api/v1/cases/{case['id']}/events",
                               {"event": "approve", "expected_version": 1}), 409)
    assert body["code"] == "stale_version" and body["version"] == 2 and body["expected_version"] == 1
    assert counts(rt.db) == before


def test_bad_input_names_the_field(api, rt, users):
    acme = api("acme-admin")
    body = problem(acme("POST", "/api/v1/workflows/web_probe/cases", {"data": {"amount": 12.5}}), 422)
    assert body["field"] == "amount" and "never a float" in body["detail"]
    body = problem(acme("POST", "/api/v1/workflows/web_probe/cases", {"data": {"amount": "1", "colour": "red"}}), 422)
    assert body["field"] == "colour" and "unknown field" in body["detail"]
    body = problem(acme("POST", "/api/v1/workflows/web_probe/cases", {"data": []}), 422)
    assert body["field"] == "data"
    case = start_probe(rt, users)
    mona = api("mona")
    body = problem(mona("POST", f"/api/v1/cases/{case['id']}/events", {"event": "approve", "expected_version": "x"}), 422)
    assert body["field"] == "expected_version"
    body = problem(mona("POST", f"/api/v1/cases/{case['id']}/events", {"event": "approve", "payload": [1]}), 422)
    assert body["field"] == "payload"
    body = problem(mona("POST", f"/api/v1/cases/{case['id']}/events", {"evnt": "approve"}), 422)
    assert body["field"] == "evnt"
    body = problem(mona("POST", f"/api/v1/cases/{case['id']}/events", {"event": "return_to_partner"}), 422)
    assert body["detail"] == "comment: a comment is required to return_to_partner"


def test_invalid_json_wrong_type_oversized_body_are_4xx(app, api, rt, users):
    mona = api("mona")
    case = start_probe(rt, users)
    url = f"/api/v1/cases/{case['id']}/events"
    body = problem(mona("POST", url, data="{not json", headers={"Content-Type": "application/json"}), 400)
    assert body["detail"] == "the body is not valid JSON"
    problem(mona("POST", url, data="event=approve", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    body = problem(mona("POST", url, json=[1, 2]), 422)
    assert body["detail"] == "body: must be a JSON object, got list"
    big = '{"event": "approve", "comment": "' + "x" * (app.config["MAX_CONTENT_LENGTH"] + 10) + '"}'
    body = problem(mona("POST", url, data=big, headers={"Content-Type": "application/json"}), 413)
    assert "larger than" in body["detail"]
    problem(mona("DELETE", url), 405)
    problem(mona("GET", "/api/v1/nothing-here"), 404)
    problem(mona("GET", "/api/v1/cases/99999999999999999999"), 404)
    assert rt.get(case["id"])["state"] == "submitted"


def test_role_and_four_eyes_are_403(api, rt, users):
    case = start_probe(rt, users)
    body = problem(api("fiona")("POST", f"/api/v1/cases/{case['id']}/events", {"event": "approve"}), 403)
    assert "needs role" in body["detail"]
    rt.fire(case["id"], "edit", users["mona"], {"note": "x"})
    body = problem(api("mona")("POST", f"/api/v1/cases/{case['id']}/events", {"event": "approve"}), 403)
    assert body["detail"].startswith("four-eyes rule: mona submitted or edited case")


def test_cross_partner_is_404_and_lists_are_scoped(api, rt, users):
    acme_case = start_probe(rt, users)
    nord_case = start_probe(rt, users, who="nord-admin")
    nord = api("nord-admin")
    problem(nord("GET", f"/api/v1/cases/{acme_case['id']}"), 404)
    problem(nord("POST", f"/api/v1/cases/{acme_case['id']}/events", {"event": "resubmit"}), 404)
    listed = nord("GET", "/api/v1/cases").get_json()["items"]
    assert [c["id"] for c in listed] == [nord_case["id"]]
    problem(nord("GET", "/api/v1/cases?partner=ACME"), 403)
    body = problem(api("acme-admin")("POST", "/api/v1/workflows/web_probe/cases",
                                     {"data": {"amount": "1", "partner": "NORD"}}), 403)
    assert "acts for partner ACME" in body["detail"]
    assert [p["code"] for p in nord("GET", "/api/v1/partners").get_json()["items"]] == ["NORD"]


def test_case_list_filters_and_keyset(api, rt, users):
    ids = [start_probe(rt, users)["id"] for _ in range(5)]
    mona = api("mona")
    page = mona("GET", "/api/v1/cases?workflow=web_probe&limit=2").get_json()
    assert [c["id"] for c in page["items"]] == ids[::-1][:2] and page["next"] == str(ids[3])
    page2 = mona("GET", f"/api/v1/cases?workflow=web_probe&limit=2&after={page['next']}").get_json()
    assert [c["id"] for c in page2["items"]] == [ids[2], ids[1]]
    assert mona("GET", "/api/v1/cases?state=approved").get_json()["items"] == []
    assert len(mona("GET", "/api/v1/cases?final=false&partner=ACME").get_json()["items"]) == 5
    assert problem(mona("GET", "/api/v1/cases?workflow=nope"), 422)["field"] == "workflow"
    assert problem(mona("GET", "/api/v1/cases?limit=0"), 422)["field"] == "limit"


def test_tasks_list_claim_reassign_decide(api, rt, users):
    case = start_probe(rt, users, amount="20000")
    mona, root = api("mona"), api("root")
    tasks = mona("GET", "/api/v1/tasks?workflow=web_probe").get_json()
    item = tasks["items"][0]
    assert item["case"] == case["id"] and item["amount"] == "20000.00" and item["flags"] == ["large"]
    assert item["due_local"] == "2026-03-04 09:00 Asia/Shanghai" and item["due_mark"] is None
    tid = item["id"]
    assert mona("POST", f"/api/v1/tasks/{tid}/claim").get_json() == {"id": tid, "assignee": "mona"}
    body = problem(root("POST", f"/api/v1/tasks/{tid}/claim"), 409)
    assert body["detail"] == f"task {tid} is already claimed by mona; ask them or an admin to reassign it"
    assert problem(mona("POST", f"/api/v1/tasks/{tid}/reassign", {"assignee": "fiona"}), 422)["field"] == "assignee"
    assert mona("POST", f"/api/v1/tasks/{tid}/reassign", {"assignee": "root"}).get_json()["assignee"] == "root"
    assert root("GET", "/api/v1/tasks?assigned=me").get_json()["items"][0]["id"] == tid
    assert mona("GET", f"/api/v1/tasks/{tid}").get_json()["assignee"] == "root"
    view = root("POST", f"/api/v1/tasks/{tid}/decide", {"event": "approve", "comment": "fine"}).get_json()
    assert view["state"] == "approved" and view["tasks"] == []
    assert problem(mona("POST", f"/api/v1/tasks/{tid}/claim"), 409)["detail"].endswith("the case has moved on")
    bulk = mona("POST", "/api/v1/tasks/claim", {"tasks": [tid, 424242]}).get_json()
    assert bulk["claimed"] == [] and [s["id"] for s in bulk["skipped"]] == [tid, 424242]
    assert problem(mona("POST", "/api/v1/tasks/claim", {"tasks": "all"}), 422)["field"] == "tasks"
    assert problem(mona("GET", "/api/v1/tasks?due=soon"), 422)["field"] == "due"


def test_clock_get_and_advance_fires_timers(api, rt, users):
    case = start_probe(rt, users)
    root = api("root")
    assert root("GET", "/api/v1/clock").get_json() == {"now": "2026-03-02T01:00:00+00:00", "simulated": True}
    resp = root("POST", "/api/v1/clock/advance", {"duration": "10d"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["timers_fired"] == 1 and body["now"] == "2026-03-12T01:00:00+00:00"
    assert rt.get(case["id"])["state"] == "expired"
    resp = root("POST", "/api/v1/clock/advance", {"to": "2026-03-13T09:00:00+08:00"})
    assert resp.get_json()["now"] == "2026-03-13T01:00:00+00:00"
    assert problem(root("POST", "/api/v1/clock/advance", {"duration": "-1d"}), 422)["field"] == "duration"
    assert problem(root("POST", "/api/v1/clock/advance", {"to": "2026-03-14T09:00:00"}), 422)["field"] == "to"
    assert problem(root("POST", "/api/v1/clock/advance", {"duration": "soon"}), 422)["field"] == "duration"
    assert problem(root("POST", "/api/v1/clock/advance", {"duration": "99999999w"}), 422)["field"] == "duration"
    assert problem(root("POST", "/api/v1/clock/advance", {}), 422)["field"] == "duration"
    assert "operator or admin" in problem(api("acme-admin")("POST", "/api/v1/clock/advance", {"duration": "1d"}), 403)["detail"]


def test_clock_advance_refused_on_system_clock(rt, users):
    from engine.clock import SystemClock
    from engine.runtime import Runtime
    from web import create_app
    from web.services import create_token

    wall = Runtime(rt.db, SystemClock(), rt.registry)
    app = create_app({"RUNTIME": wall, "SECRET_KEY": "s" * 40})
    token = create_token(wall, "root")["token"]
    resp = app.test_client().post("/api/v1/clock/advance", json={"duration": "1d"},
                                  headers={"Authorization": f"Bearer {token}"})
    body = problem(resp, 409)
    assert "PARTNERFLOW_CLOCK=simulated" in body["detail"]


def test_outbox_list_scoped_and_rendered(api, rt, users):
    from tests.web.conftest import start_voucher

    case = start_voucher(rt, users)
    alice, acme = api("alice"), api("acme-admin")
    items = alice("GET", f"/api/v1/outbox?case={case['id']}").get_json()["items"]
    assert items and {m["template"] for m in items} == {"exam_voucher/applied"}
    msg = alice("GET", f"/api/v1/outbox/{items[0]['id']}").get_json()
    assert msg["rendered"] is True and msg["subject"] and msg["text"]
    assert acme("GET", "/api/v1/outbox").get_json()["items"] == []  # not addressed to the partner admin
    problem(acme("GET", f"/api/v1/outbox/{items[0]['id']}"), 404)
    assert problem(alice("GET", "/api/v1/outbox?case=abc"), 422)["field"] == "case"


def test_reference_data_read_for_all_create_for_admin(api, users):
    root, mona = api("root"), api("mona")
    assert "ACME" in [p["code"] for p in mona("GET", "/api/v1/partners").get_json()["items"]]
    users_list = mona("GET", "/api/v1/users").get_json()["items"]
    assert all("password_hash" not in u for u in users_list)
    problem(mona("POST", "/api/v1/partners", {"code": "ZED", "name": "Zed"}), 403)
    resp = root("POST", "/api/v1/partners", {"code": "ZED", "name": "Zed Ltd", "tier": "Premier"})
    assert resp.status_code == 201 and resp.get_json()["tier"] == "Premier"
    assert problem(root("POST", "/api/v1/partners", {"code": "ZED", "name": "Again"}), 409)["detail"].startswith(
        "a partner with code 'ZED' already exists")
    resp = root("POST", "/api/v1/users", {"login": "zed-admin", "name": "Zed Admin", "roles": ["partner_admin"],
                                         "partner": "ZED", "password": "long-enough-pw"})
    assert resp.status_code == 201 and resp.get_json()["partner"] == "ZED" and resp.get_json()["has_password"]
    assert problem(root("POST", "/api/v1/users", {"login": "x", "name": "X", "roles": ["wizard"]}), 422)["field"] == "roles[0]"
    resp = root("PUT", "/api/v1/users/bob/delegates", {"delegate_of": ["alice"]})
    assert resp.get_json()["delegate_of"] == ["alice"]
    assert problem(root("PUT", "/api/v1/users/bob/delegates", {"delegate_of": ["ghost"]}), 422)["field"] == "delegate_of"
    problem(mona("PUT", "/api/v1/users/bob/delegates", {"delegate_of": []}), 403)


def test_workflows_list_and_definition_with_diagram(api, users):
    mona = api("mona")
    names = [w["name"] for w in mona("GET", "/api/v1/workflows").get_json()["items"]]
    assert names == ["exam_voucher", "web_probe"]
    detail = mona("GET", "/api/v1/workflows/web_probe").get_json()
    assert detail["mermaid"].startswith("stateDiagram-v2")
    approve = next(t for t in detail["transitions"] if t["event"] == "approve")
    assert approve["four_eyes"] is True and "approved_amount" in approve["payload"]["properties"]
    problem(mona("GET", "/api/v1/workflows/nope"), 404)
    me = mona("GET", "/api/v1/me").get_json()
    assert me["login"] == "mona" and me["roles"] == ["mdf_owner"]


def test_revoked_token_stops_working(api, rt, users):
    from web.services import list_tokens, revoke_token

    mona = api("mona")
    assert mona("GET", "/api/v1/me").status_code == 200
    revoke_token(rt, list_tokens(rt, "mona")[0]["id"])
    problem(mona("GET", "/api/v1/me"), 401)


@pytest.mark.parametrize("path", [
    "/api/v1/outbox?after=224421156617889054720",
    "/api/v1/outbox?case=-36847905398734520399691776",
    "/api/v1/outbox?after=9223372036854775808",
    "/api/v1/cases?after=224421156617889054720",
])
def test_numbers_beyond_64_bits_are_refused_naming_the_field(api, users, path):
    body = problem(api("mona")("GET", path), 422)
    assert "out of range" in body["detail"] and ("after" in body["detail"] or "case" in body["detail"])


def test_the_largest_64_bit_cursor_is_taken(api, users):
    assert api("mona")("GET", "/api/v1/cases?after=9223372036854775807").status_code == 200
