"""The evaluation tables: pooled summary and every measure per world."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from experiments.audit_eval.calibration import CALIBRATION_RATIO, DOMAIN_RATIO
from experiments.audit_eval.config import GOALS, WorldEval
from experiments.audit_eval.estimates import budget_for


def _rel_error(pred: pd.Series, real: pd.Series) -> pd.Series:
    return (pred - real).abs() / real.abs().clip(lower=1.0)


def summary_table(worlds: Sequence[WorldEval], *, k: int, label_budget: int) -> pd.DataFrame:
    """One row per measure: govrisk, baseline / reference, goal and whether it is met."""
    v = pd.DataFrame([w.values for w in worlds])
    est = pd.concat([w.estimates for w in worlds], ignore_index=True)
    curves = pd.concat([w.labels_needed for w in worlds], ignore_index=True)
    defects = pd.concat([w.defects for w in worlds], ignore_index=True)
    deltas = (
        pd.concat([w.deltas for w in worlds if len(w.deltas)], ignore_index=True)
        if any(len(w.deltas) for w in worlds)
        else pd.DataFrame()
    )
    rows = [
        *_list_rows(v, k),
        *_estimate_rows(est, label_budget),
        *_label_rows(curves),
        *_defect_rows(defects),
        *_delta_rows(deltas),
        *_calibration_rows(v),
    ]
    return pd.DataFrame(rows)


def _summary_row(
    measure: str, value: float, reference: str, goal: str, met: bool | None, fmt: str = "{:.3f}"
) -> dict[str, Any]:
    return {
        "measure": measure,
        "govrisk": fmt.format(value) if np.isfinite(value) else "n/a",
        "reference": reference,
        "goal": goal,
        "met": "n/a" if met is None else ("yes" if met else "NO"),
    }


def _list_rows(v: pd.DataFrame, k: int) -> list[dict[str, Any]]:
    """The ranked lists: FP and FN precision@k and the FN list's violating views."""

    def m(col: str) -> float:
        return float(v[col].mean()) if col in v else math.nan

    fp_p = m("audit_fp_precision_at_k")
    fn_p, fn_base = m("audit_fn_precision_at_k"), m("audit_fn_base_rate")
    lift = fn_p / fn_base if fn_base > 0 else math.nan
    views, cl_views = m("audit_fn_violating_views_at_k"), m("cleanlab_fn_violating_views_at_k")
    ratio = views / cl_views if cl_views > 0 else math.inf
    return [
        _summary_row(
            f"FP list precision@{k}",
            fp_p,
            f"base rate {m('audit_fp_base_rate'):.3f}; cleanlab "
            f"{m('cleanlab_fp_precision_at_k'):.3f}",
            ">= 0.90",
            fp_p >= GOALS["fp_precision_at_k"],
        ),
        _summary_row(
            f"FN list precision@{k}",
            fn_p,
            f"base rate {fn_base:.4f} (lift {lift:.1f}x); cleanlab "
            f"{m('cleanlab_fn_precision_at_k'):.3f}",
            ">= 6x base rate",
            bool(lift >= GOALS["fn_precision_lift"]),
        ),
        _summary_row(
            f"violating views in FN top {k}",
            views,
            f"cleanlab {cl_views:,.0f} ({ratio:.1f}x)",
            ">= 5x cleanlab",
            bool(ratio >= GOALS["views_vs_cleanlab"]),
            fmt="{:,.0f}",
        ),
    ]


def _estimate_rows(est: pd.DataFrame, label_budget: int) -> list[dict[str, Any]]:
    """Precision / recall errors and interval coverage, per source of labels."""
    rows = []
    for source, label in (
        ("simulator", f"simulator's {label_budget:,} labels"),
        ("importance", f"govrisk importance sample of {label_budget:,}"),
    ):
        e = est[est["labels_from"] == source]
        if not len(e):
            continue
        pe, re_ = float(e["precision_err"].mean()), float(e["recall_err"].mean())
        cov = float(pd.concat([e["precision_covered"], e["recall_covered"]]).mean())
        rows += [
            _summary_row(
                f"precision abs. error ({label})",
                pe,
                f"max {e['precision_err'].max():.3f}; within ±0.015: "
                f"{(e['precision_err'] <= 0.015).mean():.0%} of {len(e)}",
                "<= 0.015",
                pe <= GOALS["precision_abs_error"],
            ),
            _summary_row(
                f"recall abs. error ({label})",
                re_,
                f"max {e['recall_err'].max():.3f}; within ±0.03: "
                f"{(e['recall_err'] <= 0.03).mean():.0%}",
                "<= 0.03",
                re_ <= GOALS["recall_abs_error"],
            ),
            _summary_row(
                f"95% CI coverage ({label})",
                cov,
                f"precision {e['precision_covered'].mean():.2f}, recall "
                f"{e['recall_covered'].mean():.2f}",
                ">= 0.90",
                cov >= GOALS["coverage"],
            ),
        ]
    return rows


def _label_rows(curves: pd.DataFrame) -> list[dict[str, Any]]:
    """Labels for a target RMSE, govrisk's importance design against uniform auditing."""
    rows = []
    for metric, target in (("precision_rmse", 0.015), ("recall_rmse", 0.03)):
        needs = {}
        for design in ("importance", "uniform"):
            per_seed = [
                budget_for(c[c["design"] == design], metric, target)
                for _, c in curves.groupby("seed")
            ]
            needs[design] = float(np.exp(np.mean(np.log(per_seed))))
        saving = 1.0 - needs["importance"] / needs["uniform"]
        rows.append(
            _summary_row(
                f"labels for {metric.split('_')[0]} RMSE {target}",
                needs["importance"],
                f"uniform {needs['uniform']:,.0f} ({saving:.0%} fewer)",
                ">= 40% fewer",
                saving >= GOALS["label_savings"],
                fmt="{:,.0f}",
            )
        )
    return rows


def _defect_rows(defects: pd.DataFrame) -> list[dict[str, Any]]:
    """Planted defects found among the top 3 slices of their strategy."""
    share = float(defects["found"].mean()) if len(defects) else math.nan
    return [
        _summary_row(
            "planted defects in top-3 slices",
            share,
            ", ".join(f"{d}: {g['found'].mean():.0%}" for d, g in defects.groupby("defect")),
            ">= 0.80",
            share >= GOALS["defects_top3"] if np.isfinite(share) else None,
        )
    ]


def _delta_rows(deltas: pd.DataFrame) -> list[dict[str, Any]]:
    """Applied suggestions: projected against realised ΔFP / ΔFN."""
    if not len(deltas):
        return []
    rel_fp = _rel_error(deltas["predicted_fp"], deltas["realised_fp"])
    rel_fn = _rel_error(deltas["predicted_fn"], deltas["realised_fn"])
    worst = float(pd.concat([rel_fp, rel_fn]).median())
    detail = ""
    if {"fp_low", "fp_high", "fn_low", "fn_high"} <= set(deltas.columns):
        inside = pd.concat(
            [
                deltas["realised_fp"].between(deltas["fp_low"], deltas["fp_high"]),
                deltas["realised_fn"].between(deltas["fn_low"], deltas["fn_high"]),
            ]
        )
        detail = f"realised inside the 95% interval: {int(inside.sum())} of {len(inside)}; "
    detail += "; ".join(
        f"{r.strategy} {r.kind}: FP {r.predicted_fp:+.0f}/{r.realised_fp:+.0f}, "
        f"FN {r.predicted_fn:+.0f}/{r.realised_fn:+.0f}"
        for r in deltas.itertuples()
    )
    return [
        _summary_row(
            "ΔFP/ΔFN predicted vs realised (median rel. error)",
            worst,
            detail,
            "<= 0.15",
            worst <= GOALS["delta_rel_error"],
        )
    ]


def _calibration_rows(v: pd.DataFrame) -> list[dict[str, Any]]:
    """The models' calibration in the large (no goal: it explains the estimates)."""
    ratio_cols = [c for c in v.columns if c.startswith(CALIBRATION_RATIO)]
    ratios = v[ratio_cols].to_numpy(dtype=np.float64).ravel() if ratio_cols else np.zeros(0)
    ratios = ratios[np.isfinite(ratios)]
    if not len(ratios):
        return []
    return [
        _summary_row(
            "models' mean p / population verdict rate (median)",
            float(np.median(ratios)),
            f"mean {ratios.mean():.2f}, max {ratios.max():.2f} over {len(ratios)} models; "
            "1 = calibrated in the large",
            "",
            None,
            fmt="{:.2f}",
        )
    ]


#: Column of the per-world table holding every world together.
POOLED = "pooled"


#: Column of the per-world table holding the worst world's value (and which world it is).
WORST = "worst"


_Value = tuple[float, int | None]


@dataclass(frozen=True)
class _Measure:
    """One row of the per-world table: how to compute it on any set of worlds.

    `compute` returns the value and how many observations stand behind it (intervals,
    strategies, defects; None where a count says nothing); `badness` orders worlds from best
    to worst (None: no worst world).
    """

    name: str
    compute: Callable[[Sequence[WorldEval]], _Value]
    goal: str
    badness: Callable[[float], float] | None
    fmt: str = "{:.3f}"


def _mean_value(col: str) -> Callable[[Sequence[WorldEval]], _Value]:
    def compute(worlds: Sequence[WorldEval]) -> _Value:
        xs = [w.values.get(col, math.nan) for w in worlds]
        xs = [x for x in xs if np.isfinite(x)]
        return (float(np.mean(xs)) if xs else math.nan), None

    return compute


def _fn_lift(worlds: Sequence[WorldEval]) -> _Value:
    p = _mean_value("audit_fn_precision_at_k")(worlds)[0]
    base = _mean_value("audit_fn_base_rate")(worlds)[0]
    return (p / base if base > 0 else math.nan), None


def _views_ratio(worlds: Sequence[WorldEval]) -> _Value:
    ours = _mean_value("audit_fn_violating_views_at_k")(worlds)[0]
    theirs = _mean_value("cleanlab_fn_violating_views_at_k")(worlds)[0]
    return (ours / theirs if theirs > 0 else math.inf), None


def _estimates(worlds: Sequence[WorldEval], source: str) -> pd.DataFrame:
    parts = [w.estimates for w in worlds if len(w.estimates)]
    if not parts:
        return pd.DataFrame()
    e = pd.concat(parts, ignore_index=True)
    return e[e["labels_from"] == source] if "labels_from" in e else e.iloc[:0]


def _estimate_mean(source: str, col: str) -> Callable[[Sequence[WorldEval]], _Value]:
    def compute(worlds: Sequence[WorldEval]) -> _Value:
        e = _estimates(worlds, source)
        if not len(e) or col not in e:
            return math.nan, 0
        x = e[col].astype(float)
        return float(x.mean()), int(x.notna().sum())

    return compute


def _label_saving(metric: str, target: float) -> Callable[[Sequence[WorldEval]], _Value]:
    def compute(worlds: Sequence[WorldEval]) -> _Value:
        needs = {}
        for design in ("importance", "uniform"):
            per_world = [
                budget_for(c[c["design"] == design], metric, target)
                for w in worlds
                if len(c := w.labels_needed) and (c["design"] == design).any()
            ]
            needs[design] = float(np.exp(np.mean(np.log(per_world)))) if per_world else math.nan
        return 1.0 - needs["importance"] / needs["uniform"], None

    return compute


def _defects_share(worlds: Sequence[WorldEval]) -> _Value:
    found = [w.defects["found"] for w in worlds if len(w.defects) and "found" in w.defects]
    if not found:
        return math.nan, 0
    f = pd.concat(found, ignore_index=True).astype(bool)
    return float(f.mean()), len(f)


def _delta_error(worlds: Sequence[WorldEval]) -> _Value:
    parts = [w.deltas for w in worlds if len(w.deltas) and "realised_fp" in w.deltas]
    if not parts:
        return math.nan, 0
    d = pd.concat(parts, ignore_index=True)
    rel = pd.concat(
        [
            _rel_error(d["predicted_fp"], d["realised_fp"]),
            _rel_error(d["predicted_fn"], d["realised_fn"]),
        ]
    )
    return float(rel.median()), len(d)


def _calibration_farthest(prefix: str) -> Callable[[Sequence[WorldEval]], _Value]:
    def compute(worlds: Sequence[WorldEval]) -> _Value:
        ratios = np.array(
            [
                v
                for w in worlds
                for k, v in w.values.items()
                if k.startswith(prefix) and np.isfinite(v) and v > 0
            ]
        )
        if not len(ratios):
            return math.nan, 0
        return float(ratios[np.argmax(np.abs(np.log(ratios)))]), len(ratios)

    return compute


def _higher_is_better(x: float) -> float:
    return -x


def _lower_is_better(x: float) -> float:
    return x


def _far_from_one(x: float) -> float:
    return abs(math.log(x)) if x > 0 else math.inf


def per_world_measures(*, k: int, label_budget: int) -> list[_Measure]:
    """The measures of the per-world table, in order."""
    return [*_list_measures(k), *_estimate_measures(label_budget), *_other_measures()]


def _list_measures(k: int) -> list[_Measure]:
    return [
        _Measure(
            f"FP list precision@{k}",
            _mean_value("audit_fp_precision_at_k"),
            f">= {GOALS['fp_precision_at_k']:.2f}",
            _higher_is_better,
        ),
        _Measure(
            f"FN list precision@{k} / base rate",
            _fn_lift,
            f">= {GOALS['fn_precision_lift']:.0f}x",
            _higher_is_better,
            "{:.1f}x",
        ),
        _Measure(
            f"violating views in FN top {k} / cleanlab",
            _views_ratio,
            f">= {GOALS['views_vs_cleanlab']:.0f}x",
            _higher_is_better,
            "{:.1f}x",
        ),
    ]


def _estimate_measures(label_budget: int) -> list[_Measure]:
    measures: list[_Measure] = []
    for source, label in (
        ("simulator", f"simulator's {label_budget:,} labels"),
        ("importance", f"govrisk importance sample of {label_budget:,}"),
    ):
        measures += [
            _Measure(
                f"precision abs. error ({label})",
                _estimate_mean(source, "precision_err"),
                f"<= {GOALS['precision_abs_error']}",
                _lower_is_better,
            ),
            _Measure(
                f"recall abs. error ({label})",
                _estimate_mean(source, "recall_err"),
                f"<= {GOALS['recall_abs_error']}",
                _lower_is_better,
            ),
            _Measure(
                f"precision 95% CI coverage ({label})",
                _estimate_mean(source, "precision_covered"),
                f">= {GOALS['coverage']:.2f}",
                _higher_is_better,
                "{:.2f}",
            ),
            _Measure(
                f"recall 95% CI coverage ({label})",
                _estimate_mean(source, "recall_covered"),
                f">= {GOALS['coverage']:.2f}",
                _higher_is_better,
                "{:.2f}",
            ),
            _Measure(
                f"FN 95% CI coverage ({label})",
                _estimate_mean(source, "fn_covered"),
                f">= {GOALS['coverage']:.2f}",
                _higher_is_better,
                "{:.2f}",
            ),
        ]
    return measures


def _other_measures() -> list[_Measure]:
    measures = [
        _Measure(
            f"labels saved vs uniform, {metric.split('_')[0]} RMSE {target}",
            _label_saving(metric, target),
            f">= {GOALS['label_savings']:.0%}",
            _higher_is_better,
            "{:.0%}",
        )
        for metric, target in (("precision_rmse", 0.015), ("recall_rmse", 0.03))
    ]
    measures += [
        _Measure(
            "planted defects in top-3 slices",
            _defects_share,
            f">= {GOALS['defects_top3']:.2f}",
            _higher_is_better,
            "{:.2f}",
        ),
        _Measure(
            "ΔFP/ΔFN predicted vs realised (median rel. error)",
            _delta_error,
            f"<= {GOALS['delta_rel_error']}",
            _lower_is_better,
        ),
        _Measure(
            "models' mean p / population verdict rate (farthest from 1)",
            _calibration_farthest(CALIBRATION_RATIO),
            "1 = calibrated in the large",
            _far_from_one,
            "{:.2f}",
        ),
    ]
    measures += [
        _Measure(
            f"{_SOURCE_NAME[source]}, {domain} units (farthest from 1)",
            _calibration_farthest(prefix),
            "1 = calibrated in the large",
            _far_from_one,
            "{:.2f}",
        )
        for (source, domain), prefix in DOMAIN_RATIO.items()
    ]
    return measures


def per_world_values(worlds: Sequence[WorldEval], *, k: int, label_budget: int) -> pd.DataFrame:
    """Long table: one row per measure x world (`world` = the seed, or `pooled`) with `value`,
    `n` (observations behind it: intervals, strategies, defects; <NA> where none apply), the
    goal, and `worst` marking the worst world of each measure."""
    rows: list[dict[str, Any]] = []
    for m in per_world_measures(k=k, label_budget=label_budget):
        per: list[tuple[str, float, int | None]] = []
        for w in worlds:
            value, n = m.compute([w])
            per.append((str(w.seed), value, n))
        value, n = m.compute(worlds)
        finite = [(s, v) for s, v, _ in per if not math.isnan(v)]
        bad = m.badness
        worst = max(finite, key=lambda sv: bad(sv[1]))[0] if bad and finite else None
        for s, v, c in [*per, (POOLED, value, n)]:
            rows.append(
                {
                    "measure": m.name,
                    "world": s,
                    "value": v,
                    "n": c,
                    "goal": m.goal,
                    "worst": s == worst,
                    "fmt": m.fmt,
                }
            )
    out = pd.DataFrame(rows)
    out["n"] = out["n"].astype("Int64")
    return out


def _cell(value: float, n: Any, fmt: str) -> str:
    if math.isnan(value):
        return "n/a"
    text = fmt.format(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return text if n is None or pd.isna(n) else f"{text} (of {int(n)})"


def per_world_table(values: pd.DataFrame) -> pd.DataFrame:
    """The wide table people read: one row per measure, one column per world (`seed N`),
    `pooled`, `worst` (the worst world's value and seed) and `goal`."""
    worlds = [str(w) for w in dict.fromkeys(values["world"]) if w != POOLED]
    rows = []
    for measure, g in values.groupby("measure", sort=False):
        by = {str(r["world"]): r for r in g.to_dict("records")}

        def cell(r: Mapping[Any, Any]) -> str:
            return _cell(float(r["value"]), r["n"], str(r["fmt"]))

        row: dict[str, str] = {"measure": str(measure)}
        row.update({f"seed {w}": cell(by[w]) for w in worlds})
        row[POOLED] = cell(by[POOLED])
        worst = [r for r in by.values() if r["worst"]]
        row[WORST] = f"{cell(worst[0])}, seed {worst[0]['world']}" if worst else "n/a"
        row["goal"] = str(by[POOLED]["goal"])
        rows.append(row)
    return pd.DataFrame(rows)


_SOURCE_NAME = {
    "model": "models' mean p / verdict rate",
    "audit": "audit's mean f / true violation rate",
}
