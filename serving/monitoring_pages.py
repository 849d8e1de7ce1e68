"""The monitoring page of the review service: trust per channel, objectives and alerts.

It reads the tables `govrisk monitor` wrote to `GOVRISK_MONITOR_DIR` (`govrisk serve
--monitor-dir`) through `governance.monitoring.view`; charts are inline SVG.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from governance.monitoring.view import (
    RECENT_WEEKS,
    GaugeFamily,
    WeekPoint,
    channel_view,
    monitoring_gauges,
)
from governance.monitoring.vocabulary import ALL
from serving.deps import PageAnalyst, SessionDep, StateDep
from serving.pages import render

router = APIRouter(include_in_schema=False)
_FONT = 'font-family="sans-serif" font-size="11"'


def band_chart(
    points: Sequence[WeekPoint],
    *,
    title: str,
    outcome: str,
    width: int = 520,
    height: int = 170,
) -> Markup:
    """Weekly values with their 95% band; weeks still filling in drawn hollow. Without a
    single `outcome` (e.g. "returns") in the window, a note says so instead of a flat axis."""
    if points and not any(p.events > 0 for p in points):
        return Markup(
            f'<div class="chart-empty" role="note"><strong>{escape(title)}</strong>'
            f'<p class="empty">No {escape(outcome)} recorded in this window '
            f"({len(points)} weeks, {sum(p.orders for p in points):,} orders).</p></div>"
        )
    left, right, top, bottom = 44, 16, 24, 28
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="14" {_FONT} font-weight="600">{escape(title)}</text>',
    ]
    vals = [v for p in points for v in (p.value, p.low, p.high) if v is not None]
    if not vals:
        parts.append(f'<text x="{left}" y="{top + 20}" {_FONT} fill="#999">no data</text></svg>')
        return Markup("".join(parts))
    lo, hi = min(vals + [0.0]), max(vals)
    hi = hi if hi > lo else lo + 1
    plot_h, plot_w = height - top - bottom, width - left - right
    step = plot_w / max(len(points) - 1, 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    for tick in (lo, (lo + hi) / 2, hi):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#eee"/><text x="{left - 4}" y="{y(tick) + 4:.1f}" {_FONT} '
            f'text-anchor="end" fill="#666">{tick:.3g}</text>'
        )
    band = [(left + step * i, p.low, p.high) for i, p in enumerate(points)]
    upper = [f"{x:.1f},{y(h):.1f}" for x, lo_, h in band if lo_ is not None and h is not None]
    lower = [
        f"{x:.1f},{y(lo_):.1f}" for x, lo_, h in reversed(band) if lo_ is not None and h is not None
    ]
    if upper:
        parts.append(f'<polygon points="{" ".join(upper + lower)}" fill="#2c5da8" opacity="0.15"/>')
    line = [
        f"{left + step * i:.1f},{y(p.value):.1f}"
        for i, p in enumerate(points)
        if p.value is not None
    ]
    parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#2c5da8"/>')
    for i, p in enumerate(points):
        x = left + step * i
        if p.value is not None:
            fill = "#2c5da8" if p.mature else "#fff"
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y(p.value):.1f}" r="3" fill="{fill}" stroke="#2c5da8">'
                f"<title>{escape(p.week)}: {p.value:.3g} (orders {p.orders})</title></circle>"
            )
        parts.append(
            f'<text x="{x:.1f}" y="{height - 10}" {_FONT} text-anchor="middle" fill="#666">'
            f"{escape(p.week)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def psi_chart(
    weeks: Sequence[dict[str, Any]], *, title: str, width: int = 520, height: int = 150
) -> Markup:
    """One model's weekly PSI (`view.prediction_drift` rows) against its alert threshold
    (dashed); weeks above it drawn red."""
    left, right, top, bottom = 44, 16, 24, 28
    hi = max([float(w["psi"]) for w in weeks] + [float(w["threshold"]) for w in weeks]) * 1.1
    plot_h, plot_w = height - top - bottom, width - left - right
    step = plot_w / max(len(weeks) - 1, 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / hi)

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="14" {_FONT} font-weight="600">{escape(title)}</text>',
    ]
    for tick in (0.0, hi / 2, hi):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#eee"/><text x="{left - 4}" y="{y(tick) + 4:.1f}" {_FONT} '
            f'text-anchor="end" fill="#666">{tick:.2f}</text>'
        )
    threshold = [f"{left + step * i:.1f},{y(w['threshold']):.1f}" for i, w in enumerate(weeks)]
    psi = [f"{left + step * i:.1f},{y(w['psi']):.1f}" for i, w in enumerate(weeks)]
    parts.append(
        f'<polyline points="{" ".join(threshold)}" fill="none" stroke="#a0521a" '
        f'stroke-dasharray="4 3"><title>alert threshold</title></polyline>'
        f'<polyline points="{" ".join(psi)}" fill="none" stroke="#2c5da8"/>'
    )
    for i, w in enumerate(weeks):
        x = left + step * i
        colour = "#e0463a" if w["drifted"] else "#2c5da8"
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y(w["psi"]):.1f}" r="3" fill="{colour}">'
            f"<title>{escape(w['week'])}: PSI {w['psi']:.2f} (alert above "
            f"{w['threshold']:.2f}, {w['n_week']:,} items)</title></circle>"
            f'<text x="{x:.1f}" y="{height - 10}" {_FONT} text-anchor="middle" fill="#666">'
            f"{escape(w['week'][5:])}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _drift_charts(rows: Sequence[dict[str, Any]]) -> list[Markup]:
    models = dict.fromkeys(str(r["model"]) for r in rows)
    return [
        psi_chart(
            [r for r in rows if r["model"] == m], title=f"{m} model: PSI per week (dashed: alert)"
        )
        for m in models
    ]


@router.get("/monitoring")
def monitoring_page(
    request: Request,
    session: SessionDep,
    state: StateDep,
    user: PageAnalyst,
    channel: str = ALL,
) -> HTMLResponse:
    """Trust of one channel per week with intervals, its objectives, alerts and categories."""
    view = channel_view(state.settings.monitor_dir, channel if channel else ALL)
    return render(
        request,
        "monitoring.html",
        user,
        session=session,
        view=view,
        monitor_dir=state.settings.monitor_dir,
        recent_weeks=RECENT_WEEKS,
        drift_charts=_drift_charts(view.prediction_drift),
        charts=[
            band_chart(
                view.complaints,
                title="Complaints per 1,000 orders (95% band)",
                outcome="complaints",
            ),
            band_chart(
                view.returns, title="Returns per 1,000 orders (95% band)", outcome="returns"
            ),
            band_chart(view.nps, title="NPS (95% band)", outcome="NPS answers"),
        ],
    )


class _MonitoringCollector:
    """Prometheus collector of the monitor directory's current values, read at scrape time."""

    def __init__(self, monitor_dir: Path | None) -> None:
        self.monitor_dir = monitor_dir

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family: GaugeFamily
        for family in monitoring_gauges(self.monitor_dir):
            gauge = GaugeMetricFamily(family.name, family.help, labels=list(family.labels))
            for labels, value in family.samples:
                gauge.add_metric(list(labels), value)
            yield gauge


def monitoring_registry(monitor_dir: Path | None) -> Any:
    """A registry holding the monitoring gauges of `monitor_dir` (empty without one)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_MonitoringCollector(monitor_dir))  # type: ignore[arg-type]
    return registry
