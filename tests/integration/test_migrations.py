"""The migrated schema equals the models (autogenerate finds no difference), on SQLite and PostgreSQL."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from engine.migrate import alembic_config, current_heads
from engine.models import Base, load_all

load_all()


def test_migrations_equal_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_database_is_at_every_head(db):
    heads = set(ScriptDirectory.from_config(alembic_config(db)).get_heads())
    assert heads and current_heads(db) == heads


def test_revision_files_carry_a_date_prefix(db):
    script = ScriptDirectory.from_config(alembic_config(db))
    for rev in script.walk_revisions():
        name = rev.path.rsplit("/", 1)[-1]
        assert name[:8].isdigit() and name[8] == "_", name
