"""Feature values as people read them: rounded, with the declared unit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.display import format_value


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (3671.734, "USD", "$3,671.73"),
        (-12.5, "USD", "-$12.50"),
        (26.8333, "days", "26.8 days"),
        (0.000642, "complaints/order", "0.000642 complaints per order"),
        (0.6329, "share", "63%"),
        (0.004, "share", "0.40%"),
        (12345.0, "views", "12,345 views"),
        (3, "hits", "3 hits"),
        (None, "USD", "–"),
        (math.nan, "days", "–"),
        (True, "", "yes"),
        ("bags_luxury", "", "bags_luxury"),
        (302.3963, "", "302"),
        (99.96, "", "100"),
        (1234.5, "", "1,234"),
    ],
)
def test_values_read_with_units(value: object, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_no_number_prints_more_than_a_reader_needs(number: float) -> None:
    text = format_value(number, "days")
    shown = text.removesuffix(" days")
    assert text.endswith(" days") and "e" not in shown
    if "." in shown:  # a fraction shows at most three significant digits
        assert len(shown.replace("-", "").replace(".", "").replace(",", "").lstrip("0")) <= 3
