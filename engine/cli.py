"""The `partnerflow` command line.

Every command works on the database named by ``DATABASE_URL`` (default: the
SQLite file ``partnerflow.db`` in the working directory) and migrates it to
the newest schema first. Errors print one line on stderr and exit non-zero
(1 for a refusal, 2 for bad usage).
"""
from __future__ import annotations

import logging
import signal
import sys
import threading

import click

from .clock import parse_duration
from .cliutil import echo_json, handle_errors, json_arg, open_runtime
from .db import Database, json_dumps
from .errors import ValidationError


def heartbeat_hooks() -> list:
    """Work the heartbeat does besides timers and schedules (the outbox dispatcher)."""
    hooks = []
    try:
        from notifications.dispatcher import heartbeat_hook
    except ImportError:  # notifications not installed in this build
        return hooks
    hooks.append(heartbeat_hook)
    return hooks


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what the engine does.")
def main(verbose: bool) -> None:
    """partnerflow: durable approval lifecycles with timers, working days, emails and an inbox."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------- db
@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@handle_errors
def db_upgrade() -> None:
    """Apply every pending migration."""
    from .migrate import current_heads, upgrade

    database = Database()
    upgrade(database)
    click.echo(f"database at {', '.join(sorted(current_heads(database)))} ({database.url.split('@')[-1]})")


# ---------------------------------------------------------------- workflows
@main.group()
def workflows() -> None:
    """The lifecycles this installation runs."""


@workflows.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def workflows_list(as_json: bool) -> None:
    """List the lifecycles."""
    from .registry import default_registry

    items = [{"name": wf.name, "title": wf.title, "faq": wf.faq, "states": wf.state_names,
              "initial": wf.initial, "final": list(wf.final)} for wf in default_registry()]
    if as_json:
        echo_json(items)
        return
    for item in items:
        click.echo(f"{item['name']:<28} {item['title']}  ({item['faq']})")


@workflows.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def workflows_show(name: str, as_json: bool) -> None:
    """States, transitions, timers, tasks, notifications and a Mermaid diagram of one lifecycle."""
    from .registry import default_registry

    wf = default_registry().get(name)
    info = wf.describe()
    if as_json:
        echo_json({**info, "mermaid": wf.mermaid()})
        return
    click.echo(f"{wf.name}: {wf.title} ({wf.faq})")
    if wf.description:
        click.echo(wf.description)
    click.echo("\nStates:")
    for s in info["states"]:
        marks = (" [initial]" if s["name"] == wf.initial else "") + (" [final]" if s["final"] else "")
        click.echo(f"  {s['name']}{marks}")
    click.echo(f"\nStart: roles {', '.join(info['start']['roles']) or '-'}; guards {', '.join(info['start']['guards']) or '-'}")
    click.echo("\nTransitions:")
    click.echo(f"  {'event':<22} {'from':<34} {'to':<20} {'roles':<36} guards")
    for t in info["transitions"]:
        to = t["to"] or "(stays)"
        extra = " [comment required]" if t["comment_required"] else ""
        extra += " [four-eyes]" if t["four_eyes"] else ""
        click.echo(f"  {t['event']:<22} {','.join(t['from']):<34} {to:<20} {','.join(t['roles']):<36} "
                   f"{','.join(t['guards']) or '-'}{extra}")
    click.echo("\nTimers:")
    for tm in info["timers"] or [{"state": "-", "event": "-", "when": "none", "name": "-"}]:
        click.echo(f"  in {tm['state']}: {tm['event']} {tm['when']}")
    click.echo("\nInbox tasks:")
    for t in info["tasks"] or []:
        trigger = f"on {t['on_event']}" if t["on_event"] else f"in {t['state']}"
        click.echo(f"  {trigger}: {t['role']} - {t['title']}" + (f" (due {t['due']})" if t["due"] else ""))
    click.echo("\nNotifications:")
    for n in info["notifications"] or []:
        trigger = f"on entering {n['on_enter']}" if n["on_enter"] else f"on {n['on_event']}"
        click.echo(f"  {trigger}: {n['template']} -> {', '.join(n['to'])}")
    click.echo("\nDiagram (Mermaid):")
    click.echo(wf.mermaid())


# ---------------------------------------------------------------- cases
@main.command()
@click.argument("workflow")
@click.option("--data", "data_text", default="{}", help="Start data as JSON (or @file.json).")
@click.option("--as", "login", envvar="PARTNERFLOW_USER", required=True, help="Login of the acting user.")
@click.option("--comment", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the whole case as JSON.")
@handle_errors
def start(workflow: str, data_text: str, login: str, comment: str | None, as_json: bool) -> None:
    """Start a case of WORKFLOW."""
    rt = open_runtime()
    view = rt.start(workflow, json_arg(data_text, "data"), rt.actor(login), comment)
    _print_case(view, as_json, f"started case {view['id']} ({view['workflow']}), state {view['state']}")


@main.command()
@click.argument("instance_id", type=int)
@click.argument("event")
@click.option("--data", "data_text", default="{}", help="Event payload as JSON (or @file.json).")
@click.option("--as", "login", envvar="PARTNERFLOW_USER", required=True)
@click.option("--comment", default=None)
@click.option("--expected-version", type=int, default=None, help="Refuse if the case changed since this version.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def fire(instance_id: int, event: str, data_text: str, login: str, comment: str | None,
         expected_version: int | None, as_json: bool) -> None:
    """Fire EVENT on case INSTANCE_ID."""
    rt = open_runtime()
    view = rt.fire(instance_id, event, rt.actor(login), json_arg(data_text, "data"), expected_version, comment)
    _print_case(view, as_json, f"case {view['id']}: {event} -> {view['state']} (version {view['version']})")


@main.command()
@click.argument("instance_id", type=int)
@click.option("--as", "login", envvar="PARTNERFLOW_USER", default=None, help="See the case as this user.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def show(instance_id: int, login: str | None, as_json: bool) -> None:
    """State, data, history, pending timers and open tasks of a case."""
    rt = open_runtime()
    view = rt.get(instance_id, rt.actor(login) if login else None)
    _print_case(view, as_json, None)


def _print_case(view: dict, as_json: bool, headline: str | None) -> None:
    if as_json:
        echo_json(view)
        return
    if headline:
        click.echo(headline)
        return
    click.echo(f"case {view['id']}  {view['workflow']}  state: {view['state']}  version: {view['version']}"
               + (f"  partner: {view['partner']}" if view["partner"] else ""))
    click.echo(f"data: {json_dumps(view['data'])}")
    click.echo(f"allowed events: {', '.join(view['allowed_events']) or 'none'}")
    click.echo("history:")
    for h in view["history"]:
        click.echo(f"  v{h['version']} {h['at']} {h['actor']}: {h['event']} {h['from'] or '-'} -> {h['to']}"
                   + (f"  \"{h['comment']}\"" if h["comment"] else ""))
    click.echo("pending timers:")
    for t in view["timers"] or []:
        click.echo(f"  {t['name']}: {t['does']}")
    if not view["timers"]:
        click.echo("  none")
    click.echo("open tasks:")
    for t in view["tasks"]:
        click.echo(f"  #{t['id']} [{t['role']}] {t['title']}" + (f" (due {t['due_local']})" if t["due_local"] else ""))
    if not view["tasks"]:
        click.echo("  none")


@main.command()
@click.option("--as", "login", envvar="PARTNERFLOW_USER", required=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def tasks(login: str, as_json: bool) -> None:
    """Open inbox tasks for a user's roles."""
    rt = open_runtime()
    items = rt.open_tasks(rt.actor(login), limit=200)
    if as_json:
        echo_json(items)
        return
    for t in items:
        click.echo(f"#{t['id']} case {t['case']} {t['workflow']} [{t['role']}] {t['title']} due {t['due_at'] or '-'}")
    if not items:
        click.echo("no open tasks")


# ---------------------------------------------------------------- clock
@main.group()
def clock() -> None:
    """The clock (move it only when PARTNERFLOW_CLOCK=simulated)."""


@clock.command("now")
@handle_errors
def clock_now() -> None:
    """Print the current instant (simulated or system)."""
    rt = open_runtime()
    now = rt.now()
    kind = "simulated" if rt.clock.simulated else "system"
    click.echo(f"{now.isoformat()} ({kind})")


@clock.command("advance")
@click.argument("duration")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def clock_advance(duration: str, as_json: bool) -> None:
    """Move simulated time forward by DURATION (7d, 36h, 1d12h, 90m) firing everything due on the way."""
    rt = open_runtime()
    result = rt.advance(parse_duration(duration))
    hooks = heartbeat_hooks()
    for hook in hooks:
        hook(rt)
    summary = {"from": result.start.isoformat(), "to": result.end.isoformat(), "timers_fired": result.timers_fired,
               "timers_obsolete": result.timers_obsolete, "timers_failed": result.timers_failed,
               "schedules_run": result.schedules_run}
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"clock {summary['from']} -> {summary['to']}: {result.timers_fired} timer(s) fired, "
                   f"{result.schedules_run} schedule slot(s) run")


@clock.command("set")
@click.argument("instant")
@handle_errors
def clock_set(instant: str) -> None:
    """Move simulated time to INSTANT (ISO 8601 with offset), firing what falls due on the way forward."""
    from .schema import Field

    rt = open_runtime()
    from datetime import datetime

    target = datetime.fromisoformat(Field("instant", "datetime").clean(instant, "instant"))
    result = rt.advance_to(target)
    click.echo(f"clock -> {result.end.isoformat()}: {result.timers_fired} timer(s) fired")


# ---------------------------------------------------------------- reference data
@main.group()
def partners() -> None:
    """Partners (companies in the program)."""


@partners.command("add")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--program", default="Cloud Solution Provider", show_default=True)
@click.option("--tier", default="Standard", show_default=True)
@click.option("--region", default="CN", show_default=True, help="ISO country code of the holiday calendar.")
@click.option("--timezone", default="Asia/Shanghai", show_default=True)
@click.option("--admin", "admin_login", default=None, help="Login of the partner admin.")
@click.option("--contact-email", default=None)
@click.option("--data", "data_text", default=None, help="Extra JSON (for example notification recipients).")
@handle_errors
def partners_add(data_text: str | None, **values) -> None:
    """Add a partner."""
    from .directory import add_partner

    rt = open_runtime()
    values = {k: v for k, v in values.items() if v is not None}
    if data_text:
        values["data"] = json_arg(data_text, "data")
    now = rt.now()
    with rt.db.write() as conn:
        partner = add_partner(conn, values, now)
    click.echo(f"partner {partner['code']} added (id {partner['id']})")


@partners.command("list")
@click.option("--json", "as_json", is_flag=True)
def partners_list(as_json: bool) -> None:
    """List partners."""
    from sqlalchemy import select

    from .models import Partner

    rt = open_runtime()
    with rt.db.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(Partner.__table__).order_by(Partner.__table__.c.code))]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['code']:<16} {r['name']:<30} {r['program']} / {r['tier']}  {r['region']} {r['timezone']}")


@main.group()
def users() -> None:
    """Users and their roles."""


@users.command("add")
@click.option("--login", required=True)
@click.option("--name", required=True)
@click.option("--email", default=None)
@click.option("--role", "roles", multiple=True, help="Role (repeatable).")
@click.option("--partner", default=None, help="Partner code, for partner users.")
@click.option("--locale", default="en", show_default=True, type=click.Choice(["en", "zh"]))
@click.option("--timezone", default=None)
@click.option("--personal-info/--no-personal-info", "personal_info_complete", default=False,
              help="Has the user maintained their personal information?")
@click.option("--password", default=None, help="Password for the web inbox (at least 8 characters).")
@handle_errors
def users_add(roles, **values) -> None:
    """Add a user."""
    from .directory import add_user

    rt = open_runtime()
    values = {k: v for k, v in values.items() if v is not None}
    values["roles"] = list(roles)
    now = rt.now()
    with rt.db.write() as conn:
        user = add_user(conn, values, now)
    click.echo(f"user {user['login']} added (roles: {', '.join(user['roles']) or 'none'})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
def users_list(as_json: bool) -> None:
    """List users."""
    from sqlalchemy import select

    from .directory import public_user
    from .models import User

    rt = open_runtime()
    with rt.db.read() as conn:
        rows = [public_user(dict(r._mapping)) for r in conn.execute(select(User.__table__).order_by(User.__table__.c.login))]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['login']:<24} {r['name']:<28} {','.join(r['roles'])}")


@main.command()
@click.argument("login")
@click.option("--json", "as_json", is_flag=True)
def vouchers(login: str, as_json: bool) -> None:
    """Exam vouchers a user can see (only issued ones)."""
    from workflows.exam_voucher import vouchers_for

    rt = open_runtime()
    with rt.db.read() as conn:
        items = vouchers_for(conn, login)
    if as_json:
        echo_json(items)
        return
    for v in items:
        click.echo(f"case {v['case']}: {v['exam']}" + (f" code {v['code']}" if v["code"] else ""))
    if not items:
        click.echo("no issued vouchers")


# ---------------------------------------------------------------- processes
@main.command()
@click.option("--interval", default=1.0, show_default=True, help="Seconds between heartbeats.")
@click.option("--once", is_flag=True, help="Run one heartbeat and exit.")
@handle_errors
def worker(interval: float, once: bool) -> None:
    """Run the scheduler only: timers, calendar schedules and the outbox (start as many as you like)."""
    from .scheduler import Heartbeat

    rt = open_runtime()
    beat = Heartbeat(rt, interval, heartbeat_hooks())
    if once:
        beat.beat()
        return
    click.echo(f"partnerflow worker {rt.worker_id} beating every {interval}s on {rt.db.url.split('@')[-1]}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    beat.start()
    try:
        stop.wait()
    finally:
        beat.shutdown()
        rt.db.dispose()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Seed sample partners, users and cases in several states.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between heartbeats.")
@handle_errors
def serve(host: str, port: int, demo: bool, interval: float) -> None:
    """Migrate, then serve the web inbox and API and run the scheduler in this process."""
    from werkzeug.serving import make_server

    from web import create_app

    from .scheduler import Heartbeat

    rt = open_runtime()
    if demo:
        from .demo import seed

        summary = seed(rt)
        click.echo(summary)
    app = create_app({"RUNTIME": rt, "DEMO": demo})
    server = make_server(host, port, app, threaded=True)
    beat = Heartbeat(rt, interval, heartbeat_hooks())
    beat.start()
    click.echo(f"partnerflow listening on http://{host}:{server.server_port}/ (Ctrl-C to stop)")

    def _stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        beat.shutdown()
        rt.db.dispose()


@main.command("web")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes (about 2 per core).")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64), help="Threads per worker.")
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="Address to listen on (HOST:PORT).")
@handle_errors
def web_cmd(workers: int, threads: int, bind: str) -> None:
    """Serve the web inbox and API with gunicorn in several processes (timers run in `partnerflow worker`)."""
    import importlib.util
    import os

    if importlib.util.find_spec("gunicorn") is None:
        raise ValidationError("gunicorn", "is not installed: pip install 'partnerflow[server]'")
    from .migrate import upgrade

    database = Database()
    upgrade(database)  # once, before the workers start
    database.dispose()
    click.echo(f"partnerflow web: {workers} gunicorn workers x {threads} threads on http://{bind}/", err=True)
    argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", str(threads),
            "--bind", bind, "--access-logfile", "-", "web:create_app()"]
    os.execv(sys.executable, argv)


@main.command("demo")
@handle_errors
def demo_cmd() -> None:
    """Seed the demo data without serving (idempotent)."""
    from .demo import seed

    click.echo(seed(open_runtime()))


def _register_plugins() -> None:
    """Add commands contributed by other packages: `CLI` in a lifecycle module, `commands` in
    `notifications.cli` / `web.cli` / `benchmarks.cli` (each a click command or a list of them)."""
    import importlib
    import pkgutil

    import workflows as wf_pkg

    found = []
    for info in sorted(pkgutil.iter_modules(wf_pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"workflows.{info.name}")
        if getattr(module, "CLI", None) is not None:
            found.append(module.CLI)
    for name in ("notifications.cli", "web.cli"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        commands = getattr(module, "commands", [])
        found.extend(commands if isinstance(commands, (list, tuple)) else [commands])
    for cmd in found:
        main.add_command(cmd)


_register_plugins()

if __name__ == "__main__":  # pragma: no cover
    main()
