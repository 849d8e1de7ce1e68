"""Every table `govrisk monitor` writes, declared once with the data contract's machinery.

Column lists, dtypes, checks and the reference in docs/monitoring.md derive from these
declarations.
"""

from __future__ import annotations

from enum import StrEnum

import pandas as pd

from features.tables import ColumnKind, ColumnSpec, TableSpec
from features.vocabulary import Channel, Entity, Policy, values
from governance.monitoring.vocabulary import (
    ALL,
    AlertKind,
    Dimension,
    Grain,
    Severity,
    TrustMetric,
)
from training.spec import ANY


def _c(
    name: str,
    kind: ColumnKind,
    description: str,
    *,
    nullable: bool = False,
    enum: type[StrEnum] | tuple[str, ...] | None = None,
    unit: str = "",
    min_value: float | None = None,
    max_value: float | None = None,
) -> ColumnSpec:
    allowed = tuple(values(enum)) if isinstance(enum, type) else enum
    return ColumnSpec(
        name=name,
        kind=kind,
        description=description,
        nullable=nullable,
        enum=allowed,
        unit=unit,
        min_value=min_value,
        max_value=max_value,
    )


_CHANNEL_OR_ALL = (ALL, *values(Channel))
#: The key columns of the tables per strategy and week of its first decisions on the items.
_STRATEGY_WEEK = (
    _c("week_start", "date", "Monday of the week the strategy first actioned the items."),
    _c("strategy_id", "string", "Strategy."),
)
#: The confidence level of a table's intervals.
_CONFIDENCE = _c("confidence", "float", "Level of the interval.", min_value=0, max_value=1)
#: The spread of a label-free (expected) precision, as `model_precision` and
#: `strategy_expected_precision` report it.
_EXPECTED_PRECISION_SD = _c(
    "expected_precision_sd",
    "float",
    "How far the realised precision varies around it when the model is calibrated.",
    nullable=True,
)
#: What a model scores: a policy, or `any` for the any-violation model.
_MODEL_POLICY = (*values(Policy), ANY)

TRUST_METRICS = TableSpec(
    name="trust_metrics",
    description=(
        "Trust per period, channel and slice; sums over every item shown (exposure-weighted), "
        "outcomes counted on the day of the sale they follow."
    ),
    key=("grain", "period_start", "channel", "dimension", "segment"),
    time_column="period_start",
    columns=(
        _c("grain", "string", "Length of the period.", enum=Grain),
        _c("period_start", "date", "First day of the period (weeks start on Monday)."),
        _c("channel", "string", "Traffic channel, or `all`.", enum=_CHANNEL_OR_ALL),
        _c("dimension", "string", "What `segment` slices by.", enum=Dimension),
        _c("segment", "string", "Category or seller tier, or `all`."),
        _c("impressions", "int", "Impressions in the period.", unit="views", min_value=0),
        _c("orders", "int", "Orders in the period.", unit="orders", min_value=0),
        _c("gmv", "float", "GMV of those orders.", unit="USD", min_value=0),
        _c(
            "complaints",
            "float",
            "Complaints about those orders (an outcome that may follow several sales of its "
            "item is shared among them by order count and delay distribution).",
            min_value=0,
        ),
        _c(
            "complaints_per_1k_orders",
            "float",
            "Complaints per 1,000 orders.",
            nullable=True,
            min_value=0,
        ),
        _c("complaints_per_1k_low", "float", "Lower 95% bound (Poisson).", nullable=True),
        _c("complaints_per_1k_high", "float", "Upper 95% bound (Poisson).", nullable=True),
        _c("returns", "float", "Returns of those orders (shared likewise).", min_value=0),
        _c("returns_per_1k_orders", "float", "Returns per 1,000 orders.", nullable=True),
        _c("returns_per_1k_low", "float", "Lower 95% bound (Poisson).", nullable=True),
        _c("returns_per_1k_high", "float", "Upper 95% bound (Poisson).", nullable=True),
        _c("refund_usd", "float", "Refunded amount.", unit="USD", min_value=0),
        _c("refund_per_gmv", "float", "Refunded amount per USD of GMV.", nullable=True),
        _c("reviews", "float", "Reviews of those orders (shared likewise).", min_value=0),
        _c("mean_rating", "float", "Mean review rating (1-5).", nullable=True),
        _c("low_star_share", "float", "Share of 1-2 star reviews.", nullable=True),
        _c("nps_responses", "float", "NPS answers of buyers who clicked.", min_value=0),
        _c("nps", "float", "Promoters minus detractors, in points (-100..100).", nullable=True),
        _c("nps_low", "float", "Lower 95% bound of the NPS.", nullable=True),
        _c("nps_high", "float", "Upper 95% bound of the NPS.", nullable=True),
        _c(
            "completeness",
            "float",
            "Expected share of the period's outcomes that have arrived (delay distribution).",
            min_value=0,
            max_value=1,
        ),
        _c("mature", "bool", "Whether the period's outcomes have (almost) all arrived."),
    ),
)

OBJECTIVE_STATUS = TableSpec(
    name="objective_status",
    description=(
        "Each channel objective per day: the day's value, the error budget spent over the "
        "objective's window and the burn rate over each alerting window."
    ),
    key=("day", "channel", "metric"),
    time_column="day",
    columns=(
        _c("day", "date", "Day (UTC)."),
        _c("channel", "string", "Channel of the objective.", enum=_CHANNEL_OR_ALL),
        _c("metric", "string", "Trust metric the objective bounds.", enum=TrustMetric),
        _c("target", "float", "Objective: the metric stays at or below this."),
        _c("owner", "string", "Who answers for the objective."),
        _c(
            "value",
            "float",
            "The day's value, corrected for outcomes still due (empty: too few arrived).",
            nullable=True,
        ),
        _c("completeness", "float", "Expected share of the day's outcomes arrived.", min_value=0),
        _c(
            "budget_spent",
            "float",
            "Share of the error budget spent over the trailing objective window (1 = all).",
            nullable=True,
        ),
        _c(
            "burn_short", "float", "Burn rate over the short window (1 = on budget).", nullable=True
        ),
        _c("burn_mid", "float", "Burn rate over the middle window.", nullable=True),
        _c("burn_long", "float", "Burn rate over the long window.", nullable=True),
        _c("events_long", "float", "Bad events behind `burn_long` (after correction)."),
        _c(
            "firing",
            "string",
            "Severity of the burn-rate rule firing that day, if any.",
            nullable=True,
            enum=Severity,
        ),
    ),
)

STRATEGY_HEALTH = TableSpec(
    name="strategy_health",
    description="Hits per day, strategy and channel, against the items that could be hit.",
    key=("day", "strategy_id", "channel"),
    time_column="day",
    columns=(
        _c("day", "date", "Day the decisions took effect (UTC)."),
        _c("strategy_id", "string", "Strategy."),
        _c("strategy_version", "int", "Latest version that fired that day.", min_value=1),
        _c("channel", "string", "Channel actioned.", enum=tuple(values(Channel))),
        _c("entity", "string", "Entity the strategy actions."),
        _c("hits", "int", "New decisions.", min_value=0),
        _c("lifted", "int", "Of those, lifted after an upheld appeal so far.", min_value=0),
        _c(
            "new_items",
            "int",
            "Items of the entity published the day before (sellers: all registered so far).",
            min_value=0,
        ),
        _c("hits_per_1k_new_items", "float", "Hit rate per 1,000 new items.", nullable=True),
        _c("overturn_rate", "float", "Lifted / hits.", nullable=True),
    ),
)

STRATEGY_APPEALS = TableSpec(
    name="strategy_appeals",
    description=(
        "Appeals and overturns per strategy and week of its decisions: of the items it "
        "actioned, the share appealed and the share whose decision was lifted on appeal."
    ),
    key=("week_start", "strategy_id"),
    time_column="week_start",
    columns=(
        *_STRATEGY_WEEK,
        _c("items_actioned", "int", "Items it actioned (any channel).", min_value=1),
        _c(
            "appeals",
            "int",
            "Of those, appealed on the strategy's policy (appeal reviews in the audit).",
            min_value=0,
        ),
        _c("overturned", "int", "Of those, lifted on appeal so far.", min_value=0),
        _c("appeal_rate", "float", "Appeals / items actioned.", min_value=0, max_value=1),
        _c("overturn_rate", "float", "Overturned / items actioned.", min_value=0, max_value=1),
        _c("overturn_rate_low", "float", "Lower bound of its interval (exact binomial)."),
        _c("overturn_rate_high", "float", "Upper bound of its interval."),
        _c(
            "overturned_share_of_appeals",
            "float",
            "Overturned / appeals (empty without appeals).",
            nullable=True,
        ),
        _c(
            "complete",
            "bool",
            "Whether the week's overturns have all had time to arrive (decision horizon).",
        ),
        _CONFIDENCE,
    ),
)

FEATURE_DRIFT = TableSpec(
    name="feature_drift",
    description=(
        "Population stability of each declared content feature: items published each week "
        "against the reference weeks, on bins fitted to the reference (deciles, as training "
        "bins by quantile)."
    ),
    key=("entity", "feature", "week_start"),
    time_column="week_start",
    columns=(
        _c("entity", "string", "Entity of the frame."),
        _c("feature", "string", "Declared feature."),
        _c("feature_kind", "string", "numeric, categorical or boolean."),
        _c("week_start", "date", "Monday of the week the items were published."),
        _c("n_reference", "int", "Items in the reference weeks.", min_value=0),
        _c("n_week", "int", "Items published that week.", min_value=0),
        _c("psi", "float", "Population stability index against the reference.", min_value=0),
        _c("n_bins", "int", "Bins compared (deciles or values, and missing).", min_value=1),
        _c("missing_reference", "float", "Share missing in the reference."),
        _c("missing_week", "float", "Share missing that week."),
        _c("top_bin", "string", "Bin whose share moved most (its range or value)."),
        _c("top_bin_shift", "float", "That bin's share that week minus in the reference."),
    ),
)

PREDICTION_DRIFT = TableSpec(
    name="prediction_drift",
    description=(
        "Population stability of each model's probabilities: items published each week "
        "against the reference weeks, on the reference deciles (as `feature_drift`)."
    ),
    key=("entity", "policy", "week_start"),
    time_column="week_start",
    columns=(
        _c("entity", "string", "Kind of item scored.", enum=Entity),
        _c(
            "policy",
            "string",
            "Policy the model scores (`any`: the any-violation model).",
            enum=_MODEL_POLICY,
        ),
        _c("week_start", "date", "Monday of the week the items were published."),
        _c("n_reference", "int", "Items in the reference weeks.", min_value=0),
        _c("n_week", "int", "Items published that week.", min_value=0),
        _c("psi", "float", "Population stability index against the reference.", min_value=0),
        _c("n_bins", "int", "Bins compared (deciles, and missing).", min_value=1),
        _c("mean_reference", "float", "Mean probability in the reference weeks."),
        _c("mean_week", "float", "Mean probability that week."),
        _c("top_bin", "string", "Bin whose share moved most (its range)."),
        _c("top_bin_shift", "float", "That bin's share that week minus in the reference."),
        _c(
            "alert_threshold",
            "float",
            "PSI above which the week alerted in this run: the run's psi_medium, or three "
            "times what sampling noise alone gives, if larger.",
            min_value=0,
        ),
    ),
)

ALERTS = TableSpec(
    name="alerts",
    description=(
        "One row per alert episode (consecutive firing days of one rule on one slice), "
        "with its evidence and owner."
    ),
    key=("alert_id",),
    time_column="first_day",
    columns=(
        _c("alert_id", "string", "Stable id: rule, slice and first day hashed."),
        _c("kind", "string", "What the alert is about.", enum=AlertKind),
        _c("severity", "string", "How urgent.", enum=Severity),
        _c("title", "string", "One line a person reads first."),
        _c("metric", "string", "Metric or feature that moved."),
        _c("channel", "string", "Channel, or `all`.", enum=_CHANNEL_OR_ALL),
        _c("category", "string", "Category most behind it, or `all`."),
        _c("strategy_id", "string", "Strategy concerned, or `all`."),
        _c("owner", "string", "Who is asked to act."),
        _c("first_day", "date", "First day the rule fired."),
        _c("last_day", "date", "Last day it fired."),
        _c("days_firing", "int", "Days it fired.", min_value=1),
        _c("value", "float", "Worst value seen (burn rate, PSI, hit-rate or overturn-rate ratio)."),
        _c("threshold", "float", "Threshold of the rule."),
        _c("evidence", "string", "What was seen, in numbers, with the slices behind it."),
    ),
)

VIOLATIVE_VIEW_RATE = TableSpec(
    name="violative_view_rate",
    description=(
        "Share of each channel's impressions on items violating a policy, prediction-powered: "
        "calibrated model probabilities of every item corrected by the audit's design-weighted "
        "labels."
    ),
    key=("policy", "channel"),
    columns=(
        _c("policy", "string", "Policy judged.", enum=Policy),
        _c("channel", "string", "Traffic channel.", enum=tuple(values(Channel))),
        _c("impressions", "float", "Impressions of the audited items.", unit="views", min_value=0),
        _c(
            "violative_impressions",
            "float",
            "Estimated impressions on violating items.",
            unit="views",
            min_value=0,
        ),
        _c("vvr", "float", "Violative view rate.", min_value=0, max_value=1),
        _c("vvr_low", "float", "Lower bound of its interval.", nullable=True),
        _c("vvr_high", "float", "Upper bound of its interval.", nullable=True),
        _c("vvr_model", "float", "The model's own rate, before the labels correct it."),
        _c("labels", "int", "Audit labels behind the correction.", min_value=0),
        _CONFIDENCE,
    ),
)

MODEL_PRECISION = TableSpec(
    name="model_precision",
    description=(
        "Label-free precision of each model at its operating point: the mean calibrated "
        "probability of the items it flags (confidence-based performance estimation)."
    ),
    key=("entity", "policy"),
    columns=(
        _c("entity", "string", "Kind of item scored.", enum=Entity),
        _c(
            "policy",
            "string",
            "Policy the model scores (`any`: the any-violation model).",
            enum=_MODEL_POLICY,
        ),
        _c("threshold", "float", "Operating point: flagged at this model probability or above."),
        _c("items", "int", "Items scored.", min_value=0),
        _c("flagged", "int", "Items flagged at the operating point.", min_value=0),
        _c(
            "expected_precision",
            "float",
            "Expected share of flagged items violating.",
            nullable=True,
        ),
        _EXPECTED_PRECISION_SD,
        _c("expected_true_positives", "float", "Expected violating items among the flagged."),
        _c(
            "labelled_precision",
            "float",
            "The same precision checked against the audit's verdicts: violating flagged items "
            "(the recalibrated model's total corrected by the design-weighted labels) over the "
            "flagged; empty where the verdicts do not reach most flagged items (over 10% of "
            "them in no labelled design's frame) and for an any-violation model (verdicts are "
            "per policy).",
            nullable=True,
            min_value=0,
            max_value=1,
        ),
        _c("labelled_low", "float", "Lower end of its interval.", nullable=True),
        _c("labelled_high", "float", "Upper end of its interval.", nullable=True),
        _c(
            "labels_flagged",
            "int",
            "Audit verdicts on flagged items behind it.",
            min_value=0,
        ),
        _CONFIDENCE,
    ),
)

STRATEGY_PRECISION = TableSpec(
    name="strategy_precision",
    description=(
        "Live precision of each strategy per week of its decisions, from the audit's "
        "strategy-flagged verdicts (design-weighted, reviewer flips corrected)."
    ),
    key=("week_start", "strategy_id"),
    time_column="week_start",
    columns=(
        *_STRATEGY_WEEK,
        _c("labels", "int", "Verdicts on those items.", min_value=1),
        _c("violating", "int", "Of those, found violating.", min_value=0),
        _c("precision", "float", "Share of actioned items violating.", min_value=0, max_value=1),
        _c("precision_low", "float", "Lower bound of its interval.", nullable=True),
        _c("precision_high", "float", "Upper bound of its interval.", nullable=True),
        _CONFIDENCE,
    ),
)

STRATEGY_EXPECTED_PRECISION = TableSpec(
    name="strategy_expected_precision",
    description=(
        "Label-free precision of each strategy per week of its decisions: the mean calibrated "
        "probability, under the model of the strategy's policy, of the items it actioned."
    ),
    key=("week_start", "strategy_id"),
    time_column="week_start",
    columns=(
        *_STRATEGY_WEEK,
        _c("policy", "string", "The strategy's policy (the model read).", enum=Policy),
        _c("actioned", "int", "Items the strategy first actioned that week.", min_value=1),
        _c("scored", "int", "Of those, scored by the policy's model.", min_value=0),
        _c(
            "expected_precision",
            "float",
            "Mean probability of the scored items: the share expected to violate.",
            nullable=True,
            min_value=0,
            max_value=1,
        ),
        _EXPECTED_PRECISION_SD,
        _c("expected_true_positives", "float", "Expected violating items among the scored."),
    ),
)

LAUNCH_COVERAGE = TableSpec(
    name="launch_coverage",
    description=(
        "Launch watch: for each category launched after the drift reference weeks, which "
        "strategies could act and which did, per policy and channel its items were shown in."
    ),
    key=("category", "policy", "channel"),
    columns=(
        _c("category", "string", "Newly launched category."),
        _c("policy", "string", "Policy some strategy enforces.", enum=Policy),
        _c(
            "channel",
            "string",
            "Channel the category's items were shown in.",
            enum=tuple(values(Channel)),
        ),
        _c("items_shown", "int", "Items of the category shown in the channel.", min_value=0),
        _c("impressions", "int", "Their impressions.", unit="views", min_value=0),
        _c(
            "strategies",
            "string",
            "Strategies of the policy, for the shown items' entities, running in the channel.",
        ),
        _c("strategies_firing", "string", "Of those, the ones that actioned the category's items."),
        _c("items_actioned", "int", "Items of the category they actioned.", min_value=0),
        _c(
            "actioned_share",
            "float",
            "Actioned items over the items shown or actioned in the channel (0: a gap).",
            min_value=0,
            max_value=1,
        ),
    ),
)

LAUNCH_RISK = TableSpec(
    name="launch_risk",
    description=(
        "Launch watch: each launched category's risk beside the established categories', per "
        "model: the mean calibrated probability of its items against theirs."
    ),
    key=("category", "entity", "policy"),
    columns=(
        _c("category", "string", "Newly launched category."),
        _c("entity", "string", "Entity the model scores.", enum=Entity),
        _c("policy", "string", "The model's policy (`any`: any violation)."),
        _c("items", "int", "Items of the category the model scored.", min_value=1),
        _c(
            "mean_probability",
            "float",
            "Their mean calibrated probability: the share expected to violate.",
            min_value=0,
            max_value=1,
        ),
        _c("established", "int", "Established categories the model scored.", min_value=0),
        _c(
            "established_median",
            "float",
            "Median over the established categories of their items' mean probability.",
            nullable=True,
        ),
        _c(
            "established_max",
            "float",
            "The riskiest established category's mean probability.",
            nullable=True,
        ),
        _c("riskiest_established", "string", "That category.", nullable=True),
        _c(
            "rank",
            "int",
            "The launched category's rank among the established ones and itself (1: riskiest).",
            min_value=1,
        ),
    ),
)

#: Tables computed when the monitor is given model predictions (`--predictions`).
MODEL_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        VIOLATIVE_VIEW_RATE,
        MODEL_PRECISION,
        STRATEGY_EXPECTED_PRECISION,
        PREDICTION_DRIFT,
        LAUNCH_RISK,
    )
}

#: Every table `govrisk monitor` writes, in write order.
MONITOR_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TRUST_METRICS,
        OBJECTIVE_STATUS,
        STRATEGY_HEALTH,
        STRATEGY_PRECISION,
        STRATEGY_APPEALS,
        FEATURE_DRIFT,
        LAUNCH_COVERAGE,
        ALERTS,
    )
}

_PANDAS_DTYPES: dict[ColumnKind, str] = {
    "string": "object",
    "int": "int64",
    "float": "float64",
    "bool": "bool",
    "timestamp": "datetime64[us]",
    "date": "datetime64[us]",
}


def tables_markdown() -> str:
    """The reference of every monitoring table (the generated part of docs/monitoring.md)."""
    from features.contract_docs import table_markdown

    specs = [*MONITOR_TABLES.values(), *MODEL_TABLES.values()]
    return "\n".join(line for spec in specs for line in table_markdown(spec, heading="###"))


def empty_frame(spec: TableSpec) -> pd.DataFrame:
    """A frame with no rows and the declared columns and dtypes."""
    return pd.DataFrame(
        {c.name: pd.Series(dtype=_PANDAS_DTYPES[c.kind]) for c in spec.columns}  # type: ignore[call-overload]
    )


def conform(df: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """`df` with exactly the declared columns in order and cast to the declared dtypes.

    Raises ValueError naming the table and the missing columns.
    """
    missing = [c for c in spec.column_names if c not in df.columns]
    if missing:
        raise ValueError(f"table {spec.name!r}: missing columns {missing}")
    out = df.loc[:, spec.column_names].copy()
    for c in spec.columns:
        if c.kind in ("date", "timestamp"):
            out[c.name] = pd.to_datetime(out[c.name]).astype("datetime64[us]")
        elif c.kind == "string":
            out[c.name] = out[c.name].astype(object).where(out[c.name].notna(), None)
        elif c.kind == "int":
            out[c.name] = out[c.name].fillna(0).astype("int64")
        else:
            out[c.name] = out[c.name].astype(_PANDAS_DTYPES[c.kind])  # type: ignore[call-overload]
    return out.reset_index(drop=True)


def check_frame(df: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Problems of `df` against `spec`: missing columns, nulls where required, enum values."""
    problems = [f"{spec.name}.{c}: missing" for c in spec.column_names if c not in df.columns]
    for c in spec.columns:
        if c.name not in df.columns:
            continue
        col = df[c.name]
        if not c.nullable and col.isna().any():
            problems.append(f"{spec.name}.{c.name}: {int(col.isna().sum())} missing values")
        if c.enum is not None:
            bad = sorted(set(col.dropna().astype(str)) - set(c.enum))
            if bad:
                problems.append(f"{spec.name}.{c.name}: values {bad[:5]} outside {list(c.enum)}")
    return problems
