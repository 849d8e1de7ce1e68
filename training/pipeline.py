"""`train(spec)`: assemble datasets, fit every target, evaluate, log to MLflow, register.

Run layout: one parent MLflow run per spec (the spec file, data digest, summary table and all
out-of-fold predictions) with one nested child run per target (entity, policy) holding its
parameters, dataset inputs, metrics overall and per slice, plots, model card, model files and
the registered model; Optuna trials are nested under their target's run. The parent keeps a
weekly retrain in one place in the MLflow UI while each registered version points at the child
run that produced it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.schema import FeatureSet, feature_to_dict
from features.vocabulary import Entity
from models.registry import (
    CHAMPION,
    CHAMPION_PREFIX,
    TAG_CHAMPION_EVALUATED,
    TAG_ENTITY,
    TAG_GATE_MIN_GAIN,
    TAG_GATE_SLICE_MARGIN,
    TAG_POLICY,
    load_scoring_model,
    model_name,
    register_version,
)
from training import model_card, plots, tracking
from training.dataset import (
    EntityData,
    TrainingSet,
    expected_any_labels,
    frame_digest,
    judged_policies,
    load_entity_data,
    partially_judged,
    training_set,
)
from training.evaluate import METRICS, ece, metrics_to_log, slice_metrics
from training.fit import (
    FittedTarget,
    TargetSkipped,
    fit_target,
    oof_frame,
    prepare_split,
    split_labels,
)
from training.spec import ANY, ExperimentSpec, flat_params, spec_to_dict
from training.text import TextScores, add_text_scores, entity_documents, entity_fields

log = logging.getLogger(__name__)

#: Progress callback: (phase, done, total, description); phase is "features" or "targets".
ProgressCallback = Callable[[str, int, int, str], None]
#: Calibrated probabilities of a fitted model for a raw feature frame.
Scorer = Callable[[pd.DataFrame], np.ndarray]
#: File names written to the output directory.
OOF_FILE = "oof_predictions.parquet"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class TargetResult:
    """Outcome of one target: trained (with metrics and registered version) or skipped."""

    entity: str
    policy: str
    model_name: str
    status: str
    run_id: str | None = None
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    n_labels: int = 0
    n_positive: int = 0
    model_version: str | None = None
    model_uri: str | None = None
    calibration: str = ""
    best_iteration: int = 0
    output_dir: Path | None = None


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a spec: the parent run, one result per target and the files written."""

    spec_name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    targets: list[TargetResult]
    output_dir: Path
    oof_path: Path | None
    summary_path: Path

    @property
    def failed(self) -> list[TargetResult]:
        """Targets whose training raised an error."""
        return [t for t in self.targets if t.status == "failed"]

    def summary(self) -> pd.DataFrame:
        """One row per target: status, holdout metrics, run id and registered version."""
        rows = []
        for t in self.targets:
            rows.append(
                {
                    "model": t.model_name,
                    "status": t.status,
                    "labels": t.n_labels,
                    "violating": t.n_positive,
                    **{m: t.metrics.get(m, math.nan) for m in METRICS},
                    "calibration": t.calibration,
                    "run_id": t.run_id or "",
                    "version": t.model_version or "",
                    "note": t.reason,
                }
            )
        return pd.DataFrame(rows)


def train(
    spec: ExperimentSpec,
    *,
    tracking_uri: str | None = None,
    use_optuna: bool | None = None,
    data: Mapping[Entity, EntityData] | None = None,
    spec_text: str | None = None,
    on_progress: ProgressCallback | None = None,
    documents: Mapping[Entity, pd.Series] | None = None,
) -> TrainResult:
    """Train every target of `spec`; `data` skips loading tables (tests feed synthetic frames).

    `documents` (entity -> item_id -> text document) feeds the text models when `data` is
    given; loaded from the contract tables otherwise.

    `use_optuna` overrides `spec.optuna.enabled`; `spec_text` is the spec file as written,
    logged verbatim next to the resolved spec.
    """
    import mlflow

    report = on_progress or (lambda *_args: None)
    uri = tracking.configure(tracking_uri)
    experiment_id = tracking.ensure_experiment(
        spec.mlflow.experiment, artifact_location=spec.mlflow.artifact_location
    )
    inputs = _load_inputs(spec, data, report)
    spec = inputs.spec
    data, texts = _add_text(spec, inputs, documents, report)
    optuna_on = spec.optuna.enabled if use_optuna is None else use_optuna
    output_dir = spec.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    with mlflow.start_run(experiment_id=experiment_id, run_name=spec.name) as parent:
        _log_run_inputs(
            spec,
            data,
            texts,
            entities=inputs.entities,
            optuna_on=optuna_on,
            data_digest=inputs.data_digest,
            spec_text=spec_text,
        )
        results, oofs = _train_targets(
            spec,
            data,
            texts,
            entities=inputs.entities,
            experiment_id=experiment_id,
            optuna_on=optuna_on,
            data_digest=inputs.data_digest,
            report=report,
        )
        result_obj = TrainResult(
            spec_name=spec.name,
            tracking_uri=uri,
            experiment_id=experiment_id,
            parent_run_id=str(parent.info.run_id),
            targets=results,
            output_dir=output_dir,
            oof_path=_write_oofs(oofs, output_dir),
            summary_path=output_dir / SUMMARY_FILE,
        )
        _write_summary(result_obj)
    return result_obj


@dataclass(frozen=True)
class _Inputs:
    """What a training run reads: the (possibly BYO-resolved) spec and its assembled data."""

    spec: ExperimentSpec
    data: Mapping[Entity, EntityData]
    entities: list[Entity]
    data_digest: str
    tables: Mapping[str, pd.DataFrame] | None


def _load_inputs(
    spec: ExperimentSpec,
    data: Mapping[Entity, EntityData] | None,
    report: ProgressCallback,
) -> _Inputs:
    """Assemble the spec's entity data (BYO build, contract tables, or `data` as given)."""
    tables: Mapping[str, pd.DataFrame] | None = None
    entities = list(dict.fromkeys(e for e, _ in spec.target_pairs()))
    data_digest = ""
    if data is None and spec.dataset is not None:
        from training.byo import load_byo

        spec, data, data_digest = load_byo(spec)
        entities = list(dict.fromkeys(e for e, _ in spec.target_pairs()))
    elif data is None:
        from features.loader import load_tables

        assert spec.data_dir is not None
        tables = load_tables(spec.data_dir)
        data_digest = _tables_digest(spec.data_dir)
        data = load_entity_data(
            tables,
            entities=entities,
            labels=spec.labels,
            feature_selection=spec.features,
            slice_spec=spec.slices,
            on_build=lambda done, total, as_of: report(
                "features", done, total, f"features as of {as_of:%Y-%m-%d}"
            ),
        )
    missing = [e.value for e in entities if e not in data]
    if missing:
        raise ValueError(f"no assembled data for entit(ies) {missing}; pass them in `data`")
    return _Inputs(spec, data, entities, data_digest, tables)


def _add_text(
    spec: ExperimentSpec,
    inputs: _Inputs,
    documents: Mapping[Entity, pd.Series] | None,
    report: ProgressCallback,
) -> tuple[Mapping[Entity, EntityData], dict[Entity, TextScores]]:
    """Fit the text models of every entity with documents and add their scores as features
    (when the spec enables text)."""
    if not spec.text.enabled:
        return inputs.data, {}
    tables, entities = inputs.tables, inputs.entities
    if documents is None and tables is not None:
        documents = {e: d for e in entities if (d := entity_documents(tables, e.value)) is not None}
    data = dict(inputs.data)
    texts: dict[Entity, TextScores] = {}
    for i, e in enumerate(entities):
        if e not in (documents or {}):
            continue
        report("text", i, len(entities), f"{e.value} text models")
        texts[e] = add_text_scores(
            data[e],
            (documents or {})[e],
            text=spec.text,
            labels=spec.labels,
            split=spec.split,
            selection=spec.features,
            fields=None if tables is None else entity_fields(tables, e.value),
        )
        data[e] = texts[e].data
    return data, texts


def _log_run_inputs(
    spec: ExperimentSpec,
    data: Mapping[Entity, EntityData],
    texts: Mapping[Entity, TextScores],
    *,
    entities: Sequence[Entity],
    optuna_on: bool,
    data_digest: str,
    spec_text: str | None,
) -> None:
    """Record on the parent run the spec, data source, text models and dropped labels."""
    import mlflow

    tracking.set_tags(
        {
            "govrisk.spec": spec.name,
            "govrisk.kind": "training",
            "govrisk.data_dir": _data_source(spec),
            "govrisk.data_digest": data_digest or "in-memory",
            "govrisk.optuna": optuna_on,
        }
    )
    tracking.log_params(flat_params(spec))
    if spec_text is not None:
        mlflow.log_text(spec_text, f"spec/{spec.name}.yaml")
    tracking.log_json(spec_to_dict(spec), "spec/resolved.json")
    for e, scored in texts.items():
        tracking.log_json(
            {
                "models": {n: m.n_features for n, m in scored.models.items()},
                "labels": scored.n_labels,
                "skipped": scored.skipped,
            },
            f"data/{e.value}_text_models.json",
        )
    for e in entities:
        tracking.log_json(data[e].dropped, f"data/{e.value}_dropped_labels.json")
        tracking.log_metrics({f"labels_dropped__{e.value}": float(sum(data[e].dropped.values()))})


def _train_targets(
    spec: ExperimentSpec,
    data: Mapping[Entity, EntityData],
    texts: Mapping[Entity, TextScores],
    *,
    entities: Sequence[Entity],
    experiment_id: str,
    optuna_on: bool,
    data_digest: str,
    report: ProgressCallback,
) -> tuple[list[TargetResult], list[pd.DataFrame]]:
    """Train each target in a child run; a failing target is recorded and the rest go on."""
    # Per-policy models first: the any-violation model uses them for partially judged items.
    pairs = sorted(spec.target_pairs(), key=lambda pair: pair[1] == ANY)
    scorers: dict[Entity, dict[str, Scorer]] = {e: {} for e in entities}
    results: list[TargetResult] = []
    oofs: list[pd.DataFrame] = []
    for i, (entity, policy) in enumerate(pairs):
        name = model_name(entity.value, policy, prefix=spec.mlflow.model_name_prefix)

        def step(text: str, _i: int = i, _name: str = name) -> None:
            report("targets", _i, len(pairs), f"{_name}: {text}")

        step("assembling")
        try:
            result, oof = _train_target(
                spec,
                data[entity],
                policy,
                name=name,
                experiment_id=experiment_id,
                optuna_on=optuna_on,
                data_digest=data_digest,
                step=step,
                scorers=scorers[entity],
                skip_notes=_skip_notes(results, entity),
                text=texts.get(entity),
            )
        except Exception as exc:  # noqa: BLE001 - one broken target must not stop the rest
            # The child run is already marked FAILED; the summary and exit code say so.
            log.exception("%s failed", name)
            result = TargetResult(
                entity=entity.value,
                policy=policy,
                model_name=name,
                status="failed",
                reason=f"{type(exc).__name__}: {exc}",
            )
            oof = None
        results.append(result)
        if oof is not None:
            oofs.append(oof)
        report("targets", i + 1, len(pairs), f"{name}: {result.status}")
    skipped = [t.model_name for t in results if t.status == "skipped"]
    tracking.set_tags({"govrisk.skipped_targets": ",".join(skipped) or "none"})
    return results, oofs


def _write_oofs(oofs: Sequence[pd.DataFrame], output_dir: Path) -> Path | None:
    """Write and log every target's out-of-fold predictions in one file; None without any."""
    if not oofs:
        return None
    oof_path = output_dir / OOF_FILE
    pd.concat(oofs, ignore_index=True).to_parquet(oof_path, index=False)
    tracking.log_file(oof_path, "oof")
    return oof_path


def _write_summary(result: TrainResult) -> None:
    """Log the summary table and write the summary JSON (NaN metrics as null)."""
    summary = result.summary()
    tracking.log_frame(summary, "summary.csv")
    summary_doc = {
        "spec": result.spec_name,
        "tracking_uri": result.tracking_uri,
        "experiment_id": result.experiment_id,
        "parent_run_id": result.parent_run_id,
        "oof_predictions": str(result.oof_path) if result.oof_path else None,
        "targets": [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in summary.to_dict("records")
        ],
    }
    result.summary_path.write_text(json.dumps(summary_doc, indent=2, default=str), encoding="utf-8")


def _train_target(
    spec: ExperimentSpec,
    data: EntityData,
    policy: str,
    *,
    name: str,
    experiment_id: str,
    optuna_on: bool,
    data_digest: str,
    step: Callable[[str], None],
    scorers: dict[str, Scorer],
    skip_notes: Sequence[str] = (),
    text: TextScores | None = None,
) -> tuple[TargetResult, pd.DataFrame | None]:
    import mlflow

    entity = data.entity
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"{entity.value}-{policy}", nested=True
    ) as run:
        run_id = str(run.info.run_id)
        tracking.set_tags(
            {
                TAG_ENTITY: entity.value,
                TAG_POLICY: policy,
                "govrisk.model_name": name,
                "govrisk.spec": spec.name,
                "govrisk.kind": "target",
            }
        )
        ts = training_set(
            data, policy, weighting=spec.labels.weighting, max_weight=spec.labels.max_weight
        )
        notes: list[str] = []
        if policy == ANY and spec.labels.any_target == "imputed" and len(ts):
            step("expected labels for partially judged items")
            ts, imputation = impute_any(spec, data, ts, scorers)
            notes = _log_imputation(imputation)
        if policy == ANY:
            notes += skip_notes
        base = TargetResult(
            entity=entity.value,
            policy=policy,
            model_name=name,
            status="skipped",
            run_id=run_id,
            n_labels=len(ts),
            n_positive=ts.n_positive,
        )
        try:
            overrides = _search(
                spec, ts, optuna_on=optuna_on, experiment_id=experiment_id, step=step
            )
            fit = fit_target(
                ts,
                lightgbm=spec.lightgbm,
                split=spec.split,
                calibration=spec.calibration,
                labels=spec.labels,
                params_override=overrides,
                on_step=step,
            )
        except TargetSkipped as exc:
            _log_skip(spec, base, reason=str(exc))
            return _replace(base, reason=str(exc)), None
        if policy != ANY:
            scorers[policy] = scorer_of(fit)
        step("evaluating")
        return _finish_target(
            spec, fit, data, base, data_digest=data_digest, step=step, notes=notes, text=text
        )


def _log_skip(spec: ExperimentSpec, base: TargetResult, *, reason: str) -> None:
    """Record on the active run why a target was not trained, with a card saying so."""
    log.warning("%s skipped: %s", base.model_name, reason)
    tracking.set_tags({"govrisk.status": "skipped", "govrisk.skip_reason": reason})
    tracking.log_params({"labels.min_positives": spec.labels.min_positives})
    tracking.log_metrics({"n_labels": base.n_labels, "n_positive": base.n_positive})
    card = model_card.render_skipped(
        spec,
        model_name=base.model_name,
        run_id=str(base.run_id),
        entity=base.entity,
        policy=base.policy,
        reason=reason,
        n_labels=base.n_labels,
        n_positive=base.n_positive,
    )
    import mlflow

    mlflow.log_text(card, "model_card.md")


def _skip_notes(results: Sequence[TargetResult], entity: Entity) -> list[str]:
    """Model-card notes naming the entity's targets skipped earlier in this run."""
    return [
        f"Not trained in this run: {r.model_name} ({r.reason})."
        for r in results
        if r.entity == entity.value and r.status == "skipped"
    ]


def scorer_of(fit: FittedTarget) -> Scorer:
    """Calibrated probabilities of a fitted model, without keeping its training set alive."""
    encoder, booster, calibration = fit.encoder, fit.booster, fit.calibration

    def score(X: pd.DataFrame) -> np.ndarray:
        margin = np.asarray(booster.predict(encoder.transform(X), raw_score=True))
        return calibration.apply(margin)

    return score


@dataclass(frozen=True)
class Imputation:
    """How the any-violation labels of partially judged items were filled in."""

    n_items: int
    n_partial: int
    mean_expected_label: float
    sources: dict[str, str]


def impute_any(
    spec: ExperimentSpec, data: EntityData, ts: TrainingSet, scorers: Mapping[str, Scorer]
) -> tuple[TrainingSet, Imputation | None]:
    """Expected any-violation labels for partially judged items, from per-policy models.

    `scorers` holds the per-policy models already fitted; other judged policies get a model
    fitted here (not logged or registered), and policies too thin to fit contribute their
    weighted label rate before the holdout. Returns the set unchanged (and None) when every
    item is fully judged or found violating.
    """
    partial = partially_judged(ts, data)
    if not partial.any():
        return ts, None
    sources: dict[str, str] = {}
    p_violation: dict[str, np.ndarray] = {}
    for policy in judged_policies(data):
        scorer = scorers.get(policy)
        source = "model from this run"
        if scorer is None:
            policy_ts = training_set(
                data, policy, weighting=spec.labels.weighting, max_weight=spec.labels.max_weight
            )
            try:
                fitted = fit_target(
                    policy_ts,
                    lightgbm=spec.lightgbm,
                    split=spec.split,
                    calibration=spec.calibration,
                    labels=spec.labels,
                )
            except TargetSkipped as exc:
                rate = _label_rate_before_holdout(policy_ts, spec)
                p_violation[policy] = np.full(len(ts), rate)
                sources[policy] = f"label rate {rate:.3f} ({exc})"
                continue
            scorer = scorer_of(fitted)
            source = "model fitted for imputation only"
        p_violation[policy] = scorer(ts.X)
        sources[policy] = source
    imputed = expected_any_labels(ts, data, p_violation)
    return imputed, Imputation(
        n_items=len(ts),
        n_partial=int(partial.sum()),
        mean_expected_label=float(imputed.y[partial].mean()),
        sources=sources,
    )


def _log_imputation(imputation: Imputation | None) -> list[str]:
    """Record an imputation on the active run; returns the model-card note."""
    if imputation is None:
        return []
    tracking.set_tags({"govrisk.any_target": "imputed"})
    tracking.log_params(
        {
            "any.partially_judged": imputation.n_partial,
            "any.expected_label_mean_partial": round(imputation.mean_expected_label, 4),
            **{f"any.imputation.{k}": v for k, v in imputation.sources.items()},
        }
    )
    return [
        f"{imputation.n_partial} of {imputation.n_items} items were found clean on only some "
        f"of the policies ({', '.join(imputation.sources)}); their label is the expected one, "
        "1 - prod(1 - p) over the policies they were not judged on, from the per-policy "
        f"models (mean {imputation.mean_expected_label:.2f}); metrics count them fractionally."
    ]


def _label_rate_before_holdout(ts: TrainingSet, spec: ExperimentSpec) -> float:
    if len(ts) == 0:
        return 0.0
    try:
        period = split_labels(ts, spec=spec.split).training_period
    except TargetSkipped:
        period = np.arange(len(ts))
    return float(np.average(ts.y[period], weights=ts.weight[period]))


def _search(
    spec: ExperimentSpec,
    ts: TrainingSet,
    *,
    optuna_on: bool,
    experiment_id: str,
    step: Callable[[str], None],
) -> dict[str, Any]:
    if not optuna_on:
        return {}
    import mlflow

    from training.search import search_params

    tsplit = prepare_split(ts, split=spec.split, labels=spec.labels)

    def on_trial(number: int, params: dict[str, Any], value: float, rounds: int) -> None:
        step(f"optuna trial {number + 1}/{spec.optuna.n_trials}")
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"trial-{number:03d}", nested=True
        ):
            tracking.set_tags({"govrisk.kind": "optuna_trial"})
            tracking.log_params({**params, "best_iteration": rounds, "trial": number})
            tracking.log_metrics({"validation_pr_auc": value})

    result = search_params(
        ts, tsplit, lightgbm=spec.lightgbm, optuna_spec=spec.optuna, on_trial=on_trial
    )
    tracking.log_params({f"optuna.best.{k}": v for k, v in result.best_params.items()})
    tracking.log_metrics(
        {"optuna_best_validation_pr_auc": result.best_value, "optuna_trials": result.n_trials}
    )
    return result.best_params


def _finish_target(
    spec: ExperimentSpec,
    fit: FittedTarget,
    data: EntityData,
    base: TargetResult,
    *,
    data_digest: str,
    step: Callable[[str], None],
    notes: Sequence[str] = (),
    text: TextScores | None = None,
) -> tuple[TargetResult, pd.DataFrame]:
    ts = fit.training_set
    holdout, out_of_fold = _evaluate(spec, fit)
    champion_table, champion_version, champion_metrics = _score_champion(spec, fit, base)
    digest = ts.digest()
    versions = _feature_set_versions(ts.entity, data.declaration)
    target_dir = spec.output_dir / f"{ts.entity.value}-{ts.policy}"
    _log_target_params(fit, digest=digest, data_digest=data_digest, versions=versions)
    step("logging datasets")
    _log_datasets(spec, fit)
    _log_target_metrics(spec, fit, holdout, out_of_fold, champion_metrics)
    step("plots and model card")
    oof = _write_target_files(spec, fit, target_dir, holdout=holdout, out_of_fold=out_of_fold)
    context = model_card.CardContext(
        spec=spec,
        model_name=base.model_name,
        run_id=str(base.run_id),
        holdout=holdout,
        out_of_fold=out_of_fold,
        dataset_digest=digest,
        feature_set_versions=versions,
        dropped=data.dropped,
        champion=champion_table,
        champion_version=champion_version,
        notes=list(notes),
    )
    _write_card(fit, context, target_dir)
    step("registering")
    model_uri, version, note = _log_and_register(
        spec, fit, base, digest=digest, versions=versions, text=text, declaration=data.declaration
    )
    if note:
        tracking.set_tags({"govrisk.registration_note": note})
    overall = holdout.loc[holdout["slice"] == "overall"].iloc[0]
    result = _replace(
        base,
        status="trained",
        metrics={m: float(overall[m]) for m in METRICS},
        model_version=version,
        model_uri=model_uri,
        calibration=fit.calibration_method,
        best_iteration=fit.best_iteration,
        output_dir=target_dir,
        reason=note,
    )
    return result, oof


def _evaluate(spec: ExperimentSpec, fit: FittedTarget) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics overall and per slice on the holdout and out of fold on the training period."""
    ts = fit.training_set
    y = ts.y.astype(np.float64)

    def on(positions: np.ndarray) -> pd.DataFrame:
        return slice_metrics(
            y[positions],
            fit.oof_p[positions],
            _subset_slices(ts.slices, positions),
            weight=ts.weight[positions],
            min_labels=spec.slices.min_labels,
            bins=spec.calibration.bins,
        )

    return on(fit.split.test), on(fit.split.training_period)


def _log_target_metrics(
    spec: ExperimentSpec,
    fit: FittedTarget,
    holdout: pd.DataFrame,
    out_of_fold: pd.DataFrame,
    champion_metrics: Mapping[str, float],
) -> None:
    """Log holdout metrics per slice, out-of-fold overall, population calibration and the
    champion's metrics on the same holdout."""
    metrics = metrics_to_log(holdout)
    metrics.update(
        metrics_to_log(out_of_fold.loc[out_of_fold["slice"] == "overall"], prefix="oof__")
    )
    metrics.update({"best_iteration": float(fit.best_iteration)})
    metrics.update(_population_metrics(fit, bins=spec.calibration.bins))
    metrics.update(champion_metrics)
    tracking.log_metrics(metrics)


def _write_card(fit: FittedTarget, context: model_card.CardContext, target_dir: Path) -> None:
    """Render the model card into the target folder and log it."""
    card = model_card.render(fit, context)
    card_path = target_dir / "model_card.md"
    card_path.write_text(card, encoding="utf-8")
    tracking.log_file(card_path)


def _log_target_params(
    fit: FittedTarget, *, digest: str, data_digest: str, versions: Mapping[str, str]
) -> None:
    """Tag the target run as trained and log its fitted parameters, split and data digests."""
    ts = fit.training_set
    period = fit.split.training_period
    parts = fit.split.part()
    tracking.set_tags(
        {
            "govrisk.status": "trained",
            "govrisk.dataset_digest": digest,
            "govrisk.data_digest": data_digest or "in-memory",
            **{f"govrisk.feature_set.{k}": v for k, v in versions.items()},
        }
    )
    tracking.log_params(
        {
            **{f"lgb.{k}": v for k, v in sorted(fit.params.items())},
            "best_iteration": fit.best_iteration,
            "calibration_method": fit.calibration_method,
            "calibration_population_shift": round(fit.population_shift, 6),
            "n_features": len(fit.feature_names),
            "categorical_features": ",".join(fit.encoder.categorical),
            "n_labels": len(ts),
            **{f"n_{p}": int((parts == p).sum()) for p in ("train", "validation", "test")},
            **{f"split.{k}": v for k, v in fit.split.boundaries.items()},
            "cv_folds": int(len(np.unique(fit.split.fold[period]))),
            "dataset_digest": digest,
            **{f"feature_set_version.{k}": v for k, v in versions.items()},
        }
    )


def _log_datasets(spec: ExperimentSpec, fit: FittedTarget) -> None:
    """Log the train, validation and test rows as MLflow dataset inputs of the target run."""
    ts = fit.training_set
    parts = fit.split.part()
    logged = ts.logged_frame()
    source = _data_source(spec)
    for part in ("train", "validation", "test"):
        rows = parts == part
        part_frame = logged.loc[rows].reset_index(drop=True)
        tracking.log_dataset(
            part_frame,
            name=f"{ts.entity.value}-{ts.policy}-{part}",
            context="training" if part == "train" else part,
            source=source,
            digest=frame_digest(part_frame),
        )


def _write_target_files(
    spec: ExperimentSpec,
    fit: FittedTarget,
    target_dir: Path,
    *,
    holdout: pd.DataFrame,
    out_of_fold: pd.DataFrame,
) -> pd.DataFrame:
    """Write and log the plots, metric tables, calibration curve, OOF predictions and model
    files of a target; returns its out-of-fold predictions."""
    bins = spec.calibration.bins
    plot_paths = plots.write_plots(fit, target_dir / "plots", bins=bins, seed=spec.lightgbm.seed)
    for path in plot_paths.values():
        tracking.log_file(path, "plots")
    holdout.to_csv(target_dir / "holdout_metrics.csv", index=False)
    out_of_fold.to_csv(target_dir / "oof_metrics.csv", index=False)
    tracking.log_file(target_dir / "holdout_metrics.csv", "metrics")
    tracking.log_file(target_dir / "oof_metrics.csv", "metrics")
    calibration_curve = _calibration_points(fit, bins=bins)
    tracking.log_frame(calibration_curve, "metrics/calibration_curve.csv")
    oof = oof_frame(fit)
    oof_path = target_dir / OOF_FILE
    oof.to_parquet(oof_path, index=False)
    tracking.log_file(oof_path, "oof")
    tracking.log_model_files(fit)
    return oof


def _score_champion(
    spec: ExperimentSpec, fit: FittedTarget, base: TargetResult
) -> tuple[pd.DataFrame | None, str | None, dict[str, float]]:
    """Score the current champion on this holdout, for a like-for-like promotion gate."""
    if not spec.mlflow.register_models:
        return None, None, {}
    try:
        champion = load_scoring_model(base.model_name, alias=CHAMPION)
    except Exception as exc:  # noqa: BLE001 - a broken champion must not stop training
        log.warning("could not load the champion of %s: %s", base.model_name, exc)
        tracking.set_tags({"govrisk.champion_evaluation_error": str(exc)[:500]})
        return None, None, {}
    if champion is None:
        return None, None, {}
    ts = fit.training_set
    test = fit.split.test
    try:
        p = champion.predict_proba(ts.source_rows(test), num_threads=spec.lightgbm.num_threads)
    except Exception as exc:  # noqa: BLE001 - e.g. the champion uses features no longer built
        log.warning("could not score champion %s v%s: %s", base.model_name, champion.version, exc)
        tracking.set_tags({"govrisk.champion_evaluation_error": str(exc)[:500]})
        return None, champion.version, {}
    y = ts.y[test].astype(np.float64)
    table = slice_metrics(
        y,
        p,
        _subset_slices(ts.slices, test),
        weight=ts.weight[test],
        min_labels=spec.slices.min_labels,
        bins=spec.calibration.bins,
    )
    mine = slice_metrics(
        y,
        fit.oof_p[test],
        _subset_slices(ts.slices, test),
        weight=ts.weight[test],
        min_labels=spec.slices.min_labels,
        bins=spec.calibration.bins,
    )
    tracking.set_tags({TAG_CHAMPION_EVALUATED: champion.version})
    comparison = pd.DataFrame(
        {
            "slice": mine["slice"],
            "n": mine["n"],
            "pr_auc_champion": table["pr_auc"],
            "pr_auc_this_model": mine["pr_auc"],
            "ece_champion": table["ece"],
            "ece_this_model": mine["ece"],
        }
    )
    return comparison, champion.version, metrics_to_log(table, prefix=CHAMPION_PREFIX)


def _log_and_register(
    spec: ExperimentSpec,
    fit: FittedTarget,
    base: TargetResult,
    *,
    digest: str,
    versions: Mapping[str, str],
    text: TextScores | None = None,
    declaration: FeatureSet | None = None,
) -> tuple[str | None, str | None, str]:
    """Log the registrable model (bundle when available) and register it as challenger.

    Returns (model URI, registered version, note). A bundle failing its parity check is logged
    nowhere and not registered.
    """
    ts = fit.training_set
    try:
        model_uri = _log_bundle(
            fit, base, digest=digest, versions=versions, text=text, declaration=declaration
        )
    except _ParityFailed as exc:
        tracking.set_tags({"govrisk.parity": "failed"})
        tracking.log_json({"error": str(exc)}, "bundle/parity_failure.json")
        return None, None, f"not registered: bundle failed parity ({str(exc)[:200]})"
    if model_uri is None:
        model_uri = tracking.log_lightgbm_model(fit.booster)
    if not spec.mlflow.register_models:
        return model_uri, None, ""
    version = register_version(
        model_uri,
        name=base.model_name,
        run_id=str(base.run_id),
        tags={
            TAG_ENTITY: ts.entity.value,
            TAG_POLICY: ts.policy,
            TAG_GATE_SLICE_MARGIN: str(spec.promotion.slice_margin),
            TAG_GATE_MIN_GAIN: str(spec.promotion.min_pr_auc_gain),
            "govrisk.spec": spec.name,
            "govrisk.dataset_digest": digest,
        },
        description=f"{ts.entity.value}/{ts.policy} risk model trained by spec {spec.name}",
    )
    return model_uri, str(version.version), ""


class _ParityFailed(Exception):
    """The bundle's ONNX graph disagrees with LightGBM."""


def _log_bundle(
    fit: FittedTarget,
    base: TargetResult,
    *,
    digest: str,
    versions: Mapping[str, str],
    text: TextScores | None = None,
    declaration: FeatureSet | None = None,
) -> str | None:
    """Build, parity-check and log the model bundle; None when the bundle code is absent."""
    try:
        from models.bundle import ModelBundle, ParityError
        from models.pyfunc import log_bundle
    except ImportError:
        return None
    ts = fit.training_set
    descriptions = _feature_descriptions(ts.entity, declaration)
    text_models = {n: m for n, m in (text.models if text else {}).items() if n in fit.feature_names}
    bundle = ModelBundle.build(
        fit.booster,
        encoder=fit.encoder,
        calibration=fit.calibration,
        features={n: descriptions.get(n, n.replace("_", " ")) for n in fit.feature_names},
        metadata={
            "run_id": base.run_id,
            "model_name": base.model_name,
            "entity": ts.entity.value,
            "policy": ts.policy,
            "dataset_digest": digest,
            "feature_set_versions": dict(versions),
            "calibration_method": fit.calibration_method,
            "best_iteration": fit.best_iteration,
            **_declaration_metadata(declaration, fit.feature_names),
        },
        text_models=text_models,
        text_fields=text.fields if text and text_models else (),
    )
    try:
        report = bundle.check_parity(ts.X.iloc[fit.split.test].reset_index(drop=True))
        if text_models:
            holdout = ts.source_rows(fit.split.test)
            text_diff = bundle.check_text_parity(bundle.text_documents(holdout))
            tracking.log_metrics({"parity_max_abs_diff_text_log_odds": text_diff})
    except ParityError as exc:
        raise _ParityFailed(str(exc)) from exc
    tracking.log_metrics(
        {
            "parity_max_abs_diff_probability": report.max_abs_diff_probability,
            "parity_max_abs_diff_raw": report.max_abs_diff_raw,
        }
    )
    tracking.set_tags({"govrisk.parity": "passed"})
    info = log_bundle(bundle, artifact_path="bundle")
    # The logged model keeps its own artifacts; a copy among the run's files lets people find
    # the ONNX graph where they look first (Netron, onnxruntime).
    tracking.log_onnx(bundle.onnx_model)
    return str(info.model_uri)


def _declaration_metadata(declaration: FeatureSet | None, names: Sequence[str]) -> dict[str, Any]:
    """Bundle metadata naming a model's own feature declaration (bring your own data), which
    scoring validates against instead of the catalogue's; nothing for catalogue features."""
    if declaration is None:
        return {}
    return {
        "dataset": declaration.name,
        "feature_declaration": [
            feature_to_dict(declaration.feature(n)) for n in names if n in declaration.names
        ],
    }


def _feature_descriptions(entity: Entity, declaration: FeatureSet | None) -> dict[str, str]:
    """One-line descriptions of the model's features from their declaration (the
    catalogue's unless the data brought its own)."""
    if declaration is not None:
        return {f.name: f.description for f in declaration.features}
    from features.catalog import feature_descriptions
    from features.text_source import text_source

    source = text_source(entity)
    scores = (
        {}
        if source is None
        else {f.name: f"{f.description} [{f.unit}]" for f in source.score_features}
    )
    return {**feature_descriptions(entity), **scores}


def _feature_set_versions(entity: Entity, declaration: FeatureSet | None) -> dict[str, str]:
    """Versions of the feature sets the model's features come from."""
    if declaration is not None:
        return {declaration.name: str(declaration.version)}
    from features.catalog import frame_spec

    return {p.feature_set.name: str(p.feature_set.version) for p in frame_spec(entity).parts}


def _subset_slices(slices: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """Slice memberships of `positions`, renumbered to index the subset (positions sorted)."""
    member = slices.loc[slices["position"].isin(positions)]
    return pd.DataFrame(
        {
            "position": np.searchsorted(positions, member["position"].to_numpy()),
            "slice": member["slice"].to_numpy(),
        }
    )


def _population_metrics(fit: FittedTarget, *, bins: int) -> dict[str, float]:
    """Calibration on the holdout under untrimmed inverse-inclusion weights (the population):
    `population__mean_p` against `population__prevalence`, and their ECE."""
    ts, test = fit.training_set, fit.split.test
    if not len(test):
        return {}
    y, p, w = ts.y[test].astype(np.float64), fit.oof_p[test], ts.population_weight[test]
    if w.sum() <= 0:
        return {}
    return {
        "population__prevalence": float(np.average(y, weights=w)),
        "population__mean_p": float(np.average(p, weights=w)),
        "population__ece": float(ece(y, p, weight=w, bins=bins)),
    }


def _calibration_points(fit: FittedTarget, *, bins: int) -> pd.DataFrame:
    from training.evaluate import calibration_table

    ts = fit.training_set
    test = fit.split.test
    raw = 1.0 / (1.0 + np.exp(-fit.oof_margin[test]))
    parts = []
    for label, p in (("uncalibrated", raw), ("calibrated", fit.oof_p[test])):
        table = calibration_table(
            ts.y[test].astype(np.float64), p, weight=ts.weight[test], bins=bins
        )
        parts.append(table.assign(curve=label))
    return pd.concat(parts, ignore_index=True)


def _data_source(spec: ExperimentSpec) -> str:
    """Where the training data came from: the data directory or the BYO feature build."""
    return str(spec.dataset.path if spec.dataset is not None else spec.data_dir)


def _tables_digest(data_dir: Path) -> str:
    """sha256 over the contract table files, in name order (32 hex characters)."""
    h = hashlib.sha256()
    for path in sorted((data_dir / "tables").glob("*.parquet")):
        h.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:32]


def _replace(result: TargetResult, **changes: Any) -> TargetResult:
    from dataclasses import replace

    return replace(result, **changes)


def target_names(spec: ExperimentSpec) -> Sequence[str]:
    """Registered model names of every target in `spec`."""
    return [
        model_name(e.value, p, prefix=spec.mlflow.model_name_prefix) for e, p in spec.target_pairs()
    ]
