"""Numbers for the strategy dashboard: live estimates from verdicts, plus the audit's tables.

Live estimates use only the random-audit slice, weighted by inverse inclusion probability
(Horvitz-Thompson ratio estimators), so working through the ranked lists does not bias them.
Intervals are Wilson score intervals at the Kish effective sample size. They are a quick,
design-based view for the dashboard; the audit's model-assisted estimates (read from its output
directory when configured) are tighter and are shown next to them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from features.vocabulary import Verdict as VerdictValue
from governance.audit.metrics import LABELS_BEHIND, LabelSupport, label_support
from governance.audit.settings import get_settings as audit_settings
from governance.review.orm import QueueItem, Verdict
from governance.review.vocabulary import ItemKind

Z_95 = 1.959963984540054
#: File names `govrisk audit` may write per-strategy and per-channel metrics under.
AUDIT_METRIC_FILES = ("strategy_metrics.parquet", "metrics.parquet")


@dataclass(frozen=True)
class Estimate:
    """A proportion with its 95% interval and the labels behind it."""

    value: float | None
    low: float | None
    high: float | None
    n_labels: int

    @property
    def known(self) -> bool:
        """Whether any label stands behind the number."""
        return self.value is not None


@dataclass(frozen=True)
class MetricRow:
    """Precision, recall and error cost of one strategy or channel."""

    key: str
    policy: str
    precision: Estimate
    recall: Estimate
    #: Estimated impressions of honest items actioned (false positives), last 30 days.
    fp_impressions: float
    #: Estimated impressions of violating items not actioned (false negatives), last 30 days.
    fn_impressions: float


@dataclass(frozen=True)
class TrendPoint:
    """Verdicts of one week."""

    week: datetime
    n_verdicts: int
    violating_share: float


@dataclass(frozen=True)
class _Label:
    entity: str
    policy: str
    channel: str | None
    weight: float
    violating: bool
    strategies: frozenset[str]
    impressions: float


def wilson_interval(p_hat: float, n_eff: float, *, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion observed on an effective sample of n_eff."""
    if n_eff <= 0:
        return 0.0, 1.0
    denom = 1 + z * z / n_eff
    centre = (p_hat + z * z / (2 * n_eff)) / denom
    half = z * math.sqrt(p_hat * (1 - p_hat) / n_eff + z * z / (4 * n_eff * n_eff)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def weighted_proportion(hits: Iterable[tuple[float, bool]]) -> Estimate:
    """Horvitz-Thompson ratio estimate of a proportion from (weight, outcome) pairs."""
    pairs = list(hits)
    if not pairs:
        return Estimate(None, None, None, 0)
    total = sum(w for w, _ in pairs)
    p_hat = sum(w for w, y in pairs if y) / total
    n_eff = total * total / sum(w * w for w, _ in pairs)
    low, high = wilson_interval(p_hat, n_eff)
    return Estimate(p_hat, low, high, len(pairs))


def _strategy_id(ref: str) -> str:
    return ref.split("@", 1)[0]


def _random_labels(session: Session) -> list[_Label]:
    rows = session.execute(
        sa.select(
            QueueItem.entity,
            QueueItem.policy,
            QueueItem.channel,
            QueueItem.inclusion_probability,
            QueueItem.strategies,
            QueueItem.exposure,
            Verdict.verdict,
        )
        .join(Verdict, Verdict.queue_item_id == QueueItem.id)
        .where(QueueItem.kind == ItemKind.RANDOM_AUDIT)
    ).all()
    labels = []
    for entity, policy, channel, pi, strategies, exposure, verdict in rows:
        channels = (exposure or {}).get("channels", {})
        impressions = sum(float(c.get("impressions", 0)) for c in channels.values())
        labels.append(
            _Label(
                entity=entity,
                policy=policy,
                channel=channel,
                weight=1.0 / pi,
                violating=verdict == VerdictValue.VIOLATING.value,
                strategies=frozenset(_strategy_id(s) for s in strategies or ()),
                impressions=impressions,
            )
        )
    return labels


def strategy_metrics(session: Session, scopes: Mapping[str, tuple[str, str]]) -> list[MetricRow]:
    """Per strategy id: precision and recall from the random slice, and error exposure.

    `scopes` maps strategy id to (entity, policy): recall counts violating items of that entity
    and policy; strategies seen in verdicts but missing from `scopes` get precision only.
    """
    labels = _random_labels(session)
    seen = sorted(set(scopes) | {s for label in labels for s in label.strategies})
    rows = []
    for strategy_id in seen:
        hit = [lb for lb in labels if strategy_id in lb.strategies]
        precision = weighted_proportion((lb.weight, lb.violating) for lb in hit)
        scope = scopes.get(strategy_id)
        policy = scope[1] if scope else (hit[0].policy if hit else "")
        if scope is not None:
            violating = [
                lb
                for lb in labels
                if lb.violating and lb.entity == scope[0] and lb.policy == scope[1]
            ]
            recall = weighted_proportion(
                (lb.weight, strategy_id in lb.strategies) for lb in violating
            )
            missed = [lb for lb in violating if strategy_id not in lb.strategies]
        else:
            recall, missed = Estimate(None, None, None, 0), []
        rows.append(
            MetricRow(
                key=strategy_id,
                policy=policy,
                precision=precision,
                recall=recall,
                fp_impressions=sum(lb.weight * lb.impressions for lb in hit if not lb.violating),
                fn_impressions=sum(lb.weight * lb.impressions for lb in missed),
            )
        )
    return rows


def channel_metrics(session: Session) -> list[MetricRow]:
    """Per channel, all strategies together: precision of actions and recall of violations."""
    labels = _random_labels(session)
    by_channel: dict[str, list[_Label]] = defaultdict(list)
    for label in labels:
        by_channel[label.channel or "(any)"].append(label)
    rows = []
    for channel, group in sorted(by_channel.items()):
        actioned = [lb for lb in group if lb.strategies]
        violating = [lb for lb in group if lb.violating]
        rows.append(
            MetricRow(
                key=channel,
                policy="",
                precision=weighted_proportion((lb.weight, lb.violating) for lb in actioned),
                recall=weighted_proportion((lb.weight, bool(lb.strategies)) for lb in violating),
                fp_impressions=sum(
                    lb.weight * lb.impressions for lb in actioned if not lb.violating
                ),
                fn_impressions=sum(
                    lb.weight * lb.impressions for lb in violating if not lb.strategies
                ),
            )
        )
    return rows


def weekly_trend(session: Session, *, weeks: int = 12, now: datetime) -> list[TrendPoint]:
    """Verdict volume and violating share per week (all queue kinds), oldest first."""
    start = now - timedelta(weeks=weeks)
    rows = session.execute(
        sa.select(Verdict.created_at, Verdict.verdict).where(Verdict.created_at >= start)
    ).all()
    buckets: dict[datetime, list[bool]] = defaultdict(list)
    for created_at, verdict in rows:
        monday = (created_at - timedelta(days=created_at.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        buckets[monday].append(verdict == VerdictValue.VIOLATING.value)
    return [
        TrendPoint(week, len(flags), sum(flags) / len(flags))
        for week, flags in sorted(buckets.items())
    ]


def read_audit_metrics(audit_dir: Path | None) -> pd.DataFrame | None:
    """The audit's per-strategy/channel metrics table, when an audit output dir is configured."""
    if audit_dir is None:
        return None
    for name in AUDIT_METRIC_FILES:
        path = Path(audit_dir) / name
        if path.exists():
            return pd.read_parquet(path)
    return None


def pinned_max_width() -> float:
    """An interval wider than this (precision or recall) is "not pinned": the page says more
    labels are needed instead of letting a point estimate read as settled. Declared once, in
    the audit's settings (`GOVRISK_AUDIT_PINNED_MAX_WIDTH`), so the report and this page flag
    the same numbers."""
    return audit_settings().pinned_max_width


@dataclass(frozen=True)
class AuditRow:
    """One strategy's model-assisted audit estimates across all channels, for people."""

    strategy: str
    policy: str
    n_actioned: int
    precision: Estimate
    recall: Estimate
    fp: float
    fn: float
    fn_confirmed: float
    error_cost: float
    #: What would pin each number ("needs about N more labels ..."), "" when pinned.
    precision_support: LabelSupport
    recall_support: LabelSupport

    @property
    def pinned(self) -> bool:
        """Both intervals at most `pinned_max_width()` wide."""
        return self.precision_support.pinned and self.recall_support.pinned


def audit_rows(df: pd.DataFrame) -> list[AuditRow]:
    """Per-strategy rows (channel `all`) of the audit's metrics table, worst error cost first."""
    rows = df[(df["channel"] == "all") & (df["strategy"] != "*")]
    width = pinned_max_width()
    out = [
        AuditRow(
            strategy=str(r["strategy"]),
            policy=str(r["policy"]),
            n_actioned=int(r["n_actioned"]),
            precision=_audit_estimate(r, "precision"),
            recall=_audit_estimate(r, "recall"),
            fp=_finite(r["fp"]),
            fn=_finite(r["fn"]),
            fn_confirmed=_finite(r["fn_confirmed"]),
            error_cost=_finite(r["error_cost"]),
            precision_support=label_support(r, "precision", max_width=width),
            recall_support=label_support(r, "recall", max_width=width),
        )
        for _, r in rows.iterrows()
    ]
    return sorted(out, key=lambda row: -row.error_cost)


def _audit_estimate(row: pd.Series, name: str) -> Estimate:
    """One number with its interval and the labels behind it (as the audit report counts)."""
    value, low, high = (_number(row[k]) for k in (name, f"{name}_low", f"{name}_high"))
    return Estimate(value, low, high, int(row[LABELS_BEHIND[name]]))


def _number(value: Any) -> float | None:
    """A finite float, or None for missing, NaN and infinite values."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _finite(value: Any) -> float:
    number = _number(value)
    return 0.0 if number is None else number


def weekly_hits(data_dir: Path | None, *, weeks: int = 8) -> dict[str, list[int]]:
    """Strategy decisions per week over the last `weeks` weeks of `strategy_decisions`, by
    strategy version (`id@vN`), oldest week first; empty without the table."""
    if data_dir is None:
        return {}
    path = Path(data_dir) / "tables" / "strategy_decisions.parquet"
    if not path.is_file():
        return {}
    import duckdb

    sql = """
        WITH d AS (
            SELECT strategy_id || '@v' || strategy_version AS ref,
                   date_trunc('week', decided_at) AS week
            FROM read_parquet(?)
        ), last AS (SELECT max(week) AS week FROM d)
        SELECT ref, CAST(date_diff('week', d.week, last.week) AS INTEGER) AS ago, count(*) AS n
        FROM d, last
        WHERE date_diff('week', d.week, last.week) < ?
        GROUP BY ALL
    """
    with duckdb.connect() as con:
        rows = con.execute(sql, [str(path), weeks]).fetchall()
    out: dict[str, list[int]] = defaultdict(lambda: [0] * weeks)
    for ref, ago, n in rows:
        out[str(ref)][weeks - 1 - int(ago)] = int(n)
    return dict(out)


def audit_metric_records(df: pd.DataFrame, *, limit: int = 500) -> list[dict[str, Any]]:
    """Rows of the audit metrics table as plain dicts (floats rounded for display)."""
    out = []
    for row in df.head(limit).to_dict("records"):
        out.append(
            {
                str(k): (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
                for k, v in row.items()
            }
        )
    return out
