"""Fixtures for the web tests: the app on a real database, signed-in clients, API tokens, a probe lifecycle.

The probe lifecycle (`web_probe`) exists only in these tests: it has the
four-eyes rule, an authoring edit, a required comment, payload fields of
every kind and a timer, so every page and API rule is exercised without
depending on which production lifecycles are installed. The app's registry
holds it and `exam_voucher`.
"""
from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

import pytest
from sqlalchemy import update
from werkzeug.security import generate_password_hash

from engine.definition import InboxTask, Timer, Transition, Workflow
from engine.models import User
from engine.registry import Registry
from engine.roles import ADMIN, ECOSYSTEM_MANAGER, MDF_OWNER, PARTNER_ADMIN, PARTNER_MEMBER, SYSTEM
from engine.runtime import Runtime
from engine.schema import Field, Schema
from web import create_app
from web import services
from workflows import exam_voucher

PASSWORD = "correct horse battery"
_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")  # fast checks in tests
SECRET = "test-secret-" + "k" * 40


class PS(StrEnum):
    submitted = "submitted"  #: waiting for an MDF owner
    returned = "returned"  #: back with the partner
    approved = "approved"  #: final
    expired = "expired"  #: nobody decided in 10 days (final)


EDIT = Schema(Field("amount", "money", required=False), Field("note", "text", required=False, max_length=200))
APPROVE = Schema(
    Field("approved_amount", "money", required=False),
    Field("level", "choice", choices=("low", "high"), required=False),
    Field("urgent", "bool", required=False),
    Field("codes", "list", items=Field("code", "str", max_length=20), required=False),
    Field("count", "int", required=False, minimum=0, maximum=100),
    Field("on", "date", required=False),
)

PROBE = Workflow(
    name="web_probe",
    title="Web probe request",
    states=PS,
    initial=PS.submitted,
    final=(PS.approved, PS.expired),
    start_schema=Schema(Field("amount", "money"), Field("currency", "choice", choices=("CNY", "USD"), required=False,
                                                        default="CNY"), Field("note", "text", required=False)),
    start_roles={PARTNER_ADMIN, PARTNER_MEMBER},
    transitions=(
        Transition("edit", PS.submitted, None, {MDF_OWNER, ECOSYSTEM_MANAGER}, payload=EDIT, authors=True,
                   effect=lambda ctx: {k: v for k, v in ctx.payload.items()}),
        Transition("approve", PS.submitted, PS.approved, {MDF_OWNER, ECOSYSTEM_MANAGER, ADMIN}, payload=APPROVE,
                   four_eyes=True, effect=lambda ctx: {"approved_amount": ctx.payload.get("approved_amount")}),
        Transition("return_to_partner", PS.submitted, PS.returned, {MDF_OWNER, ECOSYSTEM_MANAGER},
                   comment_required=True),
        Transition("resubmit", PS.returned, PS.submitted, {PARTNER_ADMIN, PARTNER_MEMBER}, authors=True),
        Transition("expire", PS.submitted, PS.expired, {SYSTEM}),
    ),
    timers=(Timer(PS.submitted, "expire", after=timedelta(days=10)),),
    tasks=(
        InboxTask(PS.submitted, MDF_OWNER, "Decide on the probe request", due_after=timedelta(days=2),
                  amount_field="amount", currency_field="currency",
                  flags=lambda ctx: ["large"] if ctx.money("amount") and ctx.money("amount") > 10000 else []),
        InboxTask(PS.returned, PARTNER_ADMIN, "Fix and resubmit the probe request"),
    ),
)


@pytest.fixture
def web_registry():
    reg = Registry()
    reg.add(exam_voucher.WORKFLOW)
    reg.add(PROBE)
    return reg


@pytest.fixture
def rt(runtime, web_registry):
    return Runtime(runtime.db, runtime.clock, web_registry)


@pytest.fixture
def users(rt, people):
    """Every test user gets the password PASSWORD."""
    with rt.db.write() as conn:
        conn.execute(update(User.__table__).values(password_hash=_HASH))
    return people


@pytest.fixture
def app(rt, users):
    return create_app({"RUNTIME": rt, "SECRET_KEY": SECRET, "DEMO": False})


def csrf_of(client, url: str = "/login") -> str:
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def login(client, login: str, password: str = PASSWORD):
    token = csrf_of(client, "/login")
    return client.post("/login", data={"login": login, "password": password, "csrf_token": token})


class Browser:
    """A signed-in test client that adds the CSRF token to every form post."""

    def __init__(self, client, who: str):
        self.client = client
        self.login = who
        resp = login(client, who)
        assert resp.status_code == 302, resp.get_data(as_text=True)
        self.token = csrf_of(client, "/inbox")

    def get(self, url, **kw):
        return self.client.get(url, **kw)

    def post(self, url, data=None, **kw):
        data = dict(data or {})
        data.setdefault("csrf_token", self.token)
        return self.client.post(url, data=data, **kw)

    def text(self, url) -> str:
        resp = self.get(url)
        assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True)[:500])
        return resp.get_data(as_text=True)


@pytest.fixture
def browser(app):
    def make(who: str) -> Browser:
        return Browser(app.test_client(), who)

    return make


@pytest.fixture
def api(app, rt):
    """api(login) -> a function (method, url, json=None, **kw) -> response, with that user's bearer token."""
    def make(who: str):
        token = services.create_token(rt, who, "tests")["token"]
        client = app.test_client()

        def call(method: str, url: str, json=None, **kw):
            headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
            return client.open(url, method=method, json=json, headers=headers, **kw)

        call.token = token
        return call

    return make


def start_probe(rt, people, amount="1200.00", who="acme-admin", **extra) -> dict:
    return rt.start("web_probe", {"amount": amount, **extra}, people[who])


def start_voucher(rt, people, who="acme-admin") -> dict:
    return rt.start("exam_voucher", {"exam": "Cloud Architect", "users": ["acme-dev1"]}, people[who])
