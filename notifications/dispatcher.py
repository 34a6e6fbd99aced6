"""The outbox dispatcher: delivers queued emails over one reused SMTP connection per batch.

A batch is claimed in one short transaction (one UPDATE ... RETURNING): due
``queued`` rows become ``sending`` under this worker's name with a lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers take
different rows; SQLite serialises the claim). The batch's digest
preferences are read in one query and each template is looked up once
(`TemplateCache`). The messages are then sent one by one on one aiosmtplib
connection (STARTTLS and login when configured); each is rendered while the
server takes in the one before it. Outcomes are written in groups (one
executemany per kind and one for the delivery log, every 50 messages or
half a second, before a lease renewal and at the end of the batch).

A row is never sent twice by the dispatcher itself: a sent row stays
``sending`` under this worker's lease until its outcome is written, and a
worker that has held its batch for half its lease writes what it has and
renews the lease (dropping rows it no longer owns) before the next send.
Only a worker that dies between the server's acceptance and the write of
the outcome leaves rows to be claimed again when its lease ends; the resend
then carries the same Message-ID, which every attempt shares.

The server is not asked for PIPELINING: commands go one at a time (MAIL,
RCPT, DATA, content), each waiting for its reply.

Outcomes:

- 2xx: ``sent``;
- a 4xx reply, a dropped connection or a server that cannot be reached:
  retried after an exponential backoff with full jitter
  (uniform between 0 and ``min(cap, base * 2 ** (attempt - 1))``, at least
  one second), until ``max_attempts``, then parked as ``failed``;
- a 5xx reply, or a message that cannot be rendered or whose headers are
  unsafe: parked as ``failed`` with the answer, for an operator to retry or
  discard (`notifications.outbox`, ``partnerflow mail retry|discard``).

With no SMTP host configured (the embedded default) messages are rendered
(a message that cannot be rendered is parked as failed) and kept as
``captured`` for the mail preview instead of being sent.

Settings (environment): ``PARTNERFLOW_SMTP_HOST`` (unset: capture),
``PARTNERFLOW_SMTP_PORT`` (25), ``PARTNERFLOW_SMTP_USER``,
``PARTNERFLOW_SMTP_PASSWORD``, ``PARTNERFLOW_SMTP_STARTTLS`` (``true``,
``false``, or unset: when the server offers it), ``PARTNERFLOW_SMTP_TLS``
(implicit TLS, port 465), ``PARTNERFLOW_SMTP_CA_FILE`` (certificates to trust),
``PARTNERFLOW_SMTP_VALIDATE_CERTS`` (true), ``PARTNERFLOW_SMTP_TIMEOUT`` (30 s),
``PARTNERFLOW_MAIL_FROM``, ``PARTNERFLOW_SMTP_BATCH`` (100),
``PARTNERFLOW_SMTP_RETRY_BASE_SECONDS`` (30), ``PARTNERFLOW_SMTP_RETRY_CAP_SECONDS``
(3600), ``PARTNERFLOW_SMTP_MAX_ATTEMPTS`` (10), ``PARTNERFLOW_SMTP_LEASE_SECONDS`` (300).
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

import aiosmtplib
from aiosmtplib.email import quote_address
from sqlalchemy import bindparam, insert, select, update

from engine.errors import ValidationError
from engine.models import Outbox, User
from engine.settings import setting

from .models import OutboxAttempt
from .render import RenderError, TemplateCache, check_address, default_sender, envelope_address, is_plain_address, serialize_email

log = logging.getLogger("partnerflow.mail")

OB = Outbox.__table__
U = User.__table__


# Built once and run with many parameter sets (executemany) by `Dispatcher._flush`. An outcome is written
# only to a row this worker still holds (`_OWNED`): one whose lease ended and that another worker took is left alone.
_OWNED = update(OB).where(OB.c.id == bindparam("oid"), OB.c.claimed_by == bindparam("worker"),
                          OB.c.status == "sending")
_FINISH = _OWNED.values(status=bindparam("new_status"), claimed_by=None, lease_until=None, last_error=None,
                        sent_at=bindparam("sent"))
_REQUEUE = _OWNED.values(status="queued", claimed_by=None, lease_until=None, last_error=bindparam("error"),
                         next_attempt_at=bindparam("next"))
_PARK = _OWNED.values(status="failed", claimed_by=None, lease_until=None, last_error=bindparam("error"))
_LOG = insert(OutboxAttempt.__table__)


def _flag(name: str) -> bool | None:
    raw = os.environ.get(f"PARTNERFLOW_{name}")
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValidationError(f"PARTNERFLOW_{name}", f"cannot read {raw!r}: use true or false")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to deliver; `host` None means capture (no SMTP server)."""

    host: str | None = None
    port: int = 25
    user: str | None = None
    password: str | None = None
    #: True: require STARTTLS; False: never; None: when the server offers it.
    starttls: bool | None = None
    use_tls: bool = False
    #: Certificates to trust for TLS (PEM file); None: the system's.
    ca_file: str | None = None
    validate_certs: bool = True
    timeout: float = 30.0
    sender: str = "partnerflow <partnerflow@localhost>"
    batch_size: int = 100
    retry_base: float = 30.0
    retry_cap: float = 3600.0
    max_attempts: int = 10
    lease: float = 300.0

    @classmethod
    def from_env(cls, **overrides) -> "SmtpSettings":
        host = (os.environ.get("PARTNERFLOW_SMTP_HOST") or "").strip() or None
        values = dict(
            host=host,
            port=setting("smtp_port", 465 if _flag("SMTP_TLS") else 25),
            user=(os.environ.get("PARTNERFLOW_SMTP_USER") or "").strip() or None,
            password=os.environ.get("PARTNERFLOW_SMTP_PASSWORD") or None,
            starttls=_flag("SMTP_STARTTLS"),
            use_tls=bool(_flag("SMTP_TLS")),
            ca_file=(os.environ.get("PARTNERFLOW_SMTP_CA_FILE") or "").strip() or None,
            validate_certs=_flag("SMTP_VALIDATE_CERTS") is not False,
            timeout=setting("smtp_timeout", 30.0, float),
            sender=default_sender(),
            batch_size=setting("smtp_batch", 100),
            retry_base=setting("smtp_retry_base_seconds", 30.0, float),
            retry_cap=setting("smtp_retry_cap_seconds", 3600.0, float),
            max_attempts=setting("smtp_max_attempts", 10),
            lease=setting("smtp_lease_seconds", 300.0, float),
        )
        values.update(overrides)
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        check_address("From", self.sender)
        if not 1 <= self.port <= 65535:
            raise ValidationError("PARTNERFLOW_SMTP_PORT", f"{self.port} is not a TCP port")
        if self.batch_size < 1:
            raise ValidationError("PARTNERFLOW_SMTP_BATCH", "must be at least 1")
        if self.max_attempts < 1:
            raise ValidationError("PARTNERFLOW_SMTP_MAX_ATTEMPTS", "must be at least 1")
        if self.retry_base <= 0 or self.retry_cap < self.retry_base:
            raise ValidationError("PARTNERFLOW_SMTP_RETRY_CAP_SECONDS", "base must be positive and cap at least the base")
        if (self.user is None) != (self.password is None):
            raise ValidationError("PARTNERFLOW_SMTP_USER", "give both the SMTP user and password, or neither")

    @property
    def capture(self) -> bool:
        return self.host is None


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    captured: int = 0
    retried: int = 0
    failed: int = 0
    digested: int = 0
    requeued: int = 0
    lost: int = 0
    errors: list = field(default_factory=list)

    def __iadd__(self, other: "DispatchResult"):
        for name in ("claimed", "sent", "captured", "retried", "failed", "digested", "requeued", "lost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)
        return self

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("claimed", "sent", "captured", "retried", "failed", "digested",
                                              "requeued", "lost")}


class _Transient(Exception):
    def __init__(self, code: int | None, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


class _Permanent(Exception):
    def __init__(self, code: int | None, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


def _reply(code, message) -> str:
    return f"{code} {message}".strip() if code is not None else str(message)


def classify(exc: BaseException) -> Exception:
    """Map an aiosmtplib error to a transient (retry) or permanent (park) outcome."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        errs = exc.recipients or []
        code = errs[0].code if errs else None
        message = errs[0].message if errs else str(exc)
        cls = _Transient if code is not None and 400 <= code < 500 else _Permanent
        return cls(code, _reply(code, message))
    if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError,
                        aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectTimeoutError, ConnectionError,
                        TimeoutError, OSError)):
        return _Transient(None, f"connection error: {type(exc).__name__}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code = exc.code
        if 400 <= code < 500:
            return _Transient(code, _reply(code, exc.message))
        return _Permanent(code, _reply(code, exc.message))
    if isinstance(exc, ValueError):  # an address aiosmtplib refuses to put on the wire
        return _Permanent(None, f"refused before sending: {exc}")
    return _Transient(None, f"{type(exc).__name__}: {exc}")


def is_task_announcement(registry) -> dict[str, set[str]]:
    """Templates that announce an inbox task to a role: {template: {role, ...}} (held for digest users)."""
    out: dict[str, set[str]] = {}
    for wf in registry:
        for n in wf.notifications:
            roles = {spec.partition(":")[2] for spec in n.to if spec.startswith("role:")}
            for task in wf.tasks:
                if task.role not in roles:
                    continue
                if (n.on_enter and task.on_event is None and task.state == n.on_enter) or \
                        (n.on_event and task.on_event == n.on_event):
                    out.setdefault(n.template, set()).add(task.role)
    return out


class Dispatcher:
    """Claims due outbox rows and delivers them; one instance per worker (each with its own id)."""

    def __init__(self, runtime, settings: SmtpSettings | None = None, *, worker_id: str | None = None,
                 rng: random.Random | None = None):
        self.runtime = runtime
        self.db = runtime.db
        self.settings = settings or SmtpSettings.from_env()
        self.worker_id = worker_id or f"mail:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.rng = rng or random.Random()
        self._announcements = None
        self._digest_users: dict[str, set[str]] = {}
        self._templates: TemplateCache | None = None  # made anew for each batch (`run_batch`)
        self._updates: dict = {}  # statement -> parameter sets of outcomes not yet written
        self._logs: list[dict] = []  # their delivery-log entries
        self._first_kept = 0.0

    # ------------------------------------------------------------ public
    def dispatch(self, max_batches: int = 50) -> DispatchResult:
        """Deliver what is due now (several batches when there is a backlog); blocking."""
        return run_sync(self.run(max_batches))

    async def run(self, max_batches: int = 50) -> DispatchResult:
        total = DispatchResult()
        for _ in range(max_batches):
            step = await self.run_batch()
            total += step
            if step.claimed < self.settings.batch_size:
                break
        return total

    async def run_batch(self) -> DispatchResult:
        result = DispatchResult()
        now = self.runtime.now()
        rows = self._claim(now, result)
        if not rows:
            return result
        claimed_at = time.monotonic()
        self._digest_users = self._load_digest_users(rows)
        self._templates = TemplateCache()  # each template looked up once per batch
        try:
            if self.settings.capture:
                for row in rows:
                    if self._prepare_or_record(row, now, result) is not None:
                        self._finish(row.id, now, "captured", detail="no SMTP host configured: kept for the "
                                     "mail preview")
                        result.captured += 1
            else:
                await self._deliver(deque(rows), now, claimed_at, result)
        finally:
            self._flush()
        return result

    # ------------------------------------------------------------ claim
    def _claim(self, now: datetime, result: DispatchResult) -> list:
        lease_until = now + timedelta(seconds=self.settings.lease)
        with self.db.write() as conn:
            expired = conn.execute(update(OB).where(OB.c.status == "sending", OB.c.lease_until < now)
                                   .values(status="queued", claimed_by=None, lease_until=None)
                                   .returning(OB.c.id, OB.c.claimed_by)).all()
            if expired:
                conn.execute(_LOG, [{"outbox_id": r.id, "at": now, "outcome": "requeued", "code": None,
                                     "detail": "the claiming worker's lease ended before an outcome was recorded",
                                     "worker": self.worker_id} for r in expired])
            result.requeued += len(expired)
            due = (select(OB.c.id).where(OB.c.status == "queued", OB.c.next_attempt_at <= now)
                   .order_by(OB.c.next_attempt_at, OB.c.id).limit(self.settings.batch_size))
            if self.db.is_postgres:
                due = due.with_for_update(skip_locked=True)
            # A MATERIALIZED CTE runs the LIMIT ... SKIP LOCKED select once; as an IN (subquery) PostgreSQL may
            # plan a semi-join that rescans it per row and claims every due row, whatever the batch size.
            due = due.cte("due").prefix_with("MATERIALIZED", dialect="postgresql")
            rows = conn.execute(
                update(OB).where(OB.c.id.in_(select(due.c.id)), OB.c.status == "queued")
                .values(status="sending", claimed_by=self.worker_id, lease_until=lease_until,
                        attempts=OB.c.attempts + 1)
                .returning(*OB.c)).all()
        rows.sort(key=lambda r: r.id)
        result.claimed = len(rows)
        return rows

    def _renew(self, ids: list[int]) -> set[int]:
        """Extend the lease of rows still ours; returns their ids."""
        now = self.runtime.now()
        with self.db.write() as conn:
            kept = conn.execute(update(OB).where(OB.c.id.in_(ids), OB.c.claimed_by == self.worker_id,
                                                 OB.c.status == "sending")
                                .values(lease_until=now + timedelta(seconds=self.settings.lease))
                                .returning(OB.c.id)).all()
        return {r.id for r in kept}

    # ------------------------------------------------------------ prepare
    def _prepare(self, row):
        """The serialised message, 'digest' when it is held for a digest user, or the RenderError."""
        if row.recipient_login and self._held_for_digest(row):
            return "digest"
        try:
            return serialize_email(row, self.settings.sender, templates=self._templates)
        except RenderError as exc:
            return exc

    def _prepare_or_record(self, row, now: datetime, result: DispatchResult) -> bytes | None:
        """The message to send, or None when the row's outcome is already recorded (digested, cannot render)."""
        outcome = self._prepare(row)
        if outcome == "digest":
            self._finish(row.id, now, "digested", detail="held for the daily digest of open tasks")
            result.digested += 1
        elif isinstance(outcome, RenderError):
            self._park(row, now, None, f"cannot render: {outcome.message}")
            result.failed += 1
            result.errors.append((row.id, outcome.message))
        else:
            return outcome
        return None

    def _next_ready(self, pending: deque, now: datetime, result: DispatchResult):
        """(row, DATA bytes) of the next row that has something to send, recording the others on the way."""
        while pending:
            row = pending.popleft()
            raw = self._prepare_or_record(row, now, result)
            if raw is not None:
                return row, _data_bytes(raw)
        return None

    def _load_digest_users(self, rows) -> dict[str, set[str]]:
        """{login: roles} of the batch's recipients who chose the daily digest (one query per batch)."""
        if self._announcements is None:
            self._announcements = is_task_announcement(self.runtime.registry)
        logins = {r.recipient_login for r in rows if r.recipient_login and r.template in self._announcements}
        if not logins:
            return {}
        from .models import NotificationPreference

        NP = NotificationPreference.__table__
        with self.db.read() as conn:
            found = conn.execute(select(U.c.login, U.c.roles).join(NP, NP.c.login == U.c.login)
                                 .where(NP.c.digest.is_(True), U.c.login.in_(sorted(logins)))).all()
        return {r.login: set(r.roles or []) for r in found}

    def _held_for_digest(self, row) -> bool:
        roles = (self._announcements or {}).get(row.template)
        user_roles = self._digest_users.get(row.recipient_login)
        return bool(roles and user_roles and user_roles & roles)

    # ------------------------------------------------------------ deliver
    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(hostname=s.host, port=s.port, username=s.user, password=s.password,
                               start_tls=s.starttls, use_tls=s.use_tls, timeout=s.timeout,
                               cert_bundle=s.ca_file, validate_certs=s.validate_certs)

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = self._client()
        await smtp.connect()
        if smtp.is_ehlo_or_helo_needed:  # connect() greets only for STARTTLS or login
            try:
                await smtp.ehlo()
            except aiosmtplib.SMTPHeloError:
                if not smtp.is_connected:
                    raise
                await smtp.helo()
        return smtp

    async def _deliver(self, pending: deque, now: datetime, claimed_at: float, result: DispatchResult) -> None:
        """Send the claimed rows one by one on one connection.

        Each message is rendered while the server takes in the one before it
        (between writing that message's content and reading the server's
        answer), and outcomes are written in groups (`_flush`).
        """
        smtp = None
        reconnects = 0
        current = self._next_ready(pending, now, result)
        try:
            while current is not None:
                if time.monotonic() - claimed_at > self.settings.lease / 2:
                    self._flush()
                    kept = self._renew([current[0].id] + [r.id for r in pending])
                    result.lost += sum(1 for r in pending if r.id not in kept) + (current[0].id not in kept)
                    pending = deque(r for r in pending if r.id in kept)
                    claimed_at = time.monotonic()
                    if current[0].id not in kept:
                        current = self._next_ready(pending, now, result)
                        continue
                if smtp is None:
                    try:
                        smtp = await self._connect()
                    except Exception as exc:  # noqa: BLE001 - every connection failure is retried later
                        self._all_failed(current, pending, now, classify(exc), result)
                        return
                row, data = current
                following, failure = _UNSET, None

                def meanwhile():
                    nonlocal following, failure
                    try:
                        following = self._next_ready(pending, now, result)
                        self._flush_if_due()
                    except Exception as exc:  # noqa: BLE001 - raised once this message's reply is in
                        failure = exc

                try:
                    await self._send(smtp, row, data, meanwhile)
                except Exception as exc:  # noqa: BLE001 - classified below
                    if failure is not None:  # not the server's doing: the database or the renderer failed
                        raise failure from exc
                    outcome = classify(exc)
                    self._outcome(row, now, outcome, result)
                    current = self._next_ready(pending, now, result) if following is _UNSET else following
                    if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, ConnectionError, OSError,
                                        aiosmtplib.SMTPTimeoutError)) or getattr(exc, "code", None) == 421 \
                            or not smtp.is_connected:
                        smtp = await _close(smtp)
                        reconnects += 1
                        if reconnects > 1:  # the server keeps dropping us: the rest waits for the backoff
                            self._all_failed(current, pending, now, outcome, result)
                            return
                    continue
                self._finish(row.id, now, "sent", code=250, detail="accepted by " + self._server())
                result.sent += 1
                if failure is not None:
                    raise failure
                current = self._next_ready(pending, now, result) if following is _UNSET else following
        finally:
            await _quit(smtp)

    def _all_failed(self, current, pending: deque, now: datetime, outcome: Exception,
                    result: DispatchResult) -> None:
        """The same outcome for the message at hand and every row not yet sent (each rendered to sort it)."""
        if current is not None:
            self._outcome(current[0], now, outcome, result)
        while pending:
            row = pending.popleft()
            if self._prepare_or_record(row, now, result) is not None:
                self._outcome(row, now, outcome, result)

    async def _send(self, smtp: aiosmtplib.SMTP, row, data: bytes, meanwhile) -> None:
        """One mail transaction (MAIL, RCPT, DATA); `meanwhile()` runs while the server reads the content.

        The same commands and error handling as `aiosmtplib.SMTP.sendmail` for
        one recipient (RSET after a refusal, the connection closed after a 421
        or a lost answer), written out so that the next message can be
        prepared between sending this one's content and reading the reply.
        """
        rcpt = _quoted(envelope_address(row.recipient))  # ValueError for an address unfit for the wire
        options = [b"SIZE=%d" % (len(data) - 3)] if smtp.supports_extension("size") else []
        try:
            reply = await smtp.execute_command(b"MAIL", b"FROM:" + self._mail_from(), *options)
            if reply.code != 250:
                raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, self.settings.sender)
            reply = await smtp.execute_command(b"RCPT", b"TO:" + rcpt)
            if reply.code not in (250, 251):
                raise aiosmtplib.SMTPRecipientsRefused(
                    [aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, row.recipient)])
            reply = await smtp.execute_command(b"DATA")
            if reply.code != 354:
                raise aiosmtplib.SMTPDataError(reply.code, reply.message)
            protocol = smtp.protocol
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            protocol.write(data)
            meanwhile()  # no await in between: the reply waits in the socket until read_response
            try:
                reply = await protocol.read_response(timeout=smtp.timeout)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
                smtp.close()
                raise
            if reply.code == 421:
                smtp.close()
            if reply.code != 250:
                raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
            if smtp.is_connected:  # reset the envelope for the next message
                try:
                    await smtp.rset()
                except (ConnectionError, aiosmtplib.SMTPException):
                    pass
            raise

    def _mail_from(self) -> bytes:
        return _quoted(envelope_address(self.settings.sender))

    def _server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # ------------------------------------------------------------ outcomes
    # Outcomes are kept and written together by `_flush`: every FLUSH_EVERY messages or FLUSH_SECONDS,
    # before a lease renewal and at the end of the batch. A worker that dies before the flush leaves its
    # rows `sending` until the lease ends; they are then sent again with the same Message-ID.
    FLUSH_EVERY = 50
    FLUSH_SECONDS = 0.5

    def _outcome(self, row, now: datetime, outcome: Exception, result: DispatchResult) -> None:
        if isinstance(outcome, _Transient) and row.attempts < self.settings.max_attempts:
            delay = self.backoff(row.attempts)
            self._record(_REQUEUE, {"oid": row.id, "worker": self.worker_id, "error": outcome.detail,
                                    "next": now + timedelta(seconds=delay)},
                         row.id, now, "retry", outcome.code, f"{outcome.detail}; next attempt in {delay:.0f}s")
            result.retried += 1
            return
        detail = outcome.detail
        if isinstance(outcome, _Transient):
            detail = f"gave up after {row.attempts} attempts: {detail}"
        self._park(row, now, outcome.code, detail)
        result.failed += 1
        result.errors.append((row.id, detail))

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt: full jitter over an exponential ceiling, at least 1 s."""
        ceiling = min(self.settings.retry_cap, self.settings.retry_base * 2 ** max(0, attempts - 1))
        return max(1.0, self.rng.uniform(0, ceiling))

    def _park(self, row, now: datetime, code: int | None, detail: str) -> None:
        self._record(_PARK, {"oid": row.id, "worker": self.worker_id, "error": detail}, row.id, now, "failed",
                     code, detail)
        log.warning("mail %s to %s parked as failed: %s", row.id, row.recipient, detail)

    def _finish(self, outbox_id: int, now: datetime, status: str, *, code: int | None = None,
                detail: str | None = None) -> None:
        self._record(_FINISH, {"oid": outbox_id, "worker": self.worker_id, "new_status": status,
                               "sent": now if status in ("sent", "captured") else None},
                     outbox_id, now, status, code, detail)

    def _record(self, statement, params: dict, outbox_id: int, now: datetime, outcome: str, code: int | None,
                detail: str | None) -> None:
        if not self._logs:
            self._first_kept = time.monotonic()
        self._updates.setdefault(statement, []).append(params)
        self._logs.append({"outbox_id": outbox_id, "at": now, "outcome": outcome, "code": code, "detail": detail,
                           "worker": self.worker_id})

    def _flush_if_due(self) -> None:
        if len(self._logs) >= self.FLUSH_EVERY or \
                (self._logs and time.monotonic() - self._first_kept >= self.FLUSH_SECONDS):
            self._flush()

    def _flush(self) -> None:
        """Write the kept outcomes in one transaction: one executemany per kind, one for the delivery log.

        They are forgotten only once the transaction has committed: after a
        failed write (the database unreachable for a moment) they stay kept,
        and the next flush (at the latest the one that ends the batch) writes
        them, so that a message the server accepted is not left ``sending``
        and sent again when its lease ends.
        """
        if not self._logs:
            return
        updates = {statement: params[:] for statement, params in self._updates.items()}
        logs = self._logs[:]
        with self.db.write() as conn:
            for statement, params in updates.items():
                conn.execute(statement, params)
            conn.execute(_LOG, logs)
        for statement, params in updates.items():  # committed: drop exactly what was written
            kept = self._updates[statement]
            del kept[:len(params)]
            if not kept:
                del self._updates[statement]
        del self._logs[:len(logs)]
        if self._logs:
            self._first_kept = time.monotonic()


_UNSET = object()
_LEADING_DOT = re.compile(rb"(?m)^\.")


def _data_bytes(raw: bytes) -> bytes:
    """A message as it goes after DATA: leading dots doubled, then the closing dot line.

    `serialize_email` gives CRLF line ends only (its headers are folded with
    CRLF, its parts are base64 or quoted-printable split on every line end
    and joined with CRLF) and ends with the closing boundary and CRLF, so the
    line-end normalisation of `aiosmtplib.SMTP.sendmail` has nothing to do
    here and ``.\\r\\n`` follows a complete line.
    """
    if raw.startswith(b".") or b"\n." in raw:
        raw = _LEADING_DOT.sub(b"..", raw)
    return raw + b".\r\n"


@lru_cache(maxsize=4096)
def _quoted(address: str) -> bytes:
    """``<address>`` for MAIL FROM / RCPT TO; ValueError for an address aiosmtplib would not send."""
    if is_plain_address(address):  # what quote_address gives for it, without parsing
        return b"<" + address.encode("ascii") + b">"
    return quote_address(address).encode("ascii")


async def _close(smtp):
    if smtp is None:
        return None
    try:
        smtp.close()
    except Exception:  # noqa: BLE001
        pass
    return None


async def _quit(smtp) -> None:
    if smtp is None or not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except Exception:  # noqa: BLE001 - the messages are already recorded
        smtp.close()


def run_sync(coro):
    """Run a coroutine to completion from synchronous code (in a helper thread if a loop is running here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=target, name="partnerflow-mail")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def heartbeat_hook(runtime) -> DispatchResult:
    """Each heartbeat (and after `clock advance`): queue due digests, then deliver due outbox rows."""
    from .digest import run_digests

    run_digests(runtime)
    return Dispatcher(runtime).dispatch()
