"""Typed errors of the engine: each says what is wrong in words a user can act on.

Every refusal raised before commit leaves the database unchanged: the runtime
raises inside its transaction and the transaction is rolled back.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


class PartnerflowError(Exception):
    """Base of every error the engine raises on purpose."""

    #: HTTP status the web layer maps this error to.
    status = 400
    #: Short machine-readable code for API clients.
    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"code": self.code, "detail": self.message}


class ValidationError(PartnerflowError):
    """Bad input: names the field and why it is refused."""

    status = 422
    code = "validation_error"

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason

    def to_dict(self) -> dict:
        return {**super().to_dict(), "field": self.field}


class RuleViolation(PartnerflowError):
    """A lifecycle rule refuses the request (a guard failed); the message names the rule."""

    status = 422
    code = "rule_violation"

    def __init__(self, message: str, rule: str | None = None):
        super().__init__(message)
        self.rule = rule

    def to_dict(self) -> dict:
        return {**super().to_dict(), "rule": self.rule}


class Forbidden(PartnerflowError):
    """The actor lacks a role (or another permission) the action needs."""

    status = 403
    code = "forbidden"


class NotFound(PartnerflowError):
    status = 404
    code = "not_found"


class Conflict(PartnerflowError):
    """The request clashes with the current state of the data."""

    status = 409
    code = "conflict"


class EventNotAllowed(Conflict):
    """The event cannot fire from the instance's current state; lists what can."""

    code = "event_not_allowed"

    def __init__(self, event: str, state: str, allowed: Iterable[str], last_change: str = "",
                 others: Iterable[str] = ()):
        self.event = event
        self.state = state
        self.allowed = sorted(set(allowed))
        others = sorted(set(others) - set(self.allowed))
        if self.allowed:
            allowed_text = ", ".join(self.allowed)
        elif others:
            allowed_text = f"none for you (others may: {', '.join(others)})"
        else:
            allowed_text = "none (final state)"
        extra = f" ({last_change})" if last_change else ""
        super().__init__(
            f"event '{event}' is not allowed in state '{state}'{extra}; allowed now: {allowed_text}"
        )

    def to_dict(self) -> dict:
        return {**super().to_dict(), "state": self.state, "allowed": self.allowed}


class StaleVersion(Conflict):
    code = "stale_version"

    def __init__(self, instance_id: int, expected: int, actual: int):
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"case {instance_id} is at version {actual}, not {expected}: "
            "someone changed it since you loaded it; reload and try again"
        )

    def to_dict(self) -> dict:
        return {**super().to_dict(), "expected_version": self.expected, "version": self.actual}


class LockHeld(Conflict):
    """A subject lock is held by another owner until a given instant."""

    code = "lock_held"

    def __init__(self, key: str, until: datetime, message: str | None = None):
        self.key = key
        self.until = until
        super().__init__(message or f"{key} is locked until {until.isoformat()}")


#: The largest id a 64-bit integer column holds (PostgreSQL BIGINT, SQLite INTEGER).
MAX_ID = 2**63 - 1


def whole_number(field: str, raw, what: str = "a whole number", *, low: int = -MAX_ID - 1,
                 high: int = MAX_ID) -> int:
    """`raw` (text or int) as an int between `low` and `high`, or a `ValidationError` naming `field`.

    Ids and cursors go to 64-bit columns: a bigger number would fail inside the database driver.
    """
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise ValidationError(field, f"{raw!r} is not {what}")  # JSON's true, 1.5, Infinity and NaN
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(field, f"{raw!r} is not {what}") from None
    if not low <= value <= high:
        raise ValidationError(field, f"{value} is out of range ({low} to {high})")
    return value
