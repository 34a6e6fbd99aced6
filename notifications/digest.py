"""The daily digest of open tasks: one email per approver instead of one per task (a user preference).

A user who turns the digest on (`notifications.preferences.set_digest`) no
longer receives the emails that announce a new inbox task for one of their
roles (the dispatcher holds them as ``digested``); instead, on each working
day (region ``PARTNERFLOW_DIGEST_REGION``, default mainland China) at their
chosen local hour (default 09:00) in their own time zone (default Beijing
time), the heartbeat queues one ``digest/daily`` email listing their open
tasks with due dates. A day with no open task sends nothing. The slot moves
forward by compare-and-set, so with several workers each digest goes out
once; slots missed while no worker ran collapse into one digest.
"""
from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

from sqlalchemy import insert, select, update

from engine.calendar import calendar_for
from engine.errors import PartnerflowError
from engine.models import Outbox, User
from engine.settings import setting

from .models import NotificationPreference

OB = Outbox.__table__
U = User.__table__
NP = NotificationPreference.__table__

TEMPLATE = "digest/daily"


def digest_region() -> str:
    return setting("digest_region", "CN", str)


def next_digest_slot(after: datetime, hour: int, timezone: str | None) -> datetime:
    """The first working day at `hour`:00 local time (user's zone, default Beijing) strictly after `after`."""
    cal = calendar_for(digest_region(), timezone)
    day = cal.local_date(after)
    for _ in range(400):
        slot = cal.at(day, time(hour, 0))
        if slot > after and cal.is_working_day(day):
            return slot
        day += timedelta(days=1)
    raise ValueError("no working day within 400 days")  # pragma: no cover


def run_digests(runtime, now: datetime | None = None) -> int:
    """Queue the digests that are due at `now`; returns how many emails were queued."""
    now = now or runtime.now()
    with runtime.db.read() as conn:
        due = conn.execute(select(NP, U.c.email, U.c.locale, U.c.timezone, U.c.active)
                           .join(U, U.c.login == NP.c.login)
                           .where(NP.c.digest.is_(True), NP.c.next_digest_at <= now)).all()
    queued = 0
    for pref in due:
        following = next_digest_slot(now, pref.digest_hour, pref.timezone)
        tasks = []
        if pref.active and pref.email:
            try:
                actor = runtime.actor(pref.login)
                tasks = runtime.open_tasks(actor, limit=200)
            except PartnerflowError:
                tasks = []
        with runtime.db.write() as conn:
            won = conn.execute(update(NP).where(NP.c.login == pref.login, NP.c.next_digest_at == pref.next_digest_at,
                                                NP.c.digest.is_(True))
                               .values(next_digest_at=following, last_digest_at=now)).rowcount
            if won != 1 or not tasks:
                continue
            tz = pref.timezone or calendar_for(None, None).timezone
            context = {
                "tasks": tasks, "count": len(tasks), "now": now.isoformat(),
                "user": {"login": pref.login},
                "overdue": sum(1 for t in tasks if t["due_at"] and datetime.fromisoformat(t["due_at"]) < now),
            }
            conn.execute(insert(OB).values(
                instance_id=None, template=TEMPLATE, category="digest", recipient=pref.email,
                recipient_login=pref.login, locale=pref.locale or "en", timezone=tz, context=context,
                message_id=f"<{uuid.uuid4().hex}@partnerflow>", status="queued", attempts=0, next_attempt_at=now,
                created_at=now))
            queued += 1
    return queued
