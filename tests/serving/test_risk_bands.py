"""Risk bands: one table, checked the same way online and in batch."""

from __future__ import annotations

import numpy as np
import pytest

from serving.risk_bands import RiskBandError, assign_bands, band_table


def test_each_probability_falls_in_the_band_whose_lower_bound_is_below_it() -> None:
    table = band_table({"high": 0.7, "low": 0.0, "medium": 0.3})
    assert [name for name, _ in table] == ["low", "medium", "high"]
    got = assign_bands(table, [0.0, 0.29999, 0.3, 0.69, 0.7, 1.0])
    assert list(got) == ["low", "low", "medium", "medium", "high", "high"]


def test_no_probabilities_give_no_bands() -> None:
    assert assign_bands(band_table({"low": 0.0}), np.empty(0)).shape == (0,)


@pytest.mark.parametrize(
    ("bands", "message"),
    [({}, "empty"), ({"medium": 0.3, "high": 0.7}, "must start at 0.0")],
)
def test_a_table_that_leaves_scores_without_a_band_is_refused(
    bands: dict[str, float], message: str
) -> None:
    with pytest.raises(RiskBandError, match=message):
        band_table(bands)
