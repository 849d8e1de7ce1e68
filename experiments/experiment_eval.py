"""`govrisk evaluate-experiments`: the experiment statistics measured where the truth is known.

Two kinds of worlds. Synthetic unit-level data (vectorised numpy, cheap enough for hundreds of
replications): the A/A false-positive rate of the ship decision under daily peeking, SRM
detection with a planted 45/55 split, CUPED's variance reduction, item- vs seller-level bias
under interference, and agreement with gbstats. And the simulated marketplace, where the
nightly enforcement runs an experiment and its two counterfactual worlds (everyone on control,
everyone on treatment) give the true effect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.vocabulary import Entity
from governance.experiments.analysis import PRE_PREFIX, AnalysisConfig, analyze
from governance.experiments.declaration import Experiment, experiment_from_dict
from governance.experiments.label_effects import error_rate_effects
from governance.experiments.statistics import (
    RegressionAdjustment,
    compare,
    mean_stats,
    ratio_stats,
    srm_p_value,
    units_per_arm,
)
from governance.experiments.unit_data import unit_metrics
from governance.experiments.vocabulary import Arm, Recommendation

ProgressFn = Callable[[str], None]

_CAMPAIGN_RULE = """
id: campaign-deep-discount
version: {version}
name: Limit campaign exposure of suspicious discounts
owner: campaigns-ops
description: Keeps listings with large advertised discounts from dominating campaign slots.
entity: listing
policy: fake_discount
channels: [campaigns]
action: limit_exposure
status: {status}
condition:
  all:
    - {{feature: listing_discount_depth, op: ">=", value: {threshold}}}
"""


@dataclass(frozen=True)
class ExperimentEvalConfig:
    """What `evaluate-experiments` runs; the report carries it."""

    aa_runs: int = 200
    units: int = 2_000
    days: int = 14
    pre_days: int = 14
    srm_runs: int = 200
    srm_units: tuple[int, ...] = (2_000, 5_000)
    bias_runs: int = 50
    world_listings: int = 20_000
    world_days: int = 28
    world_share: float = 0.5
    #: Random-audit labels per simulated world (for FP / FN per arm).
    world_labels: int = 4_000
    world_seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    seed: int = 0


@dataclass
class ExperimentEvalResult:
    """The evaluation table (one row per measurement) and the details behind it."""

    config: ExperimentEvalConfig
    table: pd.DataFrame
    details: dict[str, Any] = field(default_factory=dict)


# -- synthetic unit-level data ----------------------------------------------------------------


def _declaration(**overrides: Any) -> Experiment:
    data: dict[str, Any] = {
        "id": "synthetic",
        "name": "synthetic A/A",
        "owner": "eval",
        "control": "rule@v1",
        "treatment": "rule@v2",
        "start": datetime(2026, 1, 1),
        "end": datetime(2026, 1, 15),
        "primary_metric": "gmv",
        "guardrails": [
            {"metric": "complaint_rate", "margin": 0.10},
            {"metric": "nps", "margin": 0.02},
        ],
        "mde": 0.05,
    }
    data.update(overrides)
    return experiment_from_dict(data)


@dataclass(frozen=True)
class _Panel:
    """Daily per-unit values, shape (runs, units, days), plus pre-period sums (runs, units)."""

    gmv: np.ndarray
    orders: np.ndarray
    complaints: np.ndarray
    nps_sum: np.ndarray
    nps_count: np.ndarray
    pre_gmv: np.ndarray
    treated: np.ndarray


def _panel(
    rng: np.random.Generator,
    runs: int,
    units: int,
    days: int,
    pre_days: int,
    *,
    treatment_share: float = 0.5,
) -> _Panel:
    """Sellers with a persistent size (lognormal), daily Poisson orders and lognormal baskets."""
    size = rng.lognormal(0.0, 1.0, (runs, units, 1))
    rate = 3.0 * size
    orders = rng.poisson(np.broadcast_to(rate, (runs, units, days)))
    gmv = orders * rng.lognormal(3.0, 0.5, (runs, units, days))
    pre_orders = rng.poisson(rate[..., 0] * pre_days)
    pre_gmv = pre_orders * np.exp(3.0 + 0.125) * rng.lognormal(0, 0.15, (runs, units))
    complaints = rng.binomial(orders, 0.04)
    nps_count = rng.binomial(orders, 0.3)
    nps_sum = nps_count * 7.0 + rng.normal(0, 1.5, orders.shape) * np.sqrt(nps_count)
    treated = rng.random((runs, units)) < treatment_share
    return _Panel(gmv, orders, complaints, nps_sum, nps_count, pre_gmv, treated)


def _units_frame(panel: _Panel, run: int, day: int) -> pd.DataFrame:
    """The per-unit frame `analyze` reads, cumulated to the end of `day` (0-based)."""
    upto = slice(0, day + 1)
    n = panel.gmv.shape[1]
    zeros = np.zeros(n)
    return pd.DataFrame(
        {
            "unit_id": np.arange(n).astype(str),
            "arm": np.where(panel.treated[run], Arm.TREATMENT.value, Arm.CONTROL.value),
            "impressions": zeros,
            "orders": panel.orders[run, :, upto].sum(axis=1),
            "gmv": panel.gmv[run, :, upto].sum(axis=1),
            "complaints": panel.complaints[run, :, upto].sum(axis=1),
            "returns": zeros,
            "nps_sum": panel.nps_sum[run, :, upto].sum(axis=1),
            "nps_count": panel.nps_count[run, :, upto].sum(axis=1),
            "appeals": zeros,
            PRE_PREFIX + "gmv": panel.pre_gmv[run],
        }
    )


def aa_false_positives(
    config: ExperimentEvalConfig, *, progress: ProgressFn | None = None
) -> dict[str, float]:
    """Share of A/A runs the ship rule ships (any daily look), sequential vs naive peeking.

    Also the share with any significant primary-metric difference (either direction) on any
    look, the quantity "peeking inflates false positives to ~30%" refers to.
    """
    rng = np.random.default_rng(config.seed)
    panel = _panel(rng, config.aa_runs, config.units, config.days, config.pre_days)
    experiment = _declaration()
    configs = {
        "sequential": AnalysisConfig(sequential=True, sequential_tuning=float(config.units)),
        "naive": AnalysisConfig(sequential=False),
    }
    shipped = {k: np.zeros(config.aa_runs, dtype=bool) for k in configs}
    any_sig = {k: np.zeros(config.aa_runs, dtype=bool) for k in configs}
    final_ship = np.zeros(config.aa_runs, dtype=bool)
    for run in range(config.aa_runs):
        if progress is not None and run % 20 == 0:
            progress(f"A/A runs: {run}/{config.aa_runs}")
        for day in range(config.days):
            units = _units_frame(panel, run, day)
            for name, cfg in configs.items():
                result = analyze(experiment, units, config=cfg)
                shipped[name][run] |= result.recommendation is Recommendation.SHIP
                any_sig[name][run] |= result.primary.effect.significant
                if name == "naive" and day == config.days - 1:
                    final_ship[run] = result.recommendation is Recommendation.SHIP
    return {
        "ship_sequential": float(shipped["sequential"].mean()),
        "ship_naive": float(shipped["naive"].mean()),
        "ship_fixed_once": float(final_ship.mean()),
        "significant_sequential": float(any_sig["sequential"].mean()),
        "significant_naive": float(any_sig["naive"].mean()),
    }


def srm_detection(config: ExperimentEvalConfig) -> dict[int, tuple[float, float]]:
    """Per unit count: (detection rate with a planted 45/55 split, false alarms at 50/50)."""
    rng = np.random.default_rng(config.seed + 1)
    out: dict[int, tuple[float, float]] = {}
    for n in config.srm_units:
        treated_bug = rng.binomial(n, 0.55, config.srm_runs)
        treated_ok = rng.binomial(n, 0.50, config.srm_runs)
        detect = np.mean([srm_p_value(n - t, int(t)) < 0.001 for t in treated_bug])
        alarms = np.mean([srm_p_value(n - t, int(t)) < 0.001 for t in treated_ok])
        out[n] = (float(detect), float(alarms))
    return out


def cuped_reduction(config: ExperimentEvalConfig) -> tuple[float, float]:
    """Mean share of the primary metric's effect variance CUPED removes, and the correlation."""
    rng = np.random.default_rng(config.seed + 2)
    runs = min(config.aa_runs, 100)
    panel = _panel(rng, runs, config.units, config.days, config.pre_days)
    removed, corr = [], []
    for run in range(runs):
        y = panel.gmv[run].sum(axis=1)
        x = panel.pre_gmv[run]
        t = panel.treated[run]
        plain = compare(mean_stats(y[~t]), mean_stats(y[t]))
        adj = RegressionAdjustment().fit(x, y)
        cuped = compare(adj.arm_stats(x[~t], y[~t]), adj.arm_stats(x[t], y[t]))
        se_plain = (plain.difference_high - plain.difference_low) / 2
        se_cuped = (cuped.difference_high - cuped.difference_low) / 2
        removed.append(1 - (se_cuped / se_plain) ** 2)
        corr.append(float(np.corrcoef(x, y)[0, 1]))
    return float(np.mean(removed)), float(np.mean(corr))


#: Interference model of `interference_bias`: share of a demoted item's lost GMV that moves to
#: the same seller's other items, and to its category's; share of traffic a demotion keeps.
_SPILL_SELLER, _SPILL_CATEGORY, _DEMOTE_KEEP = 0.6, 0.2, 0.3


def _spill_outcome(
    demoted: np.ndarray, base: np.ndarray, groups: Sequence[tuple[np.ndarray, float]]
) -> np.ndarray:
    """GMV per item after demotions, the lost GMV redistributed within each group."""
    lost = np.where(demoted, base * (1 - _DEMOTE_KEEP), 0.0)
    gmv = base - lost
    receivers = ~demoted
    for group, share in groups:
        size = int(group.max()) + 1
        pool = np.bincount(group, weights=lost * share, minlength=size)
        weight = np.bincount(group, weights=base * receivers, minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = np.where(weight[group] > 0, pool[group] / weight[group], 0.0)
        gmv = gmv + base * receivers * gain
    return np.asarray(gmv, dtype=np.float64)


def interference_bias(config: ExperimentEvalConfig) -> dict[str, float]:
    """Bias of item- vs seller-level randomisation when demoted traffic flows to neighbours.

    A seller's items share the shop's buyers: of the GMV a demoted item loses, 60% moves to the
    same seller's undemoted items and 20% to its category's (the rest is lost). The treatment
    demotes (keeps 30% of) the 30% of items it flags; the true effect is the relative change in
    GMV per item between everyone treated and everyone on control.
    """
    rng = np.random.default_rng(config.seed + 3)
    n_sellers, per_seller, n_categories = 400, 10, 20
    n_items = n_sellers * per_seller
    seller = np.repeat(np.arange(n_sellers), per_seller)
    est: dict[str, list[float]] = {"item": [], "seller": []}
    truth: list[float] = []
    for _ in range(config.bias_runs):
        groups = (
            (seller, _SPILL_SELLER),
            (rng.integers(0, n_categories, n_items), _SPILL_CATEGORY),
        )
        base = rng.lognormal(3.0, 1.0, n_items)
        flagged = rng.random(n_items) < 0.3
        y0 = _spill_outcome(np.zeros(n_items, dtype=bool), base, groups)
        y1 = _spill_outcome(flagged, base, groups)
        truth.append(y1.mean() / y0.mean() - 1)
        item_arm = rng.random(n_items) < 0.5
        seller_arm = (rng.random(n_sellers) < 0.5)[seller]
        for name, arm in (("item", item_arm), ("seller", seller_arm)):
            y = _spill_outcome(flagged & arm, base, groups)
            est[name].append(compare(mean_stats(y[~arm]), mean_stats(y[arm])).lift)
    return {
        "true": float(np.mean(truth)),
        "item": float(np.mean(est["item"])),
        "seller": float(np.mean(est["seller"])),
    }


def gbstats_agreement(config: ExperimentEvalConfig) -> float | None:
    """Largest absolute difference from gbstats over estimates and interval ends (None: absent)."""
    try:
        from gbstats.frequentist import tests as gb_tests
        from gbstats.models import statistics as gb_stats
    except ImportError:
        return None
    rng = np.random.default_rng(config.seed + 4)
    worst = 0.0
    for _ in range(20):
        n = int(rng.integers(200, 3_000))
        pre = rng.lognormal(2, 1, 2 * n)
        post = pre * rng.lognormal(0.02, 0.5, 2 * n)
        den = rng.poisson(5, 2 * n) + 1.0
        num = rng.binomial(den.astype(int), 0.1).astype(float)
        a, b = slice(0, n), slice(n, 2 * n)

        def gb_mean(v: np.ndarray) -> Any:
            return gb_stats.SampleMeanStatistic(n=v.size, sum=v.sum(), sum_squares=(v**2).sum())

        adj = RegressionAdjustment().fit(pre, post)
        cases = [
            (mean_stats(post[a]), mean_stats(post[b]), gb_mean(post[a]), gb_mean(post[b])),
            (
                ratio_stats(num[a], den[a]),
                ratio_stats(num[b], den[b]),
                *(
                    gb_stats.RatioStatistic(
                        n=n,
                        m_statistic=gb_mean(num[s]),
                        d_statistic=gb_mean(den[s]),
                        m_d_sum_of_products=(num[s] * den[s]).sum(),
                    )
                    for s in (a, b)
                ),
            ),
            (
                adj.arm_stats(pre[a], post[a]),
                adj.arm_stats(pre[b], post[b]),
                *(
                    gb_stats.RegressionAdjustedStatistic(
                        n=n,
                        post_statistic=gb_mean(post[s]),
                        pre_statistic=gb_mean(pre[s]),
                        post_pre_sum_of_products=(pre[s] * post[s]).sum(),
                        theta=0,
                    )
                    for s in (a, b)
                ),
            ),
        ]
        for ours_a, ours_b, gb_a, gb_b in cases:
            for sequential in (False, True):
                ours = compare(ours_a, ours_b, sequential=sequential)
                for kind, values in (
                    ("absolute", (ours.difference, ours.difference_low, ours.difference_high)),
                    ("relative", (ours.lift, ours.lift_low, ours.lift_high)),
                ):
                    if sequential:
                        cfg: Any = gb_tests.SequentialConfig(difference_type=kind)
                        res = gb_tests.SequentialTwoSidedTTest(gb_a, gb_b, cfg).compute_result()
                    else:
                        cfg = gb_tests.FrequentistConfig(difference_type=kind)
                        res = gb_tests.TwoSidedTTest(gb_a, gb_b, cfg).compute_result()
                    theirs = (res.expected, res.ci[0], res.ci[1])
                    worst = max(worst, *(abs(x - y) for x, y in zip(values, theirs, strict=True)))
    return worst


# -- the simulated marketplace ---------------------------------------------------------------


def listing_discount_frames(
    tables: Mapping[str, pd.DataFrame], *, as_of: datetime, entities: Sequence[Entity]
) -> dict[Entity, pd.DataFrame]:
    """The one feature the campaign rule reads, computed as features.listing does (cheap).

    The simulator's nightly enforcement needs only `listing_discount_depth` for the rule under
    test, so the evaluation skips the full feature build (which dominates simulation time).
    """
    del as_of
    listings = tables["listings"]
    price = listings["price"].to_numpy(dtype=np.float64)
    list_price = listings["list_price"].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(list_price > 0, np.clip(1.0 - price / list_price, 0.0, 1.0), 0.0)
    frame = pd.DataFrame({"item_id": listings["listing_id"], "listing_discount_depth": depth})
    return {e: frame for e in entities if e is Entity.LISTING}


def campaign_rule_versions() -> tuple[Any, Any]:
    """campaign-deep-discount v1 (active, threshold 0.35, the planted defect) and v2 (the fix)."""
    from governance.strategy import parse_strategy

    v1 = parse_strategy(_CAMPAIGN_RULE.format(version=1, status="active", threshold=0.35))
    v2 = parse_strategy(_CAMPAIGN_RULE.format(version=2, status="shadow", threshold=0.6))
    return v1, v2


def simulated_experiment(
    config: ExperimentEvalConfig,
    *,
    seed: int,
    unit: str = "seller",
    progress: ProgressFn | None = None,
) -> dict[str, float]:
    """Run v1 vs v2 in a simulated world; compare the estimated lift with the truth.

    The primary metric is campaign impressions per unit: what the over-eager rule takes from
    honest discounted listings (GMV follows but is far noisier per seller).
    """
    from experiments.simulator import SimulationConfig, simulate
    from governance.strategy import with_status

    sim = SimulationConfig(
        n_listings=config.world_listings,
        days=config.world_days,
        seed=seed,
        label_budget=config.world_labels,
        random_audit_share=1.0,
    )
    v1, v2 = campaign_rule_versions()
    start = sim.start + timedelta(days=config.pre_days)
    experiment = _declaration(
        id="deep-discount-fix",
        control=v1.ref,
        treatment=v2.ref,
        unit=unit,
        channels=["campaigns"],
        traffic_share=config.world_share,
        start=start,
        end=sim.end,
        pre_period_days=config.pre_days,
        primary_metric="impressions",
        guardrails=[{"metric": "complaint_rate", "margin": 0.25}],
    )
    kw: dict[str, Any] = {"build_frames_fn": listing_discount_frames}
    if progress is not None:
        progress(f"world {seed}: simulating the experiment ({unit}-level)")
    run = simulate(sim, strategies=[v1, v2], experiment=experiment, **kw)
    if progress is not None:
        progress(f"world {seed}: simulating the two counterfactual worlds")
    world_control = simulate(sim, strategies=[v1], **kw)
    world_treatment = simulate(
        sim, strategies=[with_status(v1, "retired"), with_status(v2, "active")], **kw
    )
    units = unit_metrics(run.tables, experiment)
    analysis = AnalysisConfig(sequential_tuning=float(len(units)))
    result = analyze(experiment, units, config=analysis, finished=True)
    metric = experiment.primary_metric
    y0 = unit_metrics(world_control.tables, experiment).set_index("unit_id")[metric]
    y1 = unit_metrics(world_treatment.tables, experiment).set_index("unit_id")[metric]
    true_lift = float(y1.mean() / y0.mean() - 1)
    e = result.primary.effect
    control = units.loc[units["arm"] == Arm.CONTROL.value, metric]
    needed = units_per_arm(
        relative_sd=float(control.std() / control.mean()),
        mde=max(abs(true_lift), 1e-3),
        alpha=experiment.alpha,
        power=experiment.power,
        n_guardrails=len(experiment.guardrails),
    )
    errors = error_rate_effects(run.tables, experiment, entity="listing", policy="fake_discount")
    truth = _true_error_rates(run, experiment)
    return {
        "fp_diff": errors["fp"].difference,
        "fp_low": errors["fp"].low,
        "fp_high": errors["fp"].high,
        "fp_true": truth["fp"],
        "fn_diff": errors["fn"].difference,
        "fn_low": errors["fn"].low,
        "fn_high": errors["fn"].high,
        "fn_true": truth["fn"],
        "labels": float(errors["fp"].n_labels),
        "units_needed_per_arm": float(needed),
        "true_lift": true_lift,
        "lift": e.lift,
        "lift_low": e.lift_low,
        "lift_high": e.lift_high,
        "units": float(len(units)),
        "shipped": float(result.recommendation is Recommendation.SHIP),
        "cuped_removed": _cuped_removed(experiment, units),
    }


def _true_error_rates(run: Any, experiment: Experiment) -> dict[str, float]:
    """The FP / FN rate differences on every listing (census, true violations)."""
    truth = run.ground_truth.items
    listings = truth[truth["entity"] == "listing"]
    census = pd.DataFrame(
        {
            "label_id": listings["item_id"],
            "entity": "listing",
            "item_id": listings["item_id"].astype(str),
            "policy": "fake_discount",
            "verdict": np.where(listings["violates_fake_discount"], "violating", "not_violating"),
            "sampling": "random",
            "inclusion_probability": 1.0,
        }
    )
    tables = {**run.tables, "audit_labels": census}
    effects = error_rate_effects(tables, experiment, entity="listing", policy="fake_discount")
    return {kind: e.difference for kind, e in effects.items()}


def _cuped_removed(experiment: Experiment, units: pd.DataFrame) -> float:
    plain = analyze(experiment, units, config=AnalysisConfig(sequential=False, cuped=False))
    cuped = analyze(experiment, units, config=AnalysisConfig(sequential=False, cuped=True))
    width_plain = plain.primary.effect.difference_high - plain.primary.effect.difference_low
    width_cuped = cuped.primary.effect.difference_high - cuped.primary.effect.difference_low
    return float(1 - (width_cuped / width_plain) ** 2) if width_plain > 0 else math.nan


# -- the report ------------------------------------------------------------------------------


class _Rows:
    """The evaluation's table as it is built: measure, value, goal, met."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def __call__(self, measure: str, value: str, goal: str = "", met: bool | None = None) -> None:
        self.rows.append((measure, value, goal, "" if met is None else ("yes" if met else "NO")))

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["measure", "value", "goal", "met"])


def run_experiment_eval(
    config: ExperimentEvalConfig | None = None,
    *,
    progress: ProgressFn | None = None,
    simulator: bool = True,
) -> ExperimentEvalResult:
    """Every measurement of the evaluation as one table: measure, value, goal, met."""
    config = config or ExperimentEvalConfig()
    row = _Rows()
    aa = aa_false_positives(config, progress=progress)
    _aa_rows(config, aa, row)
    if progress is not None:
        progress("SRM detection")
    bias = _method_rows(config, row)
    details: dict[str, Any] = {"aa": aa, "bias": bias}
    if simulator:
        for unit in ("seller", "item"):
            sims = [
                simulated_experiment(config, seed=seed, unit=unit, progress=progress)
                for seed in config.world_seeds
            ]
            details[f"simulated_{unit}"] = sims
            _simulated_rows(config, unit, sims, row)
    return ExperimentEvalResult(config=config, table=row.table(), details=details)


def _aa_rows(config: ExperimentEvalConfig, aa: dict[str, float], row: _Rows) -> None:
    """A/A runs: how often each way of reading the test ships or finds a difference."""
    n = config.aa_runs
    row(
        f"A/A ship rate, daily peeking {config.days} d, always-valid ({n} runs)",
        f"{aa['ship_sequential']:.1%}",
        "<= 5%",
        aa["ship_sequential"] <= 0.05,
    )
    row(f"A/A ship rate, daily peeking, naive fixed-horizon ({n} runs)", f"{aa['ship_naive']:.1%}")
    row("A/A ship rate, naive test read once at the end", f"{aa['ship_fixed_once']:.1%}")
    row(
        "A/A any significant primary difference (2-sided), always-valid",
        f"{aa['significant_sequential']:.1%}",
        "<= 5%",
        aa["significant_sequential"] <= 0.05,
    )
    row(
        "A/A any significant primary difference (2-sided), naive peeking",
        f"{aa['significant_naive']:.1%}",
        "~29% in the literature",
    )


def _method_rows(config: ExperimentEvalConfig, row: _Rows) -> dict[str, float]:
    """SRM detection, CUPED, interference bias and agreement with gbstats; returns the bias."""
    for units, (detect, alarms) in srm_detection(config).items():
        row(
            f"SRM detected, planted 45/55 split, {units:,} units (p < 0.001)",
            f"{detect:.1%} (false alarms at 50/50: {alarms:.1%})",
            ">= 95%",
            detect >= 0.95,
        )
    removed, corr = cuped_reduction(config)
    row(
        f"CUPED variance removed, synthetic GMV ({config.pre_days} d pre-period, r={corr:.2f})",
        f"{removed:.1%}",
        ">= 30%",
        removed >= 0.30,
    )
    bias = interference_bias(config)
    for name in ("item", "seller"):
        row(
            f"{name}-level estimate vs true GMV effect {bias['true']:+.2%} (interference)",
            f"{bias[name]:+.2%} (bias {bias[name] - bias['true']:+.2%})",
        )
    worst = gbstats_agreement(config)
    row(
        "max |ours - gbstats| (estimates, interval ends; mean, ratio, CUPED; fixed, sequential)",
        "gbstats not installed" if worst is None else f"{worst:.1e}",
        "<= 1e-6",
        None if worst is None else worst <= 1e-6,
    )
    return bias


def _simulated_rows(
    config: ExperimentEvalConfig, unit: str, sims: list[dict[str, Any]], row: _Rows
) -> None:
    """The simulated worlds' A/B tests of the deep-discount fix at one randomisation unit."""
    k = len(sims)
    covered = sum(x["lift_low"] <= x["true_lift"] <= x["lift_high"] for x in sims)
    shipped = sum(int(x["shipped"]) for x in sims)
    mean_est = float(np.mean([x["lift"] for x in sims]))
    mean_true = float(np.mean([x["true_lift"] for x in sims]))
    half = float(np.mean([(x["lift_high"] - x["lift_low"]) / 2 for x in sims]))
    removed = float(np.mean([x["cuped_removed"] for x in sims]))
    units = int(np.mean([x["units"] for x in sims]))
    needed = int(np.mean([x["units_needed_per_arm"] for x in sims]))
    fp_cover = sum(x["fp_low"] <= x["fp_true"] <= x["fp_high"] for x in sims)
    fp_found = sum(x["fp_high"] < 0 for x in sims)
    row(
        f"simulated worlds, {unit}-level: change in honest listings limited per 1,000 "
        f"(FP) from {int(sims[0]['labels']):,} random-audit labels",
        f"{1000 * np.mean([x['fp_diff'] for x in sims]):+.2f} "
        f"+/- {1000 * np.mean([(x['fp_high'] - x['fp_low']) / 2 for x in sims]):.2f} vs "
        f"true {1000 * np.mean([x['fp_true'] for x in sims]):+.2f}; "
        f"covered {fp_cover}/{k}; significant drop (end of 14 d) in {fp_found}/{k}; FN "
        f"change {1000 * np.mean([x['fn_diff'] for x in sims]):+.2f} vs true "
        f"{1000 * np.mean([x['fn_true'] for x in sims]):+.2f}",
        "covers truth; detected >= 80%",
        fp_cover >= 0.8 * k and fp_found >= 0.8 * k,
    )
    row(
        f"simulated worlds ({config.world_listings:,} listings, {k} seeds), {unit}-level, "
        f"{config.world_share:.0%} traffic, {config.world_days - config.pre_days} d: "
        "deep-discount fix, campaign impressions",
        f"lift {mean_est:+.1%} +/- {half:.1%} vs true {mean_true:+.1%}; "
        f"covered {covered}/{k}; shipped {shipped}/{k}; {units:,} units "
        f"(fixed-horizon power at the true effect needs {needed:,} per arm); "
        f"CUPED removed {removed:.0%}",
        "covers truth; ship >= 80%",
        covered == k and shipped >= 0.8 * k,
    )
