"""SVG charts of the experiment page: lifts with intervals, the primary lift over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from markupsafe import Markup

_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _svg_open(title: str, width: int, height: int) -> list[str]:
    return [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="14" {_FONT} font-weight="600">{escape(title)}</text>',
    ]


def lift_chart(metrics: Sequence[Mapping[str, Any]], *, title: str, width: int = 560) -> Markup:
    """Each metric's relative lift with its interval around a zero line; margins dashed."""
    row_h, left, right, top = 24, 150, 70, 26
    height = top + row_h * max(len(metrics), 1) + 26
    ends = [
        abs(v) for m in metrics for v in (m.get("lift_low"), m.get("lift_high")) if v is not None
    ]
    ends += [m["margin"] for m in metrics if m.get("margin")]
    extent = max(max(ends, default=0.05), 0.01) * 1.1
    span = width - left - right

    def x(v: float) -> float:
        return left + span * (min(max(v, -extent), extent) + extent) / (2 * extent)

    parts = _svg_open(title, width, height)
    for tick in (-extent, 0.0, extent):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{height - 20}" '
            f'stroke="{"#888" if tick == 0 else "#ddd"}"/>'
            f'<text x="{x(tick):.1f}" y="{height - 6}" {_FONT} text-anchor="middle" '
            f'fill="#666">{tick:+.0%}</text>'
        )
    for i, m in enumerate(metrics):
        y = top + row_h * i + row_h / 2
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" {_FONT} text-anchor="end">'
            f"{escape(str(m['metric']))}</text>"
        )
        margin = m.get("margin")
        if margin:
            bad = -margin if m.get("direction") == "increase" else margin
            parts.append(
                f'<line x1="{x(bad):.1f}" x2="{x(bad):.1f}" y1="{y - 9:.1f}" y2="{y + 9:.1f}" '
                'stroke="#b23a3a" stroke-dasharray="3,2"><title>non-inferiority margin</title>'
                "</line>"
            )
        if m.get("lift") is None:
            parts.append(f'<text x="{left + 4}" y="{y + 4:.1f}" {_FONT} fill="#999">no data</text>')
            continue
        if m.get("lift_low") is not None and m.get("lift_high") is not None:
            parts.append(
                f'<line x1="{x(m["lift_low"]):.1f}" x2="{x(m["lift_high"]):.1f}" y1="{y:.1f}" '
                f'y2="{y:.1f}" stroke="#4a6fa5" stroke-width="2"/>'
            )
        parts.append(f'<circle cx="{x(m["lift"]):.1f}" cy="{y:.1f}" r="4" fill="#1f3b63"/>')
        parts.append(
            f'<text x="{width - right + 6}" y="{y + 4:.1f}" {_FONT}>{m["lift"]:+.1%}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def history_chart(
    history: Sequence[Mapping[str, Any]], *, title: str, width: int = 560, height: int = 170
) -> Markup:
    """The primary metric's lift and interval at each recorded analysis, oldest first."""
    left, right, top, bottom = 48, 16, 24, 30
    points = [h for h in history if h.get("lift") is not None]
    values = [
        abs(v) for h in points for v in (h.get("lift_low"), h.get("lift_high"), h["lift"]) if v
    ]
    extent = max(max(values, default=0.05), 0.01) * 1.1
    plot_h = height - top - bottom
    step = (width - left - right) / max(len(points) - 1, 1)

    def y(v: float) -> float:
        return top + plot_h * (extent - min(max(v, -extent), extent)) / (2 * extent)

    parts = _svg_open(title, width, height)
    for tick in (-extent, 0.0, extent):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="{"#888" if tick == 0 else "#eee"}"/>'
            f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" {_FONT} text-anchor="end" fill="#666">'
            f"{tick:+.0%}</text>"
        )
    if not points:
        parts.append(
            f'<text x="{left + 8}" y="{top + 20}" {_FONT} fill="#999">not analysed yet</text>'
        )
    for i, h in enumerate(points):
        cx = left + step * i
        if h.get("lift_low") is not None and h.get("lift_high") is not None:
            parts.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(h["lift_low"]):.1f}" '
                f'y2="{y(h["lift_high"]):.1f}" stroke="#4a6fa5" stroke-width="2"/>'
            )
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{y(h["lift"]):.1f}" r="3" fill="#1f3b63">'
            f"<title>{escape(str(h.get('at', '')))}: {h['lift']:+.2%}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
