"""The engines a Python team would pick instead, doing the same work on the same machine in the same run.

Each peer's job does the same state update as a partnerflow timer firing:
the case moves from ``pending`` to ``expired`` with its version bumped and a
history row appended, in one transaction, on the same tables. Completed work
is counted from the history rows.
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import pickle
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from .common import T0, Metric, fresh_database, migrated, seed_waiting

#: The same state update a partnerflow timer makes, as one statement (atomic).
EXPIRE_SQL = """
WITH moved AS (
    UPDATE instances SET state = 'expired', version = version + 1, is_final = {true},
           updated_at = {now}, state_entered_at = {now}
    WHERE id = {id} AND state = 'pending' RETURNING id, version
)
INSERT INTO history (instance_id, version, at, actor, event, from_state, to_state, payload)
SELECT id, version, {now}, 'system', 'expire', 'pending', 'expired', '{{}}' FROM moved
"""


def _history(url: str) -> int:
    from engine.db import Database
    from engine.models import History

    db = Database(url)
    with db.read() as conn:
        n = conn.execute(select(func.count()).select_from(History.__table__)).scalar_one()
    db.dispose()
    return n


def _wait_for(url: str, n: int, timeout: float) -> float:
    """Poll the history until `n` rows exist; return the instant they did."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _history(url) >= n:
            return time.time()
        time.sleep(0.2)
    raise TimeoutError(f"peer did not finish {n} jobs in {timeout:.0f}s (done: {_history(url)})")


# --------------------------------------------------------------- APScheduler 3
_ENGINES: dict = {}


def apscheduler_expire(url: str, instance_id: int) -> None:
    """The APScheduler job: the same state update as a partnerflow timer (importable by dotted name)."""
    from engine.db import Database

    db = _ENGINES.get(url)
    if db is None:
        db = _ENGINES[url] = Database(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    with db.write() as conn:  # SQLite has no UPDATE inside WITH: two statements, one transaction
        version = conn.execute(_SQLITE_MOVE, {"id": instance_id, "now": now}).scalar()
        if version is not None:
            conn.execute(_SQLITE_HISTORY, {"id": instance_id, "version": version, "now": now})


_SQLITE_MOVE = text("UPDATE instances SET state = 'expired', version = version + 1, is_final = 1, updated_at = :now, "
                    "state_entered_at = :now WHERE id = :id AND state = 'pending' RETURNING version")
_SQLITE_HISTORY = text("INSERT INTO history (instance_id, version, at, actor, event, from_state, to_state, payload) "
                       "VALUES (:id, :version, :now, 'system', 'expire', 'pending', 'expired', '{}')")


def apscheduler(n: int) -> Metric:
    """APScheduler 3: BackgroundScheduler + SQLAlchemyJobStore on a SQLite file, one date job per deadline."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.util import datetime_to_utc_timestamp

    with fresh_database("sqlite", "apscheduler") as url:
        db = migrated(url)
        seed_waiting(db, n, lambda k: T0)
        store = SQLAlchemyJobStore(url=url, pickle_protocol=pickle.HIGHEST_PROTOCOL)
        scheduler = BackgroundScheduler(jobstores={"default": store},
                                        executors={"default": ThreadPoolExecutor(4)}, timezone="UTC")
        scheduler.start(paused=True)
        # bulk-load the job rows exactly as add_job would store them (setup, not measured)
        due = datetime.now(UTC) - timedelta(seconds=5)
        rows = []
        for iid in range(1, n + 1):
            job = Job(scheduler, id=f"expire-{iid}", func=apscheduler_expire, args=(url, iid), kwargs={},
                      trigger=DateTrigger(due), executor="default", misfire_grace_time=None, coalesce=True,
                      max_instances=1, next_run_time=due, name="expire")
            rows.append({"id": job.id, "next_run_time": datetime_to_utc_timestamp(due),
                         "job_state": pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL)})
        with store.engine.begin() as conn:
            conn.execute(store.jobs_t.insert(), rows)
        start = time.time()
        scheduler.resume()
        end = _wait_for(url, n, timeout=3600)
        scheduler.shutdown(wait=True)
        store.engine.dispose()
        db.dispose()
        for e in _ENGINES.values():
            e.dispose()
        _ENGINES.clear()
    return Metric("apscheduler_jobs_per_s_sqlite", n / (end - start), "jobs/s", None, ">=",
                  f"{n:,} due date jobs, SQLAlchemyJobStore, 4 executor threads")


# --------------------------------------------------------------- procrastinate
def _procrastinate_app(url: str):
    import procrastinate

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="expire", queue="deadlines")
    async def expire(instance_id: int) -> None:
        await app.connector.execute_query_async(
            EXPIRE_SQL.format(true="true", now="now() at time zone 'utc'", id="%(id)s"), id=instance_id)

    return app, expire


def _procrastinate_worker(url: str, concurrency: int, go, queue) -> None:
    app, _ = _procrastinate_app(url)

    async def main():
        async with app.open_async():
            go.wait(120)
            start = time.time()
            await app.run_worker_async(queues=["deadlines"], concurrency=concurrency, wait=False,
                                       install_signal_handlers=False, listen_notify=False)
            queue.put((start, time.time()))

    asyncio.run(main())


def procrastinate(n: int, workers: int = 2, concurrency: int = 4) -> Metric:
    """procrastinate on PostgreSQL: n jobs scheduled for the same instants, `workers` worker processes."""
    with fresh_database("postgres", "procrastinate") as url:
        db = migrated(url)
        seed_waiting(db, n, lambda k: T0)
        app, expire = _procrastinate_app(url)

        async def setup():
            async with app.open_async():
                await app.schema_manager.apply_schema_async()
                at = datetime.now(UTC) - timedelta(seconds=5)
                deferrer = expire.configure(schedule_at=at)
                for lo in range(0, n, 5000):
                    await deferrer.batch_defer_async(*[{"instance_id": i} for i in range(lo + 1, min(n, lo + 5000) + 1)])

        asyncio.run(setup())
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        ctx = mp.get_context("spawn")
        go, queue = ctx.Barrier(workers), ctx.Queue()
        procs = [ctx.Process(target=_procrastinate_worker, args=(url, concurrency, go, queue)) for _ in range(workers)]
        for p in procs:
            p.start()
        spans = [queue.get(timeout=3600) for _ in procs]
        for p in procs:
            p.join(60)
        done = _history(url)
        db.dispose()
    if done != n:
        raise RuntimeError(f"procrastinate finished {done} of {n} jobs")
    seconds = max(s[1] for s in spans) - min(s[0] for s in spans)
    return Metric("procrastinate_jobs_per_s_postgres", n / seconds, "jobs/s", None, ">=",
                  f"{n:,} jobs due at once, {workers} worker processes x concurrency {concurrency}")
