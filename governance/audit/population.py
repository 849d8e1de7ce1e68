"""The audit population: per (entity, policy), every item with its model probability, exposure,
which strategies actioned it in which channel, and its audit labels as design draws."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.vocabulary import ENTITY_CHANNELS, Entity, Policy
from governance.audit.estimators import (
    BoolArray,
    EstimationError,
    FloatArray,
    LabelDraws,
    denoise_probability,
    fit_recalibration,
    recalibrate,
)
from governance.audit.settings import DesignFrame
from governance.strategy import Strategy

#: How model probabilities become P(violating); see `build_populations`.
Calibration = Literal["refit", "denoise", "none"]
#: Columns a predictions frame must carry (calibrated probability of a violating verdict).
PREDICTION_COLUMNS = ("entity", "item_id", "policy", "p")
#: Columns of out-of-fold predictions written by training.
OOF_COLUMNS = ("entity", "item_id", "policy", "oof_p")


@dataclass(frozen=True)
class Population:
    """Every unit of one entity judged against one policy, as aligned arrays.

    Exposure arrays are (N, C) over `channels`; `lost_*` is the counterfactual exposure an
    actioned unit did not get (channel mean daily rate of un-actioned items x days actioned,
    minus what it still got).
    """

    entity: Entity
    policy: Policy
    item_ids: npt.NDArray[np.object_]
    p_model: FloatArray
    f: FloatArray
    channels: tuple[str, ...]
    eligible: BoolArray
    impressions: FloatArray
    gmv: FloatArray
    lost_impressions: FloatArray
    lost_gmv: FloatArray
    actioned: dict[str, BoolArray]
    strategy_channels: dict[str, tuple[str, ...]]
    draws: LabelDraws
    frames: dict[str, BoolArray]
    flip_rate: float
    n_labels_excluded: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def any_actioned(self) -> BoolArray:
        """(N, C) mask: some audited strategy of this policy actioned the unit in the channel."""
        out = np.zeros((len(self), len(self.channels)), dtype=bool)
        for mask in self.actioned.values():
            out |= mask
        return out

    def channel_index(self, channel: str) -> int:
        """Column of a channel in the exposure arrays."""
        return self.channels.index(channel)


def audit_channels(entity: Entity) -> tuple[str, ...]:
    """Channels an entity's exposure is tracked in."""
    return tuple(c.value for c in ENTITY_CHANNELS[entity])


def build_populations(
    tables: Mapping[str, pd.DataFrame],
    strategies: Sequence[Strategy],
    predictions: pd.DataFrame,
    *,
    items: Mapping[Entity, Iterable[str]] | None = None,
    oof: pd.DataFrame | None = None,
    flip_rate: float,
    design_frames: Mapping[str, DesignFrame],
    calibration: Calibration = "refit",
    use_oof: bool = True,
) -> dict[tuple[Entity, Policy], Population]:
    """One population per (entity, policy) some audited strategy targets.

    `tables` needs channel_exposure, strategy_decisions and audit_labels; `items` lists each
    entity's units (defaults to the items the predictions cover); `predictions` holds
    (entity, item_id, policy, p) for every unit.

    `calibration`: `refit` maps the model's probabilities through `sigmoid(a + b logit p)`
    fitted to the population's probability-sampled verdicts under the reviewer-noise model
    (shrunk toward the identity), `denoise` assumes they estimate P(verdict) and removes the
    noise, `none` takes them as P(violating). With `use_oof`, labeled units use their
    out-of-fold prediction in the label correction (cross-fitting).
    """
    for name in ("channel_exposure", "strategy_decisions", "audit_labels"):
        if name not in tables:
            raise EstimationError(f"the audit needs table {name!r}; load it with load_tables")
    missing = sorted(set(PREDICTION_COLUMNS) - set(predictions.columns))
    if missing:
        raise EstimationError(
            f"predictions lack column(s) {missing}; expected {list(PREDICTION_COLUMNS)}"
        )
    if oof is not None:
        missing = sorted(set(OOF_COLUMNS) - set(oof.columns))
        if missing:
            raise EstimationError(
                f"out-of-fold predictions lack column(s) {missing}; expected {list(OOF_COLUMNS)}"
            )
    return _compute_populations(
        tables,
        strategies,
        predictions,
        items=items,
        oof=oof,
        flip_rate=flip_rate,
        design_frames=design_frames,
        calibration=calibration,
        oof_used=oof if use_oof else None,
    )


def _compute_populations(
    tables: Mapping[str, pd.DataFrame],
    strategies: Sequence[Strategy],
    predictions: pd.DataFrame,
    *,
    items: Mapping[Entity, Iterable[str]] | None,
    oof: pd.DataFrame | None,
    flip_rate: float,
    design_frames: Mapping[str, DesignFrame],
    calibration: Calibration,
    oof_used: pd.DataFrame | None,
) -> dict[tuple[Entity, Policy], Population]:
    del oof
    decisions = tables["strategy_decisions"]
    exposure = tables["channel_exposure"]
    labels = tables["audit_labels"]
    period_end = _period_end(exposure, decisions)
    by_key: dict[tuple[Entity, Policy], list[Strategy]] = {}
    for s in strategies:
        by_key.setdefault((s.entity, s.policy), []).append(s)
    out: dict[tuple[Entity, Policy], Population] = {}
    cache: dict[Entity, _EntityExposure] = {}
    for (entity, policy), group in sorted(by_key.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if entity not in cache:
            cache[entity] = entity_exposure(entity, exposure, decisions, period_end)
        units = population_units(
            entity, policy, group, predictions, decisions, cache[entity], items=items
        )
        out[(entity, policy)] = assemble_population(
            entity,
            policy,
            units.item_ids,
            units.p_model,
            units.exposure,
            actioned=units.actioned,
            strategy_channels={s.ref: tuple(c.value for c in s.channels) for s in group},
            labels=labels,
            oof=oof_used,
            flip_rate=flip_rate,
            design_frames=design_frames,
            calibration=calibration,
        )
    return out


@dataclass(frozen=True)
class PopulationUnits:
    """A population's units before labels: ids, model probabilities, exposure, actions."""

    item_ids: npt.NDArray[np.object_]
    p_model: FloatArray
    exposure: UnitExposure
    actioned: dict[str, BoolArray]

    def sharing_items_of(self, other: PopulationUnits) -> PopulationUnits:
        """These units with `other`'s id and exposure arrays when they cover the same items
        (populations of one entity: one copy of what is most of an audit's memory)."""
        if other is self or not np.array_equal(other.item_ids, self.item_ids):
            return self
        return replace(self, item_ids=other.item_ids, exposure=other.exposure)


def join_units(
    parts: Mapping[tuple[Entity, Policy], Sequence[PopulationUnits]],
) -> dict[tuple[Entity, Policy], PopulationUnits]:
    """Each population's units from disjoint parts (partitions), in item-id order (a feature
    frame's order, so sampling draws the same units however the data is split). Populations
    whose parts share id arrays (`sharing_items_of`) share the joined ids and exposure."""
    out: dict[tuple[Entity, Policy], PopulationUnits] = {}
    joined: dict[tuple[int, ...], tuple[npt.NDArray[np.int64], PopulationUnits]] = {}
    for key, pieces in parts.items():
        tag = tuple(id(p.item_ids) for p in pieces)
        if tag in joined:
            order, like = joined[tag]
            item_ids, exposure = like.item_ids, like.exposure
        else:
            order = np.argsort(
                np.concatenate([p.item_ids for p in pieces]).astype(str), kind="stable"
            )
            item_ids = np.concatenate([p.item_ids for p in pieces])[order]
            exposure = _join_exposure([p.exposure for p in pieces], order)
        out[key] = PopulationUnits(
            item_ids=item_ids,
            p_model=np.concatenate([p.p_model for p in pieces])[order],
            exposure=exposure,
            actioned={
                r: np.concatenate([p.actioned[r] for p in pieces])[order]
                for r in pieces[0].actioned
            },
        )
        joined.setdefault(tag, (order, out[key]))
    return out


def _join_exposure(parts: Sequence[UnitExposure], order: npt.NDArray[np.int64]) -> UnitExposure:
    def stack(name: str) -> Any:
        return np.concatenate([getattr(e, name) for e in parts])[order]

    return UnitExposure(
        channels=parts[0].channels,
        eligible=stack("eligible"),
        impressions=stack("impressions"),
        gmv=stack("gmv"),
        lost_impressions=stack("lost_impressions"),
        lost_gmv=stack("lost_gmv"),
    )


def population_units(
    entity: Entity,
    policy: Policy,
    strategies: Sequence[Strategy],
    predictions: pd.DataFrame,
    decisions: pd.DataFrame,
    exposure: _EntityExposure,
    *,
    items: Mapping[Entity, Iterable[str]] | None = None,
) -> PopulationUnits:
    """The units of the (entity, policy) population of `strategies`: every item (of `items`,
    else of the predictions) with its probability, exposure and per-strategy action masks."""
    preds = predictions[
        (predictions["entity"].astype(str) == entity.value)
        & (predictions["policy"].astype(str) == policy.value)
    ]
    if items is not None and entity in items:
        item_ids = np.asarray(pd.unique(pd.Series(list(items[entity]), dtype=object)))
    else:
        item_ids = np.asarray(pd.unique(preds["item_id"].astype(object)))
    p_series = preds.drop_duplicates("item_id").set_index("item_id")["p"].astype(float)
    p_model: FloatArray = np.asarray(p_series.reindex(item_ids), dtype=np.float64)
    if np.isnan(p_model).any():
        n_missing = int(np.isnan(p_model).sum())
        raise EstimationError(
            f"predictions for {entity.value}/{policy.value} miss {n_missing} of "
            f"{len(item_ids)} items (e.g. {list(item_ids[np.isnan(p_model)][:3])}); "
            "score every item of the feature frame"
        )
    ex = exposure.aligned(item_ids)
    actioned = {s.ref: _actioned(decisions, s, item_ids, ex.channels) for s in strategies}
    return PopulationUnits(item_ids, p_model, ex, actioned)


def assemble_population(
    entity: Entity,
    policy: Policy,
    item_ids: npt.NDArray[np.object_],
    p_model: FloatArray,
    exposure: UnitExposure,
    *,
    actioned: dict[str, BoolArray],
    strategy_channels: dict[str, tuple[str, ...]],
    labels: pd.DataFrame,
    oof: pd.DataFrame | None,
    flip_rate: float,
    design_frames: Mapping[str, DesignFrame],
    calibration: Calibration,
) -> Population:
    """One population from its units' probabilities, exposure and strategy actions (N x C
    masks by ref): labels become design draws and probabilities are calibrated."""
    any_act = np.zeros((len(item_ids), len(exposure.channels)), dtype=bool)
    for m in actioned.values():
        any_act |= m
    actioned_frame: BoolArray = np.asarray(any_act.any(axis=1), dtype=bool)
    frames: dict[str, BoolArray] = {
        name: (np.ones(len(item_ids), dtype=bool) if kind == "population" else actioned_frame)
        for name, kind in design_frames.items()
        if kind != "exclude"
    }
    draws, n_excluded, counts = _label_draws(labels, entity, policy, item_ids, p_model, oof, frames)
    f, draws = _calibrate(p_model, draws, frames, flip_rate, calibration)
    return Population(
        entity=entity,
        policy=policy,
        item_ids=item_ids,
        p_model=p_model,
        f=f,
        channels=exposure.channels,
        eligible=exposure.eligible | any_act,
        impressions=exposure.impressions,
        gmv=exposure.gmv,
        lost_impressions=exposure.lost_impressions,
        lost_gmv=exposure.lost_gmv,
        actioned=actioned,
        strategy_channels=strategy_channels,
        draws=draws,
        frames={k: v for k, v in frames.items() if k in set(draws.design.tolist())},
        flip_rate=flip_rate,
        n_labels_excluded=n_excluded,
        label_counts=counts,
    )


def _period_end(exposure: pd.DataFrame, decisions: pd.DataFrame) -> pd.Timestamp:
    ends = []
    if len(exposure):
        ends.append(pd.Timestamp(exposure["day"].max()) + pd.Timedelta(days=1))
    if len(decisions):
        ends.append(pd.Timestamp(decisions["decided_at"].max()).normalize() + pd.Timedelta(days=1))
    return max(ends) if ends else pd.Timestamp("1970-01-01")


@dataclass(frozen=True)
class _EntityExposure:
    channels: tuple[str, ...]
    totals: pd.DataFrame  # index item_id, columns (metric, channel)

    def aligned(self, item_ids: npt.NDArray[np.object_]) -> UnitExposure:
        t = self.totals.reindex(pd.Index(item_ids, dtype=object)).fillna(0.0)
        c = list(self.channels)

        def block(metric: str) -> FloatArray:
            cols = [(metric, ch) for ch in c]
            return t.reindex(columns=pd.MultiIndex.from_tuples(cols), fill_value=0.0).to_numpy(
                dtype=np.float64
            )

        return UnitExposure(
            channels=self.channels,
            eligible=block("impressions") > 0,
            impressions=block("impressions"),
            gmv=block("gmv"),
            lost_impressions=block("lost_impressions"),
            lost_gmv=block("lost_gmv"),
        )


@dataclass(frozen=True)
class UnitExposure:
    """Exposure of a population's units: (N, C) arrays over `channels`."""

    channels: tuple[str, ...]
    eligible: BoolArray
    impressions: FloatArray
    gmv: FloatArray
    lost_impressions: FloatArray
    lost_gmv: FloatArray


def entity_exposure(
    entity: Entity,
    exposure: pd.DataFrame,
    decisions: pd.DataFrame,
    period_end: pd.Timestamp,
    *,
    baseline: pd.DataFrame | None = None,
) -> _EntityExposure:
    """An entity's exposure per (item, channel) and what actions cost it; `baseline` (of
    `exposure_baseline`, summed over partitions) gives the un-actioned daily rates."""
    channels = audit_channels(entity)
    ex = _entity_rows(entity, exposure)
    shown = ex.groupby(["item_id", "channel"], sort=False)[["impressions", "gmv"]].sum()
    spans = _action_spans(entity, decisions, period_end)
    base = baseline if baseline is not None else _baseline_sums(ex, spans)
    rate = base[["impressions", "gmv"]].div(base["rows"], axis=0)

    lost = pd.DataFrame(index=spans.index)
    if len(spans):
        during = ex.merge(spans[["start", "end"]].reset_index(), on=["item_id", "channel"])
        during = during[(during["day"] >= during["start"]) & (during["day"] < during["end"])]
        got = during.groupby(["item_id", "channel"])[["impressions", "gmv"]].sum()
        ch = spans.index.get_level_values("channel")
        for metric in ("impressions", "gmv"):
            r = rate[metric].reindex(ch).fillna(0.0).to_numpy() if len(rate) else 0.0
            expected = r * spans["days"].to_numpy()
            already = got[metric].reindex(spans.index).fillna(0.0).to_numpy()
            lost[f"lost_{metric}"] = np.clip(expected - already, 0.0, None)
    else:
        lost["lost_impressions"] = pd.Series(dtype=float)
        lost["lost_gmv"] = pd.Series(dtype=float)
    totals = shown.join(lost, how="outer").fillna(0.0)
    totals = totals.unstack("channel", fill_value=0.0)  # type: ignore[assignment]
    return _EntityExposure(channels=channels, totals=totals)


def exposure_baseline(
    entity: Entity, exposure: pd.DataFrame, decisions: pd.DataFrame, period_end: pd.Timestamp
) -> pd.DataFrame:
    """Per channel: impressions and GMV summed over the exposure rows of (item, channel)
    pairs no strategy touched, and their count (`rows`); sums of partitions add up."""
    return _baseline_sums(
        _entity_rows(entity, exposure), _action_spans(entity, decisions, period_end)
    )


def _entity_rows(entity: Entity, exposure: pd.DataFrame) -> pd.DataFrame:
    ex = exposure[exposure["entity"].astype(str) == entity.value]
    ex = ex[["item_id", "channel", "day", "impressions", "gmv"]].copy()
    ex["item_id"] = ex["item_id"].astype(object)
    ex["channel"] = ex["channel"].astype(str)
    return ex


def _action_spans(
    entity: Entity, decisions: pd.DataFrame, period_end: pd.Timestamp
) -> pd.DataFrame:
    """Actioned (item, channel) spans: earliest un-lifted decision to lift or period end."""
    dec = decisions[decisions["entity"].astype(str) == entity.value]
    spans = pd.DataFrame(
        {
            "item_id": dec["item_id"].astype(object).to_numpy(),
            "channel": dec["channel"].astype(str).to_numpy(),
            "start": pd.to_datetime(dec["decided_at"]).dt.normalize().to_numpy(),
            "end": pd.to_datetime(dec["lifted_at"]).fillna(period_end).to_numpy(),
        }
    )
    spans = spans.groupby(["item_id", "channel"], sort=False).agg(
        start=("start", "min"), end=("end", "max")
    )
    span_days = (spans["end"] - spans["start"]).dt.total_seconds() / 86400.0
    spans["days"] = span_days.clip(lower=0.0)
    return spans


def _baseline_sums(ex: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    untouched = ex.set_index(["item_id", "channel"]).index.isin(spans.index)
    base = ex[~untouched]
    sums = base.groupby("channel")[["impressions", "gmv"]].sum()
    sums["rows"] = base.groupby("channel").size().astype(float)
    return sums


def _actioned(
    decisions: pd.DataFrame,
    strategy: Strategy,
    item_ids: npt.NDArray[np.object_],
    channels: tuple[str, ...],
) -> BoolArray:
    d = decisions[
        (decisions["strategy_id"].astype(str) == strategy.id)
        & (decisions["strategy_version"].astype(int) == strategy.version)
        & (decisions["entity"].astype(str) == strategy.entity.value)
    ]
    out = np.zeros((len(item_ids), len(channels)), dtype=bool)
    if not len(d):
        return out
    pos = pd.Index(item_ids, dtype=object).get_indexer(pd.Index(d["item_id"].astype(object)))
    ch = pd.Index(list(channels)).get_indexer(pd.Index(d["channel"].astype(str)))
    keep = (pos >= 0) & (ch >= 0)
    out[pos[keep], ch[keep]] = True
    return out


def _label_draws(
    labels: pd.DataFrame,
    entity: Entity,
    policy: Policy,
    item_ids: npt.NDArray[np.object_],
    p_model: FloatArray,
    oof: pd.DataFrame | None,
    frames: Mapping[str, BoolArray],
) -> tuple[LabelDraws, int, dict[str, int]]:
    lab = labels[
        (labels["entity"].astype(str) == entity.value)
        & (labels["policy"].astype(str) == policy.value)
    ]
    counts = {str(k): int(v) for k, v in lab["sampling"].astype(str).value_counts().items()}
    pos = pd.Index(item_ids, dtype=object).get_indexer(pd.Index(lab["item_id"].astype(object)))
    design = lab["sampling"].astype(str).to_numpy(dtype=object)
    use = (pos >= 0) & np.isin(design, list(frames))
    n_excluded = int((~use).sum())
    if not use.any():
        return LabelDraws.empty(), n_excluded, counts
    df = pd.DataFrame(
        {
            "position": pos[use],
            "design": design[use],
            "v": (lab["verdict"].astype(str).to_numpy()[use] == "violating").astype(float),
            "pi": lab["inclusion_probability"].astype(float).to_numpy()[use],
        }
    )
    # Several reviews of one draw (double review) average into one draw.
    g = df.groupby(["design", "position"], sort=True).agg(
        y_obs=("v", "mean"), n_reviews=("v", "size"), pi=("pi", "mean")
    )
    g = g.reset_index()
    position = g["position"].to_numpy(dtype=np.int64)
    f_label = p_model[position].copy()
    if oof is not None and len(oof):
        o = oof[
            (oof["entity"].astype(str) == entity.value)
            & (oof["policy"].astype(str) == policy.value)
        ]
        o_p = o.drop_duplicates("item_id").set_index("item_id")["oof_p"].astype(float)
        o_at = o_p.reindex(pd.Index(item_ids[position], dtype=object)).to_numpy(dtype=np.float64)
        has = ~np.isnan(o_at)
        o_at = np.where(has, o_at, 0.0)
        f_label = np.where(has, np.clip(o_at, 0.0, 1.0), f_label)
    draws = LabelDraws(
        position=position,
        y_obs=g["y_obs"].to_numpy(dtype=np.float64),
        n_reviews=g["n_reviews"].to_numpy(dtype=np.int64),
        inclusion_probability=np.clip(g["pi"].to_numpy(dtype=np.float64), 1e-9, 1.0),
        design=g["design"].to_numpy(dtype=object),
        f_label=f_label,
        p_label=f_label.copy(),
    )
    return draws, n_excluded, counts


def _calibrate(
    p_model: FloatArray,
    draws: LabelDraws,
    frames: Mapping[str, BoolArray],
    flip_rate: float,
    calibration: Calibration,
) -> tuple[FloatArray, LabelDraws]:
    """Map model probabilities (population and at the labels) to P(violating)."""
    if calibration == "none":
        return np.clip(p_model, 0.0, 1.0).astype(np.float64), draws
    if calibration == "denoise":
        f = denoise_probability(p_model, flip_rate)
        return f, replace(draws, f_label=denoise_probability(draws.f_label, flip_rate))
    if calibration != "refit":
        raise EstimationError(f"calibration must be refit, denoise or none, got {calibration!r}")
    valid = np.array(
        [
            frames[d][p] if d in frames else False
            for d, p in zip(draws.design, draws.position, strict=True)
        ],
        dtype=bool,
    )
    a, b = fit_recalibration(
        draws.f_label[valid],
        draws.y_obs[valid],
        1.0 / draws.inclusion_probability[valid],
        flip_rate=flip_rate,
    )
    return recalibrate(p_model, a, b), replace(draws, f_label=recalibrate(draws.f_label, a, b))
