"""Server-side SVG charts for the review pages (no JavaScript, no external assets)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class IntervalPoint:
    """One labelled estimate with its interval, all in [0, 1]."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    note: str = ""


def interval_chart(
    points: Sequence[IntervalPoint],
    *,
    title: str,
    width: int = 520,
    empty: str = "nothing to show yet",
) -> Markup:
    """Dots with 95% interval whiskers on a 0-100% axis, one row per point; `empty` says why
    there is no row."""
    row_h, left, right, top = 22, 190, 60, 24
    height = top + row_h * max(len(points), 1) + 24
    span = width - left - right

    def x(v: float) -> float:
        return left + span * min(max(v, 0.0), 1.0)

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="14" {_FONT} font-weight="600">{escape(title)}</text>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{height - 20}" '
            'stroke="#ddd"/>'
            f'<text x="{x(tick):.1f}" y="{height - 6}" {_FONT} text-anchor="middle" '
            f'fill="#666">{tick:.0%}</text>'
        )
    if not points:
        parts.append(
            f'<text x="{left + 4}" y="{top + row_h / 2 + 4:.1f}" {_FONT} fill="#999">'
            f"{escape(empty)}</text>"
        )
    for i, p in enumerate(points):
        y = top + row_h * i + row_h / 2
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" {_FONT} text-anchor="end">'
            f"{escape(p.label[:30])}</text>"
        )
        if p.value is None:
            parts.append(
                f'<text x="{left + 4}" y="{y + 4:.1f}" {_FONT} fill="#999">no labels</text>'
            )
            continue
        if p.low is not None and p.high is not None:
            parts.append(
                f'<line x1="{x(p.low):.1f}" x2="{x(p.high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                'stroke="#4a6fa5" stroke-width="2"/>'
            )
        parts.append(f'<circle cx="{x(p.value):.1f}" cy="{y:.1f}" r="4" fill="#1f3b63"/>')
        parts.append(
            f'<text x="{width - right + 6}" y="{y + 4:.1f}" {_FONT}>{p.value:.0%}'
            f"{escape(p.note)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def contribution_chart(
    reasons: Sequence[tuple[str, float]], *, title: str, width: int = 520
) -> Markup:
    """Horizontal bars of signed SHAP contributions (red raises risk, blue lowers it)."""
    row_h, left, top = 20, 230, 22
    height = top + row_h * max(len(reasons), 1) + 8
    centre = left + (width - left) / 2
    biggest = max((abs(c) for _, c in reasons), default=0.0) or 1.0
    half = (width - left) / 2 - 8
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="14" {_FONT} font-weight="600">{escape(title)}</text>',
        f'<line x1="{centre:.1f}" x2="{centre:.1f}" y1="{top - 4}" y2="{height - 4}" '
        'stroke="#999"/>',
    ]
    for i, (label, contribution) in enumerate(reasons):
        y = top + row_h * i
        length = half * abs(contribution) / biggest
        x0 = centre if contribution >= 0 else centre - length
        colour = "#b23a3a" if contribution >= 0 else "#3a6db2"
        parts.append(
            f'<text x="{left - 8}" y="{y + 13}" {_FONT} text-anchor="end">'
            f"{escape(label[:36])}</text>"
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(length, 1):.1f}" height="{row_h - 6}" '
            f'fill="{colour}"><title>{contribution:+.4f}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def trend_chart(
    points: Sequence[tuple[str, float, int]], *, title: str, width: int = 520, height: int = 160
) -> Markup:
    """A line of weekly shares (0-100%) with the verdict count under each point."""
    left, right, top, bottom = 40, 16, 24, 36
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="14" {_FONT} font-weight="600">{escape(title)}</text>',
    ]
    plot_h = height - top - bottom
    for tick in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" {_FONT} text-anchor="end" fill="#666">'
            f"{tick:.0%}</text>"
        )
    if not points:
        parts.append(
            f'<text x="{left + 8}" y="{top + 20}" {_FONT} fill="#999">no verdicts yet: weekly '
            "shares appear once moderators judge items</text>"
        )
    step = (width - left - right) / max(len(points) - 1, 1)
    coords = [
        (left + step * i, top + plot_h * (1 - share)) for i, (_, share, _) in enumerate(points)
    ]
    if len(coords) > 1:
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1f3b63" stroke-width="2"/>')
    for (label, share, n), (cx, cy) in zip(points, coords, strict=True):
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="#1f3b63">'
            f"<title>{escape(label)}: {share:.0%} of {n}</title></circle>"
            f'<text x="{cx:.1f}" y="{height - 20}" {_FONT} text-anchor="middle" fill="#666">'
            f"{escape(label)}</text>"
            f'<text x="{cx:.1f}" y="{height - 6}" {_FONT} text-anchor="middle" fill="#999">'
            f"n={n}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(values: Sequence[float], *, title: str, width: int = 96, height: int = 22) -> Markup:
    """A tiny line of `values` (oldest first) scaled to its own maximum, last point marked."""
    if not values:
        return Markup("")
    top = max(max(values), 1e-9)
    step = (width - 4) / max(len(values) - 1, 1)
    points = [(2 + i * step, height - 3 - (height - 6) * (v / top)) for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    last_x, last_y = points[-1]
    return Markup(
        f'<svg class="spark" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<polyline points="{path}" fill="none" stroke="#1f3a5f" stroke-width="1.5"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2" fill="#1f3a5f"/></svg>'
    )
