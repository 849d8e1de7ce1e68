"""Server-rendered SVG charts: empty charts say why, sparklines scale to their maximum."""

from __future__ import annotations

import re

from serving.review_charts import IntervalPoint, interval_chart, sparkline, trend_chart


def test_empty_charts_say_why_they_are_empty() -> None:
    svg = interval_chart([], title="Precision", empty="no random-audit verdicts yet")
    assert "no random-audit verdicts yet" in svg and "<circle" not in svg
    assert "once moderators judge items" in trend_chart([], title="Trend")
    full = interval_chart([IntervalPoint("s", 0.5, 0.4, 0.6, "")], title="P", empty="why")
    assert "why" not in full and "<circle" in full


def test_sparkline_marks_the_last_week_and_scales_to_its_maximum() -> None:
    svg = str(sparkline([0, 5, 10], title="hits <x>"))
    assert "hits &lt;x&gt;" in svg
    points = re.search(r'points="([^"]+)"', svg)
    assert points is not None
    ys = [float(p.split(",")[1]) for p in points.group(1).split()]
    assert ys[0] > ys[1] > ys[2]  # larger values sit higher (smaller y)
    assert sparkline([], title="x") == ""
