"""`govrisk evaluate-monitoring`: monitoring measured against planted incidents.

Each scenario re-simulates the same worlds (seeds) with one planted incident (or none) from
`start_day`. Detection is measured as it would happen live: the monitor runs on the tables as
known at each midnight after the start (`tables_before`), and the delay is the number of days
of data it needed before an alert pointed at the incident's channel, category or strategy.
False alarms are counted on the incident-free worlds over the whole period (one per alert
episode), leaving out the planted new-category launch, which the drift alerts should find.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import pandas as pd

from experiments.simulator.categories import NEW_CATEGORY
from experiments.simulator.config import Incident, SimulationConfig
from governance.monitoring.launch import category_items
from governance.monitoring.objectives import ObjectiveSet, WatchedCategory, load_objectives
from governance.monitoring.pipeline import (
    MonitorConfig,
    compute_monitor,
    period_end,
    tables_before,
)
from governance.monitoring.settings import get_settings
from governance.monitoring.vocabulary import ALL, AlertKind

#: The planted incidents, each in its own scenario; starts are fractions of the period.
SCENARIOS: dict[str, Callable[[int], Incident]] = {
    "affiliate complaint flood": lambda start: Incident(
        kind="complaint_surge", start_day=start, channel="affiliate", factor=4.0
    ),
    "jewelry returns surge": lambda start: Incident(
        kind="return_surge", start_day=start, category="jewelry", factor=4.0
    ),
    "broken deployment": lambda start: Incident(
        kind="strategy_outage", start_day=start, strategy_id="listing-prohibited-items"
    ),
    "broken clause": lambda start: Incident(
        kind="strategy_overmatch", start_day=start, strategy_id="listing-counterfeit-terms"
    ),
}
#: Scenarios measured again with categories on the PM's watch list: name -> (scenario whose
#: worlds it reuses, watched categories).
WATCHED_SCENARIOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "jewelry returns surge, jewelry watched": ("jewelry returns surge", ("jewelry",)),
}
_LAUNCH_FEATURES = ("listing_category", "listing_category_risk_prior")
#: Days after a trust incident's start over which its evidence is counted (issue 17's goal).
EVIDENCE_DAYS = 7
#: The outcome kind each trust incident raises.
_SURGE_KINDS = {"complaint_surge": "complaint", "return_surge": "return"}


@dataclass(frozen=True)
class MonitoringEvalConfig:
    """What `run_monitoring_eval` simulates."""

    seeds: tuple[int, ...] = (1, 2)
    listings: int = 3_000
    days: int = 56
    start_fraction: float = 0.55
    max_delay_days: int = 10
    #: Audit labels per world (a quarter random): what the model-side checks are corrected by.
    label_budget: int = 1_000
    #: Operating point of the models whose label-free precision is checked.
    precision_threshold: float = 0.5


@dataclass
class MonitoringEvalResult:
    """Per incident and seed: detection delay; per clean world: false alarms."""

    detections: pd.DataFrame
    false_alarms: pd.DataFrame
    launch: pd.DataFrame
    #: Per seed, policy and channel: estimated violative view rate, interval and truth.
    view_rates: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Per seed, entity and policy: label-free precision at the operating point and truth.
    precisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Per seed, strategy and week: label-free precision of its actioned items and truth.
    strategy_precisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    config: MonitoringEvalConfig = field(default_factory=MonitoringEvalConfig)


def matches(alerts: pd.DataFrame, incident: Incident) -> pd.DataFrame:
    """Alerts that point at the incident's slice."""
    if incident.kind in ("strategy_outage", "strategy_overmatch"):
        kinds = (
            [AlertKind.STRATEGY_DECAY]
            if incident.kind == "strategy_outage"
            else [AlertKind.STRATEGY_OVERTURN, AlertKind.STRATEGY_SURGE]
        )
        return alerts[alerts["kind"].isin(kinds) & (alerts["strategy_id"] == incident.strategy_id)]
    metrics = (
        ["complaints_per_1k_orders"]
        if incident.kind == "complaint_surge"
        else ["returns_per_1k_orders", "refund_per_gmv"]
    )
    hit = alerts["kind"].isin([AlertKind.BURN_RATE, AlertKind.TRUST_SHIFT, AlertKind.TRUST_CUSUM])
    hit &= alerts["metric"].isin(metrics)
    if incident.channel is not None:
        hit &= alerts["channel"] == incident.channel
    if incident.category is not None:
        hit &= alerts["category"] == incident.category
    return alerts[hit]


def slice_arrivals(
    tables: dict[str, pd.DataFrame], incident: Incident, *, start: date, days: int = EVIDENCE_DAYS
) -> int | None:
    """Outcomes of a trust incident's kind in its channel / category that arrived in the `days`
    after it started (None for an incident that is not a trust surge)."""
    kind = _SURGE_KINDS.get(incident.kind)
    if kind is None:
        return None
    o = tables["outcomes"]
    t0 = pd.Timestamp(start + timedelta(days=incident.start_day))
    at = pd.to_datetime(o["occurred_at"])
    hit = (o["kind"] == kind) & (at >= t0) & (at < t0 + pd.Timedelta(days=days))
    if incident.channel is not None:
        hit &= o["channel"] == incident.channel
    if incident.category is not None:
        items = category_items(tables, [incident.category])[["entity", "item_id"]]
        hit &= pd.MultiIndex.from_frame(o[["entity", "item_id"]]).isin(
            pd.MultiIndex.from_frame(items)
        )
    return int(hit.sum())


def _config(
    seed: int, cfg: MonitoringEvalConfig, incidents: tuple[Incident, ...]
) -> SimulationConfig:
    return SimulationConfig(
        n_listings=cfg.listings,
        days=cfg.days,
        seed=seed,
        incidents=incidents,
        label_budget=cfg.label_budget,
    )


def _simulate(seed: int, cfg: MonitoringEvalConfig, incidents: tuple[Incident, ...]) -> Any:
    from experiments.simulator import simulate

    return simulate(_config(seed, cfg, incidents))


def _owners(sim: Any) -> dict[str, str]:
    return {s.id: s.owner for s in sim.strategies}


@dataclass(frozen=True)
class ModelChecks:
    """The model-side tables of one incident-free world, each joined to its truth."""

    #: Per policy and channel: violative view rate, interval, truth, `covered`.
    view_rates: pd.DataFrame
    #: Per entity and policy (`any` included): label-free precision, truth, `error`.
    precisions: pd.DataFrame
    #: Per strategy and week: label-free precision of its actioned items, truth, `error`.
    strategy_precisions: pd.DataFrame
    #: Prediction drift alerts of the stand-in model (false alarms of an incident-free world).
    alerts: pd.DataFrame


def model_checks(sim: Any, seed: int, cfg: MonitoringEvalConfig) -> ModelChecks:
    """Violative view rates, label-free precisions (models and strategies) and prediction
    drift of one world, scored by the stand-in model, against its truth."""
    from experiments.monitoring_models import (
        StandInModel,
        audit_populations,
        stand_in_predictions,
        true_precision,
        true_strategy_precision,
        true_view_rate,
    )
    from governance.monitoring.alerts import prediction_drift_alerts
    from governance.monitoring.pipeline import DRIFT_OWNER, model_tables

    items = sim.ground_truth.items
    predictions = stand_in_predictions(items, StandInModel(), seed=seed)
    config = replace(
        MonitorConfig.from_settings(get_settings(), as_of=period_end(sim.tables)),
        precision_threshold=cfg.precision_threshold,
    )
    pops = audit_populations(sim, predictions)
    tables = model_tables(sim.tables, sim.strategies, predictions, config, populations=pops)
    vvr = tables["violative_view_rate"].merge(true_view_rate(pops, items), on=["policy", "channel"])
    vvr["covered"] = (vvr["vvr_low"] <= vvr["vvr_true"]) & (vvr["vvr_true"] <= vvr["vvr_high"])
    prec = tables["model_precision"].merge(
        true_precision(pops, items, threshold=cfg.precision_threshold, predictions=predictions),
        on=["entity", "policy"],
    )
    prec["error"] = (prec["expected_precision"] - prec["precision_true"]).abs()
    policies = {s.id: s.policy.value for s in sim.strategies}
    strat = tables["strategy_expected_precision"].merge(
        true_strategy_precision(sim.tables["strategy_decisions"], policies, items),
        on=["strategy_id", "week_start"],
    )
    strat["error"] = (strat["expected_precision"] - strat["precision_true"]).abs()
    alerts = prediction_drift_alerts(tables["prediction_drift"], config.drift, owner=DRIFT_OWNER)
    return ModelChecks(
        vvr.assign(seed=seed), prec.assign(seed=seed), strat.assign(seed=seed), alerts
    )


def watching(categories: tuple[str, ...]) -> ObjectiveSet:
    """The packaged objectives with `categories` on the watch list."""
    objectives = load_objectives()
    watch = tuple(WatchedCategory(category=c, reason="evaluation") for c in categories)
    return objectives.model_copy(update={"watch": (*objectives.watch, *watch)})


def detection_delay(
    tables: dict[str, pd.DataFrame],
    owners: dict[str, str],
    incident: Incident,
    *,
    start: date,
    max_delay_days: int,
    watch: tuple[str, ...] = (),
) -> tuple[int | None, int]:
    """Days of data after the start before a matching alert, and alerts seen by then that do
    not match (None when not found within `max_delay_days`), with `watch` categories on the
    watch list."""
    settings = get_settings()
    objectives = watching(watch)
    start_day = start + timedelta(days=incident.start_day)
    for k in range(1, max_delay_days + 1):
        as_of = start_day + timedelta(days=k)
        config = MonitorConfig.from_settings(settings, as_of=as_of, objectives=objectives)
        result = compute_monitor(
            tables_before(tables, as_of), config, owners=owners, with_drift=False
        )
        alerts = result.alerts
        found = matches(alerts[alerts["first_day"] >= pd.Timestamp(start_day)], incident)
        if len(found):
            return k, int(len(alerts) - len(found))
    return None, 0


def run_monitoring_eval(
    cfg: MonitoringEvalConfig, *, on_step: Callable[[str], None] | None = None
) -> MonitoringEvalResult:
    """Simulate every scenario on every seed and measure the monitor against it."""
    step = on_step or (lambda _msg: None)
    clean = [_clean_world(seed, cfg, step) for seed in cfg.seeds]
    detections = [
        row
        for seed, c in zip(cfg.seeds, clean, strict=True)
        for row in _detections(seed, cfg, step, c)
    ]
    return MonitoringEvalResult(
        detections=pd.DataFrame(detections),
        false_alarms=pd.DataFrame([row for c in clean for row in c.false_alarms]),
        launch=pd.DataFrame([c.launch for c in clean]),
        view_rates=pd.concat([c.checks.view_rates for c in clean], ignore_index=True),
        precisions=pd.concat([c.checks.precisions for c in clean], ignore_index=True),
        strategy_precisions=pd.concat(
            [c.checks.strategy_precisions for c in clean], ignore_index=True
        ),
        config=cfg,
    )


@dataclass(frozen=True)
class _CleanWorld:
    """What one incident-free world measures: false alarms per alert kind, the launch's
    first drift alert, and the model-side checks."""

    false_alarms: list[dict[str, object]]
    launch: dict[str, object]
    checks: ModelChecks
    #: Per trust scenario: its outcomes arrived in the slice without the incident.
    counterfactual: dict[str, int | None] = field(default_factory=dict)
    #: Per watched scenario: sequential alerts on its watched categories (false alarms the
    #: lower threshold adds).
    watched_alarms: dict[str, int] = field(default_factory=dict)


def _clean_world(seed: int, cfg: MonitoringEvalConfig, step: Callable[[str], None]) -> _CleanWorld:
    step(f"seed {seed}: incident-free world")
    sim = _simulate(seed, cfg, ())
    step(f"seed {seed}: model-side checks (view rates, label-free precision, prediction drift)")
    checks = model_checks(sim, seed, cfg)
    config = MonitorConfig.from_settings(get_settings(), as_of=period_end(sim.tables))
    alerts = compute_monitor(sim.tables, config, owners=_owners(sim)).alerts
    is_launch = (alerts["kind"] == AlertKind.FEATURE_DRIFT) & alerts["metric"].isin(
        _LAUNCH_FEATURES
    )
    launch_day = sim.config.start_date + timedelta(days=sim.config.new_category_launch_day)
    found = alerts[is_launch & (alerts["category"].isin(["collectible_cards", ALL]))]
    months = cfg.days / 30.0
    others = pd.concat([alerts[~is_launch], checks.alerts], ignore_index=True)
    on_launch = others["category"].eq(NEW_CATEGORY)
    false_alarms: list[dict[str, object]] = [
        {
            "seed": seed,
            "kind": kind,
            "alerts": len(g),
            "months": months,
            "on_launch_category": int(on_launch[g.index].sum()),
        }
        for kind, g in others.groupby("kind")
    ] or [{"seed": seed, "kind": "none", "alerts": 0, "months": months, "on_launch_category": 0}]
    launch = {
        "seed": seed,
        "launch_week": launch_day,
        "first_alert_week": found["first_day"].min() if len(found) else pd.NaT,
    }
    start_day = int(cfg.days * cfg.start_fraction)
    counterfactual = {
        name: slice_arrivals(sim.tables, make(start_day), start=sim.config.start_date)
        for name, make in SCENARIOS.items()
    }
    watched = {
        name: _watched_alarms(sim, watch) for name, (_base, watch) in WATCHED_SCENARIOS.items()
    }
    return _CleanWorld(false_alarms, launch, checks, counterfactual, watched)


def _watched_alarms(sim: Any, watch: tuple[str, ...]) -> int:
    """Sequential alerts on the `watch` categories of an incident-free world watched."""
    config = MonitorConfig.from_settings(
        get_settings(), as_of=period_end(sim.tables), objectives=watching(watch)
    )
    alerts = compute_monitor(sim.tables, config, owners=_owners(sim), with_drift=False).alerts
    return int(((alerts["kind"] == AlertKind.TRUST_CUSUM) & alerts["category"].isin(watch)).sum())


def _detections(
    seed: int, cfg: MonitoringEvalConfig, step: Callable[[str], None], clean: _CleanWorld
) -> list[dict[str, object]]:
    """Per planted incident on this seed: days to a matching alert, other alerts by then and,
    for a trust surge, its outcomes in the first `EVIDENCE_DAYS` days with and without it (the
    same seed's incident-free world draws each order's outcomes from the same random numbers,
    so it is the exact counterfactual). A watched scenario reuses its base scenario's world
    with its categories on the watch list."""
    start_day = int(cfg.days * cfg.start_fraction)
    rows: list[dict[str, object]] = []
    for name, make in SCENARIOS.items():
        incident = make(start_day)
        step(f"seed {seed}: {name}")
        sim = _simulate(seed, cfg, (incident,))
        evidence = {
            "evidence_without": clean.counterfactual.get(name),
            "evidence_with": slice_arrivals(sim.tables, incident, start=sim.config.start_date),
        }
        runs: list[tuple[str, tuple[str, ...], dict[str, object]]] = [(name, (), {})] + [
            (watched, watch, {"watched_false_alarms": clean.watched_alarms.get(watched)})
            for watched, (base, watch) in WATCHED_SCENARIOS.items()
            if base == name
        ]
        for label, watch, extra in runs:
            delay, others = detection_delay(
                sim.tables,
                _owners(sim),
                incident,
                start=sim.config.start_date,
                max_delay_days=cfg.max_delay_days,
                watch=watch,
            )
            row = {"scenario": label, "seed": seed, "start_day": incident.start_day}
            row.update(delay_days=delay, other_alerts=others, **evidence, **extra)
            rows.append(row)
    return rows
