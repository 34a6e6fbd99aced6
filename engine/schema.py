"""Small declarative input schemas: validation with field-named errors, and JSON Schema export.

A lifecycle declares the data it accepts at start and with each event as a
`Schema` of fields. `Schema.clean` returns JSON-ready data (money as strings
of `Decimal`, dates and instants in ISO 8601 with UTC) or raises
`ValidationError` naming the first bad field. The same declaration feeds the
OpenAPI document.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .clock import require_aware
from .errors import ValidationError

EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
MAX_MONEY = Decimal("1000000000000")  # 10^12: larger amounts are input errors, not money


@dataclass(frozen=True)
class Field:
    """One input field. `kind` is one of str, text, email, int, money, bool, date, datetime, choice, list, object, json."""

    name: str
    kind: str = "str"
    required: bool = True
    default: Any = None
    max_length: int | None = None
    min_length: int | None = None
    pattern: str | None = None
    pattern_hint: str | None = None
    choices: Sequence[str] | None = None
    minimum: Decimal | int | None = None
    maximum: Decimal | int | None = None
    items: "Schema | Field | None" = None
    max_items: int | None = None
    min_items: int | None = None
    description: str = ""
    check: Callable[[Any], str | None] | None = None  # returns an error text or None

    def clean(self, value: Any, path: str) -> Any:
        if value is None or (isinstance(value, str) and value.strip() == "" and self.kind not in ("text",)):
            if self.required:
                raise ValidationError(path, "is required")
            return self.default
        cleaned = getattr(self, f"_clean_{self.kind}")(value, path)
        if self.check is not None:
            problem = self.check(cleaned)
            if problem:
                raise ValidationError(path, problem)
        return cleaned

    # -- kinds ------------------------------------------------------------
    def _text_checks(self, value: Any, path: str, strip: bool) -> str:
        if not isinstance(value, str):
            raise ValidationError(path, f"must be text, got {type(value).__name__}")
        if strip:
            value = value.strip()
        if "\x00" in value:
            raise ValidationError(path, "must not contain NUL characters")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(path, f"is {len(value)} characters long; at most {self.max_length} allowed")
        if self.min_length is not None and len(value) < self.min_length:
            raise ValidationError(path, f"must be at least {self.min_length} characters long")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ValidationError(path, self.pattern_hint or f"must match {self.pattern}")
        return value

    def _clean_str(self, value, path):
        value = self._text_checks(value, path, strip=True)
        if "\r" in value or "\n" in value:
            raise ValidationError(path, "must be a single line (no line breaks)")
        return value

    def _clean_text(self, value, path):
        return self._text_checks(value, path, strip=False)

    def _clean_email(self, value, path):
        value = self._clean_str(value, path)
        if len(value) > 254 or not EMAIL_RE.match(value):
            raise ValidationError(path, f"{value!r} is not a valid email address")
        return value

    def _clean_int(self, value, path):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValidationError(path, f"must be a whole number, got {type(value).__name__}")
        try:
            number = int(value)
        except ValueError as exc:
            raise ValidationError(path, f"{value!r} is not a whole number") from exc
        self._range(Decimal(number), path)
        return number

    def _clean_money(self, value, path):
        if isinstance(value, bool) or isinstance(value, float):
            raise ValidationError(path, "money must be given as a string or integer (for example \"1200.50\"), never a float")
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValidationError(path, f"{value!r} is not an amount of money") from exc
        if not amount.is_finite():
            raise ValidationError(path, "must be a finite amount")
        if amount.as_tuple().exponent < -2:
            raise ValidationError(path, "has more than 2 decimal places")
        if abs(amount) >= MAX_MONEY:
            raise ValidationError(path, f"is too large (at most {MAX_MONEY - 1})")
        minimum = Decimal(0) if self.minimum is None else Decimal(self.minimum)
        if amount < minimum:
            raise ValidationError(path, f"must not be below {minimum}" if minimum else "must not be negative")
        self._range(amount, path, skip_min=True)
        return str(amount.quantize(Decimal("0.01")))

    def _range(self, number: Decimal, path: str, skip_min: bool = False) -> None:
        if not skip_min and self.minimum is not None and number < Decimal(self.minimum):
            raise ValidationError(path, f"must be at least {self.minimum}")
        if self.maximum is not None and number > Decimal(self.maximum):
            raise ValidationError(path, f"must be at most {self.maximum}")

    def _clean_bool(self, value, path):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ValidationError(path, "must be true or false")

    def _clean_date(self, value, path):
        if isinstance(value, datetime):
            raise ValidationError(path, "must be a date (YYYY-MM-DD), not a date and time")
        if isinstance(value, date):
            return value.isoformat()
        if not isinstance(value, str):
            raise ValidationError(path, "must be a date as YYYY-MM-DD")
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError as exc:
            raise ValidationError(path, f"{value!r} is not a date as YYYY-MM-DD") from exc

    def _clean_datetime(self, value, path):
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError as exc:
                raise ValidationError(path, f"{value!r} is not an ISO 8601 date and time") from exc
        return require_aware(value, path).isoformat()

    def _clean_choice(self, value, path):
        if not isinstance(value, str) or value not in (self.choices or ()):
            raise ValidationError(path, f"{value!r} is not one of: {', '.join(self.choices or ())}")
        return value

    def _clean_list(self, value, path):
        if not isinstance(value, list):
            raise ValidationError(path, "must be a list")
        if self.max_items is not None and len(value) > self.max_items:
            raise ValidationError(path, f"has {len(value)} items; at most {self.max_items} allowed")
        if self.min_items is not None and len(value) < self.min_items:
            raise ValidationError(path, f"needs at least {self.min_items} item(s)")
        out = []
        for i, item in enumerate(value):
            if isinstance(self.items, Schema):
                out.append(self.items.clean(item, prefix=f"{path}[{i}]."))
            elif isinstance(self.items, Field):
                out.append(self.items.clean(item, f"{path}[{i}]"))
            else:
                out.append(item)
        return out

    def _clean_object(self, value, path):
        if not isinstance(self.items, Schema):
            raise TypeError("object fields need items=Schema(...)")
        return self.items.clean(value, prefix=f"{path}.")

    def _clean_json(self, value, path):
        return value

    # -- JSON Schema ------------------------------------------------------
    def json_schema(self) -> dict:
        kind = self.kind
        if kind in ("str", "text"):
            s: dict = {"type": "string"}
        elif kind == "email":
            s = {"type": "string", "format": "email"}
        elif kind == "int":
            s = {"type": "integer"}
        elif kind == "money":
            s = {"type": "string", "pattern": r"^\d+(\.\d{1,2})?$", "description": "Decimal amount as text"}
        elif kind == "bool":
            s = {"type": "boolean"}
        elif kind == "date":
            s = {"type": "string", "format": "date"}
        elif kind == "datetime":
            s = {"type": "string", "format": "date-time"}
        elif kind == "choice":
            s = {"type": "string", "enum": list(self.choices or ())}
        elif kind == "list":
            item = self.items.json_schema() if self.items is not None else {}
            s = {"type": "array", "items": item}
            if self.max_items is not None:
                s["maxItems"] = self.max_items
            if self.min_items is not None:
                s["minItems"] = self.min_items
        elif kind == "object":
            s = self.items.json_schema()  # type: ignore[union-attr]
        else:
            s = {}
        if self.max_length is not None:
            s["maxLength"] = self.max_length
        if self.min_length is not None:
            s["minLength"] = self.min_length
        if self.minimum is not None and kind == "int":
            s["minimum"] = int(self.minimum)
        if self.maximum is not None and kind == "int":
            s["maximum"] = int(self.maximum)
        if self.description:
            s["description"] = self.description
        return s


@dataclass(frozen=True)
class Schema:
    """An object of named fields; unknown fields are refused."""

    fields: tuple[Field, ...] = field(default_factory=tuple)
    allow_extra: bool = False

    def __init__(self, *fields: Field, allow_extra: bool = False):
        object.__setattr__(self, "fields", tuple(fields))
        object.__setattr__(self, "allow_extra", allow_extra)

    def clean(self, data: Mapping[str, Any] | None, prefix: str = "") -> dict:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValidationError(prefix.rstrip(".") or "data", "must be a JSON object")
        known = {f.name for f in self.fields}
        if not self.allow_extra:
            unknown = sorted(k for k in data if k not in known)
            if unknown:
                raise ValidationError(prefix + unknown[0], f"unknown field (accepted: {', '.join(sorted(known)) or 'none'})")
        out = {k: v for k, v in data.items() if k not in known} if self.allow_extra else {}
        for f in self.fields:
            value = f.clean(data.get(f.name), prefix + f.name)
            if value is not None:
                out[f.name] = value
        return out

    def json_schema(self) -> dict:
        return {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.fields},
            "required": [f.name for f in self.fields if f.required],
            "additionalProperties": self.allow_extra,
        }


EMPTY = Schema()
#: The comment a person may add to a start or an event (shown in the case history); checked by the runtime
#: whatever the interface (NUL characters are refused: PostgreSQL text cannot hold them).
COMMENT = Field("comment", "text", required=False, max_length=4000, description="Shown in the case history")
