"""Analysis of an experiment: every metric's effect, the SRM check, guardrails and the ship rule.

Input is a per-unit frame (`unit_id`, `arm`, the `UNIT_COLUMNS` sums over the window so far and,
for CUPED, the same sums over the pre-period as `pre_<column>`). Only units in the control or
treatment arm are analysed.

The ship rule (Schultzberg, Ankargren & Franberg 2024, as Spotify's Confidence applies it): ship
when the primary metric improves significantly (alpha, Bonferroni over success metrics: one
here) AND every guardrail is significantly non-inferior (each one-sided at alpha, no alpha
correction: all must pass, so guardrails only lower the false-positive rate). Stop when the
sample ratio is off, or the primary metric or a guardrail significantly deteriorates, or the
planned end is reached without a ship. Otherwise keep running.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from governance.experiments.declaration import Experiment
from governance.experiments.metrics import MetricDeclaration, check_unit_frame, metric
from governance.experiments.statistics import (
    DEFAULT_SEQUENTIAL_TUNING,
    ArmStats,
    Effect,
    RegressionAdjustment,
    compare,
    mean_stats,
    ratio_stats,
    srm_p_value,
)
from governance.experiments.vocabulary import Arm, Direction, MetricKind, Recommendation

#: SRM p-values below this stop the experiment (a common threshold: checks run every day).
SRM_ALPHA = 0.001
#: Column prefix of pre-period sums used as CUPED covariates.
PRE_PREFIX = "pre_"


@dataclass(frozen=True)
class AnalysisConfig:
    """How an analysis was run; reports and pages read it from the result."""

    alpha: float = 0.05
    sequential: bool = True
    sequential_tuning: float = DEFAULT_SEQUENTIAL_TUNING
    cuped: bool = True
    srm_alpha: float = SRM_ALPHA


@dataclass(frozen=True)
class MetricResult:
    """One metric's effect and, for guardrails, its non-inferiority verdict."""

    metric: MetricDeclaration
    role: str
    effect: Effect
    cuped: bool
    margin: float | None = None
    non_inferior: bool | None = None

    @property
    def improved(self) -> bool:
        """Significant change in the good direction."""
        e = self.effect
        good_up = self.metric.direction is Direction.INCREASE
        return bool(e.difference_low > 0) if good_up else bool(e.difference_high < 0)

    @property
    def deteriorated(self) -> bool:
        """Significant change in the bad direction."""
        e = self.effect
        good_up = self.metric.direction is Direction.INCREASE
        return bool(e.difference_high < 0) if good_up else bool(e.difference_low > 0)


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Everything the ship decision rests on."""

    experiment_id: str
    config: AnalysisConfig
    n_control: int
    n_treatment: int
    srm_p_value: float
    primary: MetricResult
    guardrails: tuple[MetricResult, ...]
    recommendation: Recommendation
    reason: str
    finished: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def srm(self) -> bool:
        """Whether the arm sizes contradict the planned 50/50 split."""
        return self.srm_p_value < self.config.srm_alpha


def metric_effect(
    units: pd.DataFrame,
    name: str,
    *,
    alpha: float = 0.05,
    sequential: bool = True,
    sequential_tuning: float = DEFAULT_SEQUENTIAL_TUNING,
    cuped: bool = True,
) -> tuple[Effect, bool]:
    """The effect on metric `name` and whether CUPED was applied (mean metrics with pre data)."""
    check_unit_frame(units)
    if "arm" not in units.columns:
        raise ValueError("unit metrics lack column arm; assign units first")
    declared = metric(name)
    control, treatment, adjusted = _arm_stats(units, declared, cuped=cuped)
    effect = compare(
        control,
        treatment,
        alpha=alpha,
        sequential=sequential,
        sequential_tuning=sequential_tuning,
    )
    return effect, adjusted


def _arm_stats(
    units: pd.DataFrame, declared: MetricDeclaration, *, cuped: bool
) -> tuple[ArmStats, ArmStats, bool]:
    arms = units["arm"].astype(str).to_numpy()
    masks = [arms == Arm.CONTROL.value, arms == Arm.TREATMENT.value]
    if declared.kind is MetricKind.RATIO:
        assert declared.denominator is not None
        num = units[declared.numerator].to_numpy(dtype=np.float64)
        den = units[declared.denominator].to_numpy(dtype=np.float64)
        a, b = (ratio_stats(num[m], den[m]) for m in masks)
        return a, b, False
    y = units[declared.numerator].to_numpy(dtype=np.float64)
    pre = PRE_PREFIX + declared.numerator
    if cuped and pre in units.columns:
        x = units[pre].to_numpy(dtype=np.float64)
        inside = masks[0] | masks[1]
        adjustment = RegressionAdjustment().fit(x[inside], y[inside])
        a, b = (adjustment.arm_stats(x[m], y[m]) for m in masks)
        return a, b, True
    a, b = (mean_stats(y[m]) for m in masks)
    return a, b, False


def analyze(
    experiment: Experiment,
    units: pd.DataFrame,
    *,
    config: AnalysisConfig | None = None,
    finished: bool = False,
) -> ExperimentAnalysis:
    """Analyse the experiment on per-unit data; `finished` means its planned end has passed."""
    config = config or AnalysisConfig(alpha=experiment.alpha)
    check_unit_frame(units)
    if "arm" not in units.columns:
        raise ValueError("unit metrics lack column arm; assign units first")
    arms = units["arm"].astype(str)
    n_control = int((arms == Arm.CONTROL.value).sum())
    n_treatment = int((arms == Arm.TREATMENT.value).sum())
    srm_p = srm_p_value(n_control, n_treatment)

    def result(name: str, role: str, margin: float | None) -> MetricResult:
        declared = metric(name)
        # Guardrails are one-sided tests at alpha: read them off a two-sided 1 - 2 alpha interval.
        alpha = config.alpha if margin is None else 2 * config.alpha
        effect, adjusted = metric_effect(
            units,
            name,
            alpha=alpha,
            sequential=config.sequential,
            sequential_tuning=config.sequential_tuning,
            cuped=config.cuped,
        )
        non_inferior = None
        if margin is not None:
            if declared.direction is Direction.INCREASE:
                non_inferior = bool(effect.lift_low > -margin)
            else:
                non_inferior = bool(effect.lift_high < margin)
        return MetricResult(declared, role, effect, adjusted, margin, non_inferior)

    primary = result(experiment.primary_metric, "primary", None)
    guardrails = tuple(result(g.metric, "guardrail", g.margin) for g in experiment.guardrails)
    recommendation, reason = ship_rule(
        primary, guardrails, srm=srm_p < config.srm_alpha, finished=finished
    )
    return ExperimentAnalysis(
        experiment_id=experiment.id,
        config=config,
        n_control=n_control,
        n_treatment=n_treatment,
        srm_p_value=srm_p,
        primary=primary,
        guardrails=guardrails,
        recommendation=recommendation,
        reason=reason,
        finished=finished,
    )


def channel_effects(
    experiment: Experiment,
    units_by_channel: Mapping[str, pd.DataFrame],
    *,
    config: AnalysisConfig | None = None,
) -> dict[str, MetricResult]:
    """The primary metric's effect in each channel (per-unit sums of that channel only).

    A breakdown for reading, not a decision: the ship rule uses all the experiment's channels
    together, so per-channel intervals carry no multiplicity correction.
    """
    config = config or AnalysisConfig(alpha=experiment.alpha)
    out: dict[str, MetricResult] = {}
    declared = metric(experiment.primary_metric)
    for channel, units in units_by_channel.items():
        effect, adjusted = metric_effect(
            units,
            declared.name,
            alpha=config.alpha,
            sequential=config.sequential,
            sequential_tuning=config.sequential_tuning,
            cuped=config.cuped,
        )
        out[channel] = MetricResult(declared, "primary", effect, adjusted)
    return out


def ship_rule(
    primary: MetricResult,
    guardrails: tuple[MetricResult, ...],
    *,
    srm: bool,
    finished: bool,
) -> tuple[Recommendation, str]:
    """Ship / keep running / stop, with the reason a PM reads."""
    if srm:
        return Recommendation.STOP, "sample ratio mismatch: the arms are not the planned 50/50"
    if primary.deteriorated:
        return Recommendation.STOP, f"{primary.metric.name} got significantly worse"
    broken = [g.metric.name for g in guardrails if g.deteriorated and not g.non_inferior]
    if broken:
        return Recommendation.STOP, f"guardrail(s) {', '.join(broken)} significantly worse"
    pending = [g.metric.name for g in guardrails if not g.non_inferior]
    if primary.improved and not pending:
        return (
            Recommendation.SHIP,
            f"{primary.metric.name} improved significantly and every guardrail is non-inferior",
        )
    why = (
        f"{primary.metric.name} has no significant improvement yet"
        if not primary.improved
        else f"guardrail(s) {', '.join(pending)} not yet shown non-inferior"
    )
    if finished:
        return Recommendation.STOP, f"planned end reached: {why}"
    return Recommendation.KEEP_RUNNING, why
