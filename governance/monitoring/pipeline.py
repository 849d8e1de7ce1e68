"""`run_monitor`: every monitoring table and the HTML report for one data directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from features.settings import get_settings as features_settings
from features.vocabulary import Entity, Policy
from governance.monitoring.alerts import (
    burn_alerts,
    combine,
    drift_alerts,
    overturn_alerts,
    prediction_drift_alerts,
    strategy_alerts,
)
from governance.monitoring.appeals import (
    OverturnConfig,
    actioned_items,
    overturn_tests,
    strategy_appeals,
)
from governance.monitoring.burn import BurnConfig, objective_status
from governance.monitoring.cusum import CusumConfig, category_cusum_tests, cusum_alerts
from governance.monitoring.drift import DriftConfig, feature_drift, prediction_drift
from governance.monitoring.objectives import (
    BurnRule,
    ObjectiveSet,
    WatchedCategory,
    default_rules,
    load_objectives,
)
from governance.monitoring.settings import MonitorSettings, get_settings
from governance.monitoring.shift import ShiftConfig, category_shift_tests, shift_alerts
from governance.monitoring.strategy_health import (
    DecayConfig,
    compute_strategy_health,
    hit_rate_tests,
)
from governance.monitoring.tables import (
    FEATURE_DRIFT,
    LAUNCH_RISK,
    MODEL_PRECISION,
    MODEL_TABLES,
    MONITOR_TABLES,
    PREDICTION_DRIFT,
    STRATEGY_EXPECTED_PRECISION,
    STRATEGY_PRECISION,
    VIOLATIVE_VIEW_RATE,
    empty_frame,
)
from governance.monitoring.trust import DelayModel, compute_trust_metrics
from governance.monitoring.vocabulary import ALL
from governance.strategy import Strategy

if TYPE_CHECKING:
    from governance.audit.population import Population

#: Declared listing features whose value depends on the cutoff rather than on the item (an
#: age, a running count): they differ between weekly cohorts by construction.
CUTOFF_DEPENDENT = frozenset(
    {"listing_age_days", "listing_category_age_days", "listing_category_listing_count"}
)
DRIFT_OWNER = "ml-platform"
STRATEGY_OWNER = "strategy-ops"


@dataclass(frozen=True)
class MonitorConfig:
    """Everything a monitoring run used; reports read it from the result."""

    as_of: date
    objectives: ObjectiveSet
    rules: tuple[BurnRule, ...]
    burn: BurnConfig
    decay: DecayConfig
    drift: DriftConfig
    shift: ShiftConfig
    cusum: CusumConfig
    mature_completeness: float
    delay_reference_days: int
    threads: int
    precision_threshold: float = 0.5
    confidence: float = 0.95
    overturn: OverturnConfig = OverturnConfig()
    #: A launched category is watched (tighter sequential alerts) this many days.
    launch_watch_days: int = 28

    @classmethod
    def from_settings(
        cls, settings: MonitorSettings, *, as_of: date, objectives: ObjectiveSet | None = None
    ) -> MonitorConfig:
        """The run configuration from package settings."""
        objectives = objectives or load_objectives(settings.objectives_path)
        return cls(
            as_of=as_of,
            objectives=objectives,
            rules=default_rules(objectives.window_days),
            burn=BurnConfig(min_completeness=settings.min_completeness),
            decay=DecayConfig(
                baseline_days=settings.decay_baseline_days,
                recent_days=settings.decay_recent_days,
                decay_ratio=settings.decay_ratio,
                surge_ratio=settings.surge_ratio,
                family_alpha=settings.family_alpha,
                min_baseline_hits=settings.min_baseline_hits,
            ),
            drift=DriftConfig(
                reference_weeks=settings.reference_weeks,
                prediction_warmup_days=settings.prediction_warmup_days,
                min_items=settings.min_drift_items,
                psi_medium=settings.psi_medium,
                psi_high=settings.psi_high,
            ),
            shift=ShiftConfig(min_completeness=settings.min_completeness),
            cusum=CusumConfig(
                threshold=settings.cusum_threshold,
                shift_ratio=settings.cusum_shift_ratio,
                watch_threshold=settings.watch_threshold,
            ),
            launch_watch_days=settings.launch_watch_days,
            mature_completeness=settings.mature_completeness,
            delay_reference_days=settings.delay_reference_days,
            threads=features_settings().threads,  # the one GOVRISK_THREADS
            precision_threshold=settings.precision_threshold,
            confidence=settings.confidence,
            overturn=OverturnConfig(
                horizon_days=settings.overturn_horizon_days,
                rise_ratio=settings.overturn_rise_ratio,
                family_alpha=settings.family_alpha,
                confidence=settings.confidence,
            ),
        )


@dataclass
class MonitorResult:
    """The tables of one run, the delay model and the files written."""

    config: MonitorConfig
    tables: dict[str, pd.DataFrame]
    delays: DelayModel
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def alerts(self) -> pd.DataFrame:
        """Table `alerts`."""
        return self.tables["alerts"]


Progress = Callable[[str, int, int], None]
_STEPS = 7


def tables_before(tables: dict[str, pd.DataFrame], as_of: date) -> dict[str, pd.DataFrame]:
    """Contract tables as they were known at `as_of`: rows whose time column is before it, and
    lifts not yet happened blanked."""
    from features.tables import TABLES

    cutoff = pd.Timestamp(as_of)
    out: dict[str, pd.DataFrame] = {}
    for name, df in tables.items():
        spec = TABLES.get(name)
        if spec is None or spec.time_column is None:
            out[name] = df
            continue
        out[name] = df[pd.to_datetime(df[spec.time_column]) < cutoff].reset_index(drop=True)
    if "strategy_decisions" in out:
        d = out["strategy_decisions"].copy()
        d["lifted_at"] = d["lifted_at"].where(pd.to_datetime(d["lifted_at"]) < cutoff)
        out["strategy_decisions"] = d
    return out


def period_end(tables: dict[str, pd.DataFrame]) -> date:
    """The day after the last day of traffic: the default `as_of`."""
    days = pd.to_datetime(tables["channel_exposure"]["day"])
    if not len(days):
        raise ValueError("channel_exposure is empty: there is no period to monitor")
    return (days.max() + timedelta(days=1)).date()


def run_monitor(
    data_dir: Path,
    *,
    out_dir: Path | None = None,
    as_of: date | None = None,
    objectives: ObjectiveSet | None = None,
    settings: MonitorSettings | None = None,
    predictions: pd.DataFrame | None = None,
    write_report: bool = True,
    on_progress: Progress | None = None,
) -> MonitorResult:
    """Load and validate the contract tables of `data_dir`, compute every monitoring table,
    and write them (and the report) to `out_dir` when given. With model `predictions`
    (entity, item_id, policy, p), also the violative view rates and label-free precisions."""
    from features.loader import load_tables
    from governance.registry import StrategyRegistry

    step = on_progress or (lambda _name, _done, _total: None)
    settings = settings or get_settings()
    step("loading tables", 0, _STEPS)
    tables = load_tables(data_dir)
    as_of = as_of or period_end(tables)
    config = MonitorConfig.from_settings(settings, as_of=as_of, objectives=objectives)
    registry = StrategyRegistry.load(data_dir)
    owners = {s.id: s.owner for s in registry}
    policies = {s.id: s.policy.value for s in registry}
    result = compute_monitor(
        tables,
        config,
        owners=owners,
        policies=policies,
        strategies=list(registry),
        on_progress=step,
    )
    if predictions is not None:
        extra = model_tables(tables, list(registry), predictions, config)
        result.tables.update(extra)
        result.tables["alerts"] = combine(
            result.tables["alerts"],
            prediction_drift_alerts(extra[PREDICTION_DRIFT.name], config.drift, owner=DRIFT_OWNER),
        )
    if out_dir is not None:
        step("writing", 6, _STEPS)
        result.paths = write_monitor(result, out_dir, write_report=write_report)
    step("done", _STEPS, _STEPS)
    return result


def compute_monitor(
    tables: dict[str, pd.DataFrame],
    config: MonitorConfig,
    *,
    owners: dict[str, str],
    policies: dict[str, str] | None = None,
    strategies: list[Strategy] | None = None,
    with_drift: bool = True,
    on_progress: Progress | None = None,
) -> MonitorResult:
    """Every monitoring table from validated contract tables (`with_drift=False` skips the
    feature build and leaves `feature_drift` empty; without `policies`, strategy id ->
    policy, `strategy_precision` stays empty, and without `strategies`, `launch_coverage`)."""
    step = on_progress or (lambda _name, _done, _total: None)
    con = duckdb.connect()
    con.execute(f"SET threads = {config.threads}")
    for name, df in tables.items():
        con.register(f"_in_{name}", df)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _in_{name}")
    step("trust metrics", 1, _STEPS)
    trust = compute_trust_metrics(
        con,
        as_of=config.as_of,
        delay_reference_days=config.delay_reference_days,
        mature_completeness=config.mature_completeness,
    )
    step("objectives and burn rates", 2, _STEPS)
    status = objective_status(
        trust.base,
        trust.delays,
        config.objectives,
        as_of=config.as_of,
        config=config.burn,
        rules=config.rules,
    )
    shift = category_shift_tests(
        trust.base,
        trust.delays,
        as_of=config.as_of,
        item_outcomes=trust.item_outcomes,
        config=config.shift,
    )
    watches = [*config.objectives.watch, *_launch_watches(tables, config)]
    sequential = category_cusum_tests(
        trust.base,
        trust.arrivals,
        trust.delays,
        as_of=config.as_of,
        item_orders=trust.item_orders,
        config=config.cusum,
        watched=watches,
    )
    metric_owners = {
        o.metric.value: o.owner for o in config.objectives.expanded() if o.channel == ALL
    }
    step("strategy health", 3, _STEPS)
    health = compute_strategy_health(con, as_of=config.as_of)
    tests = hit_rate_tests(health, config.decay)
    precision = _strategy_precision(tables, policies or {}, config)
    items = actioned_items(
        tables["strategy_decisions"],
        tables.get("audit_labels"),
        policies or {},
        as_of=config.as_of,
    )
    appeals = strategy_appeals(items, as_of=config.as_of, config=config.overturn)
    overturns = overturn_tests(
        items,
        as_of=config.as_of,
        new_items=health[["day", "strategy_id", "new_items"]],
        config=config.overturn,
    )
    launch = _launch_coverage(tables, strategies or [], config)
    step("feature drift", 4, _STEPS)
    drift = _listing_drift(con, tables, config) if with_drift else empty_frame(FEATURE_DRIFT)
    step("alerts", 5, _STEPS)
    alerts = combine(
        burn_alerts(status, trust.base, config.rules),
        shift_alerts(shift, trust.base, metric_owners, config=config.shift),
        cusum_alerts(
            sequential,
            metric_owners,
            config=config.cusum,
            watch_owners={w.category: w.owner for w in watches if w.owner},
        ),
        strategy_alerts(tests, health, owners, default_owner=STRATEGY_OWNER),
        overturn_alerts(overturns, owners, config.overturn, default_owner=STRATEGY_OWNER),
        drift_alerts(drift, config.drift, owner=DRIFT_OWNER),
    )
    con.close()
    return MonitorResult(
        config=config,
        tables={
            "trust_metrics": trust.metrics,
            "objective_status": status,
            "strategy_health": health,
            "strategy_precision": precision,
            "strategy_appeals": appeals,
            "feature_drift": drift,
            "launch_coverage": launch,
            "alerts": alerts,
        },
        delays=trust.delays,
    )


def _launch_coverage(
    tables: dict[str, pd.DataFrame], strategies: list[Strategy], config: MonitorConfig
) -> pd.DataFrame:
    from governance.monitoring.launch import launch_coverage, launched_categories

    categories = launched_categories(tables, reference_weeks=config.drift.reference_weeks)
    return launch_coverage(tables, strategies, categories=categories)


def _launch_risk(
    tables: dict[str, pd.DataFrame], scores: pd.DataFrame, config: MonitorConfig
) -> pd.DataFrame:
    from governance.monitoring.launch import launch_risk, launched_categories

    categories = launched_categories(tables, reference_weeks=config.drift.reference_weeks)
    return launch_risk(tables, scores, categories=categories)


def _launch_watches(
    tables: dict[str, pd.DataFrame], config: MonitorConfig
) -> list[WatchedCategory]:
    from governance.monitoring.launch import recent_launch_watches

    return recent_launch_watches(
        tables, reference_weeks=config.drift.reference_weeks, days=config.launch_watch_days
    )


def _strategy_precision(
    tables: dict[str, pd.DataFrame], policies: dict[str, str], config: MonitorConfig
) -> pd.DataFrame:
    from governance.audit.pipeline import flip_rate_for
    from governance.audit.settings import get_settings as audit_settings
    from governance.monitoring.strategy_precision import strategy_precision

    labels = tables.get("audit_labels")
    if labels is None or not len(labels) or not policies:
        return empty_frame(STRATEGY_PRECISION)
    flip_rate, _source = flip_rate_for(labels, audit_settings())
    return strategy_precision(
        labels,
        tables["strategy_decisions"],
        policies,
        flip_rate=flip_rate,
        confidence=config.confidence,
    )


def model_tables(
    tables: dict[str, pd.DataFrame],
    strategies: list[Strategy],
    predictions: pd.DataFrame,
    config: MonitorConfig,
    *,
    populations: dict[tuple[Entity, Policy], Population] | None = None,
) -> dict[str, pd.DataFrame]:
    """Tables `violative_view_rate`, `model_precision`, `strategy_expected_precision` and
    `prediction_drift` from the audit's labels and the models' predictions, one scoring run
    or a scoring log (`scored_at`; drift reads each item's score when new, the rest its
    latest); `populations`: the audit's populations of these predictions, when the caller
    has built them already."""
    from governance.monitoring.prevalence import (
        label_free_precision,
        model_populations,
        violative_view_rate,
    )
    from governance.monitoring.strategy_precision import expected_strategy_precision

    if "audit_labels" not in tables:
        raise KeyError("violative view rates need table audit_labels in the data directory")
    current = latest_scores(predictions)
    pops = (
        populations if populations is not None else model_populations(tables, strategies, current)
    )
    modelled = set(zip(current["entity"].astype(str), current["policy"].astype(str), strict=True))
    own = {k: pop for k, pop in pops.items() if (k[0].value, k[1].value) in modelled}
    return {
        VIOLATIVE_VIEW_RATE.name: violative_view_rate(pops, confidence=config.confidence),
        MODEL_PRECISION.name: label_free_precision(
            own,
            threshold=config.precision_threshold,
            predictions=current,
            confidence=config.confidence,
        ),
        STRATEGY_EXPECTED_PRECISION.name: expected_strategy_precision(
            tables["strategy_decisions"], current, {s.id: s.policy.value for s in strategies}
        ),
        # drift reads the whole scoring log: each item's score when it was new
        PREDICTION_DRIFT.name: _prediction_drift(tables, predictions, config),
        LAUNCH_RISK.name: _launch_risk(tables, current, config),
    }


def latest_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Each item's latest score per model: `predictions` may be a scoring log (column
    `scored_at`, as the audit writes), else it is one scoring run."""
    if "scored_at" not in predictions.columns:
        return predictions
    latest = predictions.sort_values("scored_at", kind="stable")
    return latest.drop_duplicates(["entity", "item_id", "policy"], keep="last").drop(
        columns="scored_at"
    )


def _prediction_drift(
    tables: dict[str, pd.DataFrame], predictions: pd.DataFrame, config: MonitorConfig
) -> pd.DataFrame:
    from features.tables import ITEM_TABLES, published_at

    published = pd.concat(
        [
            published_at(tables, entity)
            .rename_axis("item_id")
            .reset_index()
            .assign(entity=entity.value)
            for entity in ITEM_TABLES
        ],
        ignore_index=True,
    )
    con = duckdb.connect()
    con.execute(f"SET threads = {config.threads}")
    try:
        return prediction_drift(
            con, predictions, published, config=config.drift, data_start=_data_start(tables)
        )
    finally:
        con.close()


def _data_start(tables: dict[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The first day of traffic in the data (None without any)."""
    exposure = tables.get("channel_exposure")
    if exposure is None or not len(exposure):
        return None
    return pd.Timestamp(pd.to_datetime(exposure["day"]).min())


def _listing_drift(
    con: duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame], config: MonitorConfig
) -> pd.DataFrame:
    from features.build import build_frames
    from features.listing import LISTING

    frame = build_frames(
        tables, as_of=pd.Timestamp(config.as_of), entities=[Entity.LISTING], threads=config.threads
    )[Entity.LISTING]
    published = tables["listings"].set_index("listing_id")["created_at"]
    frame = frame.assign(published_at=frame["item_id"].map(published).to_numpy())
    kinds = {f.name: f.kind for f in LISTING.features if f.name not in CUTOFF_DEPENDENT}
    kinds = {k: v for k, v in kinds.items() if k in frame.columns}
    con.register("_drift_listing_frame", frame)
    return feature_drift(
        con, "_drift_listing_frame", entity=Entity.LISTING.value, kinds=kinds, config=config.drift
    )


def write_monitor(
    result: MonitorResult, out_dir: Path, *, write_report: bool = True
) -> dict[str, Path]:
    """Write every table as Parquet and the HTML report; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in [*MONITOR_TABLES, *(n for n in MODEL_TABLES if n in result.tables)]:
        path = out_dir / f"{name}.parquet"
        result.tables[name].to_parquet(path, index=False)
        paths[name] = path
    if write_report:
        from governance.monitoring.report import render_report

        path = out_dir / "monitoring.html"
        path.write_text(render_report(result), encoding="utf-8")
        paths["report"] = path
    return paths
