"""Risk bands: named probability ranges, checked and assigned one way for online and batch.

A band table maps each band's name to its lower probability bound; the lowest band starts at
0.0, so every probability falls in exactly one band. The bundle may carry its own bands;
otherwise `GOVRISK_RISK_BANDS` (serving settings) applies.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from models.bundle import ModelBundle
from serving.settings import get_settings

#: (name, lower bound) pairs, lowest bound first.
BandTable = tuple[tuple[str, float], ...]


class RiskBandError(ValueError):
    """The band table cannot place every probability in one band."""


def band_table(bands: Mapping[str, float]) -> BandTable:
    """The bands ordered by lower bound; refused when empty or not starting at 0.0."""
    if not bands:
        raise RiskBandError("risk bands are empty; set GOVRISK_RISK_BANDS or the bundle's bands")
    ordered = tuple(sorted(((str(k), float(v)) for k, v in bands.items()), key=lambda kv: kv[1]))
    if ordered[0][1] > 0.0:
        raise RiskBandError(f"the lowest risk band must start at 0.0, got {ordered[0]}")
    return ordered


def bundle_bands(bundle: ModelBundle, override: Mapping[str, float] | None = None) -> BandTable:
    """The bands a bundle is scored with: `override`, else its own, else the settings'."""
    return band_table(override or bundle.risk_bands or get_settings().risk_bands)


def assign_bands(table: BandTable, probability: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """Each probability's band name (the band whose lower bound is the largest not above it)."""
    names = np.array([name for name, _ in table], dtype=object)
    lower = np.array([lo for _, lo in table], dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    index = np.clip(np.searchsorted(lower, p, side="right") - 1, 0, None)
    return names[index] if p.size else np.empty(0, dtype=object)
