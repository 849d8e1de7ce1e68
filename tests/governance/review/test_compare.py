"""Two versions side by side: exact reach on the frame, errors only where measured."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from governance.review.compare import compare_versions, default_pair
from governance.strategy import parse_strategy
from tests.conftest import BASE_STRATEGY_YAML


def _version(threshold: int, status: str, version: int) -> Any:
    text = (
        BASE_STRATEGY_YAML.replace("value: 1}", f"value: {threshold}}}")
        .replace("status: active", f"status: {status}")
        .replace("version: 1", f"version: {version}")
    )
    return parse_strategy(text, source="test")


def _metrics(ref: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "strategy": ref,
                "channel": "all",
                "precision": 0.8,
                "precision_low": 0.7,
                "precision_high": 0.9,
                "recall": 0.5,
                "recall_low": float("nan"),
                "recall_high": 0.6,
                "fp": 100.0,
                "fp_low": 80.0,
                "fp_high": 120.0,
                "fn": 50.0,
                "fn_low": 40.0,
                "fn_high": 60.0,
            },
        ]
    )


def test_a_suggested_version_shows_base_figures_plus_the_projected_change() -> None:
    a, b = _version(1, "active", 1), _version(2, "shadow", 2)
    suggestion: Any = SimpleNamespace(
        suggestion_id="sg-1",
        base_version=1,
        delta_fp=-30.0,
        delta_fp_low=-40.0,
        delta_fp_high=-20.0,
        delta_fn=10.0,
        delta_fn_low=5.0,
        delta_fn_high=15.0,
    )
    out = compare_versions(a, b, frame=None, metrics=_metrics(a.ref), suggestion=suggestion)
    rows = {e.measure.split(" (")[0]: e.values for e in out.errors}
    assert rows["Precision"][0] is not None and rows["Precision"][1] is None
    fp_b, fn_b = rows["False positives"][1], rows["False negatives"][1]
    assert fp_b is not None and (fp_b.value, fp_b.low, fp_b.high) == (70.0, 40.0, 100.0)
    assert fn_b is not None and (fn_b.value, fn_b.low, fn_b.high) == (60.0, 45.0, 75.0)
    assert rows["Recall"][0] is not None and rows["Recall"][0].low is None
    assert "suggestion sg-1 projection" in out.error_sources[1]
    assert any("--features-dir" in n for n in out.notes)


def test_versions_of_different_strategies_are_refused_and_defaults_pick_active() -> None:
    a = _version(1, "active", 1)
    other = parse_strategy(
        BASE_STRATEGY_YAML.replace("id: listing-counterfeit-terms", "id: another"), source="t"
    )
    with pytest.raises(ValueError, match="two versions of one strategy"):
        compare_versions(a, other, frame=None, metrics=None)
    retired, shadow = _version(1, "retired", 1), _version(2, "active", 2)
    newest = _version(3, "shadow", 3)
    first, second = default_pair([retired, shadow, newest])
    assert (first.version, second.version) == (2, 3)
