"""Tables of the notifications package: the delivery log of outbox rows and per-user email preferences.

The outbox itself (``engine.models.Outbox``) is written by the runtime in the
transaction of the change that caused the email.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.models import Base, Id


class OutboxAttempt(Base):
    """One delivery attempt (or operator action) on an outbox row: the append-only delivery log."""

    __tablename__ = "outbox_attempts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
    at: Mapped[datetime]
    #: sent, captured, retry (temporary failure), failed (parked), requeued (lease ended),
    #: digested (held for the daily digest), retried / discarded (operator)
    outcome: Mapped[str] = mapped_column(String(16))
    #: SMTP reply code when the server answered.
    code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index("ix_outbox_attempts_outbox", "outbox_id", "id"),)


class NotificationPreference(Base):
    """A user's email preferences: the daily digest of open tasks instead of one email per task."""

    __tablename__ = "notification_preferences"
    login: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Local hour (in the user's time zone, default Beijing time) of the digest, on working days.
    digest_hour: Mapped[int] = mapped_column(Integer, default=9)
    next_digest_at: Mapped[datetime | None]
    last_digest_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
