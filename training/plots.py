"""Diagnostic plots of a fitted target, drawn with matplotlib's object API on the Agg canvas.

No pyplot: figures are built and saved without global state or a display, so plotting is safe in
threads, servers and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

from training.evaluate import calibration_table, expand_labels, pr_auc
from training.fit import FittedTarget

#: File names of the plots `write_plots` produces.
PLOT_FILES = (
    "pr_curve.png",
    "calibration_curve.png",
    "shap_summary.png",
    "feature_importance.png",
)


def _figure(width: float = 6.4, height: float = 4.8) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def pr_curve_figure(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]], *, title: str
) -> Figure:
    """Precision-recall curves, one per (label, y, p, weight), with the prevalence baseline."""
    fig = _figure()
    ax = fig.add_subplot()
    for label, y_raw, p_raw, w_raw in curves:
        weights = np.ones(len(y_raw)) if w_raw is None else w_raw
        y, w, (p,) = expand_labels(y_raw, weights, p_raw)
        if len(y) == 0 or y.min() == y.max():
            continue
        prec, rec, _ = precision_recall_curve(y, p, sample_weight=w)
        ax.step(rec, prec, where="post", label=f"{label} (AP {pr_auc(y, p, weight=w):.3f})")
        base = float(np.average(y, weights=w))
        ax.axhline(base, linestyle=":", linewidth=1, color=ax.lines[-1].get_color())
    ax.axhline(0.9, linestyle="--", linewidth=0.8, color="grey", label="90% precision")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(loc="upper right", fontsize="small")
    return fig


def calibration_figure(
    y: np.ndarray,
    curves: Sequence[tuple[str, np.ndarray]],
    *,
    weights: Sequence[tuple[str, np.ndarray | None]],
    bins: int,
    title: str,
) -> Figure:
    """Reliability diagrams (observed rate vs mean predicted, per bin), one column per weighting
    of the same rows, each above its score histogram."""
    fig = _figure(6.0 * len(weights), 6.8)
    axes = fig.subplots(2, len(weights), height_ratios=[3, 1], sharex=True, squeeze=False)
    for column, (reference, weight) in enumerate(weights):
        top, bottom = axes[0][column], axes[1][column]
        top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
        for label, p in curves:
            table = calibration_table(y, p, weight=weight, bins=bins)
            top.plot(table["mean_p"], table["rate"], marker="o", label=label)
            bottom.hist(p, bins=np.linspace(0, 1, bins + 1), weights=weight, alpha=0.5, label=label)
        top.set(ylabel="observed violation rate", xlim=(0, 1), ylim=(0, 1), title=reference)
        top.title.set_fontsize("small")
        top.legend(loc="upper left", fontsize="small")
        bottom.set(xlabel="predicted probability", ylabel="weight")
        bottom.set_yscale("log")
    fig.suptitle(title)
    return fig


def shap_values(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """Exact path-dependent TreeSHAP values (rows, features) in raw margin space.

    LightGBM's `pred_contrib` computes the same values as `shap.TreeExplainer`; the bias column
    is dropped.
    """
    contrib = np.asarray(booster.predict(X, pred_contrib=True))
    return contrib[:, :-1]


def shap_summary_figure(
    values: np.ndarray,
    X: np.ndarray,
    feature_names: Sequence[str],
    *,
    title: str,
    top: int = 20,
    seed: int = 0,
) -> Figure:
    """Beeswarm-style summary: per top feature, each row's SHAP value coloured by feature rank."""
    importance = np.abs(values).mean(axis=0)
    order = np.argsort(-importance, kind="stable")[:top][::-1]
    fig = _figure(7.0, max(3.0, 0.32 * len(order) + 1.2))
    ax = fig.add_subplot()
    rng = np.random.default_rng(seed)
    scatter = None
    for row, j in enumerate(order):
        v = values[:, j]
        x = X[:, j]
        colour = np.full(len(x), np.nan)
        known = ~np.isnan(x)
        if known.any():
            ranks = np.argsort(np.argsort(x[known], kind="stable"), kind="stable")
            colour[known] = ranks / max(known.sum() - 1, 1)
        jitter = rng.uniform(-0.3, 0.3, len(v))
        ax.scatter(v[~known], row + jitter[~known], s=4, color="lightgrey", linewidths=0)
        scatter = ax.scatter(
            v[known],
            row + jitter[known],
            s=4,
            c=colour[known],
            cmap="coolwarm",
            vmin=0,
            vmax=1,
            linewidths=0,
        )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(order)), [feature_names[j] for j in order], fontsize="small")
    ax.set(xlabel="SHAP value (log-odds contribution)", title=title)
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=ax, ticks=[0, 1], aspect=40)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value (grey: missing or category)")
    return fig


def importance_figure(booster: lgb.Booster, *, title: str, top: int = 25) -> Figure:
    """Total gain per feature, top features only."""
    gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    names = booster.feature_name()
    order = np.argsort(-gain, kind="stable")[:top][::-1]
    fig = _figure(7.0, max(3.0, 0.3 * len(order) + 1.2))
    ax = fig.add_subplot()
    ax.barh(range(len(order)), gain[order] / max(gain.sum(), 1e-12))
    ax.set_yticks(range(len(order)), [names[j] for j in order], fontsize="small")
    ax.set(xlabel="share of total gain", title=title)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write a figure as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def categorical_mask(feature_names: Sequence[str], categorical: Sequence[str]) -> np.ndarray:
    """Which matrix columns are categorical codes (coloured grey in the SHAP summary)."""
    cats = set(categorical)
    return np.array([n in cats for n in feature_names], dtype=bool)


def grey_categoricals(X: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy of X with categorical columns set to NaN, since their codes have no order."""
    out = X.astype(np.float64, copy=True)
    out[:, mask] = np.nan
    return out


def write_plots(
    fit: FittedTarget, out_dir: Path, *, bins: int = 10, max_shap_rows: int = 2000, seed: int = 0
) -> dict[str, Path]:
    """Write the four diagnostic plots of a fitted target; returns name -> path."""
    ts = fit.training_set
    test = fit.split.test
    period = fit.split.training_period
    title = f"{ts.entity.value} / {ts.policy}"
    y = ts.y.astype(np.float64)
    w = ts.weight
    paths = {}
    fig = pr_curve_figure(
        [
            ("holdout", y[test], fit.oof_p[test], w[test]),
            ("out-of-fold, training period", y[period], fit.oof_p[period], w[period]),
        ],
        title=f"Precision-recall, {title} (weighted)",
    )
    paths["pr_curve"] = save(fig, out_dir / "pr_curve.png")
    raw = 1.0 / (1.0 + np.exp(-fit.oof_margin[test]))
    fig = calibration_figure(
        y[test],
        [("uncalibrated", raw), (f"calibrated ({fit.calibration_method})", fit.oof_p[test])],
        weights=[
            ("on the label mix (training weights: mostly flagged items)", w[test]),
            (
                "on the population (inverse-inclusion weights):\nwhat the calibration targets",
                ts.population_weight[test],
            ),
        ],
        bins=bins,
        title=f"Calibration on the holdout, {title}",
    )
    paths["calibration_curve"] = save(fig, out_dir / "calibration_curve.png")
    rng = np.random.default_rng(seed)
    rows = test if len(test) <= max_shap_rows else np.sort(rng.choice(test, max_shap_rows, False))
    X = fit.encoder.transform(ts.X.iloc[rows])
    values = shap_values(fit.booster, X)
    mask = categorical_mask(fit.feature_names, fit.encoder.categorical)
    fig = shap_summary_figure(
        values, grey_categoricals(X, mask), fit.feature_names, title=f"SHAP summary, {title}"
    )
    paths["shap_summary"] = save(fig, out_dir / "shap_summary.png")
    fig = importance_figure(fit.booster, title=f"Feature importance (gain), {title}")
    paths["feature_importance"] = save(fig, out_dir / "feature_importance.png")
    return paths
