"""Configurable numbers of the lifecycles, read from ``PARTNERFLOW_<NAME>`` environment variables.

Rules that LIFECYCLES.md leaves to the operator (reminder lead times and the
like) are declared with `setting` beside the rule, with their default, so a
deployment can change them without code. Values are read when used, so a
test or the CLI can set them per process.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from .errors import ValidationError

T = TypeVar("T")


def setting(name: str, default: T, cast: Callable[[str], T] = int) -> T:  # type: ignore[assignment]
    raw = os.environ.get(f"PARTNERFLOW_{name.upper()}")
    if raw is None or raw.strip() == "":
        return default
    try:
        return cast(raw.strip())
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"PARTNERFLOW_{name.upper()}", f"cannot read {raw!r}: {exc}") from exc
