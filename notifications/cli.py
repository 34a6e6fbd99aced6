"""Command line for email: mail preview, delivery, operator retry/discard, recipients and preferences.

``partnerflow mail list|show|retry|discard|send``, ``partnerflow partners
recipients CODE``, ``partnerflow users reminders LOGIN`` and ``partnerflow
users digest LOGIN``. `engine.cli` adds `commands`; the sub-commands of the
engine's ``partners`` and ``users`` groups are attached at the end of this
module.
"""
from __future__ import annotations

import click

from engine import cli as engine_cli
from engine.cliutil import echo_json as _echo_json
from engine.cliutil import handle_errors
from engine.cliutil import open_runtime as _runtime


@click.group()
def mail() -> None:
    """Emails in the outbox: preview, deliver, retry or discard."""


@mail.command("list")
@click.option("--status", default=None, help="Only this status (queued, sent, captured, failed, ...).")
@click.option("--to", "recipient", default=None, help="Only this recipient address.")
@click.option("--case", type=int, default=None, help="Only emails of this case.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def mail_list(status, recipient, case, limit, as_json) -> None:
    """List emails, newest first, with their subject and status."""
    from .outbox import list_messages

    rt = _runtime()
    with rt.db.read() as conn:
        items = list_messages(conn, status=status, recipient=recipient, case=case, limit=limit)
    if as_json:
        _echo_json(items)
        return
    for m in items:
        subject = m["subject"] if m["subject"] is not None else f"(cannot render: {m['render_error']})"
        click.echo(f"#{m['id']:<5} {m['status']:<9} {m['created_at'][:16]}  {m['recipient']:<32} {m['locale']}  {subject}")
        if m["status"] == "failed" and m["last_error"]:
            click.echo(f"       {m['last_error']}")
    if not items:
        click.echo("no emails")


@mail.command("show")
@click.argument("message_id", type=int)
@click.option("--html", "as_html", is_flag=True, help="Print the HTML part instead of the text part.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def mail_show(message_id: int, as_html: bool, as_json: bool) -> None:
    """Show one email rendered (headers and text, or HTML) and its delivery log."""
    from .outbox import get_message

    rt = _runtime()
    with rt.db.read() as conn:
        m = get_message(conn, message_id)
    if as_json:
        _echo_json(m)
        return
    if as_html:
        if m["html"] is None:
            raise click.ClickException(f"message {message_id} cannot be rendered: {m['render_error']}")
        click.echo(m["html"])
        return
    click.echo(f"Message-ID: {m['message_id']}")
    click.echo(f"To: {m['recipient']}" + (f" ({m['recipient_login']})" if m["recipient_login"] else ""))
    click.echo(f"Subject: {m['subject'] if m['subject'] is not None else '-'}")
    click.echo(f"Template: {m['template']} [{m['locale']}, {m['timezone']}]  category: {m['category']}")
    click.echo(f"Status: {m['status']}  attempts: {m['attempts']}" + (f"  last error: {m['last_error']}" if m["last_error"] else ""))
    click.echo("")
    click.echo(m["text"] if m["text"] is not None else f"(cannot render: {m['render_error']})")
    if m["log"]:
        click.echo("Delivery log:")
        for a in m["log"]:
            click.echo(f"  {a['at']} {a['outcome']}" + (f" {a['code']}" if a["code"] else "") +
                       (f": {a['detail']}" if a["detail"] else ""))


@mail.command("retry")
@click.argument("message_id", type=int)
@click.option("--as", "login", envvar="PARTNERFLOW_USER", default="operator", help="Who retries (for the log).")
@handle_errors
def mail_retry(message_id: int, login: str) -> None:
    """Queue a failed (or discarded) email again; it keeps its Message-ID."""
    from .outbox import retry_message

    rt = _runtime()
    with rt.db.write() as conn:
        m = retry_message(conn, message_id, rt.now(), login)
    click.echo(f"message {m['id']} queued again for {m['recipient']}")


@mail.command("discard")
@click.argument("message_id", type=int)
@click.option("--as", "login", envvar="PARTNERFLOW_USER", default="operator", help="Who discards (for the log).")
@handle_errors
def mail_discard(message_id: int, login: str) -> None:
    """Drop a queued or failed email: it will never be sent."""
    from .outbox import discard_message

    rt = _runtime()
    with rt.db.write() as conn:
        m = discard_message(conn, message_id, rt.now(), login)
    click.echo(f"message {m['id']} to {m['recipient']} discarded")


@mail.command("send")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def mail_send(as_json: bool) -> None:
    """Deliver (or, with no SMTP host, capture) every due email now, plus due digests."""
    from .digest import run_digests
    from .dispatcher import Dispatcher

    rt = _runtime()
    digests = run_digests(rt)
    result = Dispatcher(rt).dispatch()
    summary = {**result.as_dict(), "digests_queued": digests}
    if as_json:
        _echo_json(summary)
        return
    click.echo(", ".join(f"{k} {v}" for k, v in summary.items()))


# ---------------------------------------------------------------- recipients and preferences
@click.command("recipients")
@click.argument("code")
@click.option("--category", default=None, help="Message category, for example finance.")
@click.option("--add", "add", multiple=True, help="Address to add (repeatable).")
@click.option("--remove", "remove", multiple=True, help="Address to remove (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def partner_recipients_cmd(code: str, category: str | None, add, remove, as_json: bool) -> None:
    """Show or change a partner's extra email recipients per message category."""
    from .preferences import partner_recipients, set_partner_recipients

    rt = _runtime()
    if (add or remove) and not category:
        raise click.UsageError("--category is required with --add or --remove")
    with rt.db.write() as conn:
        if add or remove:
            result = set_partner_recipients(conn, code, category, add=list(add), remove=list(remove))
        else:
            result = partner_recipients(conn, code)
    if category and not (add or remove):
        result = {category: result.get(category, [])}
    if as_json:
        _echo_json(result)
        return
    for cat, addresses in result.items():
        click.echo(f"{code} {cat}: {', '.join(addresses) or '-'}")
    if not result:
        click.echo(f"{code}: no extra recipients")


@click.command("reminders")
@click.argument("login")
@click.option("--off", "state", flag_value="off", help="Stop reminder emails (money deadlines still arrive).")
@click.option("--on", "state", flag_value="on", help="Receive reminder emails again.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def user_reminders_cmd(login: str, state: str | None, as_json: bool) -> None:
    """Show or change whether a user receives reminder emails."""
    from .preferences import preferences, set_reminder_opt_out

    rt = _runtime()
    with rt.db.write() as conn:
        prefs = set_reminder_opt_out(conn, login, state == "off") if state else preferences(conn, login)
    if as_json:
        _echo_json(prefs)
        return
    click.echo(f"{login}: reminders {'off' if prefs['reminders_opt_out'] else 'on'}"
               " (messages about deadlines that change money always arrive)")


@click.command("digest")
@click.argument("login")
@click.option("--on", "state", flag_value="on", help="One daily digest of open tasks instead of one email per task.")
@click.option("--off", "state", flag_value="off", help="One email per new task again.")
@click.option("--hour", type=click.IntRange(0, 23), default=None, help="Local hour of the digest (default 9).")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def user_digest_cmd(login: str, state: str | None, hour: int | None, as_json: bool) -> None:
    """Show or change a user's daily digest of open tasks."""
    from .preferences import preferences, set_digest

    rt = _runtime()
    with rt.db.write() as conn:
        if state is not None or hour is not None:
            current = preferences(conn, login)["digest"]
            prefs = set_digest(conn, login, (state == "on") if state else current, rt.now(), hour)
        else:
            prefs = preferences(conn, login)
    if as_json:
        _echo_json(prefs)
        return
    if prefs["digest"]:
        click.echo(f"{login}: daily digest on, at {prefs['digest_hour']:02d}:00 "
                   f"{prefs['timezone'] or 'Asia/Shanghai'} on working days; next {prefs['next_digest_at']}")
    else:
        click.echo(f"{login}: daily digest off (one email per new task)")


commands = [mail]


def _attach() -> None:
    for cmd in commands:
        engine_cli.main.add_command(cmd)
    engine_cli.partners.add_command(partner_recipients_cmd)
    engine_cli.users.add_command(user_reminders_cmd)
    engine_cli.users.add_command(user_digest_cmd)


_attach()
