"""``python -m benchmarks run [--quick] [--json PATH]``: every metric and ratio, with targets, in one run."""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
import traceback

from .common import Metric, machine, pg_available

#: Sizes per mode. The quick run keeps under 3 minutes on 2 cores; the full run under 30.
SIZES = {
    "quick": {"fires": 1_000, "fire_runs": 3, "timers": 10_000, "timer_runs": 3, "timers_warmup": 1_000,
              "rss_timers": 30_000, "late_pending": 100_000, "late_rate": 200, "late_seconds": 10,
              "apscheduler": 5_000, "procrastinate": 2_000, "spiff": 200, "spiff_runs": 3},
    "full": {"fires": 3_000, "fire_runs": 5, "timers": 100_000, "timer_runs": 3, "timers_warmup": 10_000,
             "rss_timers": 1_000_000, "late_pending": 1_000_000, "late_rate": 200, "late_seconds": 60,
             "apscheduler": 100_000, "procrastinate": 100_000, "spiff": 400, "spiff_runs": 3},
}

RATIO_TARGETS = {
    "transitions_vs_naive_transitions": 1.5,
    "timers_vs_apscheduler_jobstore": 10,
    "timers_vs_procrastinate": 5,
    "lifecycle_vs_spiffworkflow": 10,
}

OTHER_MODULES = {  # metric name -> (module, target, op, unit)
    "inbox_p95_ms": ("benchmarks.inbox", 25, "<=", "ms"),
    "emails_per_s": ("benchmarks.emails", None, ">=", "emails/s"),
}


class Run:
    def __init__(self, quick: bool):
        self.quick = quick
        self.size = dict(SIZES["quick" if quick else "full"])
        scale = float(os.environ.get("PARTNERFLOW_BENCH_SCALE") or 1)  # smoke tests of the runner itself
        if scale != 1:
            for key, value in self.size.items():
                if not key.endswith(("_runs", "_rate", "_seconds")):
                    self.size[key] = max(10, int(value * scale))
        self.metrics: dict[str, Metric] = {}
        self.peers: dict[str, Metric] = {}
        self.ratios: dict[str, float | None] = {}
        self.problems: dict[str, str] = {}
        self.pg = pg_available()
        #: metric names of the sections this run includes
        self.expected: set[str] = set()

    def step(self, label: str, fn) -> None:
        t = time.perf_counter()
        print(f"... {label}", file=sys.stderr, flush=True)
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
            traceback.print_exc()
            self.problems[label] = f"{type(exc).__name__}: {exc}"
        print(f"    {label}: {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)

    def add(self, m: Metric, peer: bool = False) -> None:
        (self.peers if peer else self.metrics)[m.name] = m

    # ------------------------------------------------------------------
    def transitions(self) -> None:
        from . import transitions_bench as tb

        s = self.size
        self.step("transitions sqlite", lambda: self.add(tb.ours("sqlite", s["fires"], s["fire_runs"], 1)))
        self.step("transitions naive peer", lambda: self.add(tb.naive(s["fires"], s["fire_runs"]), peer=True))
        if self.pg:
            self.step("transitions postgres", lambda: self.add(tb.ours("postgres", s["fires"], s["fire_runs"], 2)))

    def timers(self) -> None:
        from . import timers

        s = self.size

        def sqlite():
            m, _, _ = timers.run("sqlite", s["timers"], s["timer_runs"], 1, s["timers_warmup"])
            self.add(m)

        def postgres():
            m, outs, big = timers.run("postgres", s["timers"], s["timer_runs"], 2, s["timers_warmup"],
                                      s["rss_timers"])
            self.add(m)
            small = max(o["peak_rss_mb"] for o in outs)
            self.add(Metric("worker_peak_rss_mb", big["peak_rss_mb"], "MB", 300, "<=",
                            f"peak of 2 workers draining {s['rss_timers']:,} more timers "
                            f"({big['rate']:.0f}/s); {small:.0f} MB after {s['timers']:,}-timer rounds"))

        self.step("timers sqlite", sqlite)
        if self.pg:
            self.step("timers postgres + worker memory", postgres)

    def lateness(self) -> None:
        from . import lateness

        s = self.size

        def go():
            m = lateness.run("sqlite", s["late_pending"], s["late_rate"], s["late_seconds"])
            if self.quick:
                m.note = "QUICK (shortened): " + m.note
            self.add(m)

        self.step("timer lateness", go)

    def peer_timers(self) -> None:
        from . import peers

        s = self.size
        self.step("APScheduler job store", lambda: self.add(peers.apscheduler(s["apscheduler"]), peer=True))
        if self.pg:
            self.step("procrastinate", lambda: self.add(peers.procrastinate(s["procrastinate"]), peer=True))

    def spiff(self) -> None:
        from . import spiff

        s = self.size

        def go():
            ours, theirs = spiff.run(s["spiff"], s["spiff_runs"])
            self.add(ours, peer=True)
            self.add(theirs, peer=True)

        self.step("SpiffWorkflow lifecycle", go)

    def others(self) -> None:
        for name, (module_name, target, op, unit) in OTHER_MODULES.items():
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    self.problems[name] = f"{module_name} failed to import: {exc}"
                self.metrics[name] = Metric(name, None, unit, target, op, "not available")
                continue

            def go(module=module, name=name, target=target, op=op, unit=unit):
                self.add(_adapt(name, module.run(self.quick) or {}, target, op, unit, module.__name__))

            self.step(name, go)

    def compute_ratios(self) -> None:
        def ratio(name, ours, theirs, pool_ours, pool_theirs):
            a, b = pool_ours.get(ours), pool_theirs.get(theirs)
            self.ratios[name] = (a.value / b.value) if a and b and a.value and b.value else None

        ratio("transitions_vs_naive_transitions", "transitions_per_s_sqlite", "naive_transitions_per_s_sqlite",
              self.metrics, self.peers)
        ratio("timers_vs_apscheduler_jobstore", "timers_fired_per_s_sqlite", "apscheduler_jobs_per_s_sqlite",
              self.metrics, self.peers)
        ratio("timers_vs_procrastinate", "timers_fired_per_s_postgres", "procrastinate_jobs_per_s_postgres",
              self.metrics, self.peers)
        ratio("lifecycle_vs_spiffworkflow", "lifecycles_per_s_partnerflow", "lifecycles_per_s_spiffworkflow",
              self.peers, self.peers)

    # ------------------------------------------------------------------
    def table(self) -> str:
        order = ["transitions_per_s_sqlite", "transitions_per_s_postgres", "timers_fired_per_s_sqlite",
                 "timers_fired_per_s_postgres", "timer_lateness_p99_ms", "worker_peak_rss_mb", "inbox_p95_ms",
                 "emails_per_s"]
        names = order + [n for n in self.metrics if n not in order]
        lines = [f"{'metric':<34} {'value':>12} {'unit':<14} {'target':>10}  note", "-" * 110]
        for name in names:
            m = self.metrics.get(name)
            if m is None and name not in self.expected:
                lines.append(f"{name:<34} {'-':>12} {'':<14} {'':>10}  not run (--only)")
                continue
            if m is None:
                if name.startswith("transitions_per_s_postgres") or name.startswith("timers_fired_per_s_postgres"):
                    note = "not measured: " + (self.problems.get("timers postgres + worker memory")
                                               or self.problems.get("transitions postgres")
                                               or ("PostgreSQL not reachable" if not self.pg else "failed"))
                else:
                    note = "not measured: " + next((v for k, v in self.problems.items() if k.split()[0] in name),
                                                   "failed, see above")
                lines.append(f"{name:<34} {'-':>12} {'':<14} {'':>10}  {note}")
                continue
            value = "n/a" if m.value is None else f"{m.value:,.1f}"
            target = "" if m.target is None else f"{m.op} {m.target:,.0f}"
            mark = "  MISSED" if m.missed else ""
            lines.append(f"{name:<34} {value:>12} {m.unit:<14} {target:>10}{mark:<8} {m.note}")
        lines.append("")
        lines.append(f"{'peer figure':<34} {'value':>12} {'unit':<14}")
        lines.append("-" * 110)
        for m in self.peers.values():
            lines.append(f"{m.name:<34} {m.value:>12,.1f} {m.unit:<14} {'':>10}         {m.note}")
        lines.append("")
        lines.append(f"{'ratio (ours / theirs)':<34} {'value':>12} {'':<14} {'target':>10}")
        lines.append("-" * 110)
        for name, target in RATIO_TARGETS.items():
            value = self.ratios.get(name)
            shown = "-" if value is None else f"{value:,.2f}"
            mark = "  MISSED" if value is not None and value < target else ("  NOT MEASURED" if value is None else "")
            lines.append(f"{name:<34} {shown:>12} {'':<14} {'>= ' + format(target, 'g'):>10}{mark}")
        if self.problems:
            lines.append("")
            lines.append("problems:")
            for k, v in self.problems.items():
                lines.append(f"  {k}: {v}")
        return "\n".join(lines)

    def as_json(self, info: dict, seconds: float) -> dict:
        def metric(m: Metric) -> dict:
            return {"value": m.value, "unit": m.unit, "target": m.target, "op": m.op, "missed": m.missed,
                    "note": m.note, "runs": m.runs}

        return {
            "machine": {**info, "mode": "quick" if self.quick else "full", "seconds": round(seconds, 1)},
            "metrics": {n: metric(m) for n, m in self.metrics.items()},
            "peers": {n: metric(m) for n, m in self.peers.items()},
            "ratios": self.ratios,
            "ratio_targets": RATIO_TARGETS,
            "problems": self.problems,
        }


def _adapt(name: str, out: dict, target, op: str, unit: str, source: str) -> Metric:
    """One metric from what another module's `run(quick)` returned (a number, {"value", "unit"}, or its own report)."""
    value = out.get(name)
    note = out.get("note") or f"from {source}"
    if isinstance(value, dict):
        value, unit = value.get("value"), value.get("unit", unit)
    if value is None and name == "inbox_p95_ms" and isinstance(out.get("pages"), dict):
        pages = out["pages"]  # the inbox report: the worst p95 over every page kind it measured
        value = out.get("worst_p95_ms")
        if value is None:
            worst = [v["p95_ms"] for v in pages.values() if isinstance(v, dict) and "p95_ms" in v]
            value = max(worst) if worst else None
        target = out.get("target_p95_ms", target)
        note = f"{note}; worst p95 over every page kind, " + ", ".join(
            f"{k} {v.get('p95_ms')}" for k, v in pages.items() if isinstance(v, dict))
    if name == "emails_per_s":
        target = out.get("target_emails_per_s", target)
    if not isinstance(value, (int, float)):
        return Metric(name, None, unit, target, op, f"{source} did not report it")
    return Metric(name, float(value), unit, target, op, note)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["chaos"]:  # crash, race and fuzz figures: benchmarks/chaos.py
        from .chaos import main as chaos_main

        return chaos_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every benchmark and print a table")
    run.add_argument("--quick", action="store_true", help="smaller sizes: under 3 minutes on 2 cores")
    run.add_argument("--json", dest="json_path", help="also write the results as JSON to this path")
    run.add_argument("--only", help="comma-separated sections: transitions,timers,lateness,peers,spiff,others")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    info = machine()
    r = Run(args.quick)
    t = time.perf_counter()
    sections = ["transitions", "timers", "lateness", "peers", "spiff", "others"]
    wanted = args.only.split(",") if args.only else sections
    produces = {
        "transitions": ["transitions_per_s_sqlite", "transitions_per_s_postgres"],
        "timers": ["timers_fired_per_s_sqlite", "timers_fired_per_s_postgres", "worker_peak_rss_mb"],
        "lateness": ["timer_lateness_p99_ms"], "others": list(OTHER_MODULES),
    }
    for section in sections:
        if section in wanted:
            r.expected.update(produces.get(section, []))
            getattr(r, {"peers": "peer_timers"}.get(section, section))()
    from .timers import close_pools

    close_pools()
    r.compute_ratios()
    seconds = time.perf_counter() - t
    print(f"partnerflow benchmarks ({'quick' if args.quick else 'full'}) on {info.get('cpu_model', info['processor'])}, "
          f"{info['cpus']} CPUs, Python {info['python']}, SQLite {info['sqlite']}, "
          f"PostgreSQL {info.get('postgresql') or 'absent'}; {seconds:.0f} s")
    print(r.table())
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump(r.as_json(info, seconds), fh, indent=2)
        print(f"wrote {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
