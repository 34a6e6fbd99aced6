"""Subject locks: a business subject (a key such as ``customer-email:ann@example.com``) held by one owner until an instant.

Used for rules like the 15-day customer pre-registration lock. Acquiring is
a single upsert that succeeds only when the key is free, expired, or already
held by the same owner, so two partners racing for one key cannot both win.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .errors import LockHeld
from .models import SubjectLock

T = SubjectLock.__table__


@dataclass(frozen=True)
class LockInfo:
    key: str
    owner: str
    until: datetime
    instance_id: int | None


def holder(conn: Connection, key: str, now: datetime) -> LockInfo | None:
    """Who holds `key` now, or None when it is free or expired."""
    row = conn.execute(select(T).where(T.c.key == key)).first()
    if row is None or row.until <= now:
        return None
    return LockInfo(row.key, row.owner, row.until, row.instance_id)


def acquire(conn: Connection, key: str, owner: str, until: datetime, now: datetime,
            instance_id: int | None = None, message: str | None = None) -> LockInfo:
    """Take or renew `key` for `owner` until `until`; raise `LockHeld` if another owner holds it."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(T).values(key=key, owner=owner, until=until, acquired_at=now, instance_id=instance_id)
    stmt = stmt.on_conflict_do_update(
        index_elements=[T.c.key],
        set_={"owner": stmt.excluded.owner, "until": stmt.excluded.until,
              "acquired_at": stmt.excluded.acquired_at, "instance_id": stmt.excluded.instance_id},
        where=(T.c.until <= now) | (T.c.owner == owner),
    ).returning(T.c.owner)
    won = conn.execute(stmt).first()
    if won is None:
        current = holder(conn, key, now)
        until_held = current.until if current else until
        raise LockHeld(key, until_held, message)
    return LockInfo(key, owner, until, instance_id)


def release(conn: Connection, key: str, owner: str) -> bool:
    """Release `key` if `owner` holds it."""
    return conn.execute(delete(T).where(T.c.key == key, T.c.owner == owner)).rowcount > 0
