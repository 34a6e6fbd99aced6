"""`partnerflow tokens ...`: API tokens (only their SHA-256 is stored; the token is printed once)."""
from __future__ import annotations

import click

from engine.cliutil import echo_json as _echo_json
from engine.cliutil import handle_errors
from engine.cliutil import open_runtime as _runtime

from . import services


@click.group()
def tokens() -> None:
    """API tokens for the JSON API."""


@tokens.command("create")
@click.option("--user", "login", required=True, help="Login the token acts as.")
@click.option("--name", default="api", show_default=True, help="What the token is for.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def tokens_create(login: str, name: str, as_json: bool) -> None:
    """Create a token for USER and print it (it cannot be shown again)."""
    token = services.create_token(_runtime(), login, name)
    if as_json:
        _echo_json(token)
    else:
        click.echo(token["token"])


@tokens.command("list")
@click.option("--user", "login", default=None)
@click.option("--json", "as_json", is_flag=True)
def tokens_list(login: str | None, as_json: bool) -> None:
    """List tokens (prefix only)."""
    items = services.list_tokens(_runtime(), login)
    if as_json:
        _echo_json(items)
        return
    for t in items:
        click.echo(f"#{t['id']} {t['login']:<20} {t['name']:<20} {t['prefix']}…"
                   + (" revoked" if t["revoked_at"] else ""))


@tokens.command("revoke")
@click.argument("token_id", type=int)
@handle_errors
def tokens_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID."""
    services.revoke_token(_runtime(), token_id)
    click.echo(f"token {token_id} revoked")


commands = [tokens]
