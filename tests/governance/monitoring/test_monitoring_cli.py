"""`govrisk monitor` and `govrisk alerts load` end to end on a tiny simulated world."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from governance.monitoring.tables import MONITOR_TABLES, check_frame
from govrisk import build_app

#: A simulated world with nightly enforcement takes ~30 s of CPU.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("monitor-world")
    args = ["simulate", "--out", str(out), "--listings", "300", "--days", "21", "--seed", "3"]
    result = CliRunner().invoke(build_app(), [*args, "--audit-labels", "100"])
    assert result.exit_code == 0, result.output
    return out / "data"


def test_monitor_writes_declared_tables_report_and_escalations(
    world: Path, tmp_path: Path, cheap_password_hashing: None
) -> None:
    out = tmp_path / "monitor"
    args = ["monitor", "--data", str(world), "--out", str(out), "--open-escalations"]
    result = CliRunner().invoke(build_app(), [*args, "--data-dir", str(tmp_path / "service")])
    assert result.exit_code == 0, result.output
    assert "Trust per channel" in result.output and "escalations:" in result.output
    for name, spec in MONITOR_TABLES.items():
        df = pd.read_parquet(out / f"{name}.parquet")
        assert check_frame(df, spec) == [], name
        assert list(df.columns) == spec.column_names
    html = (out / "monitoring.html").read_text()
    assert html.count("<svg") >= 4 and "http" not in html.split("<svg", 1)[0].lower()
    for section in ("strategy-precision", "strategy-appeals", "launch-coverage", "model-side"):
        assert f'id="{section}"' in html, section
    again = CliRunner().invoke(
        build_app(),
        [
            "alerts",
            "load",
            "--path",
            str(out / "alerts.parquet"),
            "--data-dir",
            str(tmp_path / "service"),
        ],
    )
    assert again.exit_code == 0, again.output
    assert "0 opened" in again.output


def test_monitor_names_a_missing_table(world: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "tables").mkdir(parents=True)
    for p in (world / "tables").glob("*.parquet"):
        if p.stem != "outcomes":
            (data / "tables" / p.name).write_bytes(p.read_bytes())
    result = CliRunner().invoke(
        build_app(), ["monitor", "--data", str(data), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2  # bad input (govrisk's convention)
    assert "outcomes" in result.output


_ID_COLUMNS = {
    "listing": ("listings", "listing_id"),
    "video": ("videos", "video_id"),
    "live": ("live_sessions", "live_id"),
    "seller": ("sellers", "seller_id"),
}


def _predictions(world: Path, policies: dict[str, list[str]], p: float) -> pd.DataFrame:
    """A constant score `p` for every item of each entity and each of its `policies`."""
    rows = []
    for entity, (table, column) in _ID_COLUMNS.items():
        ids = pd.read_parquet(world / "tables" / f"{table}.parquet")[column].astype(str)
        for policy in policies.get(entity, []):
            rows.append(pd.DataFrame({"item_id": ids, "entity": entity, "policy": policy}))
    return pd.concat(rows, ignore_index=True).assign(p=p)


def test_monitor_with_predictions_writes_view_rates_and_precisions(
    world: Path, tmp_path: Path
) -> None:
    from experiments.simulator.policies import ENTITY_POLICIES
    from governance.monitoring.tables import MODEL_TABLES

    policies = {e.value: [str(p) for p in ps] for e, ps in ENTITY_POLICIES.items()}
    _predictions(world, policies, 0.2).to_parquet(tmp_path / "predictions.parquet")
    out = tmp_path / "monitor"
    args = ["monitor", "--data", str(world), "--out", str(out)]
    result = CliRunner().invoke(
        build_app(), [*args, "--predictions", str(tmp_path / "predictions.parquet")]
    )
    assert result.exit_code == 0, result.output
    for name, spec in MODEL_TABLES.items():
        df = pd.read_parquet(out / f"{name}.parquet")
        assert check_frame(df, spec) == [] and len(df), name
    model_side = (out / "monitoring.html").read_text().split('id="model-side"', 1)[1]
    assert "Prediction drift" in model_side and "--predictions" not in model_side
    vvr = pd.read_parquet(out / "violative_view_rate.parquet")
    assert ((vvr["vvr_low"] <= vvr["vvr"]) & (vvr["vvr"] <= vvr["vvr_high"])).all()


def test_monitor_with_only_any_violation_scores_borrows_them_for_view_rates(
    world: Path, tmp_path: Path
) -> None:
    """The demo's audit writes each entity's any-violation scores as policy `any`: the view
    rates of every policy are still estimated (the any score recalibrated to each policy's
    labels), but label-free precision is reported for the `any` models only."""
    preds = _predictions(world, {"listing": ["any"], "video": ["any"]}, 0.6)
    # a scoring log: earlier scores of the same items are not today's
    earlier = preds.assign(p=0.3, scored_at=pd.Timestamp("2000-01-01"))
    log = pd.concat([preds.assign(scored_at=pd.Timestamp("2100-01-01")), earlier])
    log.to_parquet(tmp_path / "predictions.parquet")
    out = tmp_path / "monitor"
    args = ["monitor", "--data", str(world), "--out", str(out)]
    result = CliRunner().invoke(
        build_app(), [*args, "--predictions", str(tmp_path / "predictions.parquet")]
    )
    assert result.exit_code == 0, result.output
    precision = pd.read_parquet(out / "model_precision.parquet")
    assert set(precision["policy"]) == {"any"}
    assert set(precision["entity"]) == {"listing", "video"}
    assert (precision["expected_precision"] == 0.6).all()
    vvr = pd.read_parquet(out / "violative_view_rate.parquet")
    assert set(vvr["policy"]) >= {"counterfeit", "misleading_claim"}
    assert ((vvr["vvr_low"] <= vvr["vvr"]) & (vvr["vvr"] <= vvr["vvr_high"])).all()
