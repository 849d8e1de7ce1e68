"""The partitioned audit on Dask estimates what the single audit estimates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.loader import write_tables
from features.partitioned import seller_part
from features.vocabulary import Entity, Policy
from governance.audit.partitioned import audit_partitioned
from governance.audit.pipeline import estimated_metrics, flip_rate_for, likely_errors
from governance.audit.population import build_populations
from governance.audit.settings import AuditSettings
from tests.governance.audit.audit_world import make_world

_TABLES = ("channel_exposure", "strategy_decisions", "audit_labels")


def _write_parts(world, root: Path, n_parts: int) -> list[Path]:
    """Partitions by item (the audit world has one entity), with each partition's scores."""
    parts = []
    for k in range(n_parts):
        folder = root / "data" / f"part-{k:05d}"
        tables = {
            name: df[seller_part(df["item_id"], n_parts) == k].reset_index(drop=True)
            for name, df in world.tables.items()
            if name in _TABLES
        }
        write_tables(folder, tables)
        preds = world.predictions[seller_part(world.predictions["item_id"], n_parts) == k]
        scores = root / "scores" / folder.name
        scores.mkdir(parents=True)
        pd.DataFrame(
            {"item_id": preds["item_id"].astype(str), "probability": preds["p"].astype(float)}
        ).to_parquet(scores / "part-00000.parquet", index=False)
        parts.append(folder)
    return parts


def _single(world, cfg: AuditSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    labels = world.tables["audit_labels"]
    flip_rate, _ = flip_rate_for(labels, cfg)
    pops = build_populations(
        world.tables,
        world.strategies,
        world.predictions,
        flip_rate=flip_rate,
        design_frames=cfg.design_frames,
        calibration=cfg.calibration,
    )
    return estimated_metrics(pops, cfg), likely_errors(pops, pops, labels, cfg, reasons=None)


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize("n_parts", [1, 3])
def test_partitioned_metrics_and_flags_equal_the_single_audit(tmp_path, n_parts):
    from features.cluster import dask_client

    world = make_world(n=2500, seed=3)
    cfg = AuditSettings(calibration="refit", estimate_calibration="refit")
    parts = _write_parts(world, tmp_path, n_parts)
    scores = {(Entity.LISTING, Policy.COUNTERFEIT): tmp_path / "scores"}
    with dask_client(n_workers=1, memory_limit="2GB") as client:
        result = audit_partitioned(parts, world.strategies, scores, client=client, settings=cfg)
    want_metrics, want_flags = _single(world, cfg)
    keys = ["strategy", "channel"] if "strategy" in want_metrics else list(want_metrics.columns[:2])
    got = _sorted(result.metrics, keys)[want_metrics.columns]
    pd.testing.assert_frame_equal(got, _sorted(want_metrics, keys), rtol=1e-9)
    pop = result.populations[(Entity.LISTING, Policy.COUNTERFEIT)]
    assert len(pop) == len(world.predictions)
    assert pop.lost_impressions.sum() > 0
    assert result.flags["item_id"].tolist() == want_flags["item_id"].tolist()
    assert result.flags.columns.tolist() == want_flags.columns.tolist()
    assert all(0 < b < 2e9 for b in result.worker_peak_bytes.values())


def test_a_partition_without_scores_is_one_clear_error(tmp_path):
    from features.cluster import dask_client

    world = make_world(n=600, seed=4)
    parts = _write_parts(world, tmp_path, 2)
    for f in (tmp_path / "scores" / parts[1].name).iterdir():
        f.unlink()
    (tmp_path / "scores" / parts[1].name).rmdir()
    scores = {(Entity.LISTING, Policy.COUNTERFEIT): tmp_path / "scores"}
    with dask_client(n_workers=1, memory_limit="2GB") as client:
        with pytest.raises(FileNotFoundError, match="score it first"):
            audit_partitioned(parts, world.strategies, scores, client=client)


def _units(ids: list[str], p: list[float], refs: tuple[str, ...] = ("s@v1",)):
    from governance.audit.population import PopulationUnits, UnitExposure

    n = len(ids)
    imp = np.arange(n * 2, dtype=float).reshape(n, 2) + float(sum(map(ord, "".join(ids))))
    exposure = UnitExposure(("a", "b"), imp > 0, imp, imp * 2, imp * 0, imp * 0)
    actioned = {r: np.array([[k % 2 == 0, False] for k in range(n)]) for r in refs}
    return PopulationUnits(np.array(ids, dtype=object), np.array(p), exposure, actioned)


def test_join_units_orders_by_id_and_shares_one_copy_across_policies():
    from governance.audit.population import join_units

    a1 = _units(["L3", "L1"], [0.3, 0.1])
    a2 = _units(["L3", "L1"], [0.9, 0.7]).sharing_items_of(a1)
    b1 = _units(["L2"], [0.2])
    b2 = _units(["L2"], [0.8]).sharing_items_of(b1)
    assert a2.item_ids is a1.item_ids and a2.exposure is a1.exposure
    counterfeit = (Entity.LISTING, Policy.COUNTERFEIT)
    discount = (Entity.LISTING, Policy.FAKE_DISCOUNT)
    joined = join_units({counterfeit: [a1, b1], discount: [a2, b2]})
    assert joined[counterfeit].item_ids.tolist() == ["L1", "L2", "L3"]
    assert joined[counterfeit].p_model.tolist() == [0.1, 0.2, 0.3]
    assert joined[discount].p_model.tolist() == [0.7, 0.8, 0.9]
    assert joined[discount].exposure is joined[counterfeit].exposure
    want = np.concatenate([a1.exposure.impressions, b1.exposure.impressions])[[1, 2, 0]]
    assert np.array_equal(joined[counterfeit].exposure.impressions, want)
    assert joined[discount].actioned["s@v1"][:, 0].tolist() == [False, True, True]
