"""A test-only worker process: the `partnerflow worker` loop (sweep, pause, sweep) with crash hooks.

Run as ``python -m tests.reliability.worker URL WORKER_ID`` with options. It
sweeps due timers forever with a short lease until it is killed. The clock
is the wall clock moved by ``--offset`` seconds, so timers set to fall due
within the next minute are due at once (nobody waits for a timer).

Crash hooks (``--die`` ``point=probability,...``) make the process kill
itself with SIGKILL at chosen points of a sweep, as ``kill -9`` would:

- ``after_claim``: the claim transaction has committed, nothing fired yet;
- ``mid_fire``: inside the firing transaction, right after a history row;
- ``in_commit``: the firing transaction is committing (COMMIT not yet done).

``--pause-ms`` holds each firing transaction open that long after each
history row, so kills from outside land inside transactions too.
Each sweep writes one JSON line (what it claimed and fired) to stdout or `--log`.
With ``--parent PID`` the loop ends when that process (the harness) is gone,
so a harness killed from outside leaves no worker sweeping behind it.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from engine.db import Database
from engine.runtime import Runtime

from .lifecycles import registry

registry()  # import every lifecycle now: the fork server preloads this module, so restarts skip it


class OffsetClock:
    """The wall clock plus a fixed offset (UTC, aware)."""

    simulated = False

    def __init__(self, offset: float):
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def parse_die(spec: str) -> dict[str, float]:
    points = {}
    for part in filter(None, (spec or "").split(",")):
        name, _, p = part.partition("=")
        points[name.strip()] = float(p or 1)
    return points


def install_hooks(rt: Runtime, die: dict[str, float], pause: float, rng: random.Random) -> None:
    state = {"claimed": False, "fired": False}
    db = rt.db
    claim = rt._claim

    def claim_and_note(conn, limit, now):
        rows = claim(conn, limit, now)
        state["claimed"] = bool(rows)
        return rows

    rt._claim = claim_and_note

    def maybe_die(point: str) -> None:
        p = die.get(point, 0.0)
        if p and rng.random() < p:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    @event.listens_for(db.engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, executemany):
        if statement.lstrip()[:40].upper().startswith("INSERT INTO HISTORY"):
            state["fired"] = True
            if pause:
                time.sleep(pause)
            maybe_die("mid_fire")

    @event.listens_for(db.engine, "commit")
    def _commit(conn):
        if state["fired"]:
            state["fired"] = False
            maybe_die("in_commit")

    @event.listens_for(db.engine, "begin")
    def _begin(conn):
        if state["claimed"]:  # the previous transaction (a claim of at least one timer) has committed
            state["claimed"] = False
            maybe_die("after_claim")


def orphaned(parent: int | None) -> bool:
    """Has the harness that started this worker gone away?"""
    if not parent:
        return False
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.reliability.worker")
    ap.add_argument("url")
    ap.add_argument("worker_id")
    ap.add_argument("--lease", type=float, default=2.0, help="claim lease in seconds")
    ap.add_argument("--interval", type=float, default=0.1, help="pause between sweeps in seconds")
    ap.add_argument("--limit", type=int, default=10, help="timers claimed per sweep")
    ap.add_argument("--offset", type=float, default=0.0, help="clock offset from the wall clock in seconds")
    ap.add_argument("--die", default="", help="crash hooks: point=probability,...")
    ap.add_argument("--pause-ms", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--log", default=None, help="write the JSON lines here instead of stdout")
    ap.add_argument("--parent", type=int, default=None, help="exit when this process is gone")
    args = ap.parse_args(argv)
    out = open(args.log, "a", buffering=1, encoding="utf-8") if args.log else sys.stdout

    def say(item: dict) -> None:
        out.write(json.dumps(item) + "\n")

    db = Database(args.url)
    rng = random.Random(args.seed)
    rt = Runtime(db, OffsetClock(args.offset), registry(), worker_id=args.worker_id,
                 lease=timedelta(seconds=args.lease))
    install_hooks(rt, parse_die(args.die), args.pause_ms / 1000.0, rng)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    say({"ready": args.worker_id})
    while not orphaned(args.parent):
        try:
            result = rt.sweep(limit=args.limit)
        except Exception as exc:  # noqa: BLE001 - database down: try again on the next beat
            say({"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            time.sleep(args.interval)
            continue
        if result.claimed or result.recovered:
            say({"claimed": result.claimed, "fired": result.fired, "recovered": result.recovered,
                 "duplicates": result.duplicates, "failed": result.failed})
        time.sleep(args.interval)
    return 0


def mail_main(argv: list[str] | None = None) -> int:
    """The outbox dispatcher loop against an SMTP server, with the crash hook ``after_accept``.

    ``after_accept=p`` kills the process with probability p after the server
    accepted a message and before the row is marked sent: the one window in
    which a message may go out twice (with the same Message-ID).
    """
    from notifications.dispatcher import Dispatcher, SmtpSettings

    ap = argparse.ArgumentParser(prog="python -m tests.reliability.worker mail")
    ap.add_argument("url")
    ap.add_argument("worker_id")
    ap.add_argument("--smtp-port", type=int, required=True)
    ap.add_argument("--lease", type=float, default=2.0)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--die", default="")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--log", default=None)
    ap.add_argument("--parent", type=int, default=None)
    args = ap.parse_args(argv)
    out = open(args.log, "a", buffering=1, encoding="utf-8") if args.log else sys.stdout
    rng = random.Random(args.seed)
    die = parse_die(args.die).get("after_accept", 0.0)
    db = Database(args.url)
    rt = Runtime(db, OffsetClock(0), registry(), worker_id=args.worker_id)
    settings = SmtpSettings(host="127.0.0.1", port=args.smtp_port, sender="partnerflow <partnerflow@localhost>",
                            batch_size=args.batch, retry_base=1.0, retry_cap=2.0, max_attempts=1000,
                            lease=args.lease, timeout=5.0)
    dispatcher = Dispatcher(rt, settings, worker_id=args.worker_id, rng=rng)
    finish = dispatcher._finish

    def finish_or_die(outbox_id, now, status, **kw):
        if status == "sent" and die and rng.random() < die:
            out.write(json.dumps({"die": "after_accept", "outbox": outbox_id}) + "\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return finish(outbox_id, now, status, **kw)

    dispatcher._finish = finish_or_die
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    out.write(json.dumps({"ready": args.worker_id}) + "\n")
    while not orphaned(args.parent):
        try:
            result = dispatcher.dispatch(max_batches=1)
            if result.claimed or result.requeued:
                out.write(json.dumps(result.as_dict()) + "\n")
        except Exception as exc:  # noqa: BLE001 - database down: try again on the next beat
            out.write(json.dumps({"error": f"{type(exc).__name__}: {str(exc)[:200]}"}) + "\n")
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
