"""Alerts: firing days of every rule grouped into episodes, each with evidence and an owner.

An episode is a run of firing days of one rule on one slice (gaps of up to `max_gap_days`
days join); its id hashes the rule, the slice and the first day, so re-running the monitor on
more data keeps the id of an alert already raised (and `govrisk alerts load` opens it once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from governance.monitoring.appeals import OverturnConfig
from governance.monitoring.drift import DriftConfig, drift_threshold
from governance.monitoring.objectives import METRIC_PARTS, BurnRule
from governance.monitoring.tables import ALERTS, conform, empty_frame
from governance.monitoring.vocabulary import ALL, AlertKind, Severity, TrustMetric

_RANK = {s.value: i for i, s in enumerate(Severity)}  # critical = 0


@dataclass(frozen=True)
class Episode:
    """Consecutive firing days of one rule on one slice."""

    first_day: pd.Timestamp
    last_day: pd.Timestamp
    rows: pd.DataFrame


def alert_id(
    kind: str, metric: str, channel: str, strategy_id: str, first_day: pd.Timestamp
) -> str:
    """Stable id of an alert episode."""
    day = pd.Timestamp(first_day).strftime("%Y-%m-%d")
    key = f"{kind}|{metric}|{channel}|{strategy_id}|{day}"
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def alert_row(
    kind: AlertKind,
    episode: Episode,
    *,
    severity: Severity,
    title: str,
    metric: object,
    owner: object,
    value: float,
    threshold: float,
    evidence: str,
    channel: object = ALL,
    category: object = ALL,
    strategy_id: object = ALL,
    id_metric: object = None,
    id_strategy: object = None,
) -> dict[str, object]:
    """One `alerts` row for an episode of one rule on one slice.

    The id hashes the kind, `metric`, `channel`, `strategy_id` and the first day;
    `id_metric` / `id_strategy` replace the metric or strategy part where a rule keyed its
    ids differently from the row (kept so that ids of alerts already raised do not change).
    """
    return {
        "alert_id": alert_id(
            kind,
            str(metric if id_metric is None else id_metric),
            str(channel),
            str(strategy_id if id_strategy is None else id_strategy),
            episode.first_day,
        ),
        "kind": kind.value,
        "severity": severity.value,
        "title": title,
        "metric": metric,
        "channel": channel,
        "category": category,
        "strategy_id": strategy_id,
        "owner": owner,
        "first_day": episode.first_day,
        "last_day": episode.last_day,
        "days_firing": len(episode.rows),
        "value": value,
        "threshold": threshold,
        "evidence": evidence,
    }


def episodes(
    firing: pd.DataFrame, *, day_column: str = "day", max_gap_days: int = 1
) -> list[Episode]:
    """Split the firing rows of one rule and slice into runs of days."""
    if not len(firing):
        return []
    f = firing.sort_values(day_column)
    days = pd.to_datetime(f[day_column])
    new_run = days.diff().dt.days.fillna(max_gap_days + 1).to_numpy() > max_gap_days
    run = np.cumsum(new_run)
    return [
        Episode(
            first_day=pd.Timestamp(g[day_column].min()),
            last_day=pd.Timestamp(g[day_column].max()),
            rows=g,
        )
        for _, g in f.groupby(run)
    ]


def _worst(severities: pd.Series) -> str:
    return str(min(severities.dropna(), key=lambda s: _RANK[str(s)]))


def burn_alerts(
    status: pd.DataFrame,
    base: pd.DataFrame,
    rules: tuple[BurnRule, ...],
) -> pd.DataFrame:
    """Alerts from `objective_status` firing days; the evidence names the categories that
    spent most of the budget in the rule's long window (from the daily base counts)."""
    firing = status[status["firing"].notna()]
    rows = []
    by_severity = {r.severity.value: r for r in rules}
    for (channel, metric), g in firing.groupby(["channel", "metric"], sort=True):
        for ep in episodes(g):
            severity = _worst(ep.rows["firing"])
            rule = by_severity[severity]
            peak = ep.rows.iloc[int(np.argmax(ep.rows["burn_short"].to_numpy(dtype=float)))]
            tops = _top_categories(
                base,
                str(channel),
                TrustMetric(str(metric)),
                float(peak["target"]),
                ep.first_day,
                rule,
            )
            category = tops[0][0] if tops else ALL
            top_text = ", ".join(f"{c} {share:.0%}" for c, share in tops) or "none stands out"
            evidence = (
                f"{metric} in {channel}: burn rate {peak['burn_short']:.1f}x over 2 days, "
                f"{peak['burn_mid']:.1f}x over 5 days, {peak['burn_long']:.1f}x over 10 days "
                f"on {pd.Timestamp(peak['day']):%Y-%m-%d} (value {peak['value']:.3g} vs target "
                f"{peak['target']:.3g}; outcomes {peak['completeness']:.0%} arrived); "
                f"{peak['budget_spent']:.0%} of the window's budget spent. Excess by category "
                f"in the first {rule.long_days} days: {top_text}."
            )
            rows.append(
                alert_row(
                    AlertKind.BURN_RATE,
                    ep,
                    severity=Severity(severity),
                    title=f"{channel}: {metric} budget burning {peak['burn_short']:.1f}x",
                    metric=metric,
                    channel=channel,
                    category=category,
                    owner=peak["owner"],
                    value=float(ep.rows["burn_short"].max()),
                    threshold=rule.burn,
                    evidence=evidence,
                )
            )
    out = pd.DataFrame(rows)
    if not len(out):
        return empty_frame(ALERTS)
    return conform(_drop_covered_overall(out), ALERTS)


def _drop_covered_overall(alerts: pd.DataFrame) -> pd.DataFrame:
    """An `all`-channel alert overlapping a channel alert of the same metric says nothing new."""
    keep = []
    for _, a in alerts.iterrows():
        if a["channel"] != ALL:
            keep.append(True)
            continue
        same = alerts[(alerts["metric"] == a["metric"]) & (alerts["channel"] != ALL)]
        overlap = (same["first_day"] <= a["last_day"]) & (same["last_day"] >= a["first_day"])
        keep.append(not bool(overlap.any()))
    return alerts[keep]


def _top_categories(
    base: pd.DataFrame,
    channel: str,
    metric: TrustMetric,
    target: float,
    first_day: pd.Timestamp,
    rule: BurnRule,
    k: int = 3,
) -> list[tuple[str, float]]:
    num, den, scale = METRIC_PARTS[metric]
    day = pd.to_datetime(base["day"])
    window = (day > first_day - pd.Timedelta(days=rule.long_days)) & (day <= first_day)
    b = base[window] if channel == ALL else base[window & (base["channel"] == channel)]
    if not len(b):
        return []
    per = b.groupby("category")[[num, den]].sum()
    excess = (per[num] - target / scale * per[den]).clip(lower=0)
    if excess.sum() <= 0:
        return []
    share = (excess / excess.sum()).sort_values(ascending=False).head(k)
    return [(str(c), float(s)) for c, s in share.items() if s > 0]


def strategy_alerts(
    tests: pd.DataFrame, health: pd.DataFrame, owners: Mapping[str, str], *, default_owner: str
) -> pd.DataFrame:
    """Alerts from the hit-rate tests: one per strategy and episode, channels merged."""
    firing = tests[tests["firing"].notna()]
    rows = []
    for (sid, what), g in firing.groupby(["strategy_id", "firing"], sort=True):
        per_day = g.groupby("day", as_index=False).agg(
            channels=("channel", lambda s: sorted(set(s))),
            recent_hits=("recent_hits", "sum"),
            expected_hits=("expected_hits", "sum"),
        )
        for ep in episodes(per_day):
            first = ep.rows.iloc[0]
            channels = sorted({c for cs in ep.rows["channels"] for c in cs})
            channel = channels[0] if len(channels) == 1 else ALL
            ratio = first["recent_hits"] / max(first["expected_hits"], 1e-9)
            h = health[
                (health["strategy_id"] == sid) & (pd.to_datetime(health["day"]) <= ep.first_day)
            ]
            version = int(h["strategy_version"].max()) if len(h) else 1
            kind = AlertKind.STRATEGY_DECAY if what == "decay" else AlertKind.STRATEGY_SURGE
            if kind == AlertKind.STRATEGY_DECAY:
                severity = Severity.HIGH if ratio < 0.2 else Severity.MEDIUM
            else:
                severity = Severity.HIGH
            evidence = (
                f"{sid}@v{version} {'stopped hitting' if what == 'decay' else 'hits far more'}: "
                f"{first['recent_hits']:.0f} hits in the last days up to "
                f"{ep.first_day:%Y-%m-%d} where its baseline rate predicts "
                f"{first['expected_hits']:.1f} (ratio {ratio:.2f}); channels {', '.join(channels)}."
            )
            rows.append(
                alert_row(
                    kind,
                    ep,
                    severity=severity,
                    title=f"{sid}: hit rate {'fell' if what == 'decay' else 'jumped'} to "
                    f"{ratio:.2f}x its baseline",
                    metric="hits_per_1k_new_items",
                    channel=channel,
                    strategy_id=sid,
                    owner=owners.get(str(sid), default_owner),
                    value=float(ratio),
                    threshold=0.0,
                    evidence=evidence,
                )
            )
    return conform(pd.DataFrame(rows), ALERTS) if rows else empty_frame(ALERTS)


def overturn_alerts(
    tests: pd.DataFrame,
    owners: Mapping[str, str],
    config: OverturnConfig,
    *,
    default_owner: str,
) -> pd.DataFrame:
    """Alerts from the overturn tests: one per strategy and run of firing days."""
    firing = tests[tests["firing"].notna()]
    rows = []
    for sid, g in firing.groupby("strategy_id", sort=True):
        for ep in episodes(g):
            first = ep.rows.iloc[0]
            per_item = first["firing"] == "rate"
            ratio_col = "ratio" if per_item else "ratio_per_new_item"
            worst = float(np.nanmax(ep.rows[ratio_col].to_numpy(dtype=float)))
            k_r, k_b = int(first["recent_overturned"]), int(first["baseline_overturned"])
            end = ep.first_day - pd.Timedelta(days=config.horizon_days)
            recent = f"the {config.recent_days} days before {end:%Y-%m-%d}"
            before = f"the {config.baseline_days} days before"
            if per_item:
                n_r, n_b = int(first["recent_items"]), int(first["baseline_items"])
                what = (
                    f"{k_r} of {n_r} items it first actioned in {recent} were lifted on appeal "
                    f"within {config.horizon_days} days ({k_r / max(n_r, 1):.1%}), against "
                    f"{k_b} of {n_b} ({k_b / max(n_b, 1):.1%}) in {before} (ratio "
                    f"{first['ratio']:.1f}, p = {first['p_rise']:.1e}): its precision may have "
                    "fallen."
                )
                title = f"{sid}: overturn rate rose to {first['ratio']:.1f}x its baseline"
            else:
                u_r, u_b = first["recent_new_items"], first["baseline_new_items"]
                what = (
                    f"{k_r} of its actions in {recent} were lifted on appeal within "
                    f"{config.horizon_days} days, {1000 * k_r / max(u_r, 1):.1f} per 1,000 new "
                    f"items, against {k_b} ({1000 * k_b / max(u_b, 1):.1f} per 1,000) in "
                    f"{before} (ratio {first['ratio_per_new_item']:.1f}, p = "
                    f"{first['p_rise_per_new_item']:.1e}; per action {first['ratio']:.1f}x): "
                    "it wrongly blocks more items."
                )
                title = (
                    f"{sid}: overturned actions per new item rose to "
                    f"{first['ratio_per_new_item']:.1f}x its baseline"
                )
            rows.append(
                alert_row(
                    AlertKind.STRATEGY_OVERTURN,
                    ep,
                    severity=Severity.HIGH if worst >= 4 else Severity.MEDIUM,
                    title=title,
                    metric="overturn_rate" if per_item else "overturns_per_new_item",
                    id_metric="overturn_rate",
                    strategy_id=sid,
                    owner=owners.get(str(sid), default_owner),
                    value=worst,
                    threshold=config.rise_ratio,
                    evidence=f"{sid}: {what}",
                )
            )
    return conform(pd.DataFrame(rows), ALERTS) if rows else empty_frame(ALERTS)


def drift_alerts(drift: pd.DataFrame, config: DriftConfig, *, owner: str) -> pd.DataFrame:
    """Alerts on features whose weekly PSI exceeds its threshold, or whose missing share
    moved significantly in a week the PSI did not fire; one per feature, rule and run of
    weeks."""
    if not len(drift):
        return empty_frame(ALERTS)
    d = drift.copy()
    d["threshold"] = [
        drift_threshold(int(b), float(r), float(w), config.psi_medium)
        for b, r, w in zip(d["n_bins"], d["n_reference"], d["n_week"], strict=True)
    ]
    psi_firing = d["psi"] > d["threshold"]
    rows = [
        *_psi_alert_rows(d[psi_firing], config, owner),
        *_missing_alert_rows(d, ~psi_firing.to_numpy(), config, owner),
    ]
    return conform(pd.DataFrame(rows), ALERTS) if rows else empty_frame(ALERTS)


def _psi_alert_rows(
    firing: pd.DataFrame, config: DriftConfig, owner: str
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for (entity, feature), g in firing.groupby(["entity", "feature"], sort=True):
        for ep in episodes(g, day_column="week_start", max_gap_days=7):
            peak = ep.rows.iloc[int(np.argmax(ep.rows["psi"].to_numpy(dtype=float)))]
            severity = Severity.MEDIUM if peak["psi"] >= config.psi_high else Severity.LOW
            category = str(peak["top_bin"]) if str(feature).endswith("_category") else ALL
            evidence = (
                f"{entity} feature {feature}: PSI {peak['psi']:.2f} in the week of "
                f"{pd.Timestamp(peak['week_start']):%Y-%m-%d} ({int(peak['n_week'])} items vs "
                f"{int(peak['n_reference'])} in the reference weeks); bin {peak['top_bin']} "
                f"moved {peak['top_bin_shift']:+.1%}; missing {peak['missing_reference']:.1%} -> "
                f"{peak['missing_week']:.1%}."
            )
            rows.append(
                alert_row(
                    AlertKind.FEATURE_DRIFT,
                    ep,
                    severity=severity,
                    title=f"{feature} drifted (PSI {peak['psi']:.2f})",
                    metric=feature,
                    category=category,
                    owner=owner,
                    value=float(peak["psi"]),
                    threshold=float(peak["threshold"]),
                    evidence=evidence,
                )
            )
    return rows


def missing_share_p_values(drift: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Two-sided p-value of each feature-week's missing share against the reference's (a
    two-proportion z-test on the pooled share; 1 where nothing is ever missing)."""
    from scipy.stats import norm

    n_r = drift["n_reference"].to_numpy(dtype=float)
    n_w = drift["n_week"].to_numpy(dtype=float)
    m_r = drift["missing_reference"].to_numpy(dtype=float)
    m_w = drift["missing_week"].to_numpy(dtype=float)
    pooled = (m_r * n_r + m_w * n_w) / np.maximum(n_r + n_w, 1.0)
    se = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(n_r, 1.0) + 1 / np.maximum(n_w, 1.0)))
    z = np.divide(np.abs(m_w - m_r), se, out=np.zeros(len(drift)), where=se > 0)
    return np.asarray(2 * norm.sf(z), dtype=np.float64)


def _missing_alert_rows(
    d: pd.DataFrame, eligible: npt.NDArray[np.bool_], config: DriftConfig, owner: str
) -> list[dict[str, object]]:
    """A missing share that moved by `missing_shift` or more, significant at the family-wise
    rate across every feature and week tested (Bonferroni)."""
    p = missing_share_p_values(d)
    moved = (d["missing_week"] - d["missing_reference"]).to_numpy(dtype=float)
    alpha = config.family_alpha / max(len(d), 1)
    firing = d[eligible & (p < alpha) & (np.abs(moved) >= config.missing_shift)].assign(
        moved=moved[eligible & (p < alpha) & (np.abs(moved) >= config.missing_shift)]
    )
    rows: list[dict[str, object]] = []
    for (entity, feature), g in firing.groupby(["entity", "feature"], sort=True):
        for ep in episodes(g, day_column="week_start", max_gap_days=7):
            peak = ep.rows.iloc[int(np.argmax(np.abs(ep.rows["moved"].to_numpy(dtype=float))))]
            metric = f"{feature}:missing"
            evidence = (
                f"{entity} feature {feature}: missing in {peak['missing_week']:.1%} of the "
                f"{int(peak['n_week'])} items published in the week of "
                f"{pd.Timestamp(peak['week_start']):%Y-%m-%d} against "
                f"{peak['missing_reference']:.1%} of {int(peak['n_reference'])} in the reference "
                f"weeks (PSI {peak['psi']:.2f}, below its threshold): an upstream field may have "
                "stopped arriving."
            )
            rows.append(
                alert_row(
                    AlertKind.FEATURE_DRIFT,
                    ep,
                    severity=Severity.LOW,
                    title=f"{feature} missing share moved {peak['moved']:+.1%}",
                    metric=metric,
                    owner=owner,
                    value=float(peak["moved"]),
                    threshold=config.missing_shift,
                    evidence=evidence,
                )
            )
    return rows


def prediction_drift_alerts(
    drift: pd.DataFrame, config: DriftConfig, *, owner: str
) -> pd.DataFrame:
    """Alerts on models whose weekly score PSI exceeds its threshold (as features'); one per
    model and run of weeks."""
    if not len(drift):
        return empty_frame(ALERTS)
    d = drift.assign(threshold=drift["alert_threshold"])
    rows = []
    for (entity, policy), g in d[d["psi"] > d["threshold"]].groupby(["entity", "policy"]):
        model = f"{entity} {policy} model"
        for ep in episodes(g, day_column="week_start", max_gap_days=7):
            peak = ep.rows.iloc[int(np.argmax(ep.rows["psi"].to_numpy(dtype=float)))]
            evidence = (
                f"{model}: PSI {peak['psi']:.2f} of its probabilities in the week of "
                f"{pd.Timestamp(peak['week_start']):%Y-%m-%d} ({int(peak['n_week'])} items vs "
                f"{int(peak['n_reference'])} in the reference weeks); mean probability "
                f"{peak['mean_reference']:.3f} -> {peak['mean_week']:.3f}; bin {peak['top_bin']} "
                f"moved {peak['top_bin_shift']:+.1%}."
            )
            metric = f"p_{policy}"
            rows.append(
                alert_row(
                    AlertKind.PREDICTION_DRIFT,
                    ep,
                    severity=Severity.MEDIUM if peak["psi"] >= config.psi_high else Severity.LOW,
                    title=f"{model} scores drifted (PSI {peak['psi']:.2f})",
                    metric=metric,
                    id_metric=f"{entity}:{metric}",
                    owner=owner,
                    value=float(peak["psi"]),
                    threshold=float(peak["threshold"]),
                    evidence=evidence,
                )
            )
    return conform(pd.DataFrame(rows), ALERTS) if rows else empty_frame(ALERTS)


def combine(*parts: pd.DataFrame) -> pd.DataFrame:
    """One alerts table, most severe and earliest first."""
    non_empty = [p for p in parts if len(p)]
    if not non_empty:
        return empty_frame(ALERTS)
    out = pd.concat(non_empty, ignore_index=True)
    out["_rank"] = out["severity"].map(_RANK)
    out = out.sort_values(["_rank", "first_day", "alert_id"]).drop(columns="_rank")
    return conform(out.drop_duplicates("alert_id"), ALERTS)
