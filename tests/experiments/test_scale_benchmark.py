"""The scale benchmark's arithmetic, and one small run end to end (slow)."""

from __future__ import annotations

import json

import pytest

from experiments.benchmarks.scale import _rows, main, projection


def _run(listings: int, seconds: float, worker_gb: float, driver_gb: float) -> dict:
    stage = {"seconds": seconds, "worker_peak_gb": worker_gb, "driver_peak_gb": driver_gb}
    return {"listings": listings, "stages": [{"stage": "features", **stage}]}


def test_cost_ratio_is_per_listing_against_the_smallest_size():
    rows = _rows([_run(1_000_000, 50.0, 2.0, 1.0), _run(10_000_000, 600.0, 2.5, 4.0)])
    assert [r["cost_ratio"] for r in rows] == pytest.approx([1.0, 1.2])
    assert [r["s_per_1M"] for r in rows] == pytest.approx([50.0, 60.0])


def test_projection_extends_the_least_squares_line_to_100m():
    runs = [_run(n, 2.0 + 3e-6 * n, 1.0 + k, 0.5 + 1e-7 * n) for k, n in enumerate((1e6, 3e6, 1e7))]
    (proj,) = projection(_rows(runs))
    assert proj["seconds"] == pytest.approx(2.0 + 300.0)
    assert proj["driver_peak_gb"] == pytest.approx(0.5 + 10.0)
    assert proj["worker_peak_gb"] == 3.0  # the largest seen, not extrapolated


@pytest.mark.slow
def test_a_small_scale_curve_runs_every_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("GOVRISK_THREADS", "1")  # main() sets them for its workers otherwise
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    out = tmp_path / "scale.json"
    main(
        [
            "--sizes", "20000", "40000", "--partition-rows", "10000", "--workers", "1",
            "--dir", str(tmp_path / "world"), "--json", str(out),
        ]
    )  # fmt: skip
    result = json.loads(out.read_text())
    stages = {(r["listings"], r["stage"]) for r in result["rows"]}
    assert stages == {
        (n, s) for n in (20000, 40000) for s in ("features", "scoring + top-5 reasons", "audit")
    }
    assert all(0 < r["worker_peak_gb"] < 4 for r in result["rows"])
    assert result["runs"][1]["audit_units"] == 2 * 40000  # two listing policies
