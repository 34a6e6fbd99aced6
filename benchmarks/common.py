"""Shared machinery: fresh databases, bulk seeding, worker processes, medians, machine facts."""
from __future__ import annotations


import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import create_engine, func, select, text

from engine.db import Database, normalise_url

#: The PostgreSQL server the benchmarks create their databases on (trust authentication).
PG_ADMIN_URL = normalise_url(os.environ.get("PARTNERFLOW_BENCH_PG_URL")
                             or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
#: Wait for the WAL flush at every commit (``PARTNERFLOW_BENCH_PG_SYNC_COMMIT=on``); off by default, for every
#: engine alike, so the figures measure the engines and not the disk's fsync latency.
PG_SYNCHRONOUS_COMMIT = (os.environ.get("PARTNERFLOW_BENCH_PG_SYNC_COMMIT") or "off").lower() in ("on", "1", "true")
#: A fixed "now" for simulated-time benchmarks: Monday 2026-03-02 09:00 Beijing time.
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@dataclass
class Metric:
    """One measured figure with its target (`op` is ">=" or "<=")."""

    name: str
    value: float | None
    unit: str
    target: float | None = None
    op: str = ">="
    note: str = ""
    runs: list = field(default_factory=list)

    @property
    def missed(self) -> bool:
        if self.value is None or self.target is None:
            return False
        return self.value < self.target if self.op == ">=" else self.value > self.target


def machine() -> dict:
    """What the figures were measured on."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except ImportError:
        pass
    import sqlite3

    import sqlalchemy

    info["sqlite"] = sqlite3.sqlite_version
    info["sqlalchemy"] = sqlalchemy.__version__
    try:
        with create_engine(PG_ADMIN_URL).connect() as conn:
            info["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
    except Exception:  # noqa: BLE001 - reported as absent
        info["postgresql"] = None
    return info


def median_rate(fn: Callable[[], tuple[int, float]], runs: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median of `runs` rates (count / seconds) after `warmup` discarded runs; `fn` returns (count, seconds)."""
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(runs):
        count, seconds = fn()
        rates.append(count / seconds if seconds > 0 else 0.0)
    return statistics.median(rates), rates


# ------------------------------------------------------------------ databases
_TMP = None


def tmpdir() -> str:
    global _TMP
    if _TMP is None:
        _TMP = tempfile.mkdtemp(prefix="partnerflow-bench-")
    return _TMP


def sqlite_url(label: str) -> str:
    return f"sqlite:///{os.path.join(tmpdir(), f'{label}-{uuid.uuid4().hex[:6]}.db')}"


def migrated(url: str) -> Database:
    from engine.migrate import upgrade

    db = Database(url)
    upgrade(db)
    return db


def pg_available() -> bool:
    try:
        with create_engine(PG_ADMIN_URL).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001
        return False


@contextmanager
def fresh_postgres(label: str) -> Iterator[str]:
    """CREATE a database for one benchmark, yield its URL, DROP it afterwards."""
    name = f"pf_bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        if not PG_SYNCHRONOUS_COMMIT:  # see README: this machine's disk does about 100 fsyncs a second
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fresh_database(kind: str, label: str) -> Iterator[str]:
    if kind == "postgres":
        with fresh_postgres(label) as url:
            yield url
    else:
        yield sqlite_url(label)


# ------------------------------------------------------------------- seeding
def _ts(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def seed_waiting(db: Database, n: int, due: Callable[[int], datetime], *, workflow: str = "bench_approval",
                 state: str = "pending", event: str = "expire", created: datetime = T0,
                 chunk: int = 50_000) -> None:
    """Insert `n` cases waiting in `state`, each with one pending timer firing `event` at `due(k)`.

    Bulk-loads with COPY on PostgreSQL and one executemany per chunk on SQLite:
    this is test data, not the path being measured.
    """
    data = '{"title":"bench"}'
    with db.engine.connect() as conn:
        start = (conn.execute(text("SELECT coalesce(max(id), 0) FROM instances")).scalar() or 0) + 1
    now = _ts(created)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        ids = range(start + lo, start + hi)
        inst = [(i, workflow, state, 2, data, False, "bench", now, now, now) for i in ids]
        tms = [(i, i, event, event, state, 2, _ts(due(i - start)), "pending", 0, now) for i in ids]
        if db.is_postgres:
            raw = db.engine.raw_connection()
            try:
                with raw.cursor() as cur:
                    with cur.copy("COPY instances (id, workflow, state, version, data, is_final, created_by, "
                                  "created_at, updated_at, state_entered_at) FROM STDIN") as cp:
                        for row in inst:
                            cp.write_row(row)
                    with cur.copy("COPY timers (id, instance_id, name, event, state, armed_version, due_at, status, "
                                  "attempts, created_at) FROM STDIN") as cp:
                        for row in tms:
                            cp.write_row(row)
                raw.commit()
            finally:
                raw.close()
        else:
            raw = db.engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute("BEGIN IMMEDIATE")
                cur.executemany("INSERT INTO instances (id, workflow, state, version, data, is_final, created_by, "
                                "created_at, updated_at, state_entered_at) VALUES (?,?,?,?,?,?,?,?,?,?)", inst)
                cur.executemany("INSERT INTO timers (id, instance_id, name, event, state, armed_version, due_at, "
                                "status, attempts, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)", tms)
                cur.execute("COMMIT")
                cur.close()
            finally:
                raw.close()
    if db.is_postgres:
        with db.engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('instances', 'id'), (SELECT max(id) FROM instances))"))
            conn.execute(text("SELECT setval(pg_get_serial_sequence('timers', 'id'), (SELECT max(id) FROM timers))"))
            conn.execute(text("ANALYZE instances"))
            conn.execute(text("ANALYZE timers"))
            conn.execute(text("ANALYZE history"))


def fired_count(db: Database) -> int:
    """Completed timer firings, counted from the history (one row per fired timer, unique timer id)."""
    from engine.models import History

    H = History.__table__
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(H).where(H.c.timer_id.is_not(None))).scalar_one()


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


