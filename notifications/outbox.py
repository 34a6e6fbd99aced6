"""Outbox services: list and show messages (mail preview), and the operator's retry and discard.

Statuses of an outbox row:

- ``queued``: waiting for the dispatcher (``next_attempt_at`` says when it may go);
- ``sending``: claimed by a dispatcher under a lease (``claimed_by``, ``lease_until``);
- ``sent``: accepted by the SMTP server; ``captured``: kept for the mail preview
  because no SMTP server is configured (the embedded default);
- ``failed``: parked, with the server's answer in ``last_error``, for an
  operator to retry or discard; ``discarded``: dropped by an operator;
- ``digested``: an approver's task email held back because the approver
  receives the daily digest of open tasks instead.

Every delivery attempt and operator action is appended to ``outbox_attempts``.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from engine.errors import Conflict, NotFound, ValidationError
from engine.models import Outbox

from .models import OutboxAttempt
from .render import RenderError, render_message

OB = Outbox.__table__
OA = OutboxAttempt.__table__

STATUSES = ("queued", "sending", "sent", "captured", "failed", "discarded", "digested")
RETRYABLE = ("failed", "discarded", "digested")
DISCARDABLE = ("queued", "failed", "digested")


def log_attempt(conn: Connection, outbox_id: int, at: datetime, outcome: str, *, code: int | None = None,
                detail: str | None = None, worker: str | None = None) -> None:
    conn.execute(insert(OA).values(outbox_id=outbox_id, at=at, outcome=outcome, code=code, detail=detail,
                                   worker=worker))


def _summary(row, with_subject: bool = True) -> dict:
    subject, error = None, None
    if with_subject:
        try:
            subject = render_message(row).subject
        except RenderError as exc:
            error = exc.message
    case = (row.context or {}).get("case") or {}
    return {
        "id": row.id, "case": row.instance_id if row.instance_id is not None else case.get("id"),
        "workflow": case.get("workflow"), "template": row.template, "category": row.category,
        "recipient": row.recipient, "recipient_login": row.recipient_login, "locale": row.locale,
        "timezone": row.timezone, "subject": subject, "render_error": error, "status": row.status,
        "attempts": row.attempts, "message_id": row.message_id, "last_error": row.last_error,
        "created_at": row.created_at.isoformat(), "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
    }


def list_messages(conn: Connection, *, status: str | None = None, recipient: str | None = None,
                  case: int | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
    """Outbox messages, newest first, with their rendered subject (the mail preview list)."""
    if status is not None and status not in STATUSES:
        raise ValidationError("status", f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    if not 1 <= int(limit) <= 1000:
        raise ValidationError("limit", "must be between 1 and 1000")
    query = select(OB)
    if status:
        query = query.where(OB.c.status == status)
    if recipient:
        query = query.where(func.lower(OB.c.recipient) == recipient.lower())
    if case is not None:
        query = query.where(OB.c.instance_id == int(case))
    rows = conn.execute(query.order_by(OB.c.id.desc()).limit(int(limit)).offset(int(offset))).all()
    return [_summary(r) for r in rows]


def count_by_status(conn: Connection) -> dict[str, int]:
    return {r.status: r.n for r in conn.execute(select(OB.c.status, func.count().label("n")).group_by(OB.c.status))}


def _row(conn: Connection, message_id: int):
    try:
        message_id = int(message_id)
    except (TypeError, ValueError):
        raise ValidationError("id", f"{message_id!r} is not a message number") from None
    row = conn.execute(select(OB).where(OB.c.id == message_id)).first()
    if row is None:
        raise NotFound(f"no outbox message {message_id}")
    return row


def get_message(conn: Connection, message_id: int) -> dict:
    """One message: its row, the rendered subject, text and HTML, and its delivery log."""
    row = _row(conn, message_id)
    out = _summary(row, with_subject=False)
    try:
        rendered = render_message(row)
        out.update(subject=rendered.subject, text=rendered.text, html=rendered.html)
    except RenderError as exc:
        out.update(render_error=exc.message, text=None, html=None)
    out["context"] = row.context
    out["log"] = [
        {"at": a.at.isoformat(), "outcome": a.outcome, "code": a.code, "detail": a.detail, "worker": a.worker}
        for a in conn.execute(select(OA).where(OA.c.outbox_id == row.id).order_by(OA.c.id))
    ]
    return out


def retry_message(conn: Connection, message_id: int, now: datetime, by: str = "operator") -> dict:
    """Queue a parked (failed, discarded or digested) message again, now, with a fresh attempt count.

    The message keeps its Message-ID, so a receiver can recognise a resend.
    """
    row = _row(conn, message_id)
    if row.status not in RETRYABLE:
        raise Conflict(f"message {row.id} is {row.status}; only {', '.join(RETRYABLE)} messages can be retried")
    done = conn.execute(update(OB).where(OB.c.id == row.id, OB.c.status == row.status).values(
        status="queued", attempts=0, next_attempt_at=now, claimed_by=None, lease_until=None))
    if done.rowcount != 1:
        raise Conflict(f"message {row.id} changed meanwhile; try again")
    log_attempt(conn, row.id, now, "retried", detail=f"queued again by {by} (was {row.status})", worker=by)
    return _summary(_row(conn, row.id), with_subject=False)


def discard_message(conn: Connection, message_id: int, now: datetime, by: str = "operator") -> dict:
    """Drop a queued, failed or digested message: it will never be sent."""
    row = _row(conn, message_id)
    if row.status not in DISCARDABLE:
        raise Conflict(f"message {row.id} is {row.status}; only {', '.join(DISCARDABLE)} messages can be discarded")
    done = conn.execute(update(OB).where(OB.c.id == row.id, OB.c.status == row.status).values(
        status="discarded", claimed_by=None, lease_until=None))
    if done.rowcount != 1:
        raise Conflict(f"message {row.id} changed meanwhile; try again")
    log_attempt(conn, row.id, now, "discarded", detail=f"discarded by {by} (was {row.status})", worker=by)
    return _summary(_row(conn, row.id), with_subject=False)
