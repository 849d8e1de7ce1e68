"""Training sets: label de-duplication, any-violation, point-in-time joins, weights and slices."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.synthetic.labeled_frames import SyntheticData
from features.vocabulary import Entity
from training.dataset import (
    DatasetError,
    EntityData,
    assemble,
    channel_membership,
    detect_new_categories,
    feature_cutoff,
    prepare_labels,
    training_set,
    week_start,
)


def _labels(rows: list[tuple[str, str, str, str, str, float]]) -> pd.DataFrame:
    """Audit labels from (item, policy, verdict, reviewed_at, sampling, inclusion) tuples."""
    df = pd.DataFrame(
        rows,
        columns=[
            "item_id",
            "policy",
            "verdict",
            "reviewed_at",
            "sampling",
            "inclusion_probability",
        ],
    )
    df["reviewed_at"] = pd.to_datetime(df["reviewed_at"]).astype("datetime64[us]")
    df.insert(0, "entity", "listing")
    df.insert(0, "label_id", [f"A{i}" for i in range(len(df))])
    df["reviewer_id"] = "r1"
    return df


def _one(labels: pd.DataFrame, item: str, policy: str) -> pd.Series:
    row = labels.loc[(labels["item_id"] == item) & (labels["policy"] == policy)]
    assert len(row) == 1
    return row.iloc[0]


def test_majority_verdict_and_tie_goes_to_latest() -> None:
    raw = _labels(
        [
            ("L1", "counterfeit", "violating", "2025-01-07", "random", 0.1),
            ("L1", "counterfeit", "violating", "2025-01-08", "appeal", 1.0),
            ("L1", "counterfeit", "not_violating", "2025-01-09", "appeal", 1.0),
            ("L2", "counterfeit", "violating", "2025-01-07", "random", 0.1),
            ("L2", "counterfeit", "not_violating", "2025-01-10", "appeal", 1.0),
        ]
    )
    majority = prepare_labels(raw, entity=Entity.LISTING)
    l1 = _one(majority, "L1", "counterfeit")
    assert l1["y"] == 1 and l1["n_reviews"] == 3
    assert l1["reviewed_at"] == pd.Timestamp("2025-01-09")
    assert l1["inclusion_probability"] == 1.0 and l1["sampling"] == "appeal"
    assert _one(majority, "L2", "counterfeit")["y"] == 0  # tie: the latest review wins
    latest = prepare_labels(raw, entity=Entity.LISTING, dedupe="latest")
    assert _one(latest, "L1", "counterfeit")["y"] == 0


def test_any_violation_on_partially_judged_items() -> None:
    raw = _labels(
        [
            ("L1", "counterfeit", "not_violating", "2025-01-07", "random", 0.05),
            ("L1", "fake_discount", "violating", "2025-01-08", "strategy_flagged", 0.5),
            ("L2", "counterfeit", "not_violating", "2025-01-07", "random", 0.05),
            ("L3", "counterfeit", "not_violating", "2025-01-07", "random", 0.05),
            ("L3", "low_quality", "not_violating", "2025-01-09", "random", 0.05),
        ]
    )
    labels = prepare_labels(raw, entity=Entity.LISTING)
    any1 = _one(labels, "L1", "any")
    assert any1["y"] == 1 and any1["reviewed_at"] == pd.Timestamp("2025-01-08")
    assert any1["inclusion_probability"] == 0.5 and any1["sampling"] == "strategy_flagged"
    # Judged only on counterfeit and clean: negative on the evidence there is.
    assert _one(labels, "L2", "any")["y"] == 0
    assert _one(labels, "L3", "any")["n_reviews"] == 2
    assert set(labels["policy"]) == {"counterfeit", "fake_discount", "low_quality", "any"}


def test_labels_of_other_entities_are_ignored() -> None:
    raw = _labels([("L1", "counterfeit", "violating", "2025-01-07", "random", 0.1)])
    raw.loc[0, "entity"] = "video"
    assert prepare_labels(raw, entity=Entity.LISTING).empty


def test_label_table_problems_name_the_column() -> None:
    raw = _labels([("L1", "counterfeit", "violating", "2025-01-07", "random", 0.1)])
    with pytest.raises(DatasetError, match=r"audit_labels lacks column\(s\) \['sampling'\]"):
        prepare_labels(raw.drop(columns="sampling"), entity=Entity.LISTING)
    with pytest.raises(DatasetError, match="audit_labels.verdict"):
        prepare_labels(raw.assign(verdict="maybe"), entity=Entity.LISTING)


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
def test_week_start_is_the_monday_before(ts: datetime) -> None:
    start = week_start(pd.Series([pd.Timestamp(ts)]))[0]
    assert start.day_of_week == 0 and start == start.normalize()
    assert start <= pd.Timestamp(ts) < start + timedelta(days=7)


def test_every_label_gets_features_as_of_its_week_start(
    synthetic: SyntheticData, entity_data: EntityData
) -> None:
    labels = entity_data.labels
    assert (labels["as_of"] == week_start(labels["reviewed_at"])).all()
    assert (labels["as_of"] <= labels["reviewed_at"]).all()
    rows = entity_data.features.iloc[labels["row"].to_numpy()]
    assert (rows["item_id"].to_numpy() == labels["item_id"].to_numpy()).all()
    assert (rows["as_of"].to_numpy() == labels["as_of"].to_numpy()).all()
    # The joined row is exactly the frame built as of that cutoff.
    sample = labels.sample(50, random_state=0)
    for label in sample.itertuples():
        frame = synthetic.frames[label.as_of].set_index("item_id")
        got = entity_data.features.iloc[label.row]
        expected = frame.loc[label.item_id]
        assert got["listing_age_days"] == expected["listing_age_days"]
        assert got["seller_tenure_days"] == expected["seller_tenure_days"]


def test_items_created_after_the_cutoff_are_dropped_and_counted(
    synthetic: SyntheticData, entity_data: EntityData
) -> None:
    created = synthetic.items.set_index("item_id")["created_at"]
    everything = prepare_labels(synthetic.audit_labels, entity=Entity.LISTING)
    late = (
        created.loc[everything["item_id"]].to_numpy()
        >= feature_cutoff(everything["reviewed_at"]).to_numpy()
    )
    assert late.sum() > 0
    assert entity_data.dropped == {"item_created_after_cutoff": int(late.sum())}
    assert len(entity_data.labels) == len(everything) - int(late.sum())


def test_daily_cutoff_keeps_more_labels(synthetic: SyntheticData) -> None:
    labels = prepare_labels(synthetic.audit_labels, entity=Entity.LISTING)
    from experiments.synthetic.labeled_frames import frame_as_of

    cutoff = feature_cutoff(labels["reviewed_at"], cadence="day")
    frames = {}
    for t in cutoff.unique():
        wanted = labels.loc[(cutoff == t).to_numpy(), "item_id"]
        items = synthetic.items.loc[synthetic.items["item_id"].isin(wanted)]
        frames[pd.Timestamp(t)] = frame_as_of(items, pd.Timestamp(t))
    daily = assemble(
        frames,
        labels,
        entity=Entity.LISTING,
        feature_types=synthetic.feature_types,
        cadence="day",
    )
    weekly_kept = len(labels) - sum(
        assemble(
            synthetic.frames,
            labels,
            entity=Entity.LISTING,
            feature_types=synthetic.feature_types,
        ).dropped.values()
    )
    assert len(daily.labels) > weekly_kept
    assert (daily.labels["as_of"] == daily.labels["reviewed_at"].dt.floor("D")).all()


def test_weights_are_normalised_inverse_inclusion(entity_data: EntityData) -> None:
    ts = training_set(entity_data, "counterfeit")
    p = ts.meta["inclusion_probability"].to_numpy()
    assert np.isclose(ts.weight.mean(), 1.0)
    np.testing.assert_allclose(ts.weight * p, (ts.weight * p)[0])  # proportional to 1/p
    random = (ts.meta["sampling"] == "random").to_numpy()
    assert ts.weight[random].min() > ts.weight[~random].max()
    flat = training_set(entity_data, "counterfeit", weighting="none")
    assert np.allclose(flat.weight, 1.0)
    capped = training_set(entity_data, "counterfeit", max_weight=1.5)
    assert capped.weight.max() < ts.weight.max() and np.isclose(capped.weight.mean(), 1.0)


def test_training_set_is_sorted_in_time_and_aligned(entity_data: EntityData) -> None:
    ts = training_set(entity_data, "any")
    assert ts.meta["reviewed_at"].is_monotonic_increasing
    assert list(ts.X.columns) == list(entity_data.feature_types)
    assert len(ts.X) == len(ts.y) == len(ts.weight) == len(ts.meta)
    assert set(np.unique(ts.y)) == {0, 1}
    assert ts.meta["item_id"].is_unique
    assert ts.digest() == training_set(entity_data, "any").digest()
    assert ts.digest() != training_set(entity_data, "counterfeit").digest()


def test_slices_cover_channel_category_seller_and_new_category(
    entity_data: EntityData,
) -> None:
    ts = training_set(entity_data, "any")
    names = set(ts.slices["slice"])
    assert {"channel.shop_tab", "category.bags", "seller.new", "seller.established"} <= names
    assert "new_category.phones" in names
    new = ts.slices.loc[ts.slices["slice"] == "new_category.phones", "position"]
    assert (ts.X.iloc[new.to_numpy()]["listing_category"] == "phones").all()
    young = ts.slices.loc[ts.slices["slice"] == "seller.new", "position"].to_numpy()
    assert (ts.X.iloc[young]["seller_tenure_days"] < 90).all()


def test_feature_selection_restricts_model_inputs(synthetic: SyntheticData) -> None:
    from training.spec import FeatureSelection

    labels = prepare_labels(synthetic.audit_labels, entity=Entity.LISTING)
    data = assemble(
        synthetic.frames,
        labels,
        entity=Entity.LISTING,
        feature_types=synthetic.feature_types,
        feature_selection=FeatureSelection(include=("listing_*",), exclude=("*_age_days",)),
    )
    assert all(n.startswith("listing_") for n in data.feature_names)
    assert "listing_age_days" not in data.feature_names
    # Unselected features still ride along for scoring other models (the champion).
    assert "seller_tenure_days" in data.features.columns
    with pytest.raises(DatasetError, match="keeps no listing feature"):
        assemble(
            synthetic.frames,
            labels,
            entity=Entity.LISTING,
            feature_types=synthetic.feature_types,
            feature_selection=FeatureSelection(include=("nothing*",)),
        )


def test_missing_frame_or_feature_is_a_clear_error(synthetic: SyntheticData) -> None:
    labels = prepare_labels(synthetic.audit_labels, entity=Entity.LISTING)
    first = min(synthetic.frames)
    partial = {k: v for k, v in synthetic.frames.items() if k != first}
    with pytest.raises(DatasetError, match="no listing feature frame as of"):
        assemble(partial, labels, entity=Entity.LISTING, feature_types=synthetic.feature_types)
    broken = {
        k: v.drop(columns="listing_price_to_category_median") for k, v in synthetic.frames.items()
    }
    with pytest.raises(DatasetError, match="lacks selected feature"):
        assemble(broken, labels, entity=Entity.LISTING, feature_types=synthetic.feature_types)


def test_channel_membership_uses_exposure_and_decisions() -> None:
    exposure = pd.DataFrame(
        {
            "entity": ["listing", "listing", "video"],
            "item_id": ["L1", "L2", "V1"],
            "channel": ["shop_tab", "campaigns", "video"],
            "impressions": [10, 0, 5],
        }
    )
    decisions = pd.DataFrame({"entity": ["listing"], "item_id": ["L2"], "channel": ["shop_ads"]})
    got = channel_membership(
        {"channel_exposure": exposure, "strategy_decisions": decisions}, entity=Entity.LISTING
    )
    pairs = set(zip(got["item_id"], got["channel"], strict=True))
    assert pairs == {("L1", "shop_tab"), ("L2", "shop_ads")}


def test_new_categories_are_those_launched_late() -> None:
    listings = pd.DataFrame(
        {
            "category": ["bags", "bags", "phones", "toys"],
            "created_at": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-02-10", "2025-01-05"]),
        }
    )
    assert detect_new_categories(listings, after_days=14) == ["phones"]
    assert detect_new_categories(listings, after_days=60) == []


def test_partially_judged_items_get_expected_any_labels(
    entity_data: EntityData, partial_entity_data: EntityData
) -> None:
    from training.dataset import expected_any_labels, judged_policies, partially_judged

    assert judged_policies(partial_entity_data) == ["counterfeit", "fake_discount"]
    full = training_set(entity_data, "any")
    assert not partially_judged(full, entity_data).any()
    ts = training_set(partial_entity_data, "any")
    partial = partially_judged(ts, partial_entity_data)
    assert partial.sum() == 100 and (ts.y[partial] == 0).all()
    p = {"counterfeit": np.full(len(ts), 0.3), "fake_discount": np.full(len(ts), 0.2)}
    imputed = expected_any_labels(ts, partial_entity_data, p)
    # Judged clean on counterfeit only: violates fake_discount with probability 0.2.
    np.testing.assert_allclose(imputed.y[partial], 0.2)
    np.testing.assert_array_equal(imputed.y[~partial], ts.y[~partial])
    assert imputed.n_positive == round(ts.y.sum() + 20)
    with pytest.raises(DatasetError, match="no violation probabilities"):
        expected_any_labels(ts, partial_entity_data, {"counterfeit": p["counterfeit"]})
