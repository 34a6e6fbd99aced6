"""Shared fixtures: a real database per test (SQLite file, or PostgreSQL when asked), runtime, people.

Set ``PARTNERFLOW_TEST_DATABASE_URL`` to a PostgreSQL URL to run the suite on
PostgreSQL: a fresh database is created for the run (named after the
process), migrated once, truncated between tests and dropped at the end.
Without it every test gets its own SQLite file copied from a migrated
template.
"""
from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from engine.actors import Actor
from engine.clock import SimulatedClock
from engine.db import Database, normalise_url
from engine.directory import add_partner, add_user
from engine.migrate import upgrade
from engine.models import Base, load_all
from engine.registry import default_registry
from engine.runtime import Runtime

load_all()
PG_URL = os.environ.get("PARTNERFLOW_TEST_DATABASE_URL")
#: Mid-week, outside Chinese holidays: Monday 2026-03-02 09:00 Beijing time.
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def smtp_server(monkeypatch):
    """A real aiosmtpd server on 127.0.0.1 (tests/smtp.py); the dispatcher is pointed at it."""
    from tests.smtp import SmtpServer

    server = SmtpServer().start()
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _every_email_renders(request):
    """At teardown, every outbox row the test produced must render in English and Chinese (StrictUndefined).

    A test that produces a deliberately broken row discards it (status ``discarded``) after its assertions.
    """
    database = request.getfixturevalue("db") if "db" in request.fixturenames else None
    yield
    if database is not None:
        from tests.smtp import outbox_render_problems

        problems = outbox_render_problems(database)
        assert not problems, "emails that cannot be rendered:\n" + "\n".join(problems)


def pytest_report_header(config):
    return f"partnerflow database: {'PostgreSQL ' + PG_URL.split('@')[-1] if PG_URL else 'SQLite files'}"


@pytest.fixture(scope="session")
def db_template(tmp_path_factory):
    """A migrated database for the session: a SQLite template file, or a fresh PostgreSQL database."""
    if PG_URL:
        base = normalise_url(PG_URL)
        name = f"pf_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives a server restart
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.rsplit("/", 1)[0] + "/" + name
        db = Database(url)
        upgrade(db)
        db.dispose()
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        db = Database(f"sqlite:///{path}")
        upgrade(db)
        db.dispose()
        yield str(path)


def _truncate(db: Database) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db_url(db_template, tmp_path):
    if PG_URL:
        db = Database(db_template)
        _truncate(db)
        db.dispose()
        return db_template
    path = tmp_path / "partnerflow.db"
    shutil.copy(db_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def registry():
    return default_registry()


@pytest.fixture
def runtime(db, registry):
    clock = SimulatedClock(db)
    clock.set(START)
    return Runtime(db, clock, registry)


@pytest.fixture
def people(runtime):
    """Partner ACME (mainland China) and NORD (Berlin), operators, and partner people; returns actors by login."""
    now = runtime.now()
    with runtime.db.write() as conn:
        add_partner(conn, {"code": "ACME", "name": "Acme Cloud", "tier": "Advanced", "admin_login": "acme-admin",
                           "contact_email": "contact@acme.example"}, now)
        add_partner(conn, {"code": "NORD", "name": "Nordlicht GmbH", "program": "Distribution", "region": "DE",
                           "timezone": "Europe/Berlin", "admin_login": "nord-admin",
                           "contact_email": "kontakt@nord.example"}, now)
        for login, roles, partner, info in [
            ("alice", ["ecosystem_manager"], None, False),
            ("bob", ["ecosystem_manager"], None, False),
            ("mona", ["mdf_owner"], None, False),
            ("oscar", ["operations_manager"], None, False),
            ("fiona", ["finance"], None, False),
            ("paul", ["procurement"], None, False),
            ("root", ["admin"], None, False),
            ("acme-admin", ["partner_admin"], "ACME", True),
            ("acme-dev1", ["partner_member"], "ACME", True),
            ("acme-dev2", ["partner_member"], "ACME", False),
            ("nord-admin", ["partner_admin"], "NORD", True),
            ("nord-dev", ["partner_member"], "NORD", True),
        ]:
            add_user(conn, {"login": login, "name": login.title(), "email": f"{login}@example.com", "roles": roles,
                            "partner": partner, "personal_info_complete": info}, now)
    return _People(runtime)


class _People(dict):
    def __init__(self, runtime):
        super().__init__()
        self.runtime = runtime

    def __missing__(self, login: str) -> Actor:
        actor = self.runtime.actor(login)
        self[login] = actor
        return actor
