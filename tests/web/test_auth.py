"""Sign-in, sessions, CSRF, the login limit, cookie flags, security headers and the secret key."""
from __future__ import annotations

import re

import pytest

from tests.helpers import count
from web import create_app

from tests.web.conftest import PASSWORD, SECRET, csrf_of, login


def test_pages_need_sign_in_and_redirect_back_after(app):
    client = app.test_client()
    resp = client.get("/inbox?due=overdue")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next=")
    token = csrf_of(client)
    resp = client.post("/login?next=/inbox?due%3Doverdue", data={"login": "mona", "password": PASSWORD,
                                                                  "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/inbox?due=overdue"


def test_login_next_to_other_site_goes_to_inbox(app):
    client = app.test_client()
    token = csrf_of(client)
    resp = client.post("/login?next=//evil.example/x", data={"login": "mona", "password": PASSWORD, "csrf_token": token})
    assert resp.headers["Location"] == "/inbox"


def test_wrong_password_is_refused_with_message(app):
    resp = login(app.test_client(), "mona", "wrong-password")
    assert resp.status_code == 401
    assert "Wrong login or password." in resp.get_data(as_text=True)


def test_login_limit_sixth_failure_in_a_minute_is_429_even_with_right_password(app, rt):
    client = app.test_client()
    for _ in range(5):
        assert login(client, "alice", "nope-nope").status_code == 401
    resp = login(client, "alice", PASSWORD)
    assert resp.status_code == 429
    assert "too many failed sign-ins for alice" in resp.get_data(as_text=True)
    assert resp.headers["Retry-After"] == "60"
    # stored in the database: another app (another process or thread) on the same database refuses too
    other = create_app({"RUNTIME": rt, "SECRET_KEY": SECRET}).test_client()
    assert login(other, "alice", PASSWORD).status_code == 429
    # another user is not affected
    assert login(app.test_client(), "mona", PASSWORD).status_code == 302
    assert count(rt.db, "login_attempts") == 10  # 5 failures, each counted per login and per address


def test_four_failures_then_success_signs_in(app):
    client = app.test_client()
    for _ in range(4):
        login(client, "bob", "bad-password")
    assert login(client, "bob", PASSWORD).status_code == 302


def test_session_cookie_flags_httponly_samesite_and_secure_only_on_https(app):
    resp = login(app.test_client(), "mona")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    https = app.test_client()
    token = csrf_of(https)
    resp = https.post("/login", base_url="https://localhost", headers={"Referer": "https://localhost/login"},
                      data={"login": "mona", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


def test_csrf_missing_on_login_is_400(app):
    resp = app.test_client().post("/login", data={"login": "mona", "password": PASSWORD})
    assert resp.status_code == 400
    assert "The CSRF token is missing" in resp.get_data(as_text=True)


def test_csrf_stale_token_from_another_session_is_400(app, browser):
    mona = browser("mona")
    other = app.test_client()
    stale = csrf_of(other)
    resp = mona.client.post("/inbox/claim", data={"task": "1", "csrf_token": stale})
    assert resp.status_code == 400
    assert "Security check failed: The CSRF" in resp.get_data(as_text=True)


def test_csrf_missing_on_decision_is_400_and_changes_nothing(app, browser, rt, users):
    from tests.web.conftest import start_probe

    case = start_probe(rt, users)
    mona = browser("mona")
    resp = mona.client.post(f"/cases/{case['id']}/events/approve", data={"expected_version": "1"})
    assert resp.status_code == 400
    assert rt.get(case["id"])["state"] == "submitted"


def test_logout_needs_post_with_csrf(browser):
    mona = browser("mona")
    assert mona.get("/logout").status_code == 405
    assert mona.client.post("/logout").status_code == 400
    resp = mona.post("/logout")
    assert resp.status_code == 302
    assert mona.get("/inbox").status_code == 302


def test_deactivated_user_is_signed_out(browser, rt):
    from sqlalchemy import update

    from engine.models import User

    mona = browser("mona")
    with rt.db.write() as conn:
        conn.execute(update(User.__table__).where(User.__table__.c.login == "mona").values(active=False))
    assert mona.get("/inbox").status_code == 302
    assert login(mona.client.application.test_client(), "mona").status_code == 401


def test_demo_mode_lists_demo_users_on_login_page(rt, users):
    from sqlalchemy import update
    from werkzeug.security import generate_password_hash

    from engine.models import User

    with rt.db.write() as conn:
        conn.execute(update(User.__table__).where(User.__table__.c.login == "mona")
                     .values(password_hash=generate_password_hash("partnerflow-demo")))
    html = create_app({"RUNTIME": rt, "SECRET_KEY": SECRET, "DEMO": True}).test_client().get("/login").get_data(as_text=True)
    assert "Demo users" in html and "<code>mona</code>" in html and "<code>alice</code>" not in html
    plain = create_app({"RUNTIME": rt, "SECRET_KEY": SECRET}).test_client().get("/login").get_data(as_text=True)
    assert "Demo users" not in plain


def test_security_headers_csp_without_inline_scripts(app):
    resp = app.test_client().get("/login")
    csp = resp.headers["Content-Security-Policy"]
    script = re.search(r"script-src ([^;]+)", csp).group(1)
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in resp.get_data(as_text=True)


def test_secret_key_required_in_production(rt, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_ENV", "production")
    monkeypatch.delenv("PARTNERFLOW_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="PARTNERFLOW_SECRET_KEY must be set"):
        create_app({"RUNTIME": rt})
    monkeypatch.setenv("PARTNERFLOW_SECRET_KEY", "s" * 48)
    app = create_app({"RUNTIME": rt})
    assert app.config["SECRET_KEY"] == "s" * 48 and app.config["SESSION_COOKIE_SECURE"] is True


def test_secret_key_generated_once_and_kept_in_instance_folder(rt, monkeypatch, tmp_path):
    monkeypatch.delenv("PARTNERFLOW_ENV", raising=False)
    monkeypatch.delenv("PARTNERFLOW_SECRET_KEY", raising=False)
    monkeypatch.setenv("PARTNERFLOW_INSTANCE_PATH", str(tmp_path / "inst"))
    first = create_app({"RUNTIME": rt}).config["SECRET_KEY"]
    second = create_app({"RUNTIME": rt}).config["SECRET_KEY"]
    assert first == second and len(first) == 64
    path = tmp_path / "inst" / "secret_key"
    assert path.read_text() == first and oct(path.stat().st_mode & 0o777) == "0o600"


def test_healthz_and_unknown_page_is_html_404(app):
    client = app.test_client()
    assert client.get("/healthz").get_json()["status"] == "ok"
    resp = client.get("/no-such-page")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
