"""Bounds on what the service accepts at its edge, declared once for every route.

Integers: database ids and counts are signed 64-bit in both databases (SQLite INTEGER,
PostgreSQL BIGINT), so a larger number would overflow inside the driver (a 500); here it is a
422 naming the parameter, and the bound appears in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Annotated

import annotated_types as at
from pydantic import Field

#: Largest signed 64-bit integer: the largest id or count either database stores.
MAX_DB_INT = 2**63 - 1
#: Largest integer a float64 model input holds exactly (larger ones are refused, not rounded).
MAX_EXACT_FLOAT_INT = 2**53

#: A database id (or a version number) in a path, query or body: 1 .. 2^63 - 1.
RowId = Annotated[int, at.Interval(ge=1, le=MAX_DB_INT)]
#: A count, offset or rank: 0 .. 2^63 - 1.
Count = Annotated[int, at.Interval(ge=0, le=MAX_DB_INT)]
#: A finite number (NaN and infinities, which Python's JSON parser accepts, are refused).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: An integer model input: -2^53 .. 2^53.
FeatureInt = Annotated[int, at.Interval(ge=-MAX_EXACT_FLOAT_INT, le=MAX_EXACT_FLOAT_INT)]


def parse_row_id(text: str) -> int | None:
    """A form field holding a database id, or None when it is empty or not a valid id."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_DB_INT)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_DB_INT else None
