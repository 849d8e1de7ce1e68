"""How a feature value reads to a person: rounded, with its declared unit.

One renderer for every page and report that shows a feature's value (the unit comes from the
feature declaration, so `listing_price` reads "$3,671.73" and `listing_age_days` "26.8 days").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Units written as a prefix (currency) rather than after the number.
_CURRENCY = {"USD": "$"}
#: Units whose values are fractions shown as percentages.
_PERCENT_UNITS = frozenset({"share"})


def format_value(value: Any, unit: str = "") -> str:
    """`value` rounded for reading, with `unit` ("–" when missing)."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    number = float(value)
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if unit in _CURRENCY:
        sign = "-" if number < 0 else ""
        return f"{sign}{_CURRENCY[unit]}{abs(number):,.2f}"
    if unit in _PERCENT_UNITS:
        return f"{number:.0%}" if abs(number) >= 0.01 or number == 0 else f"{number:.2%}"
    text = _round(number)
    if not unit:
        return text
    return f"{text} {unit.replace('/', ' per ')}"


def _round(number: float) -> str:
    """Whole numbers with separators; others to three significant digits (0.00064, 26.8)."""
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    magnitude = abs(number)
    if magnitude >= 99.95:
        return f"{number:,.0f}"
    if magnitude < 5e-7:
        return "0"
    return np.format_float_positional(number, precision=3, unique=False, fractional=False, trim="-")
