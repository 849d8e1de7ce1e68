"""The self-contained HTML audit report for governance PMs: inline CSS, plots as inline SVG."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from governance.audit.metrics import LABELS_BEHIND, label_support

if TYPE_CHECKING:
    from governance.audit.pipeline import AuditResult

_TEMPLATE = "report.html.j2"
_MAX_SLICES_PER_STRATEGY = 3
_MAX_SUGGESTIONS = 40


def render_report(result: AuditResult) -> str:
    """The report as one HTML string that needs no network or other file."""
    import jinja2

    cfg = result.settings
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("governance.audit", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    m = result.metrics
    overall = m[(m["channel"] == "all") & (m["strategy"] != "*")]
    per_policy = m[(m["channel"] == "all") & (m["strategy"] == "*")]
    totals = {
        "fp": _n(overall["fp"].sum()),
        "fn": _n(per_policy["fn"].sum()),
        "fn_impressions": _n(per_policy["fn_impressions"].sum()),
        "fp_impressions": _n(per_policy["fp_impressions"].sum()),
    }
    n_labels = sum(len(p.draws) for p in result.populations.values())
    excluded = {k for k, v in cfg.design_frames.items() if v == "exclude"}
    ctx: dict[str, Any] = {
        "as_of": f"{result.as_of:%Y-%m-%d %H:%M}",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "n_strategies": int(overall["strategy"].nunique()),
        "n_labels": n_labels,
        "flip_rate": f"{result.flip_rate:.3f}",
        "flip_source": result.flip_rate_source,
        "confidence": int(round(cfg.confidence * 100)),
        "totals": totals,
        "n_suggestions": len(result.suggestions),
        "n_suggestions_shown": min(len(result.suggestions), _MAX_SUGGESTIONS),
        "forest_svg": forest_plot(m),
        "forest_channel_svg": forest_plot(m, per_channel=True),
        "cost_svg": cost_plot(overall),
        "metric_rows": _metric_rows(m, max_width=cfg.pinned_max_width),
        "pinned_width_points": f"{cfg.pinned_max_width * 100:g}",
        "unpinned": _unpinned_counts(overall, max_width=cfg.pinned_max_width),
        "slice_rows": _slice_rows(result.slices),
        "suggestion_rows": _suggestion_rows(result.suggestions),
        "fp_cost": cfg.fp_cost,
        "fn_cost": cfg.fn_cost,
        "label_rows": [
            {
                "sampling": k,
                "n": v,
                "used": "no (not a probability sample)" if k in excluded else "yes",
            }
            for k, v in sorted(result.label_counts.items())
        ],
        "n_flags_fp": int((result.flags["kind"] == "likely_false_positive").sum()),
        "n_flags_fn": int((result.flags["kind"] == "likely_false_negative").sum()),
        "n_flags_audit": int((result.flags["kind"] == "random_audit").sum()),
    }
    return env.get_template(_TEMPLATE).render(**ctx)


def _n(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:,.0f}"


def _pct(p: float, lo: float, hi: float) -> str:
    if not np.isfinite(p):
        return "–"
    return f"{p:.1%} [{lo:.1%}, {hi:.1%}]"


def _ci(p: float, lo: float, hi: float) -> str:
    if not np.isfinite(p):
        return "–"
    return f"{p:,.0f} [{lo:,.0f}, {hi:,.0f}]"


def _pin(r: pd.Series, name: str, *, max_width: float) -> dict[str, Any]:
    support = label_support(r, name, max_width=max_width)
    n = support.n_labels
    return {"labels": f"{n:,} label{'' if n == 1 else 's'}", "note": support.note}


def _unpinned_counts(overall: pd.DataFrame, *, max_width: float) -> dict[str, str]:
    """Per measure: how many strategies' (all channels) intervals are wider than `max_width`."""
    out = {}
    for name in LABELS_BEHIND:
        width = overall[f"{name}_high"] - overall[f"{name}_low"]
        known = overall[name].notna()
        out[name] = f"{int((known & ~(width <= max_width)).sum())} of {int(known.sum())}"
    return out


def _metric_rows(m: pd.DataFrame, *, max_width: float) -> list[dict[str, Any]]:
    rows = []
    for _, r in m.iterrows():
        rows.append(
            {
                "precision_pin": _pin(r, "precision", max_width=max_width),
                "recall_pin": _pin(r, "recall", max_width=max_width),
                "strategy": "all strategies" if r["strategy"] == "*" else r["strategy"],
                "policy": r["policy"],
                "channel": r["channel"],
                "n_actioned": f"{int(r['n_actioned']):,}",
                "precision": _pct(r["precision"], r["precision_low"], r["precision_high"]),
                "recall": _pct(r["recall"], r["recall_low"], r["recall_high"]),
                "fp": _ci(r["fp"], r["fp_low"], r["fp_high"]),
                "fn": _ci(r["fn"], r["fn_low"], r["fn_high"])
                + (f"; {r['fn_confirmed']:,.0f} confirmed" if r["fn_confirmed"] >= 0.5 else ""),
                "fn_impressions": _ci(
                    r["fn_impressions"], r["fn_impressions_low"], r["fn_impressions_high"]
                ),
                "fp_impressions": _ci(
                    r["fp_impressions"], r["fp_impressions_low"], r["fp_impressions_high"]
                ),
                "labels": f"{int(r['n_labels'])} ({int(r['n_labeled_positive'])})",
            }
        )
    return rows


def _slice_rows(slices: pd.DataFrame) -> list[dict[str, Any]]:
    if not len(slices):
        return []
    top = slices[slices["rank"] <= _MAX_SLICES_PER_STRATEGY]
    return [
        {
            "strategy": r["strategy"],
            "kind": "false positives" if r["error_kind"] == "fp" else "false negatives",
            "rank": int(r["rank"]),
            "description": r["description"],
            "size": f"{int(r['size']):,}",
            "errors": f"{r['errors']:,.1f}",
            "lift": f"{r['lift']:.2f}",
            "share": f"{r['error_share']:.0%}",
        }
        for _, r in top.iterrows()
    ]


def _suggestion_rows(s: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for _, r in s.head(_MAX_SUGGESTIONS).iterrows():
        base = r["base_version"]
        ref = r["strategy_id"] + (f"@v{int(base)}" if pd.notna(base) else " (new)")
        rows.append(
            {
                "rank": int(r["rank"]),
                "strategy": ref,
                "kind": r["kind"],
                "summary": r["summary"],
                "yaml": r["proposed_yaml"],
                "dfp": f"{r['delta_fp']:+,.0f} [{r['delta_fp_low']:+,.0f}, "
                f"{r['delta_fp_high']:+,.0f}]",
                "dfn": f"{r['delta_fn']:+,.0f} [{r['delta_fn_low']:+,.0f}, "
                f"{r['delta_fn_high']:+,.0f}]",
                "dimp": f"{r['delta_impressions']:+,.0f}",
                "dgmv": f"{r['delta_gmv']:+,.0f}",
                "labels": int(r["labels_used"]),
            }
        )
    return rows


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def forest_plot(metrics: pd.DataFrame, *, per_channel: bool = False) -> str:
    """Inline SVG: precision and recall with intervals, one row per strategy (overall), or per
    strategy x channel with `per_channel`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = metrics[metrics["n_actioned"] > 0].copy()
    m = (
        m[(m["channel"] != "all") & (m["strategy"] != "*")]
        if per_channel
        else m[m["channel"] == "all"]
    )
    if not len(m):
        return "<p>No strategy actioned anything.</p>"
    m["_star"] = m["strategy"] == "*"
    m = m.sort_values(["entity", "policy", "_star", "strategy", "channel"])
    labels = [
        (f"all {p} strategies" if s == "*" else s) + (f" · {c}" if per_channel else "")
        for s, p, c in zip(m["strategy"], m["policy"], m["channel"], strict=True)
    ]
    y = np.arange(len(m))[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.24 * len(m) + 1.0), sharey=True)
    for ax, col, colour in zip(axes, ("precision", "recall"), ("#2c5da8", "#b3261e"), strict=True):
        p = m[col].to_numpy(dtype=float)
        lo = m[f"{col}_low"].to_numpy(dtype=float)
        hi = m[f"{col}_high"].to_numpy(dtype=float)
        ok = np.isfinite(p)
        ax.errorbar(
            p[ok],
            y[ok],
            xerr=[p[ok] - lo[ok], hi[ok] - p[ok]],
            fmt="o",
            color=colour,
            ecolor=colour,
            elinewidth=1.2,
            capsize=2,
            markersize=4,
        )
        star = m["_star"].to_numpy()
        ax.scatter(p[ok & star], y[ok & star], marker="D", s=30, color="#1d2330", zorder=3)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(col)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(labels, fontsize=8)
    fig.tight_layout()
    return _svg(fig)


def cost_plot(overall: pd.DataFrame) -> str:
    """Inline SVG: impressions of missed violations and lost honest impressions per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not len(overall):
        return "<p>No strategies.</p>"
    o = overall.sort_values("fn_impressions")
    y = np.arange(len(o))
    fig, ax = plt.subplots(figsize=(11, 0.3 * len(o) + 1.2))
    ax.barh(
        y - 0.2,
        o["fn_impressions"],
        height=0.4,
        color="#b3261e",
        label="impressions of missed violating items",
    )
    ax.barh(
        y + 0.2,
        o["fp_impressions"],
        height=0.4,
        color="#2c5da8",
        label="impressions honest items lost",
    )
    ax.errorbar(
        o["fn_impressions"],
        y - 0.2,
        xerr=[
            o["fn_impressions"] - o["fn_impressions_low"].clip(lower=0),
            o["fn_impressions_high"] - o["fn_impressions"],
        ],
        fmt="none",
        ecolor="#333",
        elinewidth=0.8,
        capsize=2,
    )
    ax.set_yticks(y)
    ax.set_yticklabels(o["strategy"], fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)
