"""The customer invitation link (``/join/customer/<code>``, in the invitation email and the offline QR code)."""
from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import unquote

import pytest
from sqlalchemy import update

from engine.models import User
from tests.integration.test_customer_preregistration import add_account
from web import create_app

from .conftest import _HASH, PASSWORD, SECRET, Browser, csrf_of


@pytest.fixture
def app(runtime, people):
    """The app on the full registry (customer association included), every user with the test password."""
    add_account(runtime, "ann@example.com", country="CN", login="ann")
    add_account(runtime, "bob@customer.example", country="CN", login="bobby")
    with runtime.db.write() as conn:
        conn.execute(update(User.__table__).values(password_hash=_HASH))
    return create_app({"RUNTIME": runtime, "SECRET_KEY": SECRET, "DEMO": False})


def _invite(runtime, people, channel="email", email="ann@example.com"):
    case = runtime.start("customer_association", {"email": email, "model": "referral",
                                                  "channel": channel}, people["acme-admin"])
    return case, case["data"]["link"].split("://", 1)[1].split("/", 1)[1]


@pytest.mark.parametrize("channel", ["email", "offline"])
def test_the_invited_customer_lands_on_the_case_and_accepts_it(app, runtime, people, channel):
    case, path = _invite(runtime, people, channel)
    assert path.startswith("join/customer/")
    ann = Browser(app.test_client(), "ann")
    resp = ann.get("/" + path)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/cases/{case['id']}")
    page = ann.text(f"/cases/{case['id']}")
    assert "/events/accept" in page and "/events/decline" in page
    assert ann.post(f"/cases/{case['id']}/events/accept").status_code == 303
    assert runtime.get(case["id"])["state"] == "associated"
    assert ann.get("/" + path).status_code == 404  # accepted: the link is no longer open


def test_signing_in_first_comes_back_to_the_link(app, runtime, people):
    _, path = _invite(runtime, people)
    client = app.test_client()
    resp = client.get("/" + path)
    assert resp.status_code == 302 and unquote(resp.headers["Location"]).endswith("/login?next=/" + path)
    token = csrf_of(client, "/login")
    resp = client.post(unquote(resp.headers["Location"]), data={"login": "ann", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/" + path)


@pytest.mark.parametrize("code", ["not-a-code", "A" * 24, "x" * 300])
def test_an_unknown_code_is_a_clear_404(app, code):
    resp = Browser(app.test_client(), "ann").get(f"/join/customer/{code}")
    assert resp.status_code == 404
    assert "this invitation link is not open for you" in resp.get_data(as_text=True)


def test_another_customer_cannot_use_the_link(app, runtime, people):
    case, path = _invite(runtime, people)
    resp = Browser(app.test_client(), "bobby").get("/" + path)
    assert resp.status_code == 404
    assert runtime.get(case["id"])["state"] == "invited"


def test_an_emailed_link_works_until_its_end_and_an_offline_one_for_good(app, runtime, people):
    emailed, emailed_path = _invite(runtime, people, "email")
    offline, offline_path = _invite(runtime, people, "offline", email="bob@customer.example")
    end = datetime.fromisoformat(emailed["data"]["expires_at"])
    ann, bob = Browser(app.test_client(), "ann"), Browser(app.test_client(), "bobby")
    runtime.advance_to(end - timedelta(seconds=1))
    assert ann.get("/" + emailed_path).status_code == 302
    runtime.advance_to(end)
    assert runtime.get(emailed["id"])["state"] == "expired"
    assert ann.get("/" + emailed_path).status_code == 404
    runtime.advance_to(end + timedelta(days=30))
    resp = bob.get("/" + offline_path)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/cases/{offline['id']}")
