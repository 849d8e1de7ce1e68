"""One world: simulate, train, audit and measure it."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments import SPECS_DIR
from experiments.audit_eval.calibration import calibration_ratios, domain_calibration_ratios
from experiments.audit_eval.config import AuditEvalConfig, ProgressFn, WorldEval
from experiments.audit_eval.defects import defects_found
from experiments.audit_eval.deltas import apply_suggestion, pick_suggestions, realised_delta
from experiments.audit_eval.estimates import estimate_errors, labels_needed, oracle_errors
from experiments.audit_eval.lists import candidate_pools, cleanlab_lists, list_quality
from experiments.audit_eval.truth import truth_by_population
from features.settings import thread_count
from features.text_source import with_text_fields
from features.vocabulary import Entity, Policy, StrategyStatus
from governance.audit.metrics import strategy_metrics
from governance.audit.pipeline import (
    bundle_probabilities,
    label_prevalence,
    score_all_rows,
    target_predictions,
)
from governance.strategy import Strategy

log = logging.getLogger(__name__)


def _train_and_score(
    data_dir: Path,
    out_dir: Path,
    targets: Sequence[tuple[Entity, Policy]],
    frames: Mapping[Entity, pd.DataFrame],
    labels: pd.DataFrame,
    spec_path: Path,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Train every target with the real training pipeline and score every item."""
    import yaml

    from models.pyfunc import load_bundle
    from training.pipeline import train
    from training.spec import parse_spec

    raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    by_entity: dict[str, list[str]] = {}
    for e, p in targets:
        if e is Entity.SELLER:
            continue
        by_entity.setdefault(e.value, []).append(p.value)
    raw["targets"] = [{"entity": e, "policies": ps} for e, ps in by_entity.items()]
    raw["mlflow"] = {
        **raw.get("mlflow", {}),
        "experiment": "audit-eval",
        "artifact_location": str(out_dir / "mlartifacts"),
    }
    spec = parse_spec(
        raw, overrides={"data_dir": str(data_dir), "output_dir": str(out_dir / "training")}
    )
    summary_path = out_dir / "training" / "summary.json"
    uri = f"sqlite:///{out_dir / 'mlflow.db'}"
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        if not summary_path.exists():  # resume: a finished training run is reused
            train(spec, tracking_uri=uri)
        import mlflow

        mlflow.set_tracking_uri(uri)
    finally:
        # Training points MLflow at the world's store; keep the audit from logging there.
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    trained = {t["model"]: t for t in summary["targets"] if t["status"] == "trained"}
    parts = []
    for e, p in targets:
        frame = frames[e]
        name = f"govrisk-{e.value}-{p.value}".replace("_", "-")
        t = trained.get(name)
        prob: float | np.ndarray
        if t is not None and t.get("version"):
            bundle = load_bundle(f"models:/{name}/{t['version']}", threads=thread_count())
            prob = bundle_probabilities(bundle, frame)
        elif t is not None and t.get("run_id"):
            # Trained but not registered (e.g. its bundle failed the ONNX parity gate): score
            # with the run's LightGBM text model, encoder and calibration instead.
            prob = score_with_run(str(t["run_id"]), frame)
        else:
            # No model (too few labels, or sellers): the audit's own fallback, the labels'
            # design-weighted prevalence, which turns the estimator into the design-based one.
            prob = label_prevalence(labels, e, p)
            log.warning("no trained model for %s/%s: constant prior %.3f", e.value, p.value, prob)
        parts.append(target_predictions(frame, e, p, prob))
    oof_path = summary.get("oof_predictions")
    oof = pd.read_parquet(oof_path) if oof_path else None
    return pd.concat(parts, ignore_index=True), oof


def score_with_run(run_id: str, frame: pd.DataFrame) -> np.ndarray:
    """Calibrated probabilities from a training run's `govrisk/` model files."""
    import tempfile

    import lightgbm as lgb
    import mlflow

    from models.calibration import Calibration
    from models.encoding import FeatureEncoder

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="govrisk", dst_path=tmp
            )
        )
        booster = lgb.Booster(model_str=(local / "model.txt").read_text(encoding="utf-8"))
        encoder = FeatureEncoder.from_dict(json.loads((local / "encoder.json").read_text()))
        calibration = Calibration.from_dict(json.loads((local / "calibration.json").read_text()))

    def predict(f: pd.DataFrame) -> np.ndarray:
        margin = np.asarray(
            booster.predict(encoder.transform(f), raw_score=True, num_threads=thread_count())
        )
        return np.asarray(calibration.apply(margin), dtype=np.float64)

    return score_all_rows(predict, encoder.row_problems, frame)


def evaluate_world(seed: int, cfg: AuditEvalConfig, progress: ProgressFn) -> WorldEval:
    """Simulate, train, audit and score one world."""
    from experiments.simulator.simulation import simulate
    from experiments.simulator.writer import write_simulation
    from features.build import build_frames
    from governance.audit.pipeline import audited_strategies, period_end

    wdir = cfg.work_dir / f"seed-{seed}"
    sim_cfg = _simulation_config(cfg, seed)
    truth_dir = wdir / "ground_truth"
    if (truth_dir / "defects.yaml").exists():  # resume: reuse a written world
        import yaml

        from features.loader import load_tables
        from governance.registry import StrategyRegistry

        progress(f"seed {seed}: loading the simulated world from {wdir}")
        tables = load_tables(wdir / "data")
        strategies = list(StrategyRegistry.load(wdir / "data"))
        items = pd.read_parquet(truth_dir / "items.parquet")
        defects = yaml.safe_load((truth_dir / "defects.yaml").read_text(encoding="utf-8"))
    else:
        progress(f"seed {seed}: simulating {cfg.n_listings:,} listings")
        sim = simulate(sim_cfg)
        write_simulation(sim, wdir)
        tables, strategies = sim.tables, list(sim.strategies)
        items, defects = sim.ground_truth.items, sim.ground_truth.defects
    audited = audited_strategies(strategies, tables["strategy_decisions"])
    as_of = period_end(tables)
    entities = tuple(sorted({s.entity for s in audited}, key=list(Entity).index))
    frames = build_frames(tables, as_of=as_of, entities=entities)
    targets = sorted({(s.entity, s.policy) for s in audited})
    oof_path = wdir / "oof.parquet"
    if (wdir / "predictions.parquet").exists():  # resume: reuse the trained models' scores
        progress(f"seed {seed}: reusing the risk model predictions in {wdir}")
        preds = pd.read_parquet(wdir / "predictions.parquet")
        oof = pd.read_parquet(oof_path) if oof_path.exists() else None
    else:
        progress(f"seed {seed}: training {len(targets)} risk models")
        spec_path = cfg.train_spec or SPECS_DIR / "demo.yaml"
        text_frames = {e: with_text_fields(f, e, tables) for e, f in frames.items()}
        preds, oof = _train_and_score(
            wdir / "data", wdir, targets, text_frames, tables["audit_labels"], spec_path
        )
        if oof is not None:
            oof.to_parquet(oof_path, index=False)
        preds.to_parquet(wdir / "predictions.parquet", index=False)
    return score_world(
        seed,
        cfg,
        progress,
        sim_cfg=sim_cfg,
        tables=tables,
        items=items,
        strategies=strategies,
        defects=defects,
        frames=frames,
        preds=preds,
        oof=oof,
    )


def _reproject(deltas: pd.DataFrame, suggestions: pd.DataFrame) -> pd.DataFrame:
    """Recorded realised deltas with the current audit's projection of the same change."""
    key = ["strategy_id", "kind", "summary"]
    cur = {
        (str(r["strategy_id"]), str(r["kind"]), str(r["summary"])): r
        for _, r in suggestions.drop_duplicates(key).iterrows()
    }
    for i, row in deltas.iterrows():
        k = (str(row["strategy"]), str(row["kind"]), str(row["summary"]))
        if k in cur:
            s = cur[k]
            deltas.loc[i, ["predicted_fp", "fp_low", "fp_high"]] = [
                s["delta_fp"],
                s["delta_fp_low"],
                s["delta_fp_high"],
            ]
            deltas.loc[i, ["predicted_fn", "fn_low", "fn_high"]] = [
                s["delta_fn"],
                s["delta_fn_low"],
                s["delta_fn_high"],
            ]
            deltas.loc[i, "reprojected"] = True
        else:
            deltas.loc[i, "reprojected"] = False
    return deltas


def rescore_world(seed: int, cfg: AuditEvalConfig, progress: ProgressFn) -> WorldEval:
    """Audit and score a world `evaluate_world` already simulated and trained (from its files),
    keeping the re-simulated suggestion deltas it recorded."""
    import yaml

    from features.build import build_frames
    from features.loader import load_tables
    from governance.audit.pipeline import audited_strategies, period_end
    from governance.registry import StrategyRegistry

    wdir = cfg.work_dir / f"seed-{seed}"
    tables = load_tables(wdir / "data")
    strategies = list(StrategyRegistry.load(wdir / "data"))
    audited = audited_strategies(strategies, tables["strategy_decisions"])
    as_of = period_end(tables)
    entities = tuple(sorted({s.entity for s in audited}, key=list(Entity).index))
    frames = build_frames(tables, as_of=as_of, entities=entities)
    oof_path = wdir / "oof.parquet"
    sim_cfg = _simulation_config(cfg, seed)
    old = cfg.work_dir / "deltas.csv"
    deltas = pd.read_csv(old) if old.exists() else None
    return score_world(
        seed,
        cfg,
        progress,
        sim_cfg=sim_cfg,
        tables=tables,
        items=pd.read_parquet(wdir / "ground_truth" / "items.parquet"),
        strategies=strategies,
        defects=yaml.safe_load((wdir / "ground_truth" / "defects.yaml").read_text()),
        frames=frames,
        preds=pd.read_parquet(wdir / "predictions.parquet"),
        oof=pd.read_parquet(oof_path) if oof_path.exists() else None,
        deltas=deltas,
    )


def score_world(
    seed: int,
    cfg: AuditEvalConfig,
    progress: ProgressFn,
    *,
    sim_cfg: Any,
    tables: Mapping[str, pd.DataFrame],
    items: pd.DataFrame,
    strategies: Sequence[Strategy],
    defects: Mapping[str, Any],
    frames: Mapping[Entity, pd.DataFrame],
    preds: pd.DataFrame,
    oof: pd.DataFrame | None,
    deltas: pd.DataFrame | None = None,
) -> WorldEval:
    """Run the audit on a simulated world and score every output against its truth."""
    from governance.audit.pipeline import period_end, run_audit, with_scores
    from governance.audit.suggestions import suggest

    wdir = cfg.work_dir / f"seed-{seed}"
    as_of = period_end(tables)
    entities = tuple(frames)
    progress(f"seed {seed}: auditing")
    history = _weekly_frames(tables, entities, as_of=as_of, start=sim_cfg.start)
    result = run_audit(
        wdir / "data",
        out_dir=wdir / "audit",
        tables=tables,
        strategies=strategies,
        frames=frames,
        history_frames=history,
        predictions=preds,
        oof=oof,
        as_of=as_of,
    )
    pops = result.populations
    result_frames = with_scores(frames, preds)
    result_history = [with_scores(h, preds) for h in history]
    truth = truth_by_population(pops, items)
    # The estimates come from the populations calibrated for estimation (same units).
    est_pops = result.estimate_populations or pops
    domain_ratios = domain_calibration_ratios(est_pops, truth, flip_rate=result.flip_rate)
    labels = tables["audit_labels"]
    values: dict[str, float] = {"flip_rate": result.flip_rate}
    values.update(calibration_ratios(preds, items, flip_rate=result.flip_rate))
    values.update(domain_ratios)

    values.update(_list_values(result.flags, candidate_pools(pops, truth, labels), oof, cfg))
    estimates = _estimates(result.metrics, pops, est_pops, truth, seed, cfg)
    progress(f"seed {seed}: labels needed, importance vs uniform")
    curve = labels_needed(
        est_pops,
        truth,
        budgets=cfg.budgets,
        reps=cfg.reps,
        seed=seed,
        flip_rate=cfg.oracle_flip_rate,
    )

    found = defects_found(defects, result.slices, frames, items, populations=pops)

    picked = pick_suggestions(result.suggestions, cfg.suggestions_to_apply)
    if deltas is not None:
        picked = picked.iloc[:0]
        # Re-project the recorded changes themselves, even where the current audit would no
        # longer suggest them (their projected benefit may have changed sign).
        every = suggest(
            pops,
            result_frames,
            result.slices,
            strategies=strategies,
            metrics=result.metrics,
            max_per_strategy=100_000,
            history=result_history,
            labels=labels,
            only_beneficial=False,
        )
        deltas = _reproject(deltas[deltas["seed"] == seed].copy(), every)
    applied = [
        _applied_suggestion(sug, strategies, sim_cfg, tables, items, seed, progress)
        for _, sug in picked.iterrows()
    ]
    return WorldEval(
        seed=seed,
        values=values,
        estimates=estimates.assign(seed=seed),
        defects=found.assign(seed=seed),
        deltas=deltas if deltas is not None else pd.DataFrame(applied),
        labels_needed=curve.assign(seed=seed),
    )


def _weekly_frames(
    tables: Mapping[str, pd.DataFrame], entities: Sequence[Entity], *, as_of: Any, start: Any
) -> list[dict[Entity, pd.DataFrame]]:
    """Feature frames every 7 days back from `as_of` (what suggestions are projected over)."""
    from features.build import build_frames

    history = []
    day = as_of - timedelta(days=7)
    while day > start:
        history.append(build_frames(tables, as_of=day, entities=tuple(entities)))
        day -= timedelta(days=7)
    return history


def _list_values(
    flags: pd.DataFrame, pool: pd.DataFrame, oof: pd.DataFrame | None, cfg: AuditEvalConfig
) -> dict[str, float]:
    """The ranked lists' quality and cleanlab's on the same candidates."""
    ours = list_quality(flags, pool, k=cfg.top_k)
    base = cleanlab_lists(pool, oof, k=cfg.top_k)
    return {f"audit_{k}": v for k, v in ours.items()} | {
        f"cleanlab_{k}": v for k, v in base.items()
    }


def _estimates(
    metrics: pd.DataFrame,
    pops: Any,
    est_pops: Any,
    truth: Any,
    seed: int,
    cfg: AuditEvalConfig,
) -> pd.DataFrame:
    """Estimate errors with the simulator's labels and with govrisk's importance design."""
    true_metrics = strategy_metrics(pops, truth=truth)
    est = estimate_errors(metrics, true_metrics).assign(labels_from="simulator")
    imp = oracle_errors(
        est_pops,
        truth,
        design="importance",
        budget=cfg.label_budget,
        seed=seed,
        flip_rate=cfg.oracle_flip_rate,
    ).assign(labels_from="importance")
    return pd.concat([est, imp], ignore_index=True)


def _applied_suggestion(
    sug: pd.Series,
    strategies: Sequence[Strategy],
    sim_cfg: Any,
    tables: Mapping[str, pd.DataFrame],
    items: pd.DataFrame,
    seed: int,
    progress: ProgressFn,
) -> dict[str, Any]:
    """Re-simulate the world with one suggestion applied: its projected and realised deltas."""
    from experiments.simulator.simulation import simulate

    progress(f"seed {seed}: re-simulating with {sug['kind']} on {sug['strategy_id']}")
    modified, proposed, base_ref = apply_suggestion(strategies, sug)
    other = [
        s.ref
        for s in modified
        if s.status == StrategyStatus.ACTIVE
        and s.policy == proposed.policy
        and s.entity == proposed.entity
        and s.ref != proposed.ref
    ]
    new_sim = simulate(sim_cfg, strategies=modified)
    d_fp, d_fn = realised_delta(
        tables["strategy_decisions"],
        new_sim.tables["strategy_decisions"],
        base_ref=base_ref,
        new_strategy=proposed,
        items=items,
        other_refs=other,
    )
    return {
        "seed": seed,
        "strategy": sug["strategy_id"],
        "kind": sug["kind"],
        "summary": sug["summary"],
        "predicted_fp": sug["delta_fp"],
        "realised_fp": d_fp,
        "predicted_fn": sug["delta_fn"],
        "realised_fn": d_fn,
        "fp_low": sug["delta_fp_low"],
        "fp_high": sug["delta_fp_high"],
        "fn_low": sug["delta_fn_low"],
        "fn_high": sug["delta_fn_high"],
    }


def _simulation_config(cfg: AuditEvalConfig, seed: int) -> Any:
    """The simulated world of one seed, as the evaluation configures it."""
    from experiments.simulator.config import SimulationConfig

    return SimulationConfig(
        n_listings=cfg.n_listings,
        days=cfg.days,
        seed=seed,
        label_budget=cfg.label_budget,
        full_evaluation_every_days=cfg.full_evaluation_every_days,
    )
