"""SMTP outages against the real dispatcher and a real aiosmtpd server, with the simulated clock.

The server is down, then answers 421 (closing), then 451 for some messages,
then recovers; one recipient is refused for good with 550. Afterwards: every
message for the good recipient was delivered exactly once, no later than the
backoff cap after the recovery; every message for the refused recipient is
parked as failed with the server's reply; the delivery log holds the exact
story; nothing was sent twice.
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from engine.clock import ManualClock
from engine.models import Outbox
from engine.runtime import Runtime
from notifications.dispatcher import Dispatcher, SmtpSettings
from notifications.models import OutboxAttempt
from tests.smtp import SmtpServer

from .harness import queue_emails
from .lifecycles import registry

OB, OA = Outbox.__table__, OutboxAttempt.__table__
GOOD, REFUSED = "contact@rely.example", "admin@rely.example"
CAP = 600.0


def _statuses(db) -> dict:
    with db.read() as conn:
        return dict(conn.execute(select(OB.c.status, func.count()).group_by(OB.c.status)).all())


def test_outages_then_recovery_temporary_delivered_permanent_parked(db):
    cases = 40
    assert queue_emails(db, cases) == 2 * cases
    server = SmtpServer()  # not started yet: the mail server is down
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1))
    rt = Runtime(db, clock, registry())
    settings = SmtpSettings(host="127.0.0.1", port=server.port, sender="partnerflow <partnerflow@localhost>",
                            retry_base=30.0, retry_cap=CAP, max_attempts=10, lease=300.0, batch_size=100,
                            timeout=5.0)
    mailer = Dispatcher(rt, settings, rng=random.Random(8))
    try:
        # 1. server down: every message is deferred, nothing parked
        down = mailer.dispatch()
        assert (down.sent, down.failed, down.retried) == (0, 0, 2 * cases)
        clock.advance(timedelta(seconds=CAP))
        # 2. up, but closing with 421; the refused recipient gets 550 at RCPT from now on
        server.start()
        server.reject(REFUSED, "550 5.1.1 <admin@rely.example>: no such mailbox")
        server.reply_next(2, "421 4.3.2 service shutting down")
        closing = mailer.dispatch()
        assert closing.sent == 0 and closing.retried + closing.failed == 2 * cases
        clock.advance(timedelta(seconds=CAP))
        # 3. busy: 451 for the next ten messages, the rest goes through
        server.reply_next(10, "451 4.3.0 mailbox busy, try again later")
        busy = mailer.dispatch()
        assert busy.retried >= 10 and busy.sent > 0
        recovered_at = clock.now()
        # 4. recovered: walk time in small steps; every deferred message must go within the cap
        for _ in range(int(CAP // 30) + 2):
            clock.advance(timedelta(seconds=30))
            mailer.dispatch()
        with db.read() as conn:
            rows = conn.execute(select(OB.c.id, OB.c.recipient, OB.c.status, OB.c.last_error, OB.c.sent_at,
                                       OB.c.message_id)).all()
            log = conn.execute(select(OA.c.outbox_id, OA.c.outcome, OA.c.code)).all()
    finally:
        server.stop()
    good = [r for r in rows if r.recipient == GOOD]
    refused = [r for r in rows if r.recipient == REFUSED]
    assert len(good) == len(refused) == cases
    assert {r.status for r in good} == {"sent"}
    assert {r.status for r in refused} == {"failed"}
    assert all("550 5.1.1" in r.last_error and "no such mailbox" in r.last_error for r in refused)
    sent_at = {r.id: r.sent_at for r in good}
    assert max(sent_at.values()) - recovered_at <= timedelta(seconds=CAP)
    # the server got each good message exactly once, with its row's Message-ID, and nothing for the refused one
    ids = Counter(item.message_id for item in server.received)
    assert ids == Counter({r.message_id: 1 for r in good})
    assert not server.to(REFUSED)
    outcomes = Counter((o.outcome, o.code) for o in log)
    assert outcomes[("sent", 250)] == cases
    assert outcomes[("failed", 550)] == cases
    assert sum(c for (o, _), c in outcomes.items() if o == "failed") == cases  # no temporary failure was parked
    assert outcomes[("retry", 451)] == 10
    assert sum(c for (o, code), c in outcomes.items() if o == "retry" and code == 421) >= 2
    assert _statuses(db) == {"sent": cases, "failed": cases}


def test_permanent_reply_at_data_parks_only_that_message(db):
    assert queue_emails(db, 5) == 10
    server = SmtpServer().start()
    clock = ManualClock(datetime.now(UTC) + timedelta(minutes=1))
    rt = Runtime(db, clock, registry())
    settings = SmtpSettings(host="127.0.0.1", port=server.port, sender="partnerflow <partnerflow@localhost>",
                            timeout=5.0)
    try:
        server.reply_next(1, "554 5.7.1 message refused by policy")
        result = Dispatcher(rt, settings, rng=random.Random(1)).dispatch()
    finally:
        server.stop()
    assert (result.sent, result.failed, result.retried) == (9, 1, 0)
    with db.read() as conn:
        parked = conn.execute(select(OB.c.last_error).where(OB.c.status == "failed")).scalars().all()
    assert len(parked) == 1 and parked[0].startswith("554 5.7.1 message refused by policy")
    assert len(server.received) == 9
