"""`run_audit`: load a data directory, score it, estimate, rank, find slices, suggest, report."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.settings import thread_count
from features.text_source import with_text_fields
from features.vocabulary import Entity, Policy, StrategyStatus
from governance.audit.estimators import FloatArray, estimate_flip_rate
from governance.audit.metrics import strategy_metrics
from governance.audit.population import (
    PREDICTION_COLUMNS,
    Calibration,
    Population,
    build_populations,
)
from governance.audit.ranking import (
    ReasonsFn,
    posterior,
    rank_flags,
    reasons_from_bundles,
    reasons_from_frame,
)
from governance.audit.sampling import audit_sample, category_boost
from governance.audit.settings import AuditSettings, get_settings
from governance.audit.slices import audit_slices
from governance.audit.suggestions import suggest
from governance.strategy import Strategy

log = logging.getLogger(__name__)

#: Where each target's model is looked for, in order: its policy's champion, else its
#: entity's any-violation champion (a target with neither is estimated from labels alone).
DEFAULT_MODEL_URIS = (
    "models:/govrisk-{entity}-{policy}@champion",
    "models:/govrisk-{entity}-any@champion",
)
#: Files `run_audit` writes into its output directory.
OUTPUT_FILES = {
    "metrics": "strategy_metrics.parquet",
    "flags": "flags.parquet",
    "slices": "slices.parquet",
    "suggestions": "suggestions.parquet",
    "report": "report.html",
    #: The scores the audit read (entity, item_id, policy, p), for `govrisk monitor --predictions`.
    "predictions": "predictions.parquet",
}
ProgressFn = Callable[[str, int, int], None]
_STEPS = ("load", "score", "estimate", "rank", "slices", "suggest", "write")


@dataclass
class AuditResult:
    """Every table of one audit, the files written and the MLflow run (if any)."""

    metrics: pd.DataFrame
    flags: pd.DataFrame
    slices: pd.DataFrame
    suggestions: pd.DataFrame
    populations: dict[tuple[Entity, Policy], Population]
    flip_rate: float
    flip_rate_source: str
    as_of: datetime
    #: The settings this run used: the report and MLflow read them from here, never anew.
    settings: AuditSettings = field(default_factory=AuditSettings)
    paths: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None
    label_counts: dict[str, int] = field(default_factory=dict)
    #: The populations behind `metrics` and the audit slice (`estimate_calibration`).
    estimate_populations: dict[tuple[Entity, Policy], Population] = field(default_factory=dict)


def audited_strategies(strategies: Sequence[Strategy], decisions: pd.DataFrame) -> list[Strategy]:
    """Versions that took decisions in the data, plus active versions (which may have none)."""
    pairs = set(
        zip(
            decisions["strategy_id"].astype(str),
            decisions["strategy_version"].astype(int),
            strict=True,
        )
    )
    return [
        s for s in strategies if (s.id, s.version) in pairs or s.status == StrategyStatus.ACTIVE
    ]


def period_end(tables: Mapping[str, pd.DataFrame]) -> datetime:
    """Midnight after the last exposure day or decision: the default `as_of` of an audit."""
    ends: list[pd.Timestamp] = []
    ex = tables.get("channel_exposure")
    if ex is not None and len(ex):
        ends.append(pd.Timestamp(ex["day"].max()).normalize() + pd.Timedelta(days=1))
    dec = tables.get("strategy_decisions")
    if dec is not None and len(dec):
        ends.append(pd.Timestamp(dec["decided_at"].max()).normalize() + pd.Timedelta(days=1))
    if not ends:
        raise ValueError("channel_exposure and strategy_decisions are empty: nothing to audit")
    return max(ends).to_pydatetime()


def run_audit(
    data_dir: Path | str | None,
    *,
    out_dir: Path | str,
    tables: Mapping[str, pd.DataFrame] | None = None,
    model_uri: str | Sequence[str] | None = None,
    predictions: pd.DataFrame | None = None,
    oof: pd.DataFrame | None = None,
    reasons: pd.DataFrame | None = None,
    frames: Mapping[Entity, pd.DataFrame] | None = None,
    history_frames: Sequence[Mapping[Entity, pd.DataFrame]] | None = None,
    strategies: Sequence[Strategy] | None = None,
    as_of: datetime | None = None,
    settings: AuditSettings | None = None,
    tracking_uri: str | None = None,
    write_report: bool = True,
    on_progress: ProgressFn | None = None,
) -> AuditResult:
    """Audit every strategy of `data_dir` and write the tables and report into `out_dir`.

    Predictions come from `predictions` (entity, item_id, policy, p) or from model bundles at
    `model_uri`, templates over `{entity}` and `{policy}` tried in order per target (default
    `DEFAULT_MODEL_URIS`: the policy's champion, else the entity's any-violation champion).
    `tables`, `frames` and `strategies` skip loading tables, building features and loading
    the registry (then `data_dir` may be None). Suggestions are projected over weekly frame
    snapshots (`history_frames`, built every `history_every_days` when not given and
    features are built here).
    """
    cfg = settings or get_settings()
    progress = on_progress or (lambda *_a: None)
    progress("load", 0, len(_STEPS))
    inputs = _load_inputs(
        data_dir, tables=tables, strategies=strategies, frames=frames, as_of=as_of
    )
    snapshots = _history_frames(inputs, history_frames, build=frames is None, cfg=cfg)
    history = [frames for _day, frames in snapshots]

    progress("score", 1, len(_STEPS))
    bundles: dict[tuple[Entity, Policy], Any] = {}
    given = predictions is not None
    if predictions is None:
        predictions, bundles = score_frames(
            inputs.text_frames(),
            {(s.entity, s.policy) for s in inputs.audited},
            model_uri or DEFAULT_MODEL_URIS,
            labels=inputs.labels,
        )
    frames_scored = with_scores(inputs.frames, predictions)
    history = [with_scores(h, predictions) for h in history]

    progress("estimate", 2, len(_STEPS))
    flip_rate, source = flip_rate_for(inputs.labels, cfg)
    pops, est_pops = _populations(inputs, predictions, oof, flip_rate, cfg)
    metrics = estimated_metrics(est_pops, cfg)

    progress("rank", 3, len(_STEPS))
    posts = {k: posterior(p, inputs.labels) for k, p in pops.items()}
    flags = likely_errors(
        pops,
        est_pops,
        inputs.labels,
        cfg,
        reasons=_reasons_fn(reasons, bundles, inputs),
        boost=_watch_boost(inputs, est_pops, cfg),
    )

    progress("slices", 4, len(_STEPS))
    slices = error_slices(pops, frames_scored, posts, inputs.audited, cfg)

    progress("suggest", 5, len(_STEPS))
    suggestions = strategy_suggestions(
        pops,
        frames_scored,
        slices,
        metrics,
        history,
        cfg,
        registry=inputs.registry,
        strategies=inputs.all_strategies,
        labels=inputs.labels,
    )
    result = AuditResult(
        metrics=metrics,
        flags=flags,
        slices=slices,
        suggestions=suggestions,
        populations=pops,
        estimate_populations=est_pops,
        flip_rate=flip_rate,
        flip_rate_source=source,
        as_of=inputs.as_of,
        settings=cfg,
        label_counts=_label_counts(pops),
    )

    progress("write", 6, len(_STEPS))
    result.paths = write_outputs(result, Path(out_dir), write_report=write_report)
    served = predictions
    if not given:
        dated = [(day, f) for day, f in snapshots if day is not None]
        served = scoring_log(
            served_predictions(predictions, bundles).assign(scored_at=inputs.as_of),
            new_item_scores(bundles, dated, inputs.tables, days=cfg.history_every_days),
        )
    result.paths["predictions"] = write_predictions(served, Path(out_dir))
    result.run_id = _log_to_mlflow(result, tracking_uri)
    progress("write", len(_STEPS), len(_STEPS))
    return result


@dataclass
class _Inputs:
    """What one audit reads: tables, strategies (all and the audited ones) and frames."""

    tables: Mapping[str, pd.DataFrame]
    registry: Any
    all_strategies: list[Strategy]
    audited: list[Strategy]
    as_of: datetime
    entities: tuple[Entity, ...]
    frames: dict[Entity, pd.DataFrame]

    @property
    def labels(self) -> pd.DataFrame:
        """The audit labels."""
        return self.tables["audit_labels"]

    def text_frames(self) -> dict[Entity, pd.DataFrame]:
        """The frames with the items' raw text beside them (what the text models read)."""
        return {e: with_text_fields(f, e, self.tables) for e, f in self.frames.items()}


def _load_inputs(
    data_dir: Path | str | None,
    *,
    tables: Mapping[str, pd.DataFrame] | None,
    strategies: Sequence[Strategy] | None,
    frames: Mapping[Entity, pd.DataFrame] | None,
    as_of: datetime | None,
) -> _Inputs:
    """Tables, strategies and frames: the ones given, the rest loaded from `data_dir`."""
    from features.loader import load_tables
    from governance.registry import StrategyRegistry

    data_path = Path(data_dir) if data_dir is not None else None
    if (tables is None or strategies is None) and data_path is None:
        raise ValueError("pass data_dir, or both tables= and strategies=")
    if tables is None:
        assert data_path is not None
        tables = load_tables(data_path)
    registry = StrategyRegistry.load(data_path) if strategies is None and data_path else None
    all_strategies = list(registry) if registry is not None else list(strategies or [])
    audited = audited_strategies(all_strategies, tables["strategy_decisions"])
    if not audited:
        raise ValueError(
            f"no strategy in {data_dir} took a decision or is active; nothing to audit"
        )
    as_of = as_of or period_end(tables)
    entities = tuple(sorted({s.entity for s in audited}, key=list(Entity).index))
    if frames is None:
        from features.build import build_frames

        frames = build_frames(tables, as_of=as_of, entities=entities)
    return _Inputs(
        tables, registry, all_strategies, audited, as_of, entities, {e: frames[e] for e in entities}
    )


def _history_frames(
    inputs: _Inputs,
    given: Sequence[Mapping[Entity, pd.DataFrame]] | None,
    *,
    build: bool,
    cfg: AuditSettings,
) -> list[tuple[datetime | None, Mapping[Entity, pd.DataFrame]]]:
    """Weekly frame snapshots the suggestions are projected over (built when features are),
    each with the day it was built as of (None: given)."""
    if given is not None:
        return [(None, g) for g in given]
    if not build or cfg.history_every_days <= 0:
        return []
    from features.build import build_frames

    history: list[tuple[datetime | None, Mapping[Entity, pd.DataFrame]]] = []
    start = _period_start(inputs.tables)
    day = inputs.as_of - timedelta(days=cfg.history_every_days)
    while start is not None and day > start:
        frames = dict(build_frames(inputs.tables, as_of=day, entities=inputs.entities))
        history.append((day, frames))
        day -= timedelta(days=cfg.history_every_days)
    return history


def _populations(
    inputs: _Inputs,
    predictions: pd.DataFrame,
    oof: pd.DataFrame | None,
    flip_rate: float,
    cfg: AuditSettings,
) -> tuple[dict[tuple[Entity, Policy], Population], dict[tuple[Entity, Policy], Population]]:
    """The populations ranked and sliced (`calibration`) and those estimated from
    (`estimate_calibration`; the same objects when both settings agree)."""

    def build(calibration: Calibration) -> dict[tuple[Entity, Policy], Population]:
        return build_populations(
            inputs.tables,
            inputs.audited,
            predictions,
            items={e: inputs.frames[e]["item_id"].astype(str) for e in inputs.entities},
            oof=oof,
            flip_rate=flip_rate,
            design_frames=cfg.design_frames,
            calibration=calibration,
            use_oof=cfg.use_oof,
        )

    pops = build(cfg.calibration)
    same = cfg.estimate_calibration == cfg.calibration
    return pops, pops if same else build(cfg.estimate_calibration)


def _reasons_fn(
    reasons: pd.DataFrame | None, bundles: Mapping[tuple[Entity, Policy], Any], inputs: _Inputs
) -> ReasonsFn | None:
    """Reasons of flagged items: from the given table, else from the scoring bundles."""
    if reasons is not None:
        return reasons_from_frame(reasons)
    if bundles:
        return reasons_from_bundles(dict(bundles), inputs.text_frames())
    return None


def estimated_metrics(
    est_pops: Mapping[tuple[Entity, Policy], Population], cfg: AuditSettings
) -> pd.DataFrame:
    """The metrics table of the estimate populations at the run's interval level and costs.
    Shared by the marketplace, partitioned and BYO audits."""
    return strategy_metrics(
        est_pops,
        confidence=cfg.confidence,
        fp_cost=cfg.fp_cost,
        fn_cost=cfg.fn_cost,
        impression_cost=cfg.impression_cost,
        composite=cfg.composite_estimates,
    )


def _watch_boost(
    inputs: _Inputs, pops: Mapping[tuple[Entity, Policy], Population], cfg: AuditSettings
) -> dict[tuple[Entity, Policy], FloatArray]:
    """Importance multipliers of the units of the categories monitoring watches."""
    from governance.monitoring.launch import category_items, watched_on

    tables = dict(inputs.tables)
    if cfg.watch_boost == 1.0 or "listings" not in tables or "channel_exposure" not in tables:
        return {}
    watched = watched_on(tables, inputs.as_of.date())
    if not watched:
        return {}
    log.info("audit slice: %s sampled %gx (watched)", ", ".join(watched), cfg.watch_boost)
    return category_boost(pops, category_items(tables, watched), watched, cfg.watch_boost)


def likely_errors(
    pops: dict[tuple[Entity, Policy], Population],
    est_pops: dict[tuple[Entity, Policy], Population],
    labels: pd.DataFrame,
    cfg: AuditSettings,
    *,
    reasons: ReasonsFn | None,
    boost: Mapping[tuple[Entity, Policy], FloatArray] | None = None,
) -> pd.DataFrame:
    """The flags table: ranked likely-error lists and the audit slice (drawn on the estimate
    populations, `boost` raising some units' importance). Shared by the marketplace audit and
    the audit of a BYO dataset."""
    sample = audit_sample(
        est_pops,
        boost=boost,
        size=cfg.audit_sample_size,
        floor=cfg.audit_sample_floor,
        seed=cfg.seed,
        precision_target=cfg.precision_target,
        recall_target=cfg.recall_target,
    )
    return rank_flags(
        pops,
        labels=labels,
        severity=cfg.severity,
        list_size=cfg.flag_list_size,
        reasons=reasons,
        audit_slice=sample,
        fp_min_probability=cfg.fp_min_probability,
        fp_min_precision=cfg.fp_min_precision,
        fn_min_precision=cfg.fn_min_precision,
    )


def error_slices(
    pops: dict[tuple[Entity, Policy], Population],
    frames: Mapping[Entity, pd.DataFrame],
    posts: Mapping[tuple[Entity, Policy], Any],
    audited: Sequence[Strategy],
    cfg: AuditSettings,
) -> pd.DataFrame:
    """Where each audited strategy's errors concentrate."""
    return audit_slices(
        pops,
        frames,
        posts,
        alpha=cfg.slice_alpha,
        max_level=cfg.slice_max_level,
        min_support=cfg.slice_min_support,
        top_k=cfg.slice_top_k,
        n_bins=cfg.slice_bins,
        exclude_prefixes=cfg.slice_exclude_prefixes,
        exclude_patterns=cfg.slice_exclude_patterns,
        strategies={s.ref: s for s in audited},
        score=cfg.slice_score,
        min_z=cfg.slice_min_z,
        max_overlap=cfg.slice_max_overlap,
        age_features=cfg.cohort_age_features,
    )


def strategy_suggestions(
    pops: dict[tuple[Entity, Policy], Population],
    frames: Mapping[Entity, pd.DataFrame],
    slices: pd.DataFrame,
    metrics: pd.DataFrame,
    history: Sequence[Mapping[Entity, pd.DataFrame]],
    cfg: AuditSettings,
    *,
    registry: Any,
    strategies: Sequence[Strategy],
    labels: pd.DataFrame,
) -> pd.DataFrame:
    """Changes to the audited strategies, projected over the frame history (frames carry
    `p_<policy>` score columns, `with_scores`)."""
    return suggest(
        pops,
        frames,
        slices,
        registry=registry,
        strategies=strategies,
        metrics=metrics,
        fp_cost=cfg.fp_cost,
        fn_cost=cfg.fn_cost,
        impression_cost=cfg.impression_cost,
        min_material_errors=cfg.min_material_errors,
        max_per_strategy=cfg.max_suggestions_per_strategy,
        confidence=cfg.confidence,
        history=list(history),
        labels=labels,
    )


def _label_counts(pops: Mapping[tuple[Entity, Policy], Population]) -> dict[str, int]:
    """Labels behind the audit by sampling design, over every population."""
    counts: dict[str, int] = {}
    for p in pops.values():
        for k, v in p.label_counts.items():
            counts[k] = counts.get(k, 0) + v
    return counts


def _settings_params(settings: AuditSettings) -> dict[str, str]:
    """The run's settings as MLflow parameters (values cut to MLflow's 500 characters)."""
    return {
        f"audit.{key}": str(value)[:500] for key, value in settings.model_dump(mode="json").items()
    }


def write_outputs(
    result: AuditResult, out_dir: Path, *, write_report: bool = True
) -> dict[str, Path]:
    """Write the four tables (and the HTML report) into `out_dir`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for key in ("metrics", "flags", "slices", "suggestions"):
        path = out_dir / OUTPUT_FILES[key]
        getattr(result, key).to_parquet(path, index=False)
        paths[key] = path
    if write_report:
        from governance.audit.report import render_report

        path = out_dir / OUTPUT_FILES["report"]
        path.write_text(render_report(result), encoding="utf-8")
        paths["report"] = path
    return paths


def served_predictions(
    predictions: pd.DataFrame, bundles: Mapping[tuple[Entity, Policy], Any]
) -> pd.DataFrame:
    """The scores as their models made them, for the monitor: a target scored by a model of
    another policy (an entity's any-violation model scoring every policy's items) is written
    once per item under that model's policy; a target without a model (its constant label
    prevalence) is left out."""
    parts = []
    for (entity, policy), bundle in sorted(bundles.items()):
        rows = predictions[
            (predictions["entity"].astype(str) == entity.value)
            & (predictions["policy"].astype(str) == policy.value)
        ]
        served = str(bundle.metadata.get("policy") or policy.value)
        parts.append(rows.assign(policy=served))
    if not parts:
        return predictions.iloc[:0]
    out = pd.concat(parts, ignore_index=True)
    return out.drop_duplicates(["entity", "item_id", "policy"], keep="first")


def new_item_scores(
    bundles: Mapping[tuple[Entity, Policy], Any],
    snapshots: Sequence[tuple[datetime, Mapping[Entity, pd.DataFrame]]],
    tables: Mapping[str, pd.DataFrame],
    *,
    days: int,
) -> pd.DataFrame:
    """Each model's scores of the items published in the `days` before each snapshot, as of
    that snapshot (entity, item_id, policy, p, scored_at): the scores items had when new, so
    the monitor compares every week's items at the same age (an item's features, and so its
    score, change as it ages)."""
    models = {(e, str(b.metadata.get("policy") or p.value)): b for (e, p), b in bundles.items()}
    parts = [
        _new_item_part(frames.get(entity), entity, policy, bundle, tables, day, days)
        for day, frames in snapshots
        for (entity, policy), bundle in sorted(models.items())
    ]
    kept = [part for part in parts if len(part)]
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()


def _new_item_part(
    frame: pd.DataFrame | None,
    entity: Entity,
    policy: str,
    bundle: Any,
    tables: Mapping[str, pd.DataFrame],
    day: datetime,
    days: int,
) -> pd.DataFrame:
    """One model's scores, as of `day`, of the frame's items published in the `days` before."""
    from features.tables import published_at

    if frame is None or not len(frame):
        return pd.DataFrame()
    when = published_at(tables, entity).reindex(frame["item_id"].astype(str))
    new = (when >= pd.Timestamp(day) - pd.Timedelta(days=days)) & (when < pd.Timestamp(day))
    if not new.any():
        return pd.DataFrame()
    young = with_text_fields(frame.loc[new.to_numpy()].reset_index(drop=True), entity, tables)
    return pd.DataFrame(
        {
            "entity": entity.value,
            "item_id": young["item_id"].astype(str).to_numpy(),
            "policy": policy,
            "p": bundle_probabilities(bundle, young),
            "scored_at": pd.Timestamp(day),
        }
    )


def scoring_log(current: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
    """The audit's scores (`current`, scored as of the audit) and the `earlier` scores of
    the same models, one row per (entity, item_id, policy, scored_at)."""
    log = pd.concat([earlier, current], ignore_index=True) if len(earlier) else current
    return log.drop_duplicates(["entity", "item_id", "policy", "scored_at"], keep="last")


def write_predictions(predictions: pd.DataFrame, out_dir: Path) -> Path:
    """Write the scores the audit read, one row per (entity, item_id, policy) and, in a
    scoring log (column `scored_at`), per time scored."""
    path = out_dir / OUTPUT_FILES["predictions"]
    cols = list(PREDICTION_COLUMNS)
    keys = cols[:3]
    if "scored_at" in predictions.columns:
        cols, keys = [*cols, "scored_at"], [*keys, "scored_at"]
    predictions[cols].drop_duplicates(keys, keep="last").to_parquet(path, index=False)
    return path


def label_prevalence(labels: pd.DataFrame, entity: Entity, policy: Policy) -> float:
    """Inverse-inclusion-weighted share of violating verdicts for one target (0.05 if none)."""
    mask = (labels["entity"] == entity.value) & (labels["policy"] == policy.value)
    if not mask.any():
        return 0.05
    weights = 1.0 / labels.loc[mask, "inclusion_probability"].clip(lower=1e-9).to_numpy()
    violating = (labels.loc[mask, "verdict"] == "violating").to_numpy(dtype=np.float64)
    return float(np.clip(np.average(violating, weights=weights), 1e-3, 1 - 1e-3))


def target_predictions(
    frame: pd.DataFrame, entity: Entity, policy: Policy, p: float | npt.ArrayLike
) -> pd.DataFrame:
    """The audit's predictions table (entity, item_id, policy, p) of one target's items; a
    scalar `p` is the constant prediction of a target without a model."""
    return pd.DataFrame(
        {
            "entity": entity.value,
            "item_id": frame["item_id"].astype(str).to_numpy(),
            "policy": policy.value,
            "p": np.broadcast_to(np.asarray(p, dtype=np.float64), (len(frame),)).copy(),
        }
    )


def score_frames(
    frames: Mapping[Entity, pd.DataFrame],
    targets: set[tuple[Entity, Policy]],
    model_uri: str | Sequence[str],
    *,
    labels: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[tuple[Entity, Policy], Any]]:
    """Calibrated probabilities of every item from each target's bundle: the first of the
    `model_uri` templates that loads.

    A target with no model that loads raises, unless `labels` are given: then its items get
    the labels' weighted prevalence, so its estimates rest on the labels alone (still valid,
    only wider intervals) and a warning names it.
    """
    templates = [model_uri] if isinstance(model_uri, str) else list(model_uri)
    parts, bundles = [], {}
    loaded: dict[str, Any] = {}  # each URI loaded (or failed) once: its bundle or why not
    scored: dict[tuple[str, Entity], np.ndarray] = {}  # one model scores a frame once
    for entity, policy in sorted(targets):
        frame = frames[entity]
        uris = [
            t.format(entity=entity.value, policy=policy.value.replace("_", "-")) for t in templates
        ]
        uri, errors = _first_bundle(uris, loaded)
        if uri is None:
            if labels is None:
                raise ValueError(
                    f"cannot load the {entity.value}/{policy.value} model: {'; '.join(errors)}. "
                    "Train it (`govrisk train`) or pass --predictions"
                )
            prior = label_prevalence(labels, entity, policy)
            log.warning(
                "no model for %s/%s (%s); its strategies are estimated from labels alone "
                "(constant prediction %.3f)",
                entity.value,
                policy.value,
                "; ".join(errors),
                prior,
            )
            parts.append(target_predictions(frame, entity, policy, prior))
            continue
        bundle = bundles[(entity, policy)] = loaded[uri]
        if (uri, entity) not in scored:
            scored[(uri, entity)] = bundle_probabilities(bundle, frame)
        parts.append(target_predictions(frame, entity, policy, scored[(uri, entity)]))
    return pd.concat(parts, ignore_index=True), bundles


def _first_bundle(uris: Sequence[str], loaded: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The first of `uris` whose bundle loads (None if none does) and why the others failed;
    `loaded` keeps each URI's bundle, or the reason (a str) it failed, across calls."""
    from models.pyfunc import load_bundle

    errors: list[str] = []
    for uri in dict.fromkeys(uris):
        if uri not in loaded:
            try:
                loaded[uri] = load_bundle(uri, threads=thread_count())
            except Exception as err:  # noqa: BLE001 - any loading failure names the URI
                loaded[uri] = f"{uri!r}: {type(err).__name__}: {err}"
        if not isinstance(loaded[uri], str):
            return uri, errors
        errors.append(loaded[uri])
    return None, errors


def bundle_probabilities(bundle: Any, frame: pd.DataFrame) -> np.ndarray:
    """A model bundle's calibrated probability of every row (`score_all_rows`)."""

    def predict(rows: pd.DataFrame) -> Any:
        return bundle.predict(rows)[1]

    return score_all_rows(predict, bundle.encoder.row_problems, frame)


def score_all_rows(
    predict: Callable[[pd.DataFrame], Any],
    row_problems: Callable[[pd.DataFrame], pd.Series],
    frame: pd.DataFrame,
) -> np.ndarray:
    """Calibrated probabilities for every row of `frame`.

    A model refuses rows whose features it never saw missing (e.g. engagement rates of an item
    that was blocked before anyone saw it); those rows get the mean probability of the rest,
    which keeps the estimator valid (the model is only an auxiliary) and is logged.
    """
    from models.encoding import EncodingError

    try:
        return np.asarray(predict(frame), dtype=np.float64)
    except EncodingError:
        bad = row_problems(frame).to_numpy(dtype=str) != ""
        out = np.full(len(frame), np.nan)
        if (~bad).any():
            out[~bad] = np.asarray(predict(frame.loc[~bad]), dtype=np.float64)
        fill = float(np.nanmean(out)) if (~bad).any() else 0.5
        out[bad] = fill
        log.warning(
            "%d of %d rows cannot be scored by the model (features it never saw missing); "
            "they get the mean probability %.3f",
            int(bad.sum()),
            len(frame),
            fill,
        )
        return out


def with_scores(
    frames: Mapping[Entity, pd.DataFrame], predictions: pd.DataFrame
) -> dict[Entity, pd.DataFrame]:
    """Frames with a `p_<policy>` column per scored policy, so score gates can be evaluated."""
    out: dict[Entity, pd.DataFrame] = {}
    for entity, frame in frames.items():
        f = frame.copy()
        preds = predictions[predictions["entity"].astype(str) == entity.value]
        for policy, grp in preds.groupby(preds["policy"].astype(str)):
            s = grp.drop_duplicates("item_id").set_index(grp["item_id"].astype(str))["p"]
            f[f"p_{policy}"] = s.reindex(f["item_id"].astype(str)).to_numpy(dtype=np.float64)
        out[entity] = f
    return out


def _period_start(tables: Mapping[str, pd.DataFrame]) -> datetime | None:
    ex = tables.get("channel_exposure")
    if ex is None or not len(ex):
        return None
    return pd.Timestamp(ex["day"].min()).normalize().to_pydatetime()


def flip_rate_for(labels: pd.DataFrame, cfg: AuditSettings) -> tuple[float, str]:
    """Reviewer flip rate from double reviews (enough pairs), else the configured one; and
    where it came from."""
    if cfg.estimate_flip_rate and len(labels):
        eps, pairs = estimate_flip_rate(labels)
        if pairs >= cfg.min_flip_pairs and np.isfinite(eps):
            return eps, f"estimated from {pairs} double-review pairs"
    return cfg.flip_rate, "configured (GOVRISK_AUDIT_FLIP_RATE)"


def _log_to_mlflow(result: AuditResult, tracking_uri: str | None) -> str | None:
    """Log the tables and report as artifacts of a run when tracking is configured or active."""
    import mlflow

    active = mlflow.active_run()
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if active is None and not uri:
        return None
    if uri:
        mlflow.set_tracking_uri(uri)
    started = active is None
    if started:
        name = result.settings.mlflow_experiment
        experiment = mlflow.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id if experiment is not None else mlflow.create_experiment(name)
        )
        run = mlflow.start_run(
            experiment_id=experiment_id, run_name=f"audit {result.as_of:%Y-%m-%d}"
        )
    else:
        assert active is not None
        run = active
    try:
        mlflow.set_tags({"govrisk.kind": "audit", "govrisk.as_of": result.as_of.isoformat()})
        mlflow.log_params(
            {"flip_rate": round(result.flip_rate, 5), **_settings_params(result.settings)}
        )
        overall = result.metrics[
            (result.metrics["channel"] == "all") & (result.metrics["strategy"] != "*")
        ]
        for _, row in overall.iterrows():
            name = str(row["strategy"]).replace("@", "_")
            for m in ("precision", "recall", "fp", "fn"):
                if pd.notna(row[m]):
                    mlflow.log_metric(f"{m}__{name}", float(row[m]))
        for path in result.paths.values():
            mlflow.log_artifact(str(path), artifact_path="audit")
        return str(run.info.run_id)
    finally:
        if started:
            mlflow.end_run()
