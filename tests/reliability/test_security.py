"""Security of the web app: CSRF on every state-changing page route, four-eyes and delegates, partner
isolation, login rate limit, cookie flags, hashed passwords, no secret in logs, security headers.

Every route is taken from the app's own URL map, so a route added later is
covered without editing this file: each POST outside the token-authenticated
API must refuse a missing and a stale CSRF token and save nothing.
"""
from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select, text

from engine.models import User
from tests.helpers import counts
from tests.web.conftest import PASSWORD, SECRET, csrf_of, login, start_probe


def _sample_url(rule, case_id: int, task_id: int) -> str:
    values = {"case_id": case_id, "task_id": task_id, "message_id": 1, "token_id": 1, "event": "approve",
              "workflow": "web_probe", "login": "acme-dev1", "name": "web_probe", "filename": "x"}
    return rule.build({k: values[k] for k in rule.arguments}, append_unknown=False)[1]


def _state_changing(app):
    for rule in app.url_map.iter_rules():
        methods = rule.methods - {"GET", "HEAD", "OPTIONS"}
        if methods and not rule.rule.startswith("/api/"):
            for method in sorted(methods):
                yield rule, method


def test_every_state_changing_route_refuses_missing_and_stale_csrf(app, rt, users, browser):
    case = start_probe(rt, users)
    task_id = case["tasks"][0]["id"]
    routes = list(_state_changing(app))
    assert len(routes) >= 10 and any(r.rule == "/login" for r, _ in routes)
    other = app.test_client()
    login(other, "bob")
    stale = csrf_of(other, "/inbox")  # a real token, but of another session
    for who in ("root", "mona"):
        b = browser(who)
        for rule, method in routes:
            url = _sample_url(rule, case["id"], task_id)
            form = {"login": "root", "password": PASSWORD, "comment": "x", "assignee": "bob", "code": "ZZ",
                    "name": "Z", "tasks": str(task_id), "amount": "1.00"}
            for token in (None, stale, "forged." + "a" * 40):
                before = counts(rt.db)
                data = dict(form) if token is None else {**form, "csrf_token": token}
                resp = b.client.open(url, method=method, data=data)
                assert resp.status_code == 400, (url, token is None, resp.status_code)
                assert "Security check failed" in resp.get_data(as_text=True), url
                assert counts(rt.db) == before, url


def test_api_ignores_the_session_cookie(app, rt, users, browser):
    b = browser("root")
    before = counts(rt.db)
    resp = b.client.post("/api/v1/cases", json={"workflow": "web_probe", "data": {"amount": "1.00"}})
    assert resp.status_code == 401 and resp.headers["content-type"].startswith("application/problem+json")
    assert counts(rt.db) == before


def test_four_eyes_and_delegates_through_the_api(app, rt, users, api):
    case = start_probe(rt, users)
    mona, bob = api("mona"), api("bob")
    assert mona("POST", f"/api/v1/cases/{case['id']}/events/edit", {"payload": {"note": "fixed"}}).status_code == 200
    refused = mona("POST", f"/api/v1/cases/{case['id']}/events/approve", {"payload": {}})
    assert refused.status_code == 403 and "four-eyes" in refused.get_json()["detail"]
    # bob becomes mona's delegate: he may not approve what she authored either
    root = api("root")
    assert root("PUT", "/api/v1/users/bob/delegates", {"delegate_of": ["mona"]}).status_code == 200
    bob = api("bob")
    refused = bob("POST", f"/api/v1/cases/{case['id']}/events/approve", {"payload": {}})
    assert refused.status_code == 403 and "delegate of mona" in refused.get_json()["detail"]
    with rt.db.read() as conn:
        decided = conn.execute(text("SELECT count(*) FROM history WHERE event = 'approve'")).scalar()
    assert decided == 0
    assert api("alice")("POST", f"/api/v1/cases/{case['id']}/events/approve", {"payload": {}}).status_code == 200


def test_partners_never_see_each_others_cases(app, rt, users, api, browser):
    case = start_probe(rt, users)  # an ACME case
    nord = api("nord-admin")
    before = counts(rt.db)
    for method, url, body in (("GET", f"/api/v1/cases/{case['id']}", None),
                              ("POST", f"/api/v1/cases/{case['id']}/events/resubmit", {"payload": {}}),
                              ("POST", f"/api/v1/cases/{case['id']}/events", {"event": "approve"})):
        resp = nord(method, url, body)
        assert resp.status_code == 404, (url, resp.status_code)
        assert str(case["id"]) in resp.get_json()["detail"] and "ACME" not in resp.get_data(as_text=True)
    listed = nord("GET", "/api/v1/cases").get_json()
    assert case["id"] not in [c["id"] for c in (listed.get("items") or listed.get("cases") or [])]
    page = browser("nord-admin").get(f"/cases/{case['id']}")
    assert page.status_code == 404
    assert counts(rt.db) == before


def test_login_is_rate_limited(app, rt, users):
    client = app.test_client()
    statuses = []
    for _ in range(12):
        token = csrf_of(client, "/login")
        statuses.append(client.post("/login", data={"login": "alice", "password": "wrong password",
                                                    "csrf_token": token}).status_code)
    assert 429 in statuses, statuses
    limited = statuses.index(429)
    assert all(s == 429 for s in statuses[limited:])
    # even the right password is refused while the limit holds
    token = csrf_of(client, "/login")
    assert client.post("/login", data={"login": "alice", "password": PASSWORD, "csrf_token": token}).status_code == 429


def test_session_cookie_flags(app, users):
    client = app.test_client()
    resp = login(client, "alice")
    cookie = next(v for k, v in resp.headers.items() if k == "Set-Cookie" and v.startswith("partnerflow_session="))
    assert "HttpOnly" in cookie and re.search(r"SameSite=(Lax|Strict)", cookie)
    secure = app.test_client()
    base = "https://partnerflow.example"
    page = secure.get("/login", base_url=base).get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    resp = secure.post("/login", data={"login": "alice", "password": PASSWORD, "csrf_token": token},
                       base_url=base, headers={"Referer": base + "/login"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    cookie = next(v for k, v in resp.headers.items() if k == "Set-Cookie" and v.startswith("partnerflow_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_passwords_are_stored_hashed(app, rt, users, api):
    secret = "a brand new passphrase 42"
    resp = api("root")("POST", "/api/v1/users", {"login": "newbie", "name": "Newbie", "email": "newbie@example.com",
                                                "roles": ["ecosystem_manager"], "password": secret})
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    assert secret not in resp.get_data(as_text=True)
    with rt.db.read() as conn:
        stored = conn.execute(select(User.__table__.c.password_hash).where(User.__table__.c.login == "newbie")).scalar()
        dump = " ".join(str(v) for v in conn.execute(select(User.__table__)).all())
    assert stored and secret not in stored and re.match(r"^(scrypt|pbkdf2):", stored)
    assert secret not in dump


def test_no_secret_in_logs(app, rt, users, api, caplog):
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    token = csrf_of(client, "/login")
    client.post("/login", data={"login": "alice", "password": "wrong horse " + PASSWORD, "csrf_token": token})
    login(client, "alice")
    bearer = api("root")
    bearer("GET", "/api/v1/me")
    bearer("POST", "/api/v1/users", {"login": "x" * 300, "password": "hunter2-hunter2"})  # refused, logged?
    app.test_client().get("/api/v1/me", headers={"Authorization": "Bearer not-a-token-" + "z" * 30})
    text_logged = "\n".join(r.getMessage() + " " + str(r.args) for r in caplog.records)
    for secret in (PASSWORD, SECRET, bearer.token, "hunter2-hunter2", "not-a-token-" + "z" * 30):
        assert secret not in text_logged


@pytest.mark.parametrize("path", ["/login", "/inbox", "/cases", "/cases/new", "/admin/", "/mail"])
def test_security_headers_and_no_inline_script(app, users, browser, path):
    b = browser("root")
    resp = b.get(path) if path != "/login" else app.test_client().get(path)
    assert resp.status_code == 200, (path, resp.status_code)
    csp = resp.headers["Content-Security-Policy"]
    script = re.search(r"script-src ([^;]+)", csp).group(1)
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    html = resp.get_data(as_text=True)
    inline = [m for m in re.findall(r"<script\b([^>]*)>", html) if "src=" not in m]
    assert inline == [], f"inline script on {path}"
    assert not re.search(r"\son[a-z]+\s*=\s*[\"']", html), f"inline event handler on {path}"
