"""The strategy audit of a bring-your-own dataset, through the marketplace audit's estimators.

The dataset's governance section says which entity and policy its rows stand in for, their
channel and the value at stake. Strategies over its features (a `strategies/` folder) are
evaluated on its feature frame, a model's scores give P(violating) and audit labels (from
`govrisk labels draw`) are the design draws. The population is assembled by the same
`assemble_population` as the marketplace audit's, then `estimated_metrics`, `audit_sample` and
`rank_flags` run unchanged, so the tables have the marketplace audit's columns and the review
queue loads the flags as they are.

Each row is one unit, seen once in its channel: impressions are 1 there, GMV is the value
feature (1 without one), and an actioned row loses exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.byo import ByoDataset, GovernanceDecl
from features.byo_labels import governance_of
from features.vocabulary import ENTITY_CHANNELS, Entity, Policy
from governance.audit.pipeline import (
    AuditResult,
    error_slices,
    estimated_metrics,
    flip_rate_for,
    likely_errors,
    strategy_suggestions,
    write_outputs,
)
from governance.audit.population import Calibration, Population, UnitExposure, assemble_population
from governance.audit.ranking import (
    RANDOM_AUDIT,
    SAMPLING_OF_KIND,
    ReasonsFn,
    posterior,
    reasons_from_frame,
)
from governance.audit.settings import AuditSettings, get_settings
from governance.evaluator import FeatureType, evaluate_condition
from governance.strategy import Strategy

#: Columns read from `govrisk score` output: the row id and the calibrated probability.
SCORE_COLUMNS = ("item_id", "probability")


def byo_feature_types(dataset: ByoDataset) -> dict[Entity, dict[str, FeatureType]]:
    """The names and kinds strategies over the dataset may use, under its governance entity."""
    gov = governance_of(dataset)
    return {gov.entity: {f.name: f.kind for f in dataset.feature_set.features}}


def load_byo_strategies(strategies_data: Path, dataset: ByoDataset) -> list[Strategy]:
    """The active strategies of `strategies_data/strategies/` on the dataset's entity and
    policy, each checked against the dataset's features (StrategyError lists every problem)."""
    from governance.registry import StrategyRegistry

    gov = governance_of(dataset)
    registry = StrategyRegistry.load(strategies_data, feature_types=byo_feature_types(dataset))
    found = [s for s in registry.active(entity=gov.entity) if s.policy == gov.policy]
    if not found:
        raise ValueError(
            f"no active {gov.entity.value} strategy for policy {gov.policy.value} in "
            f"{strategies_data}/strategies; the dataset's governance section names them"
        )
    return found


def byo_exposure(frame: pd.DataFrame, gov: GovernanceDecl) -> UnitExposure:
    """One impression per row in its channel, worth the value feature (1 without one)."""
    if "channel" in frame.columns:
        present = set(frame["channel"].astype(str))
        channels = tuple(c.value for c in ENTITY_CHANNELS[gov.entity] if c.value in present)
        row_channel = frame["channel"].astype(str).to_numpy()
    else:
        channels = (gov.channel_of_rows().value,)
        row_channel = np.full(len(frame), channels[0], dtype=object)
    eligible = row_channel[:, None] == np.array(channels, dtype=object)[None, :]
    value = np.ones(len(frame))
    if gov.value is not None:
        value = np.nan_to_num(frame[gov.value].to_numpy(dtype=np.float64), nan=0.0)
    impressions = eligible.astype(np.float64)
    gmv = impressions * value[:, None]
    return UnitExposure(channels, eligible, impressions, gmv, impressions.copy(), gmv.copy())


def byo_population(
    dataset: ByoDataset,
    strategies: Sequence[Strategy],
    p: np.ndarray,
    labels: pd.DataFrame,
    *,
    oof: pd.DataFrame | None,
    flip_rate: float,
    calibration: Calibration,
    settings: AuditSettings,
) -> Population:
    """The dataset's rows as one audit population (`p`: P(violating) per frame row)."""
    gov = governance_of(dataset)
    frame = dataset.frame
    exposure = byo_exposure(frame, gov)
    types = byo_feature_types(dataset)[gov.entity]
    actioned: dict[str, np.ndarray] = {}
    channels_of: dict[str, tuple[str, ...]] = {}
    for s in strategies:
        scope = tuple(str(c.value) for c in s.channels if c.value in exposure.channels)
        in_scope = np.isin(np.array(exposure.channels, dtype=object), scope)
        mask = evaluate_condition(s.condition, frame, feature_types=types)
        actioned[s.ref] = mask[:, None] & exposure.eligible & in_scope[None, :]
        channels_of[s.ref] = scope
    return assemble_population(
        gov.entity,
        gov.policy,
        frame["item_id"].astype(str).to_numpy(dtype=object),
        np.asarray(p, dtype=np.float64),
        exposure,
        actioned=actioned,
        strategy_channels=channels_of,
        labels=labels,
        oof=oof if settings.use_oof else None,
        flip_rate=flip_rate,
        design_frames=settings.design_frames,
        calibration=calibration,
    )


def audit_slice_draws(flags: pd.DataFrame) -> pd.DataFrame:
    """The audit slice of a flags table (its `random_audit` rows) as drawn rows: item_id,
    sampling (what a verdict on it is recorded as) and inclusion probability."""
    rows = flags.loc[flags["kind"].astype(str) == RANDOM_AUDIT]
    if not len(rows):
        raise ValueError("the flags hold no audit slice (random_audit rows) to draw from")
    return pd.DataFrame(
        {
            "item_id": rows["item_id"].astype(str),
            "sampling": SAMPLING_OF_KIND[RANDOM_AUDIT],
            "inclusion_probability": rows["inclusion_probability"].astype(float),
        }
    ).drop_duplicates("item_id")


def scores_for(dataset: ByoDataset, scores: pd.DataFrame) -> np.ndarray:
    """The probability of every frame row from `govrisk score` output (every row needed)."""
    missing = sorted(set(SCORE_COLUMNS) - set(scores.columns))
    if missing:
        raise ValueError(
            f"scores lack column(s) {missing}; pass the output folder of `govrisk score`"
        )
    by_id = scores.drop_duplicates("item_id").set_index(scores["item_id"].astype(str))
    p = by_id["probability"].reindex(dataset.frame["item_id"].astype(str)).to_numpy(float)
    if np.isnan(p).any():
        raise ValueError(
            f"{int(np.isnan(p).sum()):,} of {len(p):,} rows have no score (quarantined by "
            "`govrisk score`?); score every row, e.g. with --unknown-categories missing"
        )
    return p


def score_reasons(scores: pd.DataFrame, gov: GovernanceDecl) -> ReasonsFn | None:
    """The flags' reasons from `govrisk score --explain K` output (None without them)."""
    if "reasons" not in scores.columns:
        return None
    text = [json.dumps([dict(r) for r in rs], default=_plain) for rs in scores["reasons"]]
    return reasons_from_frame(
        pd.DataFrame(
            {
                "entity": gov.entity.value,
                "item_id": scores["item_id"].astype(str),
                "policy": gov.policy.value,
                "reasons": text,
            }
        )
    )


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON takes."""
    return value.item() if isinstance(value, np.generic) else str(value)


def run_byo_audit(
    dataset: ByoDataset,
    strategies: Sequence[Strategy],
    scores: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    out_dir: Path,
    oof: pd.DataFrame | None = None,
    flip_rate: float | None = None,
    settings: AuditSettings | None = None,
) -> AuditResult:
    """Estimate each strategy's precision and recall, rank likely errors, find where they
    concentrate, suggest changes and draw the audit slice; writes the marketplace audit's
    tables into `out_dir`."""
    cfg = settings or get_settings()
    p = scores_for(dataset, scores)
    eps, source = (
        flip_rate_for(labels, cfg) if flip_rate is None else (flip_rate, "given (--flip-rate)")
    )

    def build(calibration: Calibration) -> Population:
        return byo_population(
            dataset,
            strategies,
            p,
            labels,
            oof=oof,
            flip_rate=eps,
            calibration=calibration,
            settings=cfg,
        )

    gov = governance_of(dataset)
    key = (gov.entity, gov.policy)
    pops = {key: build(cfg.calibration)}
    same = cfg.estimate_calibration == cfg.calibration
    est = pops if same else {key: build(cfg.estimate_calibration)}
    metrics = estimated_metrics(est, cfg)
    frames = {gov.entity: _scored_frame(dataset, p)}
    slices = _slices(frames, pops, labels, strategies, cfg)
    result = AuditResult(
        metrics=metrics,
        flags=likely_errors(pops, est, labels, cfg, reasons=score_reasons(scores, gov)),
        slices=slices,
        suggestions=strategy_suggestions(
            pops,
            frames,
            slices,
            metrics,
            [],
            cfg,
            registry=None,
            strategies=strategies,
            labels=labels,
        ),
        populations=pops,
        flip_rate=eps,
        flip_rate_source=source,
        as_of=pd.Timestamp(dataset.frame["event_time"].max()).to_pydatetime(),
        settings=cfg,
        label_counts=dict(est[key].label_counts),
        estimate_populations=est,
    )
    result.paths = write_outputs(result, out_dir, write_report=False)
    return result


def _scored_frame(dataset: ByoDataset, p: np.ndarray) -> pd.DataFrame:
    """The dataset's features with the model's score as `p_<policy>` (for score gates)."""
    gov = governance_of(dataset)
    frame = dataset.frame[["item_id", *dataset.feature_set.names]]
    return frame.assign(**{f"p_{gov.policy.value}": p})


def _slices(
    frames: dict[Entity, pd.DataFrame],
    pops: dict[tuple[Entity, Policy], Population],
    labels: pd.DataFrame,
    strategies: Sequence[Strategy],
    cfg: AuditSettings,
) -> pd.DataFrame:
    """Where each rule's likely errors concentrate, over the dataset's own features."""
    posts = {k: posterior(p, labels) for k, p in pops.items()}
    return error_slices(pops, frames, posts, strategies, cfg)
