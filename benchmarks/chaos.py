"""``python -m benchmarks chaos [--json PATH] [--quick]``: the long crash, race and fuzz runs, as figures.

Runs the reliability tests' drivers (``tests/reliability``) at full size on
fresh databases - PostgreSQL when it is reachable, and SQLite:

- timer crash: worker processes killed with SIGKILL (``--kills``, default 200)
  while they fire 500 timers - from outside at random, and from inside right
  after a claim, in the middle of a firing transaction and while it commits;
- mail crash: dispatcher processes killed (``--kills``) while 1,000 emails
  go to a real aiosmtpd server, including right after the server accepted a
  message and before the row is marked sent;
- races: ``--decision-rounds`` (default 200) rounds of 2 to 10 threads
  deciding one case at once, and ``--timer-rounds`` (default 1,000) rounds of
  a rejection at the instant the auto-confirm timer is due;
- fuzz: ``--fuzz-examples`` generated requests against every JSON API
  operation and HTML form (when the web app is installed).

When the work of a crash run runs out before its kills do, the harness tops
it up (40 more timers, 40 more emails at a time), so every kill lands on a
worker that holds work. The run survives a PostgreSQL restart by another
process (it waits for the server), and a run killed from outside leaves no
worker behind (each worker exits when the harness is gone).

It prints: kills survived, timers fired once / lost / twice, emails
delivered / duplicated / lost, races run / double decisions, fuzz cases /
5xx answers, then the same per run; with ``--json`` it also writes every
figure, the machine, the commit and the load average to PATH. The exit code
is 1 when any run lost or doubled something. On a shared machine run it
under ``nice -n 19``: its figures are counts, not timings.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the drivers live in tests/reliability
    sys.path.insert(0, str(ROOT))

#: Claim lease of the timer workers, and the slack the bounded test allows for one sweep after it
#: (tests/reliability/test_crash_timers.py: sweep interval 0.1 s + 3 s).
LEASE = 2.0
ONE_SWEEP = 3.1


@contextlib.contextmanager
def _database(kind: str, label: str):
    """A fresh migrated database for one run; dropped afterwards, waiting out a PostgreSQL restart."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    from engine.db import Database
    from engine.migrate import upgrade
    from engine.models import load_all

    from .common import PG_ADMIN_URL, sqlite_url

    load_all()
    if kind != "postgres":
        url = sqlite_url(label)
        db = Database(url)
        upgrade(db)
        db.dispose()
        yield url
        return
    name = f"pf_chaos_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)

    def admin_sql(sql: str) -> None:
        for attempt in range(300):  # another test may be restarting the server (the outage test does)
            try:
                with admin.connect() as conn:
                    conn.execute(text(sql))
                return
            except DBAPIError:
                if attempt == 299:
                    raise
                admin.dispose()
                time.sleep(0.1)

    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        admin_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')  # as the other benchmarks
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        db = Database(url)
        try:
            upgrade(db)
        finally:
            db.dispose()
        yield url
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _machine() -> dict:
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "nice": os.nice(0),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                        timeout=10).stdout.strip() or None
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                                     None)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks chaos")
    parser.add_argument("--json", dest="json_path", help="also write the figures as JSON to this path")
    parser.add_argument("--quick", action="store_true",
                        help="the bounded CI sizes (20 kills, 200 rounds of each race, 30 fuzz examples)")
    parser.add_argument("--kills", type=int, default=None, help="kills per crash run (default 200; quick 20)")
    parser.add_argument("--decision-rounds", type=int, default=None,
                        help="rounds of 2-10 threads deciding one case (default 200)")
    parser.add_argument("--timer-rounds", type=int, default=None,
                        help="rounds of a rejection at the instant the timer is due (default 1000; quick 200)")
    parser.add_argument("--race-rounds", type=int, default=None, help="both races at once (overrides the two above)")
    parser.add_argument("--fuzz-examples", type=int, default=None, help="fuzz cases per operation (default 200)")
    parser.add_argument("--only", help="comma-separated: timers,mail,races,fuzz")
    parser.add_argument("--databases", help="comma-separated: postgres,sqlite (default both, PostgreSQL when reachable)")
    args = parser.parse_args(argv)
    # a kill from outside (timeout, Ctrl-C) still stops the workers and drops the databases
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("partnerflow.mail").setLevel(logging.ERROR)
    logging.getLogger("partnerflow.runtime").setLevel(logging.ERROR)  # transient errors of killed peers
    from .common import pg_available

    kills = args.kills or (20 if args.quick else 200)
    decision_rounds = args.race_rounds or args.decision_rounds or 200
    timer_rounds = args.race_rounds or args.timer_rounds or (200 if args.quick else 1000)
    fuzz_examples = args.fuzz_examples or (30 if args.quick else 200)
    wanted = set((args.only or "timers,mail,races,fuzz").split(","))
    kinds = (["postgres"] if pg_available() else []) + ["sqlite"]
    if args.databases:
        kinds = [k for k in kinds if k in args.databases.split(",")]
    out: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                 "command": "python -m benchmarks chaos " + " ".join(sys.argv[2:] if argv is None else argv),
                 "machine": _machine(), "databases": kinds, "kills_requested": kills,
                 "decision_rounds_requested": decision_rounds, "timer_rounds_requested": timer_rounds,
                 "fuzz_examples_requested": fuzz_examples, "runs": {}, "seconds_per_run": {}, "problems": {}}
    began = time.perf_counter()

    def step(label: str, fn) -> None:
        t = time.perf_counter()
        print(f"... {label}", file=sys.stderr, flush=True)
        try:
            out["runs"][label] = fn()
        except Exception as exc:  # noqa: BLE001 - one failing run must not hide the others
            traceback.print_exc()
            out["problems"][label] = f"{type(exc).__name__}: {exc}"
        out["seconds_per_run"][label] = round(time.perf_counter() - t, 1)
        print(f"    {label}: {time.perf_counter() - t:.1f}s (load average {os.getloadavg()[0]:.2f})",
              file=sys.stderr, flush=True)

    for kind in kinds:
        workers = 3 if kind == "postgres" else 1
        if "timers" in wanted:
            def timers(kind=kind, workers=workers):
                from tests.reliability.harness import run_crash

                with _database(kind, "timers") as url:
                    return run_crash(url, workers=workers, cases=500, min_kills=kills, lease=LEASE,
                                     timeout=120 + 3 * kills, seed=int(time.time())).as_dict()
            step(f"timers_{kind}", timers)
        if "mail" in wanted:
            def mail(kind=kind, workers=workers):
                from tests.reliability.harness import run_mail_crash
                from tests.smtp import SmtpServer

                with _database(kind, "mail") as url:
                    server = SmtpServer().start()
                    try:
                        return run_mail_crash(url, server, workers=workers, cases=500, min_kills=kills,
                                              timeout=180 + 3 * kills, seed=int(time.time())).as_dict()
                    finally:
                        server.stop()
            step(f"mail_{kind}", mail)
        if "races" in wanted:
            def races(kind=kind):
                from tests.reliability.harness import seed_people  # noqa: F401 - imports the lifecycles
                from tests.reliability.races import decision_races, timer_races

                with _database(kind, "races") as url:
                    return {"decisions": decision_races(url, decision_rounds, seed=int(time.time())).as_dict(),
                            "timer": timer_races(url, timer_rounds, seed=int(time.time())).as_dict()}
            step(f"races_{kind}", races)
    if "fuzz" in wanted:
        def fuzz():
            from tests.reliability import fuzz as fuzzing

            return fuzzing.run_fuzz(examples=fuzz_examples)
        step("fuzz", fuzz)
    out["seconds"] = round(time.perf_counter() - began, 1)
    out["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["summary"] = summary = summarise(out["runs"])
    for line in lines(summary, out):
        print(line)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
        print(f"wrote {args.json_path}")
    bad = (summary["timers_lost"] or summary["timers_fired_twice"] or summary["emails_lost"]
           or summary["emails_duplicated_outside_window"] or summary["emails_foreign"]
           or summary["double_decisions"] or summary["race_wrong_emails"] or summary["fuzz_5xx"] or out["problems"]
           or out["runs"].get("fuzz", {}).get("pytest_exit_code", 0))
    return 1 if bad else 0


def summarise(runs: dict) -> dict:
    s = {"kills_survived": 0, "timers": 0, "timers_fired_once": 0, "timers_lost": 0, "timers_fired_twice": 0,
         "max_recovery_after_lease_s": 0.0, "emails": 0, "emails_delivered": 0, "emails_duplicated": 0,
         "emails_duplicated_outside_window": 0, "emails_lost": 0, "races_run": 0, "double_decisions": 0,
         "race_conflicts_naming_winner": 0, "race_conflicts": 0, "race_wrong_emails": 0, "emails_foreign": 0,
         "fuzz_cases": 0, "fuzz_5xx": 0}
    for label, r in runs.items():
        if label.startswith("timers_"):
            s["kills_survived"] += r["kills"]
            s["timers"] += r["timers"]
            s["timers_fired_once"] += r["fired_once"]
            s["timers_lost"] += r["lost"]
            s["timers_fired_twice"] += r["fired_twice"]
            s["max_recovery_after_lease_s"] = max(s["max_recovery_after_lease_s"], r["max_recovery_after_lease_s"])
        elif label.startswith("mail_"):
            s["kills_survived"] += r["kills"]
            s["emails"] += r["emails"]
            s["emails_delivered"] += r["delivered"]
            s["emails_duplicated"] += r["duplicated"]
            s["emails_duplicated_outside_window"] += r["duplicates_outside_window"]
            s["emails_lost"] += r["lost"] + r["parked"]
            s["emails_foreign"] += r["foreign_message_ids"]
        elif label.startswith("races_"):
            for part in r.values():
                s["races_run"] += part["rounds"]
                s["double_decisions"] += part["double_decisions"] + len(part["other_errors"])
                s["race_conflicts"] += part["conflicts"]
                s["race_conflicts_naming_winner"] += part["conflicts_naming_winner"]
                s["race_wrong_emails"] += part["wrong_emails"]
        elif label == "fuzz":
            s["fuzz_cases"] += r["cases"]
            s["fuzz_5xx"] += r["server_errors"]
    return s


def lines(s: dict, out: dict) -> list[str]:
    runs = out["runs"]
    rows = [
        f"partnerflow chaos run ({', '.join(sorted({k.split('_')[-1] for k in runs if '_' in k})) or '-'}), "
        f"{out['seconds']:.0f} s",
        f"kills survived:        {s['kills_survived']}",
        f"timers fired once:     {s['timers_fired_once']} of {s['timers']}; lost {s['timers_lost']}; "
        f"twice {s['timers_fired_twice']}; dead workers' claims back within lease + "
        f"{s['max_recovery_after_lease_s']:.2f} s",
        f"emails delivered:      {s['emails_delivered']} of {s['emails']}; duplicated {s['emails_duplicated']} "
        f"(all from the accepted-but-not-marked window: {s['emails_duplicated_outside_window'] == 0}); "
        f"lost {s['emails_lost']}",
        f"races run:             {s['races_run']}; double decisions {s['double_decisions']}; conflicts naming "
        f"the winner {s['race_conflicts_naming_winner']} of {s['race_conflicts']}",
        f"fuzz cases:            {s['fuzz_cases']}; 5xx answers {s['fuzz_5xx']}",
    ]
    per_run = []
    for label, r in runs.items():
        took = f"{out['seconds_per_run'].get(label, 0):.0f} s"
        if label.startswith("timers_"):
            within = r["max_recovery_after_lease_s"] <= ONE_SWEEP
            per_run.append(
                f"  {label:<16} {r['workers']} worker(s), {r['kills']} kills ({r['kills_external']} from outside, "
                f"{r['kills_at_hooks']} at crash hooks); {r['fired_once']} of {r['timers']} timers fired once "
                f"({r['cases']} cases), lost {r['lost']}, twice {r['fired_twice']}; {r['claims_of_dead_workers']} "
                f"claims of dead workers back within lease {LEASE:g} s + {r['max_recovery_after_lease_s']:.2f} s "
                f"({'within' if within else 'OVER'} one sweep, {ONE_SWEEP:g} s); {took}")
        elif label.startswith("mail_"):
            per_run.append(
                f"  {label:<16} {r['workers']} worker(s), {r['kills']} kills ({r['kills_after_accept']} after the "
                f"server accepted, before marked sent); {r['delivered']} of {r['emails']} emails delivered "
                f"({r['emails_queued_first']} queued first), duplicated {r['duplicated']} "
                f"({r['duplicates_outside_window']} outside the window), foreign {r['foreign_message_ids']}, "
                f"lost {r['lost']}, parked {r['parked']}; {took}")
        elif label.startswith("races_"):
            d, t = r["decisions"], r["timer"]
            per_run.append(
                f"  {label:<16} {d['rounds']} decision rounds ({d['threads']} threads): {d['successes']} won, "
                f"double {d['double_decisions']}, errors {len(d['other_errors'])}; {t['rounds']} reject-vs-timer "
                f"rounds: outcomes {t['outcomes']}, double {t['double_decisions']}, wrong emails "
                f"{t['wrong_emails']}, errors {len(t['other_errors'])}; {took}")
        elif label == "fuzz":
            per_run.append(f"  {label:<16} {r['cases']} requests ({r['examples_per_operation']} examples per "
                           f"operation), 5xx {r['server_errors']}, pytest exit code {r['pytest_exit_code']}; {took}")
            for req in r.get("server_error_requests", [])[:5]:
                asked = {k: v for k, v in req.items() if k not in ("status", "method", "path") and v not in (None, {})}
                per_run.append(f"    {req['status']} on {req['method']} {req['path']} {asked}")
    if per_run:
        rows += ["per run:", *per_run]
    for label, problem in out["problems"].items():
        rows.append(f"PROBLEM in {label}: {problem}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
