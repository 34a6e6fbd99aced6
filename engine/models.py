"""Database schema (SQLAlchemy 2 typed models).

The runtime writes through SQLAlchemy Core on these tables (one statement per
row kind, no unit-of-work overhead on the hot path); the models also drive
Alembic autogenerate, which a test checks against the migrations.
Instants are stored as UTC and always come back aware.
"""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC (portable to SQLite)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused by the database layer")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # SQLite raw text from aggregates
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DecimalText(TypeDecorator):
    """A money `Decimal` stored as its exact text, to the cent, on every database (no float round trip on SQLite).

    `length` is the column's VARCHAR length (customer amounts use 40, MDF amounts 24, as migrated).
    """

    impl = String
    cache_ok = True

    def __init__(self, length: int = 40):
        super().__init__(length)
        self.length = length

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return str(Decimal(str(value)).quantize(Decimal("0.01")))

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)


# BIGINT ids on PostgreSQL, INTEGER (rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Partner(Base):
    """A company enrolled in the program."""

    __tablename__ = "partners"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    program: Mapped[str] = mapped_column(String(64), default="Cloud Solution Provider")
    tier: Mapped[str] = mapped_column(String(32), default="Standard")
    region: Mapped[str] = mapped_column(String(8), default="CN")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    admin_login: Mapped[str | None] = mapped_column(String(128))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class User(Base):
    """A person or service account; roles are a list of role names."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    login: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str | None] = mapped_column(String(64))
    roles: Mapped[list[Any]] = mapped_column(default=list)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    personal_info_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class Instance(Base):
    """One case of a lifecycle. `version` grows by one with every change (optimistic locking)."""

    __tablename__ = "instances"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workflow: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    business_key: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_final: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    state_entered_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_instances_workflow_state", "workflow", "state"),
        Index("ix_instances_partner_workflow", "partner_id", "workflow", "id"),
        # partial: every lookup by business key is an equality, and cases without one skip the index
        Index("ix_instances_business_key", "workflow", "business_key",
              sqlite_where=text("business_key IS NOT NULL"), postgresql_where=text("business_key IS NOT NULL")),
    )


class History(Base):
    """Append-only audit trail: one row per start and per fired event."""

    __tablename__ = "history"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(64))
    to_state: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Set when a timer fired this event; unique, so a timer can never fire twice.
    timer_id: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (
        UniqueConstraint("instance_id", "version"),
        # a timer fires at most once; only rows a timer wrote are in the index (migration 1002)
        Index("uq_history_timer_id", "timer_id", unique=True,
              sqlite_where=text("timer_id IS NOT NULL"), postgresql_where=text("timer_id IS NOT NULL")),
    )


class Timer(Base):
    """A durable deadline: when `due_at` passes, `event` fires on the instance if it is still in `state`."""

    __tablename__ = "timers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    name: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(64))
    #: Instance version at which the state was entered: a timer belongs to one visit of a state.
    armed_version: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    #: pending, claimed, fired, obsolete, cancelled, failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]

    __table_args__ = (
        # A case's timers are found through this constraint's index (instance_id first); due and claimed
        # timers through the partial indexes of migration 0701. No other index: each one is written at
        # every arm, claim, fire and cancel.
        UniqueConstraint("instance_id", "armed_version", "name"),
    )


class Task(Base):
    """An inbox task: a role must act on an instance, by a due date."""

    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    workflow: Mapped[str] = mapped_column(String(64))
    partner_id: Mapped[int | None] = mapped_column(Id)
    state: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    #: open, done, cancelled
    status: Mapped[str] = mapped_column(String(16), default="open")
    assignee: Mapped[str | None] = mapped_column(String(128))
    due_at: Mapped[datetime | None]
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str | None] = mapped_column(String(8))
    flags: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_tasks_inbox", "status", "role", "due_at", "id"),
        Index("ix_tasks_assignee", "status", "assignee", "due_at", "id"),
    )


class Outbox(Base):
    """An email to send, written in the transaction of the change that caused it."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"), index=True)
    template: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(32), default="general")
    recipient: Mapped[str] = mapped_column(String(254))
    recipient_login: Mapped[str | None] = mapped_column(String(128))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    #: queued, sending, sent, failed, discarded, captured
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)


class SubjectLock(Base):
    """A business subject (such as a customer's email) held by one owner until an instant."""

    __tablename__ = "subject_locks"
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    instance_id: Mapped[int | None] = mapped_column(Id)
    acquired_at: Mapped[datetime]
    until: Mapped[datetime]


class ClockState(Base):
    """The simulated clock's current instant, shared by every process."""

    __tablename__ = "clock_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    now: Mapped[datetime]


class Schedule(Base):
    """Calendar schedules: `next_at` moves forward by compare-and-set, so each slot runs once."""

    __tablename__ = "schedules"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    next_at: Mapped[datetime]
    last_slot: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_result: Mapped[str | None] = mapped_column(Text)


TABLES = Base.metadata.tables


def load_all() -> None:
    """Import every module that declares tables, so `Base.metadata` holds the whole schema.

    Tables live in ``engine/models*.py``, ``notifications/models*.py``,
    ``web/models*.py`` and in lifecycle modules under ``workflows/`` (imported
    through the registry).
    """
    import importlib
    import pkgutil

    for package_name in ("engine", "notifications", "web"):
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("models"):
                importlib.import_module(f"{package_name}.{info.name}")
    from .registry import default_registry

    default_registry()
