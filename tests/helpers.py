"""Small helpers shared by tests."""
from __future__ import annotations

from sqlalchemy import text

from engine.db import Database
from engine.models import Base


def count(db: Database, table: str) -> int:
    with db.read() as conn:
        return conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()


def counts(db: Database) -> dict[str, int]:
    """Row counts of every table: a refused call must leave them all unchanged."""
    return {t.name: count(db, t.name) for t in Base.metadata.sorted_tables}
