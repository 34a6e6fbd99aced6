"""`partnerflow mdf`: a partner's MDF position (cap used and remaining, bar, unpaid bills) and the bars in force."""
from __future__ import annotations

import click

from engine.cliutil import echo_json, handle_errors, open_runtime


@click.group("mdf")
def CLI() -> None:
    """Market Development Fund: budgets and bars (FAQ 4.4.1, 4.4.6, 4.4.10)."""


@CLI.command("budget")
@click.argument("partner")
@click.option("--year", type=int, default=None, help="Calendar year of the activities (default: this year).")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def budget_cmd(partner: str, year: int | None, as_json: bool) -> None:
    """Yearly cap, approved and pending amounts, what remains, bar and unpaid bills of PARTNER."""
    from engine.calendar import calendar_for
    from engine.mdf import _partner, budget

    rt = open_runtime()
    now = rt.now()
    with rt.db.read() as conn:
        p = _partner(conn, partner)
        year = year or calendar_for(p["region"], p["timezone"]).local_date(now).year
        info = budget(conn, partner, year, now)
    if as_json:
        echo_json(info)
        return
    c = info["currency"]
    click.echo(f"{info['partner']} ({info['program']} / {info['tier']}) MDF {info['year']}: cap {c} {info['cap']}, "
               f"approved {c} {info['approved']}, pending {c} {info['pending']}, remaining {c} {info['remaining']}")
    click.echo(f"released solutions: {', '.join(info['released_solutions']) or 'none (MDF applications refused)'}")
    if info["barred_until"]:
        click.echo(f"barred from MDF until {info['barred_until']}")
    for b in info["unpaid_bills"]:
        click.echo(f"unpaid bill {b['number']} (cycle {b['cycle']}): {b['currency']} {b['outstanding']} owed")


@CLI.command("bars")
@click.option("--partner", default=None)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def bars_cmd(partner: str | None, as_json: bool) -> None:
    """Partners barred from MDF after a confirmed order-splitting violation."""
    from engine.mdf import bars

    rt = open_runtime()
    with rt.db.read() as conn:
        rows = bars(conn, partner)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['partner']:<10} until {r['until']} (claim {r['claim']}, by {r['confirmed_by']}): {r['reason']}")
    if not rows:
        click.echo("no bars")
