"""`train(spec)` end to end on a throwaway SQLite store: runs, metrics, artifacts, registry."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.vocabulary import Entity
from govrisk import build_app
from models.registry import (
    CHALLENGER,
    CHAMPION,
    PROMOTIONS_EXPERIMENT,
    TAG_CHAMPION_EVALUATED,
    load_scoring_model,
    promote,
    use_tracking_uri,
    version_for_alias,
)
from training.dataset import EntityData, frame_digest, training_set
from training.pipeline import OOF_FILE, TrainResult, train
from training.plots import PLOT_FILES
from training.spec import ExperimentSpec, parse_spec

pytestmark = pytest.mark.xdist_group("training-mlflow")

COUNTERFEIT = "govrisk-listing-counterfeit"


@dataclass
class Trained:
    result: TrainResult
    spec: ExperimentSpec
    uri: str
    base: Path
    data: EntityData


def _spec(base: Path, **sections: Any) -> ExperimentSpec:
    raw: dict[str, Any] = {
        "name": "unit",
        "data_dir": str(base / "data"),
        "output_dir": str(base / "out"),
        "targets": [{"entity": "listing", "policies": ["counterfeit", "any"]}],
        "labels": {"min_positives": 10},
        "lightgbm": {"num_threads": 1, "num_boost_round": 150, "num_leaves": 15},
        "split": {"cv_folds": 3},
        "mlflow": {"experiment": "unit", "artifact_location": str(base / "artifacts")},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_spec(raw)


@pytest.fixture(scope="module")
def trained(
    partial_entity_data: EntityData,
    new_store: Callable[[Path], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Trained]:
    base = tmp_path_factory.mktemp("pipeline")
    uri = new_store(base)
    spec = _spec(base)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        result = train(
            spec,
            tracking_uri=uri,
            data={Entity.LISTING: partial_entity_data},
            spec_text=yaml.safe_dump({"name": "unit"}),
        )
        yield Trained(result, spec, uri, base, partial_entity_data)


def _runs(trained: Trained) -> pd.DataFrame:
    import mlflow

    use_tracking_uri(trained.uri)
    return mlflow.search_runs(experiment_ids=[trained.result.experiment_id])


def _child(trained: Trained, policy: str) -> str:
    (target,) = [t for t in trained.result.targets if t.policy == policy]
    assert target.run_id is not None
    return target.run_id


def test_one_parent_run_with_a_child_per_target(trained: Trained) -> None:
    runs = _runs(trained)
    parent = trained.result.parent_run_id
    children = runs.loc[runs["tags.mlflow.parentRunId"] == parent]
    assert sorted(children["tags.govrisk.policy"]) == ["any", "counterfeit"]
    assert (children["tags.govrisk.status"] == "trained").all()
    assert runs.loc[runs["run_id"] == parent, "tags.govrisk.kind"].item() == "training"


def test_search_runs_shows_metrics_overall_and_per_slice(trained: Trained) -> None:
    runs = _runs(trained).set_index("run_id")
    row = runs.loc[_child(trained, "any")]
    for name in (
        "pr_auc",
        "roc_auc",
        "recall_at_90_precision",
        "brier",
        "ece",
        "oof__pr_auc",
        "pr_auc__slice__channel.shop_tab",
        "ece__slice__seller.established",
        "n__slice__new_category.phones",
    ):
        assert np.isfinite(row[f"metrics.{name}"]), name
    target = next(t for t in trained.result.targets if t.policy == "any")
    assert row["metrics.pr_auc"] == pytest.approx(target.metrics["pr_auc"])


def test_artifacts_hold_plots_card_model_files_and_oof(trained: Trained) -> None:
    from mlflow import MlflowClient

    use_tracking_uri(trained.uri)
    client = MlflowClient()
    run_id = _child(trained, "counterfeit")

    def names(path: str | None = None) -> set[str]:
        return {a.path for a in client.list_artifacts(run_id, path)}

    assert {f"plots/{f}" for f in PLOT_FILES} <= names("plots")
    assert "model_card.md" in names()
    assert {
        "govrisk/model.txt",
        "govrisk/encoder.json",
        "govrisk/calibration.json",
        "govrisk/model.onnx",  # the served graph, where people look for it
    } <= names("govrisk")
    assert "oof/oof_predictions.parquet" in names("oof")
    assert "metrics/holdout_metrics.csv" in names("metrics")
    card = client.download_artifacts(run_id, "model_card.md", str(trained.base / "dl"))
    text = Path(card).read_text()
    assert text.startswith(f"# Model card: {COUNTERFEIT}")
    assert run_id in text and "## Slices (holdout)" in text and "channel.shop_tab" in text
    parent = {a.path for a in client.list_artifacts(trained.result.parent_run_id, "spec")}
    assert {"spec/unit.yaml", "spec/resolved.json"} <= parent


def test_dataset_inputs_carry_content_digests(trained: Trained) -> None:
    from mlflow import MlflowClient

    use_tracking_uri(trained.uri)
    run = MlflowClient().get_run(_child(trained, "counterfeit"))
    inputs = run.inputs.dataset_inputs
    contexts = {i.tags[0].value for i in inputs}
    assert contexts == {"training", "validation", "test"}
    ts = training_set(trained.data, "counterfeit")
    logged = ts.logged_frame()
    parts = pd.read_parquet(trained.result.output_dir / OOF_FILE)
    parts = parts.loc[parts["policy"] == "counterfeit", "split"].to_numpy()
    train_rows = logged.loc[parts == "train"].reset_index(drop=True)
    digests = {i.dataset.name: i.dataset.digest for i in inputs}
    assert digests["listing-counterfeit-train"] == frame_digest(train_rows)
    assert run.data.tags["govrisk.dataset_digest"] == ts.digest()


def test_any_target_imputes_partially_judged_items(trained: Trained) -> None:
    from mlflow import MlflowClient

    use_tracking_uri(trained.uri)
    run = MlflowClient().get_run(_child(trained, "any"))
    assert run.data.params["any.partially_judged"] == "100"
    assert run.data.params["any.imputation.counterfeit"] == "model from this run"
    assert run.data.params["any.imputation.fake_discount"] == "model fitted for imputation only"
    oof = pd.read_parquet(trained.result.output_dir / OOF_FILE)
    labels = oof.loc[oof["policy"] == "any", "label"]
    fractional = labels[(labels > 0) & (labels < 1)]
    assert len(fractional) == 100
    # The any target runs after the per-policy targets it draws on.
    assert [t.policy for t in trained.result.targets] == ["counterfeit", "any"]


def test_params_record_lightgbm_and_split(trained: Trained) -> None:
    from mlflow import MlflowClient

    use_tracking_uri(trained.uri)
    params = MlflowClient().get_run(_child(trained, "any")).data.params
    assert params["lgb.num_threads"] == "1" and params["lgb.deterministic"] == "True"
    assert params["categorical_features"] == "listing_category,seller_verification"
    assert params["calibration_method"] in {"platt", "isotonic"}
    assert int(params["n_test"]) > 0 and params["cv_folds"] == "3"


def test_versions_registered_as_challenger(trained: Trained) -> None:
    use_tracking_uri(trained.uri)
    for target in trained.result.targets:
        version = version_for_alias(target.model_name, CHALLENGER)
        assert version is not None and str(version.version) == target.model_version
        assert version.run_id == target.run_id
    model = load_scoring_model(COUNTERFEIT, alias=CHALLENGER)
    assert model is not None
    oof = pd.read_parquet(trained.result.output_dir / OOF_FILE)
    holdout = oof.loc[(oof["policy"] == "counterfeit") & (oof["split"] == "test")]
    ts = training_set(trained.data, "counterfeit")
    rows = ts.meta.reset_index().set_index("item_id").loc[holdout["item_id"], "index"]
    p = model.predict_proba(ts.X.iloc[rows.to_numpy()])
    np.testing.assert_allclose(p, holdout["oof_p"].to_numpy(), atol=1e-9)


def test_registered_bundle_resolves_through_pyfunc(trained: Trained) -> None:
    pytest.importorskip("models.pyfunc")
    import mlflow.pyfunc

    use_tracking_uri(trained.uri)
    target = next(t for t in trained.result.targets if t.policy == "counterfeit")
    assert target.model_uri is not None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{COUNTERFEIT}@{CHALLENGER}")
    # The pyfunc scores as the registered model does, row for row.
    ts = training_set(trained.data, "counterfeit")
    rows = ts.X.head(20)
    got = pyfunc.predict(rows)["probability"].to_numpy()
    want = load_scoring_model(COUNTERFEIT, alias=CHALLENGER).predict_proba(rows)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_oof_file_covers_every_labeled_item(trained: Trained) -> None:
    oof = pd.read_parquet(trained.result.output_dir / OOF_FILE)
    assert list(oof.columns[:5]) == ["entity", "item_id", "policy", "oof_p", "oof_margin"]
    assert "fold" in oof.columns
    for policy in ("counterfeit", "any"):
        labels = trained.data.labels
        labeled = labels.loc[labels["policy"] == policy, "item_id"]
        got = oof.loc[oof["policy"] == policy, "item_id"]
        assert set(got) == set(labeled) and got.is_unique
    summary = json.loads(trained.result.summary_path.read_text())
    assert summary["parent_run_id"] == trained.result.parent_run_id


def test_promotion_gate_promotes_then_refuses_a_worse_model(trained: Trained) -> None:
    from mlflow import MlflowClient

    use_tracking_uri(trained.uri)
    first = promote(COUNTERFEIT)
    assert first.promoted and first.basis == "no champion"
    champion = version_for_alias(COUNTERFEIT, CHAMPION)
    assert champion is not None and str(champion.version) == first.challenger_version

    worse = _spec(
        trained.base,
        targets=[{"entity": "listing", "policies": ["counterfeit"]}],
        lightgbm={"num_leaves": 2, "num_boost_round": 2, "learning_rate": 0.01},
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(trained.base)
        second = train(
            worse, tracking_uri=trained.uri, data={Entity.LISTING: _reassemble(trained.data, worse)}
        )
    (target,) = second.targets
    client = MlflowClient()
    run = client.get_run(str(target.run_id))
    # The champion was scored on the new model's holdout, for a like-for-like gate.
    assert run.data.tags[TAG_CHAMPION_EVALUATED] == str(champion.version)
    assert "champion__pr_auc" in run.data.metrics

    decision = promote(COUNTERFEIT)
    assert not decision.promoted, decision.reason
    assert decision.basis.startswith("same holdout"), decision.reason
    assert "does not beat" in decision.reason
    table = decision.table()
    assert table.loc[table["check"] == "pr_auc", "passed"].item() is False
    still = version_for_alias(COUNTERFEIT, CHAMPION)
    assert still is not None and still.version == champion.version
    tags = client.get_model_version(COUNTERFEIT, str(target.model_version)).tags
    assert tags["govrisk.promotion.decision"] == "refused"
    assert tags["govrisk.promotion.against"] == str(champion.version)
    logged = client.get_run(tags["govrisk.promotion.run_id"])
    assert logged.data.tags["govrisk.promotion.decision"] == "refused"
    experiment = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
    assert experiment is not None and logged.info.experiment_id == experiment.experiment_id

    runner = CliRunner(env={"COLUMNS": "250"})
    refused = runner.invoke(
        build_app(), ["models", "promote", COUNTERFEIT, "--tracking-uri", trained.uri]
    )
    assert refused.exit_code == 1, refused.output
    assert "refused" in refused.output and "pr_auc" in refused.output
    assert "roc_auc above chance" in refused.output  # the chance check is in the table
    args = ["models", "promote", COUNTERFEIT, "--exit-zero", "--tracking-uri", trained.uri]
    tolerated = runner.invoke(build_app(), args)
    assert tolerated.exit_code == 0 and "refused" in tolerated.output
    listed = runner.invoke(build_app(), ["models", "list", "--tracking-uri", trained.uri])
    assert listed.exit_code == 0, listed.output
    assert COUNTERFEIT in listed.output and "refused" in listed.output

    client.delete_registered_model_alias(COUNTERFEIT, CHALLENGER)  # as when training skips it
    args = ["models", "promote", COUNTERFEIT, "--tracking-uri", trained.uri]
    missing = runner.invoke(build_app(), args)
    assert missing.exit_code == 2 and "no 'challenger' version" in missing.output
    skipped = runner.invoke(build_app(), [*args, "--if-trained"])
    assert skipped.exit_code == 0 and "nothing to promote" in skipped.output
    # several models at once: each gated on its own, a failure exits 1 after all are tried
    both = ["models", "promote", "--if-trained", "govrisk-listing-any", COUNTERFEIT]
    several = runner.invoke(build_app(), [*both, "--tracking-uri", trained.uri])
    assert several.exit_code == 0, several.output
    assert "promoted govrisk-listing-any v1 to champion" in several.output
    assert f"{COUNTERFEIT}: no challenger" in several.output


def _reassemble(entity_data: EntityData, spec: ExperimentSpec) -> EntityData:
    """The same labels and feature rows with the spec's feature selection applied."""
    from dataclasses import replace

    kept = spec.features.select(list(entity_data.feature_types))
    return replace(entity_data, feature_types={n: entity_data.feature_types[n] for n in kept})


def test_optuna_nested_trials_skips_and_failures(
    entity_data: EntityData,
    new_store: Callable[[Path], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    import training.pipeline

    monkeypatch.chdir(tmp_path)
    uri = new_store(tmp_path)
    spec = _spec(
        tmp_path,
        targets=[{"entity": "listing", "policies": ["counterfeit", "any", "low_quality"]}],
        optuna={"enabled": True, "n_trials": 2, "timeout_seconds": 120},
        mlflow={"experiment": "optuna", "register_models": False},
    )
    real_fit = training.pipeline.fit_target

    def flaky_fit(ts: Any, **kwargs: Any) -> Any:
        if ts.policy == "counterfeit":
            raise RuntimeError("disk full")
        return real_fit(ts, **kwargs)

    monkeypatch.setattr(training.pipeline, "fit_target", flaky_fit)
    result = train(spec, tracking_uri=uri, data={Entity.LISTING: entity_data})
    statuses = {t.policy: t.status for t in result.targets}
    assert statuses == {"counterfeit": "failed", "any": "trained", "low_quality": "skipped"}
    assert [t.policy for t in result.failed] == ["counterfeit"]
    assert "RuntimeError: disk full" in result.failed[0].reason
    skipped = next(t for t in result.targets if t.policy == "low_quality")
    assert "no labels" in skipped.reason and skipped.model_version is None
    runs = mlflow.search_runs(experiment_ids=[result.experiment_id])
    target_run = next(t for t in result.targets if t.policy == "any").run_id
    trials = runs.loc[runs["tags.mlflow.parentRunId"] == target_run]
    assert (runs.loc[runs["tags.govrisk.policy"] == "counterfeit", "status"] == "FAILED").all()
    assert len(trials) == 2 and (trials["tags.govrisk.kind"] == "optuna_trial").all()
    assert trials["metrics.validation_pr_auc"].notna().all()
    target_row = runs.set_index("run_id").loc[target_run]
    assert "params.optuna.best.num_leaves" in runs.columns
    assert target_row["metrics.optuna_trials"] == 2
    skip_card = mlflow.artifacts.load_text(f"runs:/{skipped.run_id}/model_card.md")
    assert "(not trained)" in skip_card and skipped.reason in skip_card
    assert "labels.min_positives" in skip_card
    assert runs.set_index("run_id").loc[skipped.run_id, "params.labels.min_positives"] == "10"
    parent = runs.set_index("run_id").loc[result.parent_run_id]
    assert parent["tags.govrisk.skipped_targets"] == "govrisk-listing-low-quality"
    any_target = next(t for t in result.targets if t.policy == "any")
    assert any_target.output_dir is not None
    any_card = (any_target.output_dir / "model_card.md").read_text(encoding="utf-8")
    assert "Not trained in this run: govrisk-listing-low-quality" in any_card


def test_cli_reports_spec_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"name": "x", "data_dir": str(tmp_path), "targets": [], "lightgbm": {"num_leafs": 3}}
        )
    )
    result = CliRunner().invoke(build_app(), ["--verbose", "train", "--spec", str(bad)])
    assert result.exit_code == 2
    assert "lightgbm.num_leafs: unknown key" in result.output
    assert "targets: list at least one target" in result.output
