"""Database access: one `Database` per process, chosen by `DATABASE_URL`.

SQLite (the embedded default, a file in the working directory) runs in WAL
mode with a busy timeout, and every write transaction begins IMMEDIATE: the
web threads, the scheduler and a CLI writing at once queue for the write lock
instead of failing half-way. PostgreSQL (``postgresql+psycopg://``) is the
scale-out store; row locks and ``SKIP LOCKED`` let several workers share it.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Engine, make_url

from .fastsql import driver_error

DEFAULT_URL = "sqlite:///partnerflow.db"
#: WAL pages between automatic checkpoints on SQLite (the library's default is 1,000).
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_dumps(value) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def normalise_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def database_url() -> str:
    return normalise_url(os.environ.get("DATABASE_URL") or DEFAULT_URL)


class Database:
    """An SQLAlchemy engine plus the transaction discipline of partnerflow."""

    def __init__(self, url: str | None = None, *, echo: bool = False, pool_size: int = 5):
        self.url = normalise_url(url or database_url())
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict = {"echo": echo, "json_serializer": json_dumps, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
        self.engine: Engine = create_engine(self.url, **kwargs)
        self._spare: list[Connection] = []  # SQLite: the last write's connection, for the next write
        self._spare_pid = os.getpid()
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (IMMEDIATE on SQLite); commits on success, rolls back on any error.

        On SQLite, the connection of a write that committed is kept checked
        out for the next one (one spare per process, taken by whichever thread
        writes next): a pool checkout and check-in cost more than a small
        transaction's own statements. A write that failed closes its
        connection. PostgreSQL always checks out from the pool, whose
        pre-ping survives a server restart.
        """
        conn = self._take_spare()
        if conn is None:
            conn = self.engine.connect()
        committed = False
        try:
            with conn.begin():
                yield conn
            committed = True
        finally:
            if committed and self.is_sqlite and not conn.invalidated and not self._spare:
                self._spare.append(conn)
            else:
                conn.close()

    def _take_spare(self) -> Connection | None:
        if self._spare_pid != os.getpid():  # a forked child never uses its parent's SQLite connection
            self._spare, self._spare_pid = [], os.getpid()
        try:
            return self._spare.pop()
        except IndexError:
            return None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (deferred on SQLite, so it never waits for writers)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(partnerflow_read=True)
            with conn.begin():
                yield conn

    def create_all(self) -> None:
        """Create tables straight from the models (tests and benchmarks; production uses migrations)."""
        from .models import Base, load_all

        load_all()
        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        while self._spare:
            self._spare.pop().close()
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint every ~40 MB of WAL instead of every 4 MB: the hot pages (cases, timers, their indexes)
        # are copied back once per checkpoint, not ten times, and a commit seldom pays for a checkpoint's
        # fsync (commit p99 ~0.5 ms instead of ~5 ms). The WAL file is cut back to 64 MB afterwards.
        cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cur.execute("PRAGMA journal_size_limit=67108864")
        # A 64 MB page cache per connection (the default is 2 MB) and reads through a memory map: at a
        # month start the sweep touches cases, timers and their indexes all over a large file.
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA mmap_size=268435456")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # straight on the driver: a statement's full dispatch would cost more than BEGIN itself
        sql = "BEGIN" if conn.get_execution_options().get("partnerflow_read") else "BEGIN IMMEDIATE"
        try:
            conn.connection.driver_connection.execute(sql)
        except sqlite3.Error as exc:  # "database is locked" after the busy timeout: SQLAlchemy's error, as ever
            raise driver_error(conn, exc, sql, ()) from exc
