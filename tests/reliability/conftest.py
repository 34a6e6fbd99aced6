"""Reliability fixtures: the shared ones, with truncation limited to the tables that exist.

(While lifecycle modules declare tables whose migrations are not yet written,
the shared truncation would fail on PostgreSQL; this keeps the reliability
tests runnable. Drop it once every model has its migration.)
"""
from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from engine.db import Database
from engine.models import Base

from ..conftest import PG_URL


@pytest.fixture
def db_url(db_template, tmp_path):
    if not PG_URL:
        import shutil

        path = tmp_path / "partnerflow.db"
        shutil.copy(db_template, path)
        return f"sqlite:///{path}"
    db = Database(db_template)
    existing = set(inspect(db.engine).get_table_names())
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name in existing)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    db.dispose()
    return db_template


# The web fixtures (app on a real database, signed-in browsers, API tokens, the probe lifecycle).
from tests.web.conftest import api, app, browser, rt, users, web_registry  # noqa: E402,F401
