"""Online parity: the vector built from a payload and the snapshot equals the batch row."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import FeatureBuild, build_features
from features.catalog import feature_types
from features.online import (
    PayloadError,
    build_online_frame,
    build_online_vector,
    payloads_from_table,
)
from features.snapshot import FeatureSnapshot
from features.tables import ITEM_TABLES
from features.vocabulary import Entity
from tests.factories import START, make_tables

CUTOFF = START + timedelta(days=45)
_KEYS = {
    Entity.LISTING: "listing_id",
    Entity.VIDEO: "video_id",
    Entity.LIVE: "live_id",
    Entity.SELLER: "seller_id",
}


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    return make_tables(2500, seed=7)


@pytest.fixture(scope="module")
def built(world: dict[str, pd.DataFrame]) -> FeatureBuild:
    return build_features(world, as_of=CUTOFF, threads=1)


@pytest.fixture(scope="module")
def snapshot(built: FeatureBuild, tmp_path_factory: pytest.TempPathFactory) -> FeatureSnapshot:
    directory = tmp_path_factory.mktemp("snapshot")
    built.snapshot.write(directory)
    return FeatureSnapshot.load(directory)


def _payloads(world: dict[str, pd.DataFrame], entity: Entity) -> dict[str, dict[str, object]]:
    payloads = payloads_from_table(entity, world[ITEM_TABLES[entity].name])
    return {str(p[_KEYS[entity]]): p for p in payloads}


def _same(batch: object, online: object, kind: str) -> bool:
    """Floats bit for bit (NaN included); a missing category is None online."""
    if kind == "numeric":
        return (
            isinstance(online, float)
            and np.float64(batch).tobytes() == np.float64(online).tobytes()
        )
    if kind == "categorical" and isinstance(batch, float) and math.isnan(batch):
        return online is None
    if kind == "boolean":
        return online is bool(batch)  # type: ignore[arg-type]
    return type(online) is type(batch) and online == batch


@pytest.mark.parametrize("entity", list(Entity))
def test_online_vector_equals_batch_row(
    entity: Entity,
    world: dict[str, pd.DataFrame],
    built: FeatureBuild,
    snapshot: FeatureSnapshot,
) -> None:
    frame = built.frames[entity]
    payloads = _payloads(world, entity)
    columns = list(frame.columns)
    kinds = ["categorical", *feature_types(entity).values()]
    checked = 0
    for row in frame.itertuples(index=False):
        vector = build_online_vector(entity, payloads[row[0]], snapshot)
        assert list(vector) == columns
        for name, kind, batch_value in zip(columns, kinds, row, strict=True):
            assert _same(batch_value, vector[name], kind), (entity, row[0], name, batch_value)
        checked += 1
    assert checked == len(frame) > 10


def test_online_frame_equals_batch_frame(
    world: dict[str, pd.DataFrame], built: FeatureBuild, snapshot: FeatureSnapshot
) -> None:
    frame = built.frames[Entity.LISTING]
    payloads = _payloads(world, Entity.LISTING)
    online = build_online_frame(Entity.LISTING, [payloads[i] for i in frame["item_id"]], snapshot)
    pd.testing.assert_frame_equal(online, frame, check_exact=True)


def test_a_new_item_gets_snapshot_aggregates_and_empty_history(
    world: dict[str, pd.DataFrame], built: FeatureBuild, snapshot: FeatureSnapshot
) -> None:
    existing = built.frames[Entity.LISTING].iloc[0]
    payload = _payloads(world, Entity.LISTING)[existing["item_id"]]
    payload = {
        **payload,
        "listing_id": "L-new",
        "image_hash": "never-seen",
        "title": "Replica watch",
        "description": "1:1 dupe",
    }
    vector = build_online_vector(Entity.LISTING, payload, snapshot)
    assert vector["listing_counterfeit_term_count"] == 3.0
    assert vector["listing_image_shared_sellers"] == 0.0
    assert vector["exposure_impressions_7d"] == 0.0
    assert vector["strategy_hit_count"] == 0.0
    assert math.isnan(vector["exposure_ctr_7d"])  # type: ignore[arg-type]
    for name, kind in feature_types(Entity.LISTING).items():
        if name.startswith("seller_"):
            assert _same(existing[name], vector[name], kind), name


def test_as_of_moves_ages_not_aggregates(
    world: dict[str, pd.DataFrame], snapshot: FeatureSnapshot
) -> None:
    payload = next(iter(_payloads(world, Entity.LISTING).values()))
    base = build_online_vector(Entity.LISTING, payload, snapshot)
    later = build_online_vector(Entity.LISTING, payload, snapshot, as_of=CUTOFF + timedelta(days=2))
    assert later["listing_age_days"] == base["listing_age_days"] + 2  # type: ignore[operator]
    assert later["seller_tenure_days"] == base["seller_tenure_days"] + 2  # type: ignore[operator]
    assert later["seller_complaint_rate_30d"] == base["seller_complaint_rate_30d"]


def test_live_without_end_time_is_ongoing(
    world: dict[str, pd.DataFrame], snapshot: FeatureSnapshot
) -> None:
    payload = {**next(iter(_payloads(world, Entity.LIVE).values())), "ended_at": None}
    payload["started_at"] = datetime(2025, 2, 14, 23, 30)
    vector = build_online_vector(Entity.LIVE, payload, snapshot)
    assert vector["live_is_ongoing"] is True
    assert vector["live_duration_minutes"] == 30.0


def test_timestamps_as_iso_strings_and_aware_datetimes(
    world: dict[str, pd.DataFrame], snapshot: FeatureSnapshot
) -> None:
    payload = next(iter(_payloads(world, Entity.VIDEO).values()))
    created = payload["created_at"]
    assert isinstance(created, datetime)
    as_text = build_online_vector(
        Entity.VIDEO, {**payload, "created_at": created.isoformat()}, snapshot
    )
    aware = created.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=8)))
    as_aware = build_online_vector(Entity.VIDEO, {**payload, "created_at": aware}, snapshot)
    assert as_text["video_age_days"] == as_aware["video_age_days"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"price": None}, r"item\.price: required field missing"),
        ({"price": "12"}, r"item\.price: must be a number"),
        ({"price": float("nan")}, r"item\.price: must be finite"),
        ({"price": -1.0}, r"item\.price: must be >= 0"),
        ({"price": True}, r"item\.price: must be a number"),
        ({"price": 10**400}, r"item\.price: must be a number within the range"),
        ({"title": 5}, r"item\.title: must be text"),
        ({"created_at": "yesterday"}, r"item\.created_at: must be an ISO 8601 timestamp"),
        ({"colour": "red"}, r"item\.colour: unknown field"),
    ],
)
def test_payload_errors_name_the_field(
    change: dict[str, object],
    message: str,
    world: dict[str, pd.DataFrame],
    snapshot: FeatureSnapshot,
) -> None:
    payload = {**next(iter(_payloads(world, Entity.LISTING).values())), **change}
    with pytest.raises(PayloadError, match=message):
        build_online_vector(Entity.LISTING, payload, snapshot)


def test_seller_enum_and_extra_fields(
    world: dict[str, pd.DataFrame], snapshot: FeatureSnapshot
) -> None:
    payload = next(iter(_payloads(world, Entity.SELLER).values()))
    with pytest.raises(PayloadError, match=r"verification: must be one of"):
        build_online_vector(Entity.SELLER, {**payload, "verification": "gold"}, snapshot)
    vector = build_online_vector(Entity.SELLER, {**payload, "note": "x"}, snapshot, extra="ignore")
    assert vector["item_id"] == payload["seller_id"]
    with pytest.raises(PayloadError) as err:
        build_online_frame(Entity.SELLER, [payload, {"seller_id": 3}], snapshot)
    assert any(p.startswith("items[1].seller_id") for p in err.value.problems)


def test_loading_a_missing_snapshot_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="govrisk features build"):
        FeatureSnapshot.load(tmp_path)
