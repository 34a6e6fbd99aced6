"""The migrated schema equals the models (autogenerate finds no difference), on SQLite and PostgreSQL."""
from __future__ import annotations

from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, select, type_coerce

import engine.models_customers
import engine.models_mdf
from engine.migrate import alembic_config, current_heads
from engine.models import Base, DecimalText, load_all

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


def test_one_decimal_text_type_under_the_names_the_migrations_use(db):
    assert engine.models_customers.DecimalText is DecimalText
    assert isinstance(engine.models_mdf.MoneyText(), DecimalText) and engine.models_mdf.MoneyText().length == 24
    assert {c.name: c.type.length for c in engine.models_customers.Customer.__table__.c
            if isinstance(c.type, DecimalText)} == {"balance": 40, "topup_rewards": 40, "outstanding_invoices": 40}
    with db.engine.connect() as conn:
        value = conn.execute(select(type_coerce(bindparam("v", 0.1 + 0.2), DecimalText()))).scalar_one()
    assert value == Decimal("0.30") and str(value) == "0.30"
