"""`whole_number`: ids, cursors and limits from text or JSON, refused with the field named when they are not one."""
from __future__ import annotations

import pytest

from engine.errors import MAX_ID, ValidationError, whole_number


@pytest.mark.parametrize("raw, value", [("42", 42), (" 7 ", 7), (42, 42), (3.0, 3), (str(MAX_ID), MAX_ID),
                                        (-MAX_ID - 1, -MAX_ID - 1)])
def test_whole_numbers_are_taken(raw, value):
    assert whole_number("case", raw) == value


@pytest.mark.parametrize("raw, reason", [
    (True, "True is not a whole number"), (1.5, "1.5 is not a whole number"),
    (float("inf"), "inf is not a whole number"), (float("nan"), "nan is not a whole number"),
    ("²", "'²' is not a whole number"), ("12a", "'12a' is not a whole number"), (None, "None is not a whole number"),
    (MAX_ID + 1, f"{MAX_ID + 1} is out of range"), (str(-MAX_ID - 2), f"{-MAX_ID - 2} is out of range"),
])
def test_anything_else_is_refused_naming_the_field(raw, reason):
    with pytest.raises(ValidationError, match="case") as err:
        whole_number("case", raw)
    assert reason in str(err.value)


def test_a_range_is_inclusive_at_both_ends():
    assert [whole_number("limit", n, low=1, high=200) for n in (1, 200)] == [1, 200]
    for n in (0, 201):
        with pytest.raises(ValidationError, match=f"limit: {n} is out of range \\(1 to 200\\)"):
            whole_number("limit", n, low=1, high=200)
