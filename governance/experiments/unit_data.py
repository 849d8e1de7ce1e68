"""Per-unit metric sums of an experiment, built from the contract tables.

Every item maps to its randomisation unit through its listing (videos and lives through the
listing they promote): `item` is the item itself, `seller` the listing's seller, `category` the
listing's leaf category. The nightly enforcement (experiments/simulator) uses the same mapping
and the same hash, so offline analysis and enforcement agree on every unit's arm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from features.vocabulary import Channel, Entity, OutcomeKind
from governance.experiments.analysis import PRE_PREFIX
from governance.experiments.assignment import assign
from governance.experiments.declaration import Experiment
from governance.experiments.metrics import UNIT_COLUMNS
from governance.experiments.vocabulary import Arm, RandomisationUnit

_ITEM_TABLES: dict[Entity, tuple[str, str]] = {
    Entity.LISTING: ("listings", "listing_id"),
    Entity.VIDEO: ("videos", "video_id"),
    Entity.LIVE: ("live_sessions", "live_id"),
}
_OUTCOME_COLUMNS: dict[OutcomeKind, str] = {
    OutcomeKind.COMPLAINT: "complaints",
    OutcomeKind.RETURN: "returns",
    OutcomeKind.APPEAL: "appeals",
}


def item_units(tables: Mapping[str, pd.DataFrame], unit: RandomisationUnit) -> pd.DataFrame:
    """One row per listing, video and live: `entity`, `item_id`, `unit_id`."""
    for name in ("listings", "videos", "live_sessions"):
        if name not in tables:
            raise ValueError(f"table {name} is missing; item units need listings, videos, lives")
    listings = tables["listings"].set_index("listing_id")
    parts = []
    for entity, (name, key) in _ITEM_TABLES.items():
        df = tables[name]
        listing = df[key] if entity is Entity.LISTING else df["listing_id"]
        if unit is RandomisationUnit.ITEM:
            unit_ids = df[key].astype(str).to_numpy()
        else:
            column = "seller_id" if unit is RandomisationUnit.SELLER else "category"
            unit_ids = listings[column].reindex(listing.to_numpy()).astype(str).to_numpy()
        parts.append(
            pd.DataFrame(
                {"entity": entity.value, "item_id": df[key].astype(str), "unit_id": unit_ids}
            )
        )
    return pd.concat(parts, ignore_index=True)


def unit_metrics(
    tables: Mapping[str, pd.DataFrame],
    experiment: Experiment,
    *,
    as_of: datetime | None = None,
    channels: Sequence[Channel] | None = None,
) -> pd.DataFrame:
    """Per-unit sums over [start, min(end, as_of)) and the pre-period, with each unit's arm.

    Columns: `unit_id`, `arm`, the UNIT_COLUMNS and `pre_<column>` for each. Traffic counts in
    `channels` (default: the experiment's channels, every channel when it names none); outcomes
    without a channel (appeals) always count. Units outside the experiment are left out.
    """
    for name in ("channel_exposure", "outcomes"):
        if name not in tables:
            raise ValueError(f"table {name} is missing; unit metrics need it")
    end = experiment.end if as_of is None else min(experiment.end, as_of)
    start = experiment.start
    pre_start = start - timedelta(days=experiment.pre_period_days)
    wanted = list(channels) if channels is not None else list(experiment.channels)
    mapping = item_units(tables, experiment.unit)
    universe = pd.Index(pd.unique(mapping["unit_id"]), name="unit_id")
    key = mapping.set_index(["entity", "item_id"])["unit_id"]

    exposure = tables["channel_exposure"]
    if wanted:
        exposure = exposure[exposure["channel"].isin([c.value for c in wanted])]
    outcomes = tables["outcomes"]
    if wanted:
        keep = outcomes["channel"].isna() | outcomes["channel"].isin([c.value for c in wanted])
        outcomes = outcomes[keep]

    def window(lo: datetime, hi: datetime) -> pd.DataFrame:
        day = pd.to_datetime(exposure["day"])
        ex = exposure[(day >= lo) & (day < hi)]
        ex_units = _lookup(key, ex["entity"], ex["item_id"])
        sums = (
            ex[["impressions", "orders", "gmv"]].assign(unit_id=ex_units).groupby("unit_id").sum()
        )
        at = pd.to_datetime(outcomes["occurred_at"])
        oc = outcomes[(at >= lo) & (at < hi)]
        oc_units = _lookup(key, oc["entity"], oc["item_id"])
        frame = sums.reindex(universe, fill_value=0).astype(np.float64)
        for kind, column in _OUTCOME_COLUMNS.items():
            m = (oc["kind"] == kind.value).to_numpy()
            frame[column] = (
                pd.Series(1.0, index=oc_units[m]).groupby(level=0).sum().reindex(universe)
            ).fillna(0.0)
        nps = (oc["kind"] == OutcomeKind.NPS.value).to_numpy()
        values = pd.Series(oc["value"].to_numpy()[nps], index=oc_units[nps])
        frame["nps_sum"] = values.groupby(level=0).sum().reindex(universe).fillna(0.0)
        frame["nps_count"] = values.groupby(level=0).size().reindex(universe).fillna(0.0)
        return frame[list(UNIT_COLUMNS)]

    post = window(start, end)
    pre = window(pre_start, start).add_prefix(PRE_PREFIX)
    out = pd.concat([post, pre], axis=1).reset_index()
    out.insert(
        1, "arm", assign(experiment.id, out["unit_id"], traffic_share=experiment.traffic_share)
    )
    return out[out["arm"] != Arm.OUTSIDE.value].reset_index(drop=True)


def _lookup(key: pd.Series, entity: pd.Series, item_id: pd.Series) -> np.ndarray:
    """Unit ids of (entity, item_id) pairs; unknown items get their own id as a unit."""
    index = pd.MultiIndex.from_arrays([entity.astype(str), item_id.astype(str)])
    found = key.reindex(index).to_numpy(dtype=object)
    missing = pd.isna(found)
    found[missing] = item_id.astype(str).to_numpy()[missing]
    return found
