"""Tests of `run_audit`: tables, report and MLflow logging on a tiny world."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.vocabulary import Entity
from governance.audit.estimators import denoise_probability
from governance.audit.metrics import METRIC_COLUMNS
from governance.audit.pipeline import OUTPUT_FILES, AuditResult, run_audit
from governance.audit.ranking import FLAG_COLUMNS
from governance.audit.slices import SLICE_COLUMNS
from governance.audit.suggestions import SUGGESTION_COLUMNS
from tests.governance.audit.audit_world import World


def _run(world: World, out: Path, **kwargs: object) -> AuditResult:
    return run_audit(
        None,
        out_dir=out,
        tables=world.tables,
        strategies=world.strategies,
        frames={Entity.LISTING: world.frame},
        predictions=world.predictions,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def audited(world: World, tmp_path_factory: pytest.TempPathFactory) -> AuditResult:
    return _run(world, tmp_path_factory.mktemp("audit"))


def test_writes_every_table_with_its_contract_columns(audited: AuditResult) -> None:
    assert set(audited.paths) == set(OUTPUT_FILES)
    expected = {
        "metrics": METRIC_COLUMNS,
        "flags": FLAG_COLUMNS,
        "slices": SLICE_COLUMNS,
        "suggestions": SUGGESTION_COLUMNS,
    }
    for key, cols in expected.items():
        df = pd.read_parquet(audited.paths[key])
        assert tuple(df.columns) == cols, key
        assert len(df) > 0, key
    assert audited.flip_rate_source.startswith("estimated from")
    assert 0.0 < audited.flip_rate < 0.15


def test_writes_the_scores_it_read_for_the_monitor(world: World, audited: AuditResult) -> None:
    written = pd.read_parquet(audited.paths["predictions"])
    assert list(written.columns) == ["entity", "item_id", "policy", "p"]
    keys = ["entity", "item_id", "policy"]
    read = world.predictions.drop_duplicates(keys, keep="last")
    both = written.merge(read, on=keys, suffixes=("", "_read"), validate="one_to_one")
    assert len(both) == len(written) == len(read)
    assert (both["p"] == both["p_read"]).all()


def test_every_output_table_conforms_to_its_declaration(audited: AuditResult) -> None:
    """Types, nulls, enums and bounds, from the declarations in governance.audit.tables."""
    from features.contract import find_problems
    from governance.audit.tables import FLAGS, METRICS, SLICES, SUGGESTIONS

    specs = {"metrics": METRICS, "flags": FLAGS, "slices": SLICES, "suggestions": SUGGESTIONS}
    for key, spec in specs.items():
        problems = find_problems(spec, pd.read_parquet(audited.paths[key]))
        assert problems == [], (key, [str(p) for p in problems[:5]])


def test_report_is_self_contained_with_inline_plots(audited: AuditResult) -> None:
    html = audited.paths["report"].read_text(encoding="utf-8")
    assert html.count("<svg") >= 2
    assert "cf-bags@v2" in html and "Suggested changes" in html
    # False negatives name the misses reviewers confirmed.
    assert (audited.metrics["fn_confirmed"] >= 0.5).any() and " confirmed" in html
    # Works offline: no external stylesheet, script, image or font.
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert "<script src" not in html and "<link " not in html


def test_logs_tables_and_report_to_mlflow(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # Artifacts go under tmp_path, not the default ./mlruns of the working directory.
    mlflow.create_experiment("govrisk-audit", artifact_location=str(tmp_path / "artifacts"))
    result = _run(world, tmp_path / "out", tracking_uri=uri, write_report=False)
    assert result.run_id is not None
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(result.run_id, "audit")}
    assert "audit/flags.parquet" in names and "audit/suggestions.parquet" in names
    run = client.get_run(result.run_id)
    assert run.data.tags["govrisk.kind"] == "audit"
    assert any(k.startswith("precision__cf-terms") for k in run.data.metrics)
    # The settings the run used are its parameters.
    assert run.data.params["audit.confidence"] == str(result.settings.confidence)
    assert (tmp_path / "artifacts").is_dir()
    mlflow.set_tracking_uri(previous)


def test_the_report_states_the_settings_the_run_used_not_the_global_ones(
    audited: AuditResult, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from governance.audit import report
    from governance.audit.settings import AuditSettings, get_settings

    monkeypatch.setenv("GOVRISK_AUDIT_CONFIDENCE", "0.8")
    monkeypatch.setenv("GOVRISK_AUDIT_FP_COST", "7.5")
    get_settings.cache_clear()
    try:
        html = report.render_report(audited)
        custom = _run(world, tmp_path, settings=AuditSettings(confidence=0.9), write_report=False)
    finally:
        get_settings.cache_clear()
    assert audited.settings.confidence == 0.95
    assert "Intervals are 95% confidence intervals" in html and "80%" not in html
    assert "false positive 7.5," not in html
    assert custom.settings.confidence == 0.9
    assert "Intervals are 90% confidence intervals" in report.render_report(custom)


def test_needs_a_data_dir_or_tables(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data_dir"):
        run_audit(None, out_dir=tmp_path)


def test_estimates_use_their_own_calibration(audited: AuditResult) -> None:
    key = next(iter(audited.populations))
    ranked, est = audited.populations[key], audited.estimate_populations[key]
    assert (ranked.item_ids == est.item_ids).all()
    # Default: ranked lists on the refitted model, estimates on the denoised one.
    assert np.allclose(est.f, denoise_probability(est.p_model, audited.flip_rate))
    assert not np.allclose(ranked.f, est.f)


def test_report_says_when_it_lists_only_the_top_suggestions(audited: AuditResult) -> None:
    from dataclasses import replace

    from governance.audit import report

    many = pd.concat([audited.suggestions] * 50, ignore_index=True)
    many["rank"] = range(1, len(many) + 1)
    html = report.render_report(replace(audited, suggestions=many))
    assert f"Showing the top 40 of {len(many)}" in html
    assert html.count("<details><summary>YAML") == 40
    whole = report.render_report(audited)
    assert "Showing the top" not in whole and "govrisk suggestions load" in whole


def test_report_shows_the_labels_behind_each_number_and_what_would_pin_it(
    audited: AuditResult,
) -> None:
    from dataclasses import replace

    from governance.audit import report

    m = audited.metrics.copy()
    rows = m.index[(m["channel"] == "all") & (m["strategy"] != "*") & m["precision"].notna()]
    wide, narrow = rows[0], rows[1]
    m.loc[wide, ["precision", "precision_low", "precision_high", "n_labels"]] = [0.5, 0.3, 0.7, 37]
    m.loc[narrow, ["precision", "precision_low", "precision_high", "n_labels"]] = [
        0.9,
        0.85,
        0.95,
        412,
    ]
    html = report.render_report(replace(audited, metrics=m))
    # 37 labels behind a 0.4-wide interval: 4 x 37 = 148 would narrow it to 0.2.
    assert '37 labels · <span class="bad">needs about 111 more labels among its actioned' in html
    assert "412 labels</div>" in html
    assert "at most 20 points wide" in html and "1/√labels" in html


def test_scores_are_written_under_the_policy_of_the_model_that_made_them() -> None:
    """An any-violation model that scored two policies' items is written once per item as
    policy `any`; a policy's own model keeps its policy; a target without a model (constant
    label prevalence) is left out."""
    from types import SimpleNamespace

    from features.vocabulary import Policy
    from governance.audit.pipeline import served_predictions

    def rows(policy: str, p: float) -> pd.DataFrame:
        return pd.DataFrame({"entity": "listing", "item_id": ["a", "b"], "policy": policy, "p": p})

    preds = pd.concat(
        [rows("counterfeit", 0.4), rows("prohibited_item", 0.4), rows("fake_discount", 0.2)]
        + [rows("low_quality", 0.05)],
        ignore_index=True,
    )
    anyv = SimpleNamespace(metadata={"policy": "any"})
    bundles = {
        (Entity.LISTING, Policy.COUNTERFEIT): anyv,
        (Entity.LISTING, Policy.PROHIBITED_ITEM): anyv,
        (Entity.LISTING, Policy.FAKE_DISCOUNT): SimpleNamespace(
            metadata={"policy": "fake_discount"}
        ),
    }
    out = served_predictions(preds, bundles)
    assert sorted(zip(out["policy"], out["item_id"], out["p"], strict=True)) == [
        ("any", "a", 0.4),
        ("any", "b", 0.4),
        ("fake_discount", "a", 0.2),
        ("fake_discount", "b", 0.2),
    ]


def test_each_snapshot_scores_the_items_published_in_the_week_before_it(tmp_path: Path) -> None:
    """The scoring log the monitor's prediction drift reads: an item is scored as of the
    first snapshot after its publication, by each model once (under the model's policy)."""
    from datetime import datetime
    from types import SimpleNamespace

    from features.vocabulary import Policy
    from governance.audit.pipeline import new_item_scores, scoring_log, write_predictions

    listings = pd.DataFrame(
        {
            "listing_id": ["a", "b", "c", "d"],
            "created_at": pd.to_datetime(["2026-01-02", "2026-01-06", "2026-01-09", "2026-01-13"]),
            "title": ["t"] * 4,
            "description": ["d"] * 4,
        }
    )

    def frame(as_of: str) -> pd.DataFrame:
        seen = listings[listings["created_at"] < pd.Timestamp(as_of)]
        return pd.DataFrame({"item_id": seen["listing_id"], "x": 0.25})

    seen_text: list[list[str]] = []

    def predict(rows: pd.DataFrame) -> tuple[None, np.ndarray]:
        seen_text.append(rows["title"].tolist())
        return None, rows["x"].to_numpy() + rows["item_id"].map({"a": 0, "b": 0.1, "c": 0.2})

    encoder = SimpleNamespace(row_problems=None)  # every row scores
    anyv = SimpleNamespace(metadata={"policy": "any"}, predict=predict, encoder=encoder)
    bundles = {
        (Entity.LISTING, Policy.COUNTERFEIT): anyv,
        (Entity.LISTING, Policy.LOW_QUALITY): anyv,
    }
    week1, week2 = datetime(2026, 1, 5), datetime(2026, 1, 12)
    snapshots = [(week2, {Entity.LISTING: frame("2026-01-12")})]
    snapshots.append((week1, {Entity.LISTING: frame("2026-01-05")}))
    log = new_item_scores(bundles, snapshots, {"listings": listings}, days=7)
    got = sorted(zip(log["item_id"], log["policy"], log["scored_at"], log["p"], strict=True))
    assert got == [
        ("a", "any", pd.Timestamp(week1), 0.25),
        ("b", "any", pd.Timestamp(week2), 0.35),
        ("c", "any", pd.Timestamp(week2), pytest.approx(0.45)),
    ]  # d is not published before any snapshot; each model scores once
    assert seen_text and all(t == ["t"] * len(t) for t in seen_text)  # text fields joined
    current = pd.DataFrame(
        {"entity": "listing", "item_id": ["a", "d"], "policy": "any", "p": [0.5, 0.7]}
    ).assign(scored_at=pd.Timestamp("2026-01-19"))
    written = pd.read_parquet(write_predictions(scoring_log(current, log), tmp_path))
    assert list(written.columns) == ["entity", "item_id", "policy", "p", "scored_at"]
    assert written.groupby("item_id").size().to_dict() == {"a": 2, "b": 1, "c": 1, "d": 1}


def test_each_target_is_scored_by_the_first_model_that_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Templates are tried in order: counterfeit has its own model, low_quality falls back
    to the entity's any-violation model, and with no model at all a target gets the labels'
    prevalence (or, without labels, a clear error naming every place looked)."""
    from features.vocabulary import Policy
    from governance.audit.pipeline import score_frames, served_predictions
    from tests.models.bundle_factory import make_frame, train_bundle

    frame, y = make_frame(200)
    frame = frame.assign(item_id=[f"L{i}" for i in range(len(frame))])
    for name, policy, labels in (
        ("listing-counterfeit", "counterfeit", y),
        ("listing-any", "any", 1 - y),
    ):
        bundle = train_bundle(frame, labels, n_trees=5, metadata={"policy": policy})
        bundle.save(tmp_path / name)
    templates = [str(tmp_path / "{entity}-{policy}"), str(tmp_path / "{entity}-any")]
    import models.pyfunc

    tried: list[str] = []
    load = models.pyfunc.load_bundle

    def counting_load(uri: str, **kwargs: object) -> object:
        tried.append(uri)
        return load(uri, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(models.pyfunc, "load_bundle", counting_load)
    targets = {
        (Entity.LISTING, Policy.COUNTERFEIT),
        (Entity.LISTING, Policy.LOW_QUALITY),
        (Entity.LISTING, Policy.FAKE_DISCOUNT),
    }
    preds, bundles = score_frames({Entity.LISTING: frame}, targets, templates)
    # each URI is tried once: the any-violation model serves two targets from one load
    assert len(tried) == len(set(tried)) == 4
    assert (
        bundles[(Entity.LISTING, Policy.FAKE_DISCOUNT)]
        is bundles[(Entity.LISTING, Policy.LOW_QUALITY)]
    )
    served = served_predictions(preds, bundles)
    assert sorted(served["policy"].unique()) == ["any", "counterfeit"]
    own = served[served["policy"] == "counterfeit"]["p"].to_numpy()
    borrowed = preds[preds["policy"] == "low_quality"]["p"].to_numpy()
    assert len(own) == len(borrowed) == 200 and not np.allclose(own, borrowed)
    assert np.allclose(borrowed, served[served["policy"] == "any"]["p"].to_numpy())
    with pytest.raises(ValueError, match="low_quality model: .*listing-low-quality.*listing-x"):
        score_frames(
            {Entity.LISTING: frame},
            {(Entity.LISTING, Policy.LOW_QUALITY)},
            [str(tmp_path / "{entity}-{policy}"), str(tmp_path / "{entity}-x")],
        )
