"""What every ``partnerflow`` command shares: the runtime, JSON arguments and output, refusals as exit status 1.

`engine.cli` and the ``CLI`` groups of the lifecycle modules use these. This
module never imports `engine.cli` (which imports every lifecycle module to
collect their commands), so a lifecycle module may import it at the top.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any, TypeVar

import click

from .db import Database, json_dumps
from .errors import PartnerflowError, ValidationError
from .schema import Field

F = TypeVar("F", bound=Callable[..., Any])


def open_runtime():
    """A runtime on the database named by ``DATABASE_URL``, migrated to the newest schema first."""
    from .migrate import upgrade
    from .runtime import Runtime

    db = Database()
    upgrade(db)
    return Runtime(db)


def handle_errors(fn: F) -> F:
    """A refusal of the engine (`PartnerflowError`) prints ``error: <message>`` on stderr and exits with status 1."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PartnerflowError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def json_arg(text: str | None, name: str) -> dict:
    """A JSON object given as text or as ``@file.json``; empty text is ``{}``."""
    if text is None or text == "":
        return {}
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as fh:
            text = fh.read()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(name, f"is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, dict):
        raise ValidationError(name, "must be a JSON object")
    return value


def date_arg(value: str | None, name: str) -> date | None:
    """A ``YYYY-MM-DD`` option (spaces around it ignored) as a date; None when not given."""
    cleaned = Field(name, "date", required=False).clean(value, name)
    return date.fromisoformat(cleaned) if cleaned else None


def echo_json(value) -> None:
    """Print a value as indented JSON (datetimes, dates and decimals as the database layer writes them)."""
    click.echo(json.dumps(json.loads(json_dumps(value)), indent=2, ensure_ascii=False))
