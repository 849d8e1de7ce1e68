"""Tests of the audit evaluation's measures (the full run is slow and marked so)."""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments.audit_eval.calibration import calibration_ratios, domain_calibration_ratios
from experiments.audit_eval.config import (
    DEVELOPMENT_SEEDS,
    FRESH_SEED_RANGE,
    AuditEvalConfig,
    AuditEvalResult,
    WorldEval,
    fresh_seeds,
)
from experiments.audit_eval.defects import defects_found
from experiments.audit_eval.deltas import apply_suggestion, realised_delta
from experiments.audit_eval.estimates import budget_for, labels_needed, oracle_errors
from experiments.audit_eval.lists import candidate_pools, cleanlab_lists, list_quality
from experiments.audit_eval.run import run_audit_eval
from experiments.audit_eval.tables import per_world_table, per_world_values, summary_table
from experiments.audit_eval_cli import DEFAULT_SEEDS, evaluate_audit
from features.vocabulary import Entity, Policy, StrategyStatus
from governance.audit.estimators import LabelDraws
from governance.audit.population import Population
from governance.strategy import dump_strategy, new_version, strategy_from_dict
from govrisk import build_app

KEY = (Entity.LISTING, Policy.COUNTERFEIT)


def _strategy(version: int = 1):  # type: ignore[no-untyped-def]
    return strategy_from_dict(
        {
            "id": "cf-terms",
            "version": version,
            "name": "Counterfeit wording",
            "owner": "bp",
            "description": "Test.",
            "entity": "listing",
            "policy": "counterfeit",
            "channels": ["shop_tab", "campaigns"],
            "action": "block",
            "status": "active",
            "condition": {"all": [{"feature": "terms", "op": ">=", "value": 1}]},
        }
    )


def _population(n: int = 4000, seed: int = 0) -> tuple[Population, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(2 * x - 2.5)))
    y = rng.random(n) < p
    acted = (x + rng.normal(0, 0.6, n)) > 1.0
    shown = rng.lognormal(3, 1, (n, 2)) * ~acted[:, None]
    pop = Population(
        entity=Entity.LISTING,
        policy=Policy.COUNTERFEIT,
        item_ids=np.array([f"L{i}" for i in range(n)], dtype=object),
        p_model=p,
        f=p,
        channels=("shop_tab", "campaigns"),
        eligible=np.ones((n, 2), dtype=bool),
        impressions=shown,
        gmv=shown / 10,
        lost_impressions=np.where(acted[:, None], 50.0, 0.0) * np.ones((n, 2)),
        lost_gmv=np.zeros((n, 2)),
        actioned={"cf-terms@v1": np.column_stack([acted, acted])},
        strategy_channels={"cf-terms@v1": ("shop_tab", "campaigns")},
        draws=LabelDraws.empty(),
        frames={},
        flip_rate=0.04,
    )
    return pop, y


def test_budget_for_interpolates_and_extrapolates_on_the_square_root_law() -> None:
    labels = np.array([500.0, 1000.0, 2000.0])
    curve = pd.DataFrame({"labels": labels, "rmse": 1.0 / np.sqrt(labels)})
    assert budget_for(curve, "rmse", 1 / math.sqrt(1500)) == pytest.approx(1500, rel=0.01)
    assert budget_for(curve, "rmse", 1 / math.sqrt(8000)) == pytest.approx(8000, rel=0.01)
    assert budget_for(curve, "rmse", 1 / math.sqrt(250)) == pytest.approx(250, rel=0.01)


def test_importance_design_beats_uniform_on_precision() -> None:
    pop, y = _population(n=2500)
    curve = labels_needed({KEY: pop}, {KEY: y}, budgets=(150, 600), reps=12, seed=1, flip_rate=0.04)
    assert set(curve["design"]) == {"importance", "uniform"}
    imp = curve[curve["design"] == "importance"].set_index("budget")
    uni = curve[curve["design"] == "uniform"].set_index("budget")
    assert imp.loc[600, "precision_rmse"] < uni.loc[600, "precision_rmse"]
    assert imp.loc[600, "precision_rmse"] < imp.loc[150, "precision_rmse"]
    one = oracle_errors({KEY: pop}, {KEY: y}, design="uniform", budget=400, seed=3, flip_rate=0.04)
    assert {"precision_err", "recall_covered", "fn_covered"} <= set(one.columns)


def test_list_quality_and_cleanlab_use_the_same_pool() -> None:
    pop, y = _population(n=3000)
    labels = pd.DataFrame(columns=["entity", "item_id", "policy", "verdict"])
    pool = candidate_pools({KEY: pop}, {KEY: y}, labels)
    assert len(pool) == 3000 and pool["unlabeled"].all()
    act = pool[pool["actioned"]].sort_values("p")
    flags = pd.DataFrame(
        {
            "entity": "listing",
            "item_id": act["item_id"].head(10),
            "policy": "counterfeit",
            "kind": "likely_false_positive",
            "priority": np.arange(10, 0, -1, dtype=float),
        }
    )
    q = list_quality(flags, pool, k=10)
    assert q["fp_precision_at_k"] == pytest.approx((~act["violating"].head(10)).mean())
    assert 0 < q["fp_base_rate"] < 1
    cl = cleanlab_lists(pool, None, k=50)
    assert 0 <= cl["fn_precision_at_k"] <= 1 and cl["fn_violating_views_at_k"] >= 0


def test_realised_delta_counts_pairs_against_the_truth() -> None:
    items = pd.DataFrame(
        {
            "entity": "listing",
            "item_id": ["a", "b", "c"],
            "violates_counterfeit": [True, False, True],
        }
    )

    def dec(ref_version: int, ids: list[str]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "entity": "listing",
                "item_id": ids,
                "channel": "shop_tab",
                "strategy_id": "cf-terms",
                "strategy_version": ref_version,
            }
        )

    base = dec(1, ["a", "b"])
    new = dec(2, ["a", "c"])
    proposed = new_version(_strategy(), status=StrategyStatus.SHADOW)
    d_fp, d_fn = realised_delta(
        base, new, base_ref="cf-terms@v1", new_strategy=proposed, items=items
    )
    assert (d_fp, d_fn) == (-1.0, -1.0)


def test_apply_suggestion_retires_the_base_and_activates_the_proposal() -> None:
    base = _strategy()
    proposed = new_version(base, status=StrategyStatus.SHADOW)
    out, active, base_ref = apply_suggestion(
        [base], {"proposed_yaml": dump_strategy(proposed), "base_version": 1}
    )
    assert base_ref == "cf-terms@v1"
    assert [s.status for s in out] == [StrategyStatus.RETIRED, StrategyStatus.ACTIVE]
    assert active.ref == "cf-terms@v2"


def test_defects_are_found_when_a_top_slice_lies_inside_them() -> None:
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "listing_category": ["x", "x", "y", "y"],
            "listing_price": [10.0, 50.0, 10.0, 50.0],
        }
    )
    defects = {
        "planted": [
            {
                "id": "d1",
                "strategy": "s@v1",
                "entity": "listing",
                "policy": "counterfeit",
                "effect": "fp",
                "channels": ["shop_tab"],
                "slice": [{"feature": "listing_category", "op": "==", "value": "x"}],
            }
        ]
    }
    slices = pd.DataFrame(
        {
            "strategy": ["s@v1", "s@v1"],
            "error_kind": ["fp", "fp"],
            "policy": "counterfeit",
            "entity": "listing",
            "rank": [1, 2],
            "description": ["price < 20", "category = x"],
            "predicates": [
                '[{"feature": "listing_price", "op": "<", "value": 20}]',
                '[{"feature": "listing_category", "op": "==", "value": "x"}]',
            ],
        }
    )
    items = pd.DataFrame(
        {"entity": "listing", "item_id": list("abcd"), "created_at": pd.Timestamp("2026-01-01")}
    )
    out = defects_found(defects, slices, {Entity.LISTING: frame}, items)
    assert out["found"].tolist() == [True]
    assert out["best_overlap"].iloc[0] == 1.0
    assert out["slice"].iloc[0] == "category = x"


def test_summary_table_names_each_goal() -> None:
    est = pd.DataFrame(
        {
            "precision_err": [0.01, 0.02],
            "recall_err": [0.02, 0.05],
            "precision_covered": [True, True],
            "recall_covered": [True, False],
            "labels_from": "simulator",
        }
    )
    curve = pd.DataFrame(
        [
            {
                "design": d,
                "labels": b,
                "precision_rmse": c / math.sqrt(b),
                "recall_rmse": c / math.sqrt(b),
                "seed": 1,
            }
            for d, c in (("importance", 0.5), ("uniform", 1.0))
            for b in (500, 2000)
        ]
    )
    world = WorldEval(
        seed=1,
        values={
            "audit_fp_precision_at_k": 0.95,
            "audit_fp_base_rate": 0.3,
            "cleanlab_fp_precision_at_k": 0.9,
            "audit_fn_precision_at_k": 0.4,
            "audit_fn_base_rate": 0.05,
            "cleanlab_fn_precision_at_k": 0.3,
            "audit_fn_violating_views_at_k": 1000.0,
            "cleanlab_fn_violating_views_at_k": 100.0,
            "calibration_ratio__listing/counterfeit": 1.2,
            "calibration_ratio__video/counterfeit": 3.0,
            "calibration_ratio__listing/low_quality": 0.9,
        },
        estimates=est,
        defects=pd.DataFrame({"defect": ["a", "b"], "found": [True, False]}),
        deltas=pd.DataFrame(
            {
                "strategy": ["s"],
                "kind": ["threshold"],
                "predicted_fp": [-10.0],
                "realised_fp": [-11.0],
                "predicted_fn": [2.0],
                "realised_fn": [2.0],
                "fp_low": [-12.0],
                "fp_high": [-8.0],
                "fn_low": [3.0],
                "fn_high": [5.0],
            }
        ),
        labels_needed=curve,
    )
    table = summary_table([world], k=100, label_budget=2000)
    met = dict(zip(table["measure"], table["met"], strict=True))
    ref = dict(zip(table["measure"], table["reference"], strict=True))
    delta_ref = ref["ΔFP/ΔFN predicted vs realised (median rel. error)"]
    assert delta_ref.startswith("realised inside the 95% interval: 1 of 2")
    assert met["FP list precision@100"] == "yes"
    assert met["FN list precision@100"] == "yes"  # 8x the base rate
    assert met["labels for precision RMSE 0.015"] == "yes"  # 75% fewer
    assert met["planted defects in top-3 slices"] == "NO"
    calibration = table[table["measure"].str.startswith("models' mean p")].iloc[0]
    assert calibration["govrisk"] == "1.20" and calibration["met"] == "n/a"
    assert calibration["reference"].startswith("mean 1.70, max 3.00 over 3 models")
    assert table["goal"].notna().all()


def _world(seed: int, precision_covered: list[bool], recall_covered: list[bool]) -> WorldEval:
    n = len(precision_covered)
    curve = pd.DataFrame(
        [
            {"design": d, "labels": b, "precision_rmse": c / math.sqrt(b), "seed": seed}
            | {"recall_rmse": c / math.sqrt(b)}
            for d, c in (("importance", 0.5 if seed == 1 else 0.9), ("uniform", 1.0))
            for b in (500, 2000)
        ]
    )
    return WorldEval(
        seed=seed,
        values={
            "audit_fp_precision_at_k": 0.95 if seed == 1 else 0.85,
            "audit_fn_precision_at_k": 0.4,
            "audit_fn_base_rate": 0.05,
            "audit_fn_violating_views_at_k": 1000.0,
            "cleanlab_fn_violating_views_at_k": 100.0,
            "calibration_ratio__listing/counterfeit": 1.2 if seed == 1 else 0.25,
        },
        estimates=pd.DataFrame(
            {
                "precision_err": np.full(n, 0.01 * seed),
                "recall_err": np.full(n, 0.02),
                "precision_covered": precision_covered,
                "recall_covered": recall_covered[:n],
                "fn_covered": [True] * n,
                "labels_from": "simulator",
            }
        ),
        defects=pd.DataFrame({"defect": ["a", "b"], "found": [True, seed == 1]}),
        deltas=pd.DataFrame(),
        labels_needed=curve,
    )


def test_per_world_table_shows_each_world_pooled_and_the_worst() -> None:
    worlds = [
        _world(1, [True, True], [True, False]),
        _world(2, [True, False, False], [True, True, True]),
    ]
    long = per_world_values(worlds, k=100, label_budget=2000)
    table = per_world_table(long).set_index("measure")
    assert list(table.columns) == ["seed 1", "seed 2", "pooled", "worst", "goal"]
    rec = table.loc["recall 95% CI coverage (simulator's 2,000 labels)"]
    assert (rec["seed 1"], rec["seed 2"]) == ("0.50 (of 2)", "1.00 (of 3)")
    assert rec["pooled"] == "0.80 (of 5)" and rec["worst"] == "0.50 (of 2), seed 1"
    assert table.loc["FN 95% CI coverage (simulator's 2,000 labels)", "pooled"] == "1.00 (of 5)"
    prec = table.loc["precision 95% CI coverage (simulator's 2,000 labels)"]
    assert prec["pooled"] == "0.60 (of 5)" and prec["worst"] == "0.33 (of 3), seed 2"
    err = table.loc["precision abs. error (simulator's 2,000 labels)"]
    assert err["worst"] == "0.020 (of 3), seed 2"  # lower is better
    assert table.loc["FP list precision@100", "worst"] == "0.850, seed 2"
    saved = table.loc["labels saved vs uniform, precision RMSE 0.015"]
    assert (saved["seed 1"], saved["seed 2"]) == ("75%", "19%")
    assert saved["worst"] == "19%, seed 2"
    assert table.loc["planted defects in top-3 slices", "worst"] == "0.50 (of 2), seed 2"
    calibration = table.loc["models' mean p / population verdict rate (farthest from 1)"]
    assert calibration["pooled"] == "0.25 (of 2)" and calibration["worst"] == "0.25 (of 1), seed 2"
    # No deltas were applied: the row says so instead of inventing a number.
    assert table.loc["ΔFP/ΔFN predicted vs realised (median rel. error)", "pooled"] == "n/a"
    pooled = long[long["world"] == "pooled"].set_index("measure")
    assert pooled["worst"].sum() == 0 and long.groupby("measure")["worst"].sum().max() == 1


def test_calibration_ratios_compare_each_model_with_the_verdicts_it_would_see() -> None:
    items = pd.DataFrame(
        {
            "entity": ["listing"] * 4 + ["live"] * 2,
            "item_id": ["a", "b", "c", "d", "e", "f"],
            "violates_counterfeit": [True, False, False, False, True, False],
        }
    )
    preds = pd.DataFrame(
        {
            "entity": ["listing"] * 4 + ["live"] * 2 + ["listing"] * 4,
            "item_id": ["a", "b", "c", "d", "e", "f", "a", "b", "c", "d"],
            "policy": ["counterfeit"] * 6 + ["fraud"] * 4,  # fraud: no truth column
            "p": [0.6, 0.2, 0.1, 0.1, 0.3, 0.3, 0.1, 0.2, 0.3, 0.4],
        }
    )
    got = calibration_ratios(preds, items, flip_rate=0.1)
    # listing: mean p 0.25 against 0.1 + 0.8 * 0.25 = 0.3; live is a constant prior: no model.
    assert got == {"calibration_ratio__listing/counterfeit": pytest.approx(0.25 / 0.3)}


@pytest.mark.slow
def test_the_evaluation_runs_end_to_end(tmp_path: Path) -> None:
    cfg = AuditEvalConfig(
        work_dir=tmp_path,
        seeds=(1,),
        n_listings=1500,
        days=28,
        label_budget=800,
        suggestions_to_apply=1,
        budgets=(200, 400),
        reps=2,
    )
    result = run_audit_eval(cfg)
    assert len(result.table) >= 10
    assert (tmp_path / "audit_eval.csv").exists()
    per_world = pd.read_csv(result.paths["per_world"])
    assert list(per_world.columns) == ["measure", "seed 1", "pooled", "worst", "goal"]
    assert json.loads(result.paths["run"].read_text())["seeds"] == [1]


def test_fresh_seeds_skip_the_development_record() -> None:
    stream = iter([1, 1, 2, 3])  # offsets into FRESH_SEED_RANGE

    def entropy(n: int) -> bytes:
        return next(stream).to_bytes(n, "big")

    low = FRESH_SEED_RANGE[0]
    got = fresh_seeds(2, exclude={low + 1}, entropy=entropy)
    assert got == (low + 2, low + 3)
    drawn = fresh_seeds(5)
    assert len(set(drawn)) == 5 and not set(drawn) & DEVELOPMENT_SEEDS
    with pytest.raises(ValueError, match="fresh seeds"):
        fresh_seeds(0)


def test_cli_defaults_cover_five_worlds_of_twenty_thousand_listings() -> None:
    params = inspect.signature(evaluate_audit).parameters
    assert len(DEFAULT_SEEDS) >= 5 and params["listings"].default == 20_000
    cfg = AuditEvalConfig(work_dir=Path("unused"))
    assert cfg.seeds == DEFAULT_SEEDS and cfg.n_listings == params["listings"].default
    assert set(DEFAULT_SEEDS) <= DEVELOPMENT_SEEDS


def test_cli_fresh_prints_the_drawn_seeds_and_the_per_world_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import experiments.audit_eval.run as audit_eval

    seen: list[AuditEvalConfig] = []

    def fake_run(cfg: AuditEvalConfig, **_: object) -> AuditEvalResult:
        seen.append(cfg)
        worlds = [_world(s, [True, False], [True, True]) for s in cfg.seeds]
        per_world = per_world_table(per_world_values(worlds, k=100, label_budget=400))
        table = summary_table(worlds, k=100, label_budget=400)
        return AuditEvalResult(worlds=worlds, table=table, per_world=per_world)

    monkeypatch.setattr(audit_eval, "run_audit_eval", fake_run)
    runner = CliRunner()
    args = ["evaluate-audit", "--fresh", "2", "--listings", "1500", "--out", str(tmp_path)]
    result = runner.invoke(build_app(), args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    (cfg,) = seen
    assert cfg.fresh and len(cfg.seeds) == 2 and not set(cfg.seeds) & DEVELOPMENT_SEEDS
    assert f"never used in development): {cfg.seeds[0]}, {cfg.seeds[1]}" in result.output
    assert f"seed {cfg.seeds[1]}" in result.output and "worst" in result.output
    assert "2 fresh worlds" in result.output
    refused = runner.invoke(build_app(), [*args, "--seeds", "1"])
    assert refused.exit_code == 2 and len(seen) == 1, refused.output
    assert "--fresh" in refused.output


def test_domain_calibration_ratios_split_actioned_from_unactioned_units() -> None:
    pop, y = _population(n=3000)
    half = replace(pop, f=pop.p_model / 2)
    got = domain_calibration_ratios({KEY: half}, {KEY: y}, flip_rate=0.05)
    acted = pop.actioned["cf-terms@v1"][:, 0]
    for domain, mask in (("actioned", acted), ("unactioned", ~acted)):
        rate = 0.05 + 0.9 * y[mask].mean()
        model = got[f"calibration_ratio_{domain}__listing/counterfeit"]
        assert model == pytest.approx(pop.p_model[mask].mean() / rate)
        audit = got[f"audit_f_ratio_{domain}__listing/counterfeit"]
        assert audit == pytest.approx(pop.p_model[mask].mean() / 2 / y[mask].mean())
    # A constant prior is no model: nothing to check.
    flat = replace(pop, p_model=np.full(len(pop), 0.1))
    assert domain_calibration_ratios({KEY: flat}, {KEY: y}, flip_rate=0.05) == {}
    world = _world(1, [True], [True])
    world.values.update(got)
    table = per_world_table(per_world_values([world], k=100, label_budget=2000))
    row = table.set_index("measure").loc[
        "audit's mean f / true violation rate, unactioned units (farthest from 1)"
    ]
    assert row["pooled"] == f"{got['audit_f_ratio_unactioned__listing/counterfeit']:.2f} (of 1)"
