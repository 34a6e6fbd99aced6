"""``python -m benchmarks chaos [--json PATH] [--quick]``: the long crash, race and fuzz runs, as figures.

Runs the reliability tests' drivers (``tests/reliability``) at full size on
fresh databases - PostgreSQL when it is reachable, and SQLite:

- timer crash: worker processes killed with SIGKILL (``--kills``, default 200)
  while they fire 500 timers - from outside at random, and from inside right
  after a claim, in the middle of a firing transaction and while it commits;
- mail crash: dispatcher processes killed (``--kills``) while 1,000 emails
  go to a real aiosmtpd server, including right after the server accepted a
  message and before the row is marked sent;
- races: ``--race-rounds`` (default 1,000) rounds of 2 to 10 threads deciding
  one case at once, and as many rounds of a rejection at the instant the
  auto-confirm timer is due;
- fuzz: ``--fuzz-examples`` generated requests against every JSON API
  operation and HTML form (when the web app is installed).

It prints: kills survived, timers fired once / lost / twice, emails
delivered / duplicated / lost, races run / double decisions, fuzz cases /
5xx answers; with ``--json`` it also writes every figure to PATH. The exit
code is 1 when any run lost or doubled something.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the drivers live in tests/reliability
    sys.path.insert(0, str(ROOT))


def _fresh(kind: str, label: str):
    from engine.db import Database
    from engine.migrate import upgrade
    from engine.models import load_all

    from .common import fresh_database

    load_all()
    ctx = fresh_database(kind, label)
    url = ctx.__enter__()
    db = Database(url)
    upgrade(db)
    db.dispose()
    return ctx, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks chaos")
    parser.add_argument("--json", dest="json_path", help="also write the figures as JSON to this path")
    parser.add_argument("--quick", action="store_true", help="the bounded CI sizes (20 kills, 200 race rounds)")
    parser.add_argument("--kills", type=int, default=None, help="kills per crash run (default 200; quick 20)")
    parser.add_argument("--race-rounds", type=int, default=None, help="rounds per race (default 1000; quick 200)")
    parser.add_argument("--fuzz-examples", type=int, default=None, help="fuzz cases per operation (default 200)")
    parser.add_argument("--only", help="comma-separated: timers,mail,races,fuzz")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("partnerflow.mail").setLevel(logging.ERROR)
    from .common import pg_available

    kills = args.kills or (20 if args.quick else 200)
    rounds = args.race_rounds or (200 if args.quick else 1000)
    fuzz_examples = args.fuzz_examples or (30 if args.quick else 200)
    wanted = set((args.only or "timers,mail,races,fuzz").split(","))
    kinds = (["postgres"] if pg_available() else []) + ["sqlite"]
    out: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "python": platform.python_version(),
                 "kills_requested": kills, "race_rounds_requested": rounds, "runs": {}, "problems": {}}
    began = time.perf_counter()

    def step(label: str, fn) -> None:
        t = time.perf_counter()
        print(f"... {label}", file=sys.stderr, flush=True)
        try:
            out["runs"][label] = fn()
        except Exception as exc:  # noqa: BLE001 - one failing run must not hide the others
            traceback.print_exc()
            out["problems"][label] = f"{type(exc).__name__}: {exc}"
        print(f"    {label}: {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)

    for kind in kinds:
        workers = 3 if kind == "postgres" else 1
        if "timers" in wanted:
            def timers(kind=kind, workers=workers):
                from tests.reliability.harness import run_crash

                ctx, url = _fresh(kind, "chaos_timers")
                try:
                    return run_crash(url, workers=workers, cases=500, min_kills=kills,
                                     timeout=120 + 3 * kills, seed=int(time.time())).as_dict()
                finally:
                    ctx.__exit__(None, None, None)
            step(f"timers_{kind}", timers)
        if "mail" in wanted:
            def mail(kind=kind, workers=workers):
                from tests.reliability.harness import run_mail_crash
                from tests.smtp import SmtpServer

                ctx, url = _fresh(kind, "chaos_mail")
                server = SmtpServer().start()
                try:
                    return run_mail_crash(url, server, workers=workers, cases=500, min_kills=kills,
                                          timeout=180 + 3 * kills, seed=int(time.time())).as_dict()
                finally:
                    server.stop()
                    ctx.__exit__(None, None, None)
            step(f"mail_{kind}", mail)
        if "races" in wanted:
            def races(kind=kind):
                from tests.reliability.harness import seed_people  # noqa: F401 - imports the lifecycles
                from tests.reliability.races import decision_races, timer_races

                ctx, url = _fresh(kind, "chaos_races")
                try:
                    return {"decisions": decision_races(url, rounds, seed=int(time.time())).as_dict(),
                            "timer": timer_races(url, rounds, seed=int(time.time())).as_dict()}
                finally:
                    ctx.__exit__(None, None, None)
            step(f"races_{kind}", races)
    if "fuzz" in wanted:
        def fuzz():
            from tests.reliability import fuzz as fuzzing

            return fuzzing.run_fuzz(examples=fuzz_examples)
        step("fuzz", fuzz)
    out["seconds"] = round(time.perf_counter() - began, 1)
    out["summary"] = summary = summarise(out["runs"])
    for line in lines(summary, out):
        print(line)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
        print(f"wrote {args.json_path}")
    bad = (summary["timers_lost"] or summary["timers_fired_twice"] or summary["emails_lost"]
           or summary["double_decisions"] or summary["fuzz_5xx"] or out["problems"]
           or out["runs"].get("fuzz", {}).get("pytest_exit_code", 0))
    return 1 if bad else 0


def summarise(runs: dict) -> dict:
    s = {"kills_survived": 0, "timers": 0, "timers_fired_once": 0, "timers_lost": 0, "timers_fired_twice": 0,
         "max_recovery_after_lease_s": 0.0, "emails": 0, "emails_delivered": 0, "emails_duplicated": 0,
         "emails_duplicated_outside_window": 0, "emails_lost": 0, "races_run": 0, "double_decisions": 0,
         "race_conflicts_naming_winner": 0, "race_conflicts": 0, "fuzz_cases": 0, "fuzz_5xx": 0}
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
        elif label.startswith("races_"):
            for part in r.values():
                s["races_run"] += part["rounds"]
                s["double_decisions"] += part["double_decisions"] + len(part["other_errors"])
                s["race_conflicts"] += part["conflicts"]
                s["race_conflicts_naming_winner"] += part["conflicts_naming_winner"]
        elif label == "fuzz":
            s["fuzz_cases"] += r["cases"]
            s["fuzz_5xx"] += r["server_errors"]
    return s


def lines(s: dict, out: dict) -> list[str]:
    rows = [
        f"partnerflow chaos run ({', '.join(sorted({k.split('_')[-1] for k in out['runs'] if '_' in k})) or '-'}), "
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
    for label, problem in out["problems"].items():
        rows.append(f"PROBLEM in {label}: {problem}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
