"""The metrics an experiment may name, declared once, and the per-unit table they read.

Every metric is computed from `UNIT_COLUMNS`, per-unit sums over the experiment window (or the
pre-period, for CUPED). A `mean` metric is the mean of one column over units; a `ratio` metric
is sum(numerator) / sum(denominator) over units, analysed with the delta method.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from governance.experiments.vocabulary import Direction, MetricKind

#: Per-unit sums every metric is computed from: name -> (unit, description).
UNIT_COLUMNS: dict[str, tuple[str, str]] = {
    "impressions": ("views", "Impressions of the unit's items in the experiment's channels."),
    "orders": ("orders", "Orders of the unit's items in those channels."),
    "gmv": ("USD", "Gross merchandise value of those orders."),
    "complaints": ("complaints", "Complaints about the unit's items."),
    "returns": ("returns", "Returns of the unit's items."),
    "nps_sum": ("points", "Sum of NPS answers (0-10) about the unit's items."),
    "nps_count": ("answers", "Number of NPS answers."),
    "appeals": ("appeals", "Appeals the unit's sellers filed against strategy decisions."),
}


@dataclass(frozen=True)
class MetricDeclaration:
    """One metric: how it aggregates, which way is good, and what it means."""

    name: str
    kind: MetricKind
    numerator: str
    denominator: str | None
    direction: Direction
    unit: str
    description: str


def _mean(name: str, column: str, direction: Direction, unit: str, text: str) -> MetricDeclaration:
    return MetricDeclaration(name, MetricKind.MEAN, column, None, direction, unit, text)


def _ratio(
    name: str, num: str, den: str, direction: Direction, unit: str, text: str
) -> MetricDeclaration:
    return MetricDeclaration(name, MetricKind.RATIO, num, den, direction, unit, text)


#: Every metric an experiment may use as its primary metric or a guardrail.
METRICS: dict[str, MetricDeclaration] = {
    m.name: m
    for m in (
        _mean("gmv", "gmv", Direction.INCREASE, "USD per unit", "GMV per unit (seller, item...)."),
        _mean(
            "impressions",
            "impressions",
            Direction.INCREASE,
            "views per unit",
            "Impressions per unit.",
        ),
        _ratio(
            "complaint_rate",
            "complaints",
            "orders",
            Direction.DECREASE,
            "complaints per order",
            "Complaints per order.",
        ),
        _ratio(
            "return_rate",
            "returns",
            "orders",
            Direction.DECREASE,
            "returns per order",
            "Returns per order.",
        ),
        _ratio(
            "nps",
            "nps_sum",
            "nps_count",
            Direction.INCREASE,
            "points (0-10)",
            "Mean NPS answer about the unit's items.",
        ),
        _mean(
            "appeal_rate",
            "appeals",
            Direction.DECREASE,
            "appeals per unit",
            "Appeals filed per unit: honest sellers wrongly actioned appeal most.",
        ),
    )
}


def metric(name: str) -> MetricDeclaration:
    """The declaration of metric `name`; KeyError listing the known metrics otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; use one of {', '.join(METRICS)}") from None


def check_unit_frame(df: pd.DataFrame, *, table: str = "unit metrics") -> None:
    """Raise ValueError naming the missing columns when `df` lacks a UNIT_COLUMNS column."""
    missing = [c for c in UNIT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{table} lacks column(s) {', '.join(missing)}; build it with "
            "governance.experiments.unit_data.unit_metrics"
        )
