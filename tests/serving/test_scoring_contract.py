"""A model's inputs come from its own feature declaration when it brought one (BYO data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.schema import Feature, feature_from_dict, feature_to_dict
from serving.batch import read_output, read_quarantine, score_file
from serving.scoring_contract import catalog_entity, model_inputs
from tests.models.bundle_factory import DESCRIPTIONS, make_frame, train_bundle

#: A declaration that differs from the listing catalogue: price without a unit (so no
#: minimum), the brand flag declared numeric.
DECLARATION = [
    feature_to_dict(Feature(name, "numeric", DESCRIPTIONS[name]))
    for name in ("listing_price", "listing_has_brand")
]


def test_a_declared_bundle_is_validated_against_its_declaration() -> None:
    frame, y = make_frame(300, seed=1)
    catalogue = train_bundle(frame, y, n_trees=5)
    own = train_bundle(frame, y, n_trees=5, metadata={"feature_declaration": DECLARATION})
    by_name = {i.name: i for i in model_inputs(catalogue)}
    assert by_name["listing_price"].minimum == 0.0
    assert by_name["listing_has_brand"].kind == "boolean"
    by_name = {i.name: i for i in model_inputs(own)}
    assert by_name["listing_price"].minimum is None
    assert by_name["listing_has_brand"].kind == "numeric"
    assert catalog_entity(catalogue) == "listing" and catalog_entity(own) is None


def test_feature_dicts_round_trip() -> None:
    feature = Feature("seconds_to_buy", "numeric", "Seconds.", unit="s", version=2, signed=True)
    assert feature_from_dict(feature_to_dict(feature)) == feature


@pytest.mark.parametrize(("policy", "quarantined"), [("quarantine", 21), ("missing", 0)])
def test_unknown_categories_quarantined_or_scored_as_missing(
    tmp_path: Path, policy: str, quarantined: int
) -> None:
    frame, y = make_frame(300, seed=2)
    bundle = train_bundle(frame, y, n_trees=5)
    bundle.threads = 1
    scoring, _ = make_frame(200, seed=3)
    scoring.loc[10:30, "listing_category"] = "never-seen"
    scoring.to_parquet(tmp_path / "in.parquet")
    summary = score_file(
        bundle,
        tmp_path / "in.parquet",
        tmp_path / "out",
        unknown_categories=policy,  # type: ignore[arg-type]
    )
    assert summary.rows_quarantined == quarantined
    assert len(read_output(tmp_path / "out")) == 200 - quarantined
    if quarantined:
        assert read_quarantine(tmp_path / "out")["reason"].str.contains("unknown category").all()


def test_v1_score_checks_a_declared_bundle_against_its_declaration() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from serving.model_store import ModelStore
    from serving.scoring_api import install, router

    frame, y = make_frame(300, seed=4)
    own = train_bundle(frame, y, n_trees=5, metadata={"feature_declaration": DECLARATION})
    own.threads = 1
    app = FastAPI()
    app.include_router(router)
    install(app, ModelStore.fixed(own, uri="models:/byo/1"))
    row = frame.drop(columns="item_id").iloc[0].to_dict()
    features = {k: (None if v != v else v) for k, v in row.items()}
    features = {k: (v.item() if hasattr(v, "item") else v) for k, v in features.items()}
    features["listing_price"] = -5.0  # below the catalogue's domain, not the declaration's
    features["listing_has_brand"] = 1  # a number, as declared
    with TestClient(app) as client:
        ok = client.post("/v1/score", json={"items": [{"item_id": "a", "features": features}]})
        assert ok.status_code == 200, ok.text
        raw = client.post("/v1/score", json={"items": [{"item_id": "a", "fields": {"x": 1}}]})
        assert raw.status_code == 422
        assert "features are its dataset's own" in raw.text, raw.text
