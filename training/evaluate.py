"""Metrics of calibrated probabilities, overall and per slice, weighted by inverse inclusion.

Weighting each label by 1 / inclusion probability estimates the metric on the population the
audit sample was drawn from, not on the (rule-biased) sample itself. Every metric takes
`weight=None` for the plain unweighted version.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

#: Metric names, in report order; `higher` says which direction is better.
METRICS: dict[str, str] = {
    "pr_auc": "higher",
    "roc_auc": "higher",
    "recall_at_90_precision": "higher",
    "brier": "lower",
    "ece": "lower",
}
#: Separator between a metric and its slice in MLflow metric names.
SLICE_SEP = "__slice__"
_UNSAFE = re.compile(r"[^\w.\- /]")


def metric_key(metric: str, slice_name: str | None = None, *, prefix: str = "") -> str:
    """The MLflow metric name: `pr_auc`, `pr_auc__slice__channel.shop_tab`, `oof__pr_auc`."""
    name = f"{prefix}{metric}"
    if slice_name is None or slice_name == "overall":
        return name
    return f"{name}{SLICE_SEP}{_UNSAFE.sub('_', slice_name)}"


def expand_labels(
    y: np.ndarray, weight: np.ndarray, *columns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Rows whose label is a probability become a violating row of weight w*y and a clean row
    of weight w*(1-y); hard 0/1 labels pass through unchanged. Returns (y, weight, columns)."""
    y = np.asarray(y, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if ((y == 0) | (y == 1)).all():
        return y, weight, list(columns)
    pos = np.flatnonzero(y > 0)
    neg = np.flatnonzero(y < 1)
    idx = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    weights = np.concatenate([weight[pos] * y[pos], weight[neg] * (1.0 - y[neg])])
    return labels, weights, [c[idx] for c in columns]


def _prepare(
    y: np.ndarray, p: np.ndarray, weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate, then expand expected (fractional) labels into weighted 0/1 rows."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y and p must be 1-D of one length (got {y.shape} and {p.shape})")
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    if w.shape != y.shape:
        raise ValueError(f"weight must match y (got {w.shape} and {y.shape})")
    if ((y < 0) | (y > 1)).any():
        raise ValueError("labels must lie in [0, 1] (0/1, or an expected label)")
    y2, w2, (p2,) = expand_labels(y, w, p)
    return y2, p2, w2


def _two_classes(y: np.ndarray) -> bool:
    return len(y) > 0 and y.min() != y.max()


def pr_auc(y: np.ndarray, p: np.ndarray, *, weight: np.ndarray | None = None) -> float:
    """Average precision (area under the precision-recall curve); NaN without both classes."""
    y, p, w = _prepare(y, p, weight)
    if not _two_classes(y):
        return math.nan
    return float(average_precision_score(y, p, sample_weight=w))


def roc_auc(y: np.ndarray, p: np.ndarray, *, weight: np.ndarray | None = None) -> float:
    """Area under the ROC curve; NaN without both classes."""
    y, p, w = _prepare(y, p, weight)
    if not _two_classes(y):
        return math.nan
    return float(roc_auc_score(y, p, sample_weight=w))


def recall_at_precision(
    y: np.ndarray, p: np.ndarray, *, precision: float = 0.9, weight: np.ndarray | None = None
) -> float:
    """Highest recall over thresholds whose precision is at least `precision` (0 if none)."""
    y, p, w = _prepare(y, p, weight)
    if not _two_classes(y):
        return math.nan
    prec, rec, _ = precision_recall_curve(y, p, sample_weight=w)
    ok = prec >= precision
    # The last point (recall 0, precision 1) is a convention, not a threshold.
    ok[-1] = False
    return float(rec[ok].max()) if ok.any() else 0.0


def brier(y: np.ndarray, p: np.ndarray, *, weight: np.ndarray | None = None) -> float:
    """Weighted mean squared error of probabilities."""
    y, p, w = _prepare(y, p, weight)
    if len(y) == 0:
        return math.nan
    return float(np.average((p - y) ** 2, weights=w))


def ece(y: np.ndarray, p: np.ndarray, *, weight: np.ndarray | None = None, bins: int = 10) -> float:
    """Expected calibration error over `bins` equal-width probability bins (weighted)."""
    y, p, w = _prepare(y, p, weight)
    if len(y) == 0:
        return math.nan
    table = calibration_table(y, p, weight=w, bins=bins)
    share = table["weight"] / table["weight"].sum()
    return float((share * (table["mean_p"] - table["rate"]).abs()).sum())


def calibration_table(
    y: np.ndarray, p: np.ndarray, *, weight: np.ndarray | None = None, bins: int = 10
) -> pd.DataFrame:
    """Per non-empty bin: mean predicted probability, observed (weighted) rate, weight, count."""
    y, p, w = _prepare(y, p, weight)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        if not m.any() or w[m].sum() <= 0:
            continue
        rows.append(
            {
                "bin": b,
                "mean_p": float(np.average(p[m], weights=w[m])),
                "rate": float(np.average(y[m], weights=w[m])),
                "weight": float(w[m].sum()),
                "count": int(m.sum()),
            }
        )
    return pd.DataFrame(rows, columns=["bin", "mean_p", "rate", "weight", "count"])


def compute_metrics(
    y: np.ndarray, p: np.ndarray, *, weight: np.ndarray | None = None, bins: int = 10
) -> dict[str, float]:
    """Every metric in METRICS plus n, n_positive (expected) and the weighted prevalence."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    _prepare(y, p, w)
    return {
        "pr_auc": pr_auc(y, p, weight=w),
        "roc_auc": roc_auc(y, p, weight=w),
        "recall_at_90_precision": recall_at_precision(y, p, precision=0.9, weight=w),
        "brier": brier(y, p, weight=w),
        "ece": ece(y, p, weight=w, bins=bins),
        "n": float(len(y)),
        "n_positive": float(y.sum()),
        "prevalence": float(np.average(y, weights=w)) if len(y) else math.nan,
    }


def slice_metrics(
    y: np.ndarray,
    p: np.ndarray,
    slices: pd.DataFrame,
    *,
    weight: np.ndarray | None = None,
    min_labels: int = 30,
    bins: int = 10,
) -> pd.DataFrame:
    """Metrics overall and per slice: one row per slice, `overall` first.

    `slices` has (position, slice) rows, position indexing `y`. Slices with fewer than
    `min_labels` labels get counts only (metrics NaN) so noise is not reported as signal.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
    rows = [{"slice": "overall", **compute_metrics(y, p, weight=w, bins=bins)}]
    for name, group in slices.groupby("slice", sort=True):
        pos = group["position"].to_numpy()
        metrics = compute_metrics(y[pos], p[pos], weight=w[pos], bins=bins)
        if len(pos) < min_labels:
            metrics = {k: (v if k in ("n", "n_positive") else math.nan) for k, v in metrics.items()}
        rows.append({"slice": str(name), **metrics})
    return pd.DataFrame(rows)


def metrics_to_log(table: pd.DataFrame, *, prefix: str = "") -> dict[str, float]:
    """Flatten a slice_metrics table into MLflow metric names, dropping undefined values."""
    out: dict[str, float] = {}
    for row in table.to_dict("records"):
        for metric in [*METRICS, "n", "n_positive", "prevalence"]:
            value = row[metric]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            out[metric_key(metric, str(row["slice"]), prefix=prefix)] = float(value)
    return out
