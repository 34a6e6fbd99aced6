"""Tables of the web layer: API tokens, login attempts (rate limit), and the inbox indexes.

The inbox reads open tasks per role, sorted by due date, with keyset
pagination; filters by lifecycle and by partner get their own composite
indexes so a filtered first page and a deep page both stay an index range scan
at a million cases.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.models import Base, Id, Instance, Task

TK = Task.__table__
I = Instance.__table__

# Inbox filtered by lifecycle, and by partner (partner users, operator filter).
Index("ix_tasks_inbox_workflow", TK.c.status, TK.c.role, TK.c.workflow, TK.c.due_at, TK.c.id)
Index("ix_tasks_inbox_partner", TK.c.status, TK.c.role, TK.c.partner_id, TK.c.due_at, TK.c.id)
Index("ix_tasks_inbox_partner_workflow", TK.c.status, TK.c.role, TK.c.partner_id, TK.c.workflow, TK.c.due_at, TK.c.id)
# Case lists in the API: newest first, optionally per lifecycle.
Index("ix_instances_workflow_id", I.c.workflow, I.c.id)


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    login: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: First characters of the token, to recognise it in lists.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """A failed sign-in, counted per login and per client address over the last minute."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime]

    __table_args__ = (Index("ix_login_attempts_key_at", "key", "at"),)
