"""Registry client: names, tracking URIs, challenger/champion aliases and the promotion gate."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.calibration import Calibration
from models.encoding import FeatureEncoder
from models.registry import (
    CALIBRATION_FILE,
    CHALLENGER,
    CHAMPION,
    DEFAULT_TRACKING_URI,
    ENCODER_FILE,
    MODEL_TEXT_FILE,
    PROMOTIONS_EXPERIMENT,
    RUN_MODEL_DIR,
    TAG_CHAMPION_EVALUATED,
    TAG_GATE_SLICE_MARGIN,
    RegistryError,
    auc_lower_bound,
    chance_check,
    compare,
    list_models,
    load_scoring_model,
    model_name,
    promote,
    register_version,
    resolve_tracking_uri,
    use_tracking_uri,
    version_for_alias,
)

pytestmark = pytest.mark.xdist_group("models-registry")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty migrated MLflow store, created once (migrations take seconds)."""
    import mlflow

    path = tmp_path_factory.mktemp("registry-template") / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    mlflow.search_experiments()
    return path


@pytest.fixture
def store(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh store per test, with tmp_path as the working directory (artifact root)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    shutil.copy(template, tmp_path / "mlflow.db")
    uri = use_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    import mlflow

    mlflow.set_experiment("registry-tests")
    yield uri


def _tiny_model(seed: int = 0) -> tuple[lgb.Booster, FeatureEncoder, Calibration, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "listing_category": pd.array(rng.choice(["bags", "toys"], 400), dtype="str"),
            "listing_price": rng.gamma(2.0, 20.0, 400),
        }
    )
    y = ((frame["listing_category"] == "bags") & (frame["listing_price"] > 30)).astype(int)
    encoder = FeatureEncoder(categorical=["listing_category"], numeric=["listing_price"])
    X = encoder.fit_transform(frame)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "deterministic": True},
        lgb.Dataset(X, y, categorical_feature=[0], feature_name=encoder.feature_names_),
        num_boost_round=5,
    )
    return booster, encoder, Calibration.platt(-1.0, 0.0), frame


def _version(
    name: str,
    metrics: dict[str, float],
    *,
    tags: dict[str, str] | None = None,
    run_tags: dict[str, str] | None = None,
) -> str:
    """Log a run with `metrics` and the plain model files, register it; returns the version."""
    import mlflow

    booster, encoder, calibration, _ = _tiny_model()
    with mlflow.start_run(run_name=name) as run:
        mlflow.log_metrics(metrics)
        if run_tags:
            mlflow.set_tags(run_tags)
        mlflow.log_text(booster.model_to_string(), f"{RUN_MODEL_DIR}/{MODEL_TEXT_FILE}")
        mlflow.log_dict(encoder.to_dict(), f"{RUN_MODEL_DIR}/{ENCODER_FILE}")
        mlflow.log_dict(calibration.to_dict(), f"{RUN_MODEL_DIR}/{CALIBRATION_FILE}")
    version = register_version(
        f"runs:/{run.info.run_id}/{RUN_MODEL_DIR}",
        name=name,
        run_id=run.info.run_id,
        tags=tags,
    )
    return str(version.version)


GOOD = {"pr_auc": 0.60, "pr_auc__slice__channel.shop_tab": 0.55, "pr_auc__slice__seller.new": 0.4}


def test_model_names_follow_entity_and_policy() -> None:
    assert model_name("listing", "counterfeit") == "govrisk-listing-counterfeit"
    assert model_name("listing", "any") == "govrisk-listing-any"
    assert model_name("video", "engagement_fraud") == "govrisk-video-engagement-fraud"
    assert model_name("live", "any", prefix="acme") == "acme-live-any"


def test_tracking_uri_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert resolve_tracking_uri() == "http://mlflow:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    pg = resolve_tracking_uri("postgresql://postgres@127.0.0.1:5432/mlflow")
    assert pg.startswith("postgresql") and pg.endswith("@127.0.0.1:5432/mlflow")


def test_registering_moves_the_challenger_alias(store: str) -> None:
    name = "govrisk-listing-any"
    first = _version(name, GOOD, tags={"govrisk.spec": "unit"})
    assert str(version_for_alias(name, CHALLENGER).version) == first  # type: ignore[union-attr]
    second = _version(name, GOOD)
    assert str(version_for_alias(name, CHALLENGER).version) == second  # type: ignore[union-attr]
    assert version_for_alias(name, CHAMPION) is None
    assert version_for_alias("govrisk-nothing-here", CHALLENGER) is None


def test_first_promotion_needs_no_champion_and_is_logged(store: str) -> None:
    from mlflow import MlflowClient

    name = "govrisk-listing-counterfeit"
    v1 = _version(name, GOOD)
    decision = promote(name)
    assert decision.promoted and decision.basis == "no champion"
    assert str(version_for_alias(name, CHAMPION).version) == v1  # type: ignore[union-attr]
    client = MlflowClient()
    tags = client.get_model_version(name, v1).tags
    assert tags["govrisk.promotion.decision"] == "promoted"
    assert tags["govrisk.promotion.against"] == "none"
    run = client.get_run(tags["govrisk.promotion.run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == PROMOTIONS_EXPERIMENT
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "promotion")}
    assert artifacts == {"promotion/decision.json", "promotion/comparison.csv"}
    again = promote(name)
    assert not again.promoted and again.basis == "same version"


def test_worse_challenger_is_refused_and_champion_stays(store: str) -> None:
    name = "govrisk-listing-counterfeit"
    v1 = _version(name, GOOD)
    promote(name)
    v2 = _version(name, {**GOOD, "pr_auc": 0.50})
    decision = promote(name)
    assert not decision.promoted
    assert decision.champion_version == v1 and decision.challenger_version == v2
    assert decision.basis.startswith("each model's own holdout")
    assert "does not beat" in decision.reason
    table = decision.table()
    overall = table.loc[table["check"] == "pr_auc"].iloc[0]
    assert overall["champion"] == 0.60 and overall["challenger"] == 0.50
    assert overall["passed"] is not None and not overall["passed"]
    assert str(version_for_alias(name, CHAMPION).version) == v1  # type: ignore[union-attr]


def test_a_slice_worse_by_more_than_the_margin_blocks_promotion(store: str) -> None:
    name = "govrisk-video-any"
    _version(name, GOOD)
    promote(name)
    better_but_new_sellers_worse = {
        "pr_auc": 0.70,
        "pr_auc__slice__channel.shop_tab": 0.60,
        "pr_auc__slice__seller.new": 0.35,
    }
    v2 = _version(name, better_but_new_sellers_worse, tags={TAG_GATE_SLICE_MARGIN: "0.02"})
    refused = promote(name)
    assert not refused.promoted and "seller.new" in refused.reason
    assert refused.slice_margin == 0.02  # from the version's gate tag
    allowed = promote(name, slice_margin=0.1)
    assert allowed.promoted and allowed.slice_margin == 0.1
    assert str(version_for_alias(name, CHAMPION).version) == v2  # type: ignore[union-attr]


def test_same_holdout_metrics_are_preferred(store: str) -> None:
    name = "govrisk-live-any"
    v1 = _version(name, {"pr_auc": 0.30})
    promote(name)
    # On its own (easier) holdout the champion looked worse; on the challenger's holdout it
    # scores 0.7, which the challenger (0.65) does not beat.
    _version(
        name,
        {"pr_auc": 0.65, "champion__pr_auc": 0.70},
        run_tags={TAG_CHAMPION_EVALUATED: v1},
    )
    decision = promote(name)
    assert decision.basis.startswith("same holdout")
    assert not decision.promoted
    table = decision.table().set_index("check")
    assert table.loc["pr_auc", "champion"] == pytest.approx(0.70)


def test_promote_without_a_challenger_is_an_error(store: str) -> None:
    with pytest.raises(RegistryError, match="has no 'challenger' version"):
        promote("govrisk-listing-prohibited-item")


def test_compare_rules() -> None:
    passed, rows, _ = compare(
        {"pr_auc": 0.5, "pr_auc__slice__a": 0.5, "pr_auc__slice__b": 0.3},
        {"pr_auc": 0.4, "pr_auc__slice__a": 0.51, "pr_auc__slice__c": 0.9},
        min_gain=0.05,
        slice_margin=0.02,
    )
    by_check = {r.check: r for r in rows}
    assert passed
    assert by_check["pr_auc__slice__a"].passed is True
    assert by_check["pr_auc__slice__b"].passed is None  # champion lacks it: not compared
    assert by_check["pr_auc__slice__c"].passed is None
    failed, _, reason = compare({"pr_auc": 0.44}, {"pr_auc": 0.4}, min_gain=0.05)
    assert not failed and "by > 0.05" in reason
    missing, _, reason = compare({}, {"pr_auc": 0.4})
    assert not missing and "missing" in reason


def test_list_models_shows_aliases_and_gate_metric(store: str) -> None:
    _version("govrisk-listing-any", {"pr_auc": 0.61})
    promote("govrisk-listing-any")
    _version("govrisk-listing-any", {"pr_auc": 0.64})
    _version("other-model", {"pr_auc": 0.1})
    table = list_models()
    assert list(table["name"]) == ["govrisk-listing-any"]
    row = table.iloc[0]
    assert row["versions"] == 2 and row["champion"] == "1" and row["challenger"] == "2"
    assert row["champion_pr_auc"] == pytest.approx(0.61)
    assert row["challenger_pr_auc"] == pytest.approx(0.64)


def test_scoring_model_loads_the_plain_model_files(store: str) -> None:
    name = "govrisk-listing-fake-discount"
    _version(name, GOOD)
    model = load_scoring_model(name, alias=CHALLENGER)
    assert model is not None and model.version == "1"
    booster, encoder, calibration, frame = _tiny_model()
    expected = calibration.apply(booster.predict(encoder.transform(frame), raw_score=True))
    np.testing.assert_allclose(model.predict_proba(frame), expected)
    assert load_scoring_model(name, alias=CHAMPION) is None


def test_decision_serialises(store: str) -> None:
    name = "govrisk-listing-low-quality"
    _version(name, GOOD)
    decision = promote(name, log_decision=False)
    doc = json.loads(json.dumps(decision.to_dict(), default=str))
    assert doc["promoted"] is True and doc["log_run_id"] is None
    rows = {r["check"]: r for r in doc["rows"]}
    assert math.isnan(rows["pr_auc"]["champion"])
    assert rows["roc_auc above chance"]["passed"] is None  # GOOD logs no ROC-AUC


def test_a_model_no_better_than_chance_is_refused_even_without_a_champion(store: str) -> None:
    name = "govrisk-listing-misleading-claim"
    counts = {"n": 200.0, "n_positive": 40.0}
    _version(name, {**GOOD, **counts, "roc_auc": 0.52})
    refused = promote(name)
    assert not refused.promoted and refused.basis == "chance check"
    assert "no better than chance" in refused.reason
    assert version_for_alias(name, CHAMPION) is None
    v2 = _version(name, {**GOOD, **counts, "roc_auc": 0.75})
    accepted = promote(name)
    assert accepted.promoted, accepted.reason
    assert str(version_for_alias(name, CHAMPION).version) == v2  # type: ignore[union-attr]
    assert accepted.table().set_index("check").loc["roc_auc above chance", "passed"]


def test_the_chance_bound_keeps_its_error_rates() -> None:
    """Under the null (scores unrelated to labels) the 95% bound clears 0.5 about 2.5% of the
    time; for a real AUC of 0.70 (binormal) the bound stays below the truth about 97.5%."""
    from scipy.stats import norm
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    y = np.r_[np.ones(40), np.zeros(160)]
    shift = float(np.sqrt(2) * norm.ppf(0.70))  # binormal AUC = Phi(shift / sqrt(2))
    null_pass = below_truth = 0
    for _ in range(400):
        null = roc_auc_score(y, rng.normal(size=200))
        null_pass += auc_lower_bound(null, 40, 160, 0.95) > 0.5
        real = roc_auc_score(y, rng.normal(size=200) + shift * y)
        below_truth += auc_lower_bound(real, 40, 160, 0.95) <= 0.70
    assert null_pass / 400 <= 0.06
    assert below_truth / 400 >= 0.93
    missing = chance_check({"roc_auc": 0.9})
    assert missing.passed is None and "not checked" in missing.rule
