"""The self-contained HTML monitoring report: inline CSS, plots as inline SVG."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from governance.monitoring.tables import (
    MODEL_PRECISION,
    PREDICTION_DRIFT,
    STRATEGY_EXPECTED_PRECISION,
    VIOLATIVE_VIEW_RATE,
)
from governance.monitoring.vocabulary import ALL, Dimension, Grain, TrustMetric

if TYPE_CHECKING:
    from governance.monitoring.pipeline import MonitorResult

_TEMPLATE = "report.html.j2"
_COLOURS = ("#2c5da8", "#b3261e", "#1b6e3a", "#8a5a00", "#6a3d9a", "#00838f", "#5b6475")


def render_report(result: MonitorResult) -> str:
    """The report as one HTML string that needs no network or other file."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("governance.monitoring", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    t = result.tables
    cfg = result.config
    alerts = t["alerts"]
    ctx: dict[str, Any] = {
        "as_of": f"{cfg.as_of:%Y-%m-%d}",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "n_alerts": len(alerts),
        "by_severity": alerts["severity"].value_counts().to_dict(),
        "alert_rows": alerts.to_dict("records"),
        "trust_svg": trust_plot(t["trust_metrics"], TrustMetric.COMPLAINTS_PER_1K_ORDERS),
        "returns_svg": trust_plot(t["trust_metrics"], TrustMetric.RETURNS_PER_1K_ORDERS),
        "burn_svg": burn_plot(t["objective_status"], cfg.rules[0].burn),
        "health_svg": health_plot(t["strategy_health"]),
        "drift_svg": drift_plot(t["feature_drift"]),
        "has_model_tables": VIOLATIVE_VIEW_RATE.name in t,
        "prediction_drift_svg": _prediction_drift_svg(t.get(PREDICTION_DRIFT.name)),
        "vvr_svg": vvr_plot(t[VIOLATIVE_VIEW_RATE.name]) if VIOLATIVE_VIEW_RATE.name in t else "",
        "vvr_rows": _vvr_rows(t.get(VIOLATIVE_VIEW_RATE.name)),
        "model_precision_rows": _model_precision_rows(t.get(MODEL_PRECISION.name)),
        "strategy_expected_rows": _strategy_expected_rows(t.get(STRATEGY_EXPECTED_PRECISION.name)),
        "precision_svg": strategy_precision_plot(t["strategy_precision"]),
        "precision_rows": _strategy_precision_rows(t["strategy_precision"]),
        "coverage": coverage_matrix(t["launch_coverage"]),
        "appeals_svg": appeals_plot(t["strategy_appeals"]),
        "appeal_rows": _appeal_rows(t["strategy_appeals"]),
        "overturn": cfg.overturn,
        "channel_rows": _channel_rows(t["trust_metrics"]),
        "objective_rows": _objective_rows(t["objective_status"]),
        "rules": cfg.rules,
        "window_days": cfg.objectives.window_days,
        "delays": {k: _delay_text(result, k) for k in sorted(result.delays.cdf)},
        "mature_completeness": f"{cfg.mature_completeness:.0%}",
        "decay": cfg.decay,
        "drift": cfg.drift,
        "precision_threshold": cfg.precision_threshold,
        "confidence": f"{cfg.confidence:.0%}",
    }
    return env.get_template(_TEMPLATE).render(**ctx)


def _delay_text(result: MonitorResult, kind: str) -> str:
    d = result.delays
    return f"{d.quantile_days(kind, 0.5):.0f} / {d.quantile_days(kind, 0.9):.0f}"


def _f(x: Any, fmt: str = "{:,.1f}") -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return "–" if not np.isfinite(v) else fmt.format(v)


def _channel_rows(m: pd.DataFrame) -> list[dict[str, str]]:
    w = m[(m["grain"] == Grain.WEEK) & (m["dimension"] == Dimension.NONE)]
    if not len(w):
        return []
    rows = []
    for _, r in w.sort_values(["channel", "period_start"]).iterrows():
        rows.append(
            {
                "week": f"{pd.Timestamp(r['period_start']):%Y-%m-%d}",
                "channel": str(r["channel"]),
                "orders": f"{int(r['orders']):,}",
                "complaints": f"{_f(r['complaints_per_1k_orders'])} "
                f"[{_f(r['complaints_per_1k_low'])}, {_f(r['complaints_per_1k_high'])}]",
                "returns": _f(r["returns_per_1k_orders"]),
                "refund": _f(r["refund_per_gmv"], "{:.3f}"),
                "rating": _f(r["mean_rating"], "{:.2f}"),
                "low_star": _f(r["low_star_share"], "{:.1%}"),
                "nps": f"{_f(r['nps'], '{:.0f}')} [{_f(r['nps_low'], '{:.0f}')}, "
                f"{_f(r['nps_high'], '{:.0f}')}]",
                "maturity": "mature" if r["mature"] else f"filling in ({r['completeness']:.0%})",
            }
        )
    return rows


def _objective_rows(status: pd.DataFrame) -> list[dict[str, str]]:
    if not len(status):
        return []
    usable = status.dropna(subset=["value", "budget_spent"])
    last = usable.sort_values("day").groupby(["channel", "metric"]).tail(1)
    return [
        {
            "channel": str(r["channel"]),
            "metric": str(r["metric"]),
            "target": _f(r["target"], "{:g}"),
            "owner": str(r["owner"]),
            "day": f"{pd.Timestamp(r['day']):%Y-%m-%d}",
            "spent": _f(r["budget_spent"], "{:.0%}"),
            "burn": _f(r["burn_short"], "{:.2f}"),
        }
        for _, r in last.sort_values(["channel", "metric"]).iterrows()
    ]


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trust_plot(m: pd.DataFrame, metric: TrustMetric) -> str:
    """Inline SVG: one panel per channel, weekly `metric` with 95% intervals; weeks still
    filling in drawn hollow."""
    w = m[(m["grain"] == Grain.WEEK) & (m["dimension"] == Dimension.NONE)]
    w = w[w["channel"] != ALL].dropna(subset=[metric.value])
    if not len(w):
        return "<p>No orders.</p>"
    plt = _plt()
    channels = sorted(w["channel"].unique())
    fig, axes = plt.subplots(1, len(channels), figsize=(2.1 * len(channels) + 1, 2.6), sharey=True)
    axes = np.atleast_1d(axes)
    base = metric.value.removesuffix("_orders")
    for ax, ch, colour in zip(axes, channels, _COLOURS * 2, strict=False):
        c = w[w["channel"] == ch].sort_values("period_start")
        x = pd.to_datetime(c["period_start"])
        y = c[metric.value].to_numpy(dtype=float)
        if f"{base}_low" in c:
            lo = c[f"{base}_low"].to_numpy(dtype=float)
            hi = c[f"{base}_high"].to_numpy(dtype=float)
            ax.fill_between(x, lo, hi, color=colour, alpha=0.15, linewidth=0)
        mature = c["mature"].to_numpy(dtype=bool)
        ax.plot(x, y, color=colour, linewidth=1.2)
        ax.scatter(x[mature], y[mature], color=colour, s=14, zorder=3)
        ax.scatter(x[~mature], y[~mature], facecolor="white", edgecolor=colour, s=14, zorder=3)
        ax.set_title(ch, fontsize=9)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric.value.replace("_", " "), fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def burn_plot(status: pd.DataFrame, page_burn: float) -> str:
    """Inline SVG: 2-day burn rate of the complaints objective per channel, with the paging
    threshold."""
    s = status[status["metric"] == TrustMetric.COMPLAINTS_PER_1K_ORDERS]
    s = s[s["channel"] != ALL].dropna(subset=["burn_short"])
    if not len(s):
        return "<p>No objective on complaints.</p>"
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3))
    for ch, colour in zip(sorted(s["channel"].unique()), _COLOURS * 2, strict=False):
        c = s[s["channel"] == ch].sort_values("day")
        ax.plot(pd.to_datetime(c["day"]), c["burn_short"], color=colour, linewidth=1.1, label=ch)
        fired = c[c["firing"].notna()]
        ax.scatter(
            pd.to_datetime(fired["day"]), fired["burn_short"], color=colour, marker="^", s=30
        )
    ax.axhline(1.0, color="#5b6475", linestyle=":", linewidth=1)
    ax.axhline(page_burn, color="#b3261e", linestyle="--", linewidth=1)
    ax.set_ylabel("burn rate (2 days)")
    ax.legend(fontsize=7, ncol=6, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def health_plot(health: pd.DataFrame, top: int = 8) -> str:
    """Inline SVG: weekly hits per 1,000 new items of the most active strategies."""
    if not len(health):
        return "<p>No strategy decisions.</p>"
    h = health.assign(week=pd.to_datetime(health["day"]).dt.to_period("W").dt.start_time)
    busiest = h.groupby("strategy_id")["hits"].sum().sort_values(ascending=False).head(top).index
    per = (
        h[h["strategy_id"].isin(busiest)]
        .groupby(["strategy_id", "week", "day"], as_index=False)
        .agg(hits=("hits", "max"), new=("new_items", "max"))
        .groupby(["strategy_id", "week"], as_index=False)[["hits", "new"]]
        .sum()
    )
    per["rate"] = 1000 * per["hits"] / per["new"].where(per["new"] > 0)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.2))
    for sid, colour in zip(busiest, _COLOURS * 2, strict=False):
        c = per[per["strategy_id"] == sid].sort_values("week")
        ax.plot(c["week"], c["rate"], marker="o", markersize=3, color=colour, label=sid)
    ax.set_ylabel("hits per 1,000 new items")
    ax.set_yscale("symlog")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def drift_plot(drift: pd.DataFrame, *, rows: str = "feature") -> str:
    """Inline SVG: PSI per `rows` (a column of `drift`) and week as a heat map."""
    if not len(drift):
        return "<p>Not enough weeks after the reference for drift.</p>"
    p = drift.pivot_table(index=rows, columns="week_start", values="psi", aggfunc="max")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 * p.shape[1] + 4, 0.22 * p.shape[0] + 1))
    im = ax.imshow(p.to_numpy(dtype=float), aspect="auto", cmap="Reds", vmin=0, vmax=0.5)
    ax.set_yticks(range(p.shape[0]))
    ax.set_yticklabels(p.index, fontsize=7)
    ax.set_xticks(range(p.shape[1]))
    ax.set_xticklabels([f"{pd.Timestamp(c):%m-%d}" for c in p.columns], fontsize=7)
    fig.colorbar(im, ax=ax, label="PSI")
    fig.tight_layout()
    return _svg(fig)


def _interval(est: Any, low: Any, high: Any, fmt: str) -> str:
    return f"{_f(est, fmt)} [{_f(low, fmt)}, {_f(high, fmt)}]"


def _prediction_drift_svg(drift: pd.DataFrame | None) -> str:
    if drift is None:
        return ""
    return drift_plot(drift.assign(model=drift["entity"] + " " + drift["policy"]), rows="model")


def _vvr_rows(vvr: pd.DataFrame | None) -> list[dict[str, str]]:
    if vvr is None:
        return []
    return [
        {
            "policy": str(r["policy"]),
            "channel": str(r["channel"]),
            "vvr": _interval(r["vvr"], r["vvr_low"], r["vvr_high"], "{:.2%}"),
            "model": _f(r["vvr_model"], "{:.2%}"),
            "impressions": _f(r["impressions"], "{:,.0f}"),
            "labels": f"{int(r['labels']):,}",
        }
        for _, r in vvr.sort_values(["policy", "channel"]).iterrows()
    ]


def _model_precision_rows(mp: pd.DataFrame | None) -> list[dict[str, str]]:
    if mp is None:
        return []
    return [
        {
            "entity": str(r["entity"]),
            "policy": str(r["policy"]),
            "threshold": _f(r["threshold"], "{:g}"),
            "n_items": f"{int(r['items']):,}",
            "flagged": f"{int(r['flagged']):,}",
            "precision": f"{_f(r['expected_precision'], '{:.3f}')} "
            f"± {_f(r['expected_precision_sd'], '{:.3f}')}",
            "true_positives": _f(r["expected_true_positives"]),
            "labelled": _labelled_text(r),
        }
        for _, r in mp.sort_values(["entity", "policy"]).iterrows()
    ]


def _labelled_text(r: pd.Series) -> str:
    """A model's precision from the audit's labels, e.g. '0.690 [0.610, 0.770] (42 labels)'."""
    if pd.isna(r["labelled_precision"]):
        return "–"
    return (
        f"{r['labelled_precision']:.3f} [{_f(r['labelled_low'], '{:.3f}')}, "
        f"{_f(r['labelled_high'], '{:.3f}')}] ({int(r['labels_flagged']):,} labels)"
    )


def _strategy_expected_rows(se: pd.DataFrame | None) -> list[dict[str, str]]:
    if se is None:
        return []
    return [
        {
            "strategy_id": str(r["strategy_id"]),
            "week": f"{pd.Timestamp(r['week_start']):%Y-%m-%d}",
            "actioned": f"{int(r['actioned']):,}",
            "scored": f"{int(r['scored']):,}",
            "precision": f"{_f(r['expected_precision'], '{:.3f}')} "
            f"± {_f(r['expected_precision_sd'], '{:.3f}')}",
        }
        for _, r in se.sort_values(["strategy_id", "week_start"]).iterrows()
    ]


def _strategy_precision_rows(sp: pd.DataFrame) -> list[dict[str, str]]:
    return [
        {
            "strategy_id": str(r["strategy_id"]),
            "week": f"{pd.Timestamp(r['week_start']):%Y-%m-%d}",
            "labels": str(int(r["labels"])),
            "violating": str(int(r["violating"])),
            "precision": _interval(
                r["precision"], r["precision_low"], r["precision_high"], "{:.2f}"
            ),
        }
        for _, r in sp.sort_values(["strategy_id", "week_start"]).iterrows()
    ]


def coverage_matrix(coverage: pd.DataFrame) -> dict[str, Any]:
    """The launch watch as a matrix: one row per new category and policy, one column per
    channel; each cell the actioned share, `gap` (no strategy could act) or `no match` (rules
    could act, none fired), with a CSS class to highlight it."""
    if not len(coverage):
        return {"channels": [], "rows": []}
    channels = sorted(coverage["channel"].unique())
    rows = []
    for (category, policy), g in coverage.groupby(["category", "policy"], sort=True):
        by_channel = g.set_index("channel")
        cells = []
        for ch in channels:
            if ch not in by_channel.index:
                cells.append({"text": "", "cls": "cov-none", "title": "not shown here"})
                continue
            r = by_channel.loc[ch]
            shown = f"{int(r['items_shown'])} items shown"
            if not r["strategies"]:
                cells.append({"text": "gap", "cls": "cov-gap", "title": f"{shown}; no strategy"})
            elif not r["strategies_firing"]:
                cells.append(
                    {
                        "text": "no match",
                        "cls": "cov-idle",
                        "title": f"{shown}; could act: {r['strategies']}",
                    }
                )
            else:
                cells.append(
                    {
                        "text": f"{float(r['actioned_share']):.0%}",
                        "cls": "cov-ok",
                        "title": f"{shown}; fired: {r['strategies_firing']}",
                    }
                )
        rows.append({"category": str(category), "policy": str(policy), "cells": cells})
    return {"channels": channels, "rows": rows}


def vvr_plot(vvr: pd.DataFrame) -> str:
    """Inline SVG: violative view rate per channel with its interval, one panel per policy;
    the model's own rate as a hollow diamond."""
    if not len(vvr):
        return "<p>No audited impressions.</p>"
    plt = _plt()
    policies = sorted(vvr["policy"].unique())
    fig, axes = plt.subplots(
        1, len(policies), figsize=(2.3 * len(policies) + 1, 0.3 * vvr["channel"].nunique() + 1.2)
    )
    axes = np.atleast_1d(axes)
    for ax, policy, colour in zip(axes, policies, _COLOURS * 2, strict=False):
        p = vvr[vvr["policy"] == policy].sort_values("channel", ascending=False)
        y = np.arange(len(p))
        est = p["vvr"].to_numpy(dtype=float)
        lo = np.nan_to_num(p["vvr_low"].to_numpy(dtype=float), nan=0.0)
        hi = np.nan_to_num(p["vvr_high"].to_numpy(dtype=float), nan=1.0)
        ax.errorbar(
            est,
            y,
            xerr=[np.maximum(est - lo, 0), np.maximum(hi - est, 0)],
            fmt="o",
            color=colour,
            markersize=4,
            capsize=2,
            linewidth=1,
        )
        ax.scatter(
            p["vvr_model"], y, marker="D", facecolor="white", edgecolor=colour, s=16, zorder=3
        )
        ax.set_yticks(y)
        ax.set_yticklabels(p["channel"], fontsize=7)
        ax.set_title(str(policy), fontsize=8)
        ax.set_xlim(left=0)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("share of impressions", fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def strategy_precision_plot(sp: pd.DataFrame, top: int = 8) -> str:
    """Inline SVG: weekly precision with its interval of the most labelled strategies, one
    panel each."""
    if not len(sp):
        return "<p>No strategy-flagged verdicts.</p>"
    return _weekly_strategy_plot(
        sp, ("precision", "precision_low", "precision_high"), "labels", "precision", top=top
    )


def appeals_plot(appeals: pd.DataFrame, top: int = 8) -> str:
    """Inline SVG: weekly overturn rate with its interval of the strategies that actioned most
    items, one panel each; weeks whose overturns are still arriving drawn hollow."""
    if not len(appeals):
        return "<p>No strategy decisions.</p>"
    return _weekly_strategy_plot(
        appeals,
        ("overturn_rate", "overturn_rate_low", "overturn_rate_high"),
        "items_actioned",
        "overturned on appeal",
        top=top,
        complete="complete",
    )


def _weekly_strategy_plot(
    df: pd.DataFrame,
    columns: tuple[str, str, str],
    weight: str,
    ylabel: str,
    *,
    top: int,
    complete: str | None = None,
) -> str:
    """Small multiples: `columns` (estimate, low, high) per week of the `top` strategies with
    most `weight`."""
    value, low, high = columns
    busiest = df.groupby("strategy_id")[weight].sum().sort_values(ascending=False).head(top)
    plt = _plt()
    cols = min(len(busiest), 4)
    n_rows = int(np.ceil(len(busiest) / cols))
    from matplotlib.dates import DateFormatter

    fig, axes = plt.subplots(
        n_rows, cols, figsize=(2.8 * cols, 2.0 * n_rows), sharex=True, sharey=True, squeeze=False
    )
    for ax in axes.flat[len(busiest) :]:
        ax.set_visible(False)
    top_value = float(np.nanmax(df[high].to_numpy(dtype=float), initial=0.0))
    for ax, sid, colour in zip(axes.flat, busiest.index, _COLOURS * 2, strict=False):
        c = df[df["strategy_id"] == sid].sort_values("week_start")
        x = pd.to_datetime(c["week_start"])
        est = c[value].to_numpy(dtype=float)
        lo = np.nan_to_num(c[low].to_numpy(dtype=float), nan=0.0)
        hi = np.nan_to_num(c[high].to_numpy(dtype=float), nan=1.0)
        done = c[complete].to_numpy(dtype=bool) if complete else np.ones(len(c), dtype=bool)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.plot(x, est, color=colour, linewidth=1.1)
        ax.scatter(x[done], est[done], color=colour, s=12, zorder=3)
        ax.scatter(x[~done], est[~done], facecolor="white", edgecolor=colour, s=12, zorder=3)
        ax.set_title(str(sid), fontsize=8)
        ax.set_ylim(0, min(1.02, max(top_value * 1.1, 0.05)))
        ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel, fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def _appeal_rows(appeals: pd.DataFrame) -> list[dict[str, str]]:
    return [
        {
            "strategy_id": str(r["strategy_id"]),
            "week": f"{pd.Timestamp(r['week_start']):%Y-%m-%d}",
            "n_items": f"{int(r['items_actioned']):,}",
            "appeal_rate": _f(r["appeal_rate"], "{:.1%}"),
            "overturn_rate": _interval(
                r["overturn_rate"], r["overturn_rate_low"], r["overturn_rate_high"], "{:.1%}"
            ),
            "of_appeals": _f(r["overturned_share_of_appeals"], "{:.0%}"),
            "complete": "yes" if r["complete"] else "filling in",
        }
        for _, r in appeals.sort_values(["strategy_id", "week_start"]).iterrows()
    ]
