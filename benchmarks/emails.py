"""Emails per second delivered to a local SMTP server (aiosmtpd on 127.0.0.1) over one reused connection.

Two figures:

- ``emails_per_s`` (target >= 500/s): rendered, serialised exam-voucher
  emails (English and Chinese alternately) sent one by one over a single
  aiosmtplib connection, each accepted by the server;
- ``dispatcher_emails_per_s``: the whole outbox path on a fresh SQLite file:
  claim a batch under a lease, render each row (Jinja2, both parts),
  serialise, send on one connection, and commit each row's outcome and its
  delivery-log entry before the next send.

Every accepted message is counted by the server, never by the sender.
Run ``python -m benchmarks.emails [--quick]``.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

TARGET = 500.0


class _Counter:
    def __init__(self, count):
        self.count = count

    async def handle_DATA(self, server, session, envelope):
        with self.count.get_lock():
            self.count.value += 1
        return "250 OK"


def _serve(port: int, count, ready, stop) -> None:
    """The SMTP server, in its own process so that it does not share the sender's interpreter."""
    from aiosmtpd.controller import Controller

    controller = Controller(_Counter(count), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait(600)
    controller.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _row(i: int, now: datetime) -> dict:
    locale = "zh" if i % 2 else "en"
    return {
        "instance_id": None, "template": "exam_voucher/approved", "category": "general",
        "recipient": f"reader{i}@example.com", "recipient_login": None, "locale": locale,
        "timezone": "Asia/Shanghai" if locale == "zh" else "Europe/Berlin",
        "context": {
            "case": {"id": 1000 + i, "workflow": "exam_voucher", "title": "Exam voucher application",
                     "state": "approved"},
            "data": {"exam": "Cloud Architect <Professional>", "users": ["dev-1", "dev-2", "dev-3"]},
            "payload": {}, "event": "approve", "comment": "budget available",
            "actor": {"login": "alice", "name": "Alice Wang"},
            "partner": {"id": 1, "code": "ACME", "name": "Acme Cloud Services Co., Ltd.", "timezone": "Asia/Shanghai",
                        "region": "CN"},
            "deadlines": [{"name": "remind_issue", "event": "remind_issue", "due_at": "2026-03-05T01:00:00+00:00",
                           "local": "2026-03-05 09:00 Asia/Shanghai"}],
            "tasks": [{"title": "Issue the approved exam vouchers", "role": "operations_manager",
                       "due_at": "2026-03-05T15:59:59+00:00", "local": "2026-03-05 23:59 Asia/Shanghai"}],
            "now": now.isoformat(),
        },
        "message_id": f"<{uuid.uuid4().hex}@partnerflow>", "status": "queued", "attempts": 0,
        "next_attempt_at": now, "created_at": now,
    }


async def _send_all(port: int, messages: list[tuple[str, bytes]]) -> float:
    import aiosmtplib

    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await smtp.connect()
    start = time.perf_counter()
    for rcpt, raw in messages:
        await smtp.sendmail("partnerflow@localhost", [rcpt], raw)
    elapsed = time.perf_counter() - start
    await smtp.quit()
    return elapsed


def run(quick: bool = False) -> dict:
    """Measure; returns the figures (emails per second and the counts behind them)."""
    from notifications.render import serialize_email

    n = 300 if quick else 2000
    now = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    ctx = mp.get_context("spawn")
    count, ready, stop = ctx.Value("i", 0), ctx.Event(), ctx.Event()
    port = _free_port()
    server = ctx.Process(target=_serve, args=(port, count, ready, stop), daemon=True)
    server.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the SMTP server did not start")
        # 1. one reused connection, rendered messages
        rows = [_row(i, now) for i in range(n)]
        t0 = time.perf_counter()
        messages = [(r["recipient"], serialize_email(r, "partnerflow <partnerflow@localhost>")) for r in rows]
        render_s = time.perf_counter() - t0
        send_s = asyncio.run(_send_all(port, messages))
        delivered = count.value
        # 2. the dispatcher end to end on a fresh SQLite file
        dispatched, pipeline_s = _dispatcher_run(port, n, now)
        received = count.value - delivered
    finally:
        stop.set()
        server.join(30)
    emails_per_s = delivered / send_s if send_s else None
    return {
        "emails_per_s": round(emails_per_s, 1) if emails_per_s else None,
        "target_emails_per_s": TARGET,
        "met": bool(emails_per_s and emails_per_s >= TARGET),
        "messages": n,
        "delivered": delivered,
        "render_per_s": round(n / render_s, 1) if render_s else None,
        "dispatcher_emails_per_s": round(received / pipeline_s, 1) if pipeline_s else None,
        "dispatcher_delivered": received,
        "dispatcher_rows_sent": dispatched,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "connection": "one aiosmtplib connection to aiosmtpd on 127.0.0.1 (server in its own process)",
    }


def _dispatcher_run(port: int, n: int, now: datetime) -> tuple[int, float]:
    from sqlalchemy import func, insert, select

    from engine.clock import ManualClock
    from engine.db import Database
    from engine.migrate import upgrade
    from engine.models import Outbox
    from engine.runtime import Runtime
    from notifications.dispatcher import Dispatcher, SmtpSettings

    folder = tempfile.mkdtemp(prefix="pf-bench-mail-")
    db = Database(f"sqlite:///{os.path.join(folder, 'bench.db')}")
    try:
        upgrade(db)
        table = Outbox.__table__
        with db.write() as conn:
            conn.execute(insert(table), [_row(i, now) for i in range(n)])
        runtime = Runtime(db, ManualClock(now))
        settings = SmtpSettings(host="127.0.0.1", port=port, starttls=False, batch_size=500)
        dispatcher = Dispatcher(runtime, settings, worker_id="bench")
        start = time.perf_counter()
        dispatcher.dispatch(max_batches=1000)
        elapsed = time.perf_counter() - start
        with db.read() as conn:
            sent = conn.execute(select(func.count()).select_from(table).where(table.c.status == "sent")).scalar_one()
        return sent, elapsed
    finally:
        db.dispose()


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
