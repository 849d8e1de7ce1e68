"""`training.tracking`: what a logged dataset input records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.registry import use_tracking_uri
from training.tracking import log_dataset

pytestmark = pytest.mark.xdist_group("training-mlflow")


def _frame(n: int = 2500) -> pd.DataFrame:
    """Columns whose type or missing values only show after the first 1,000 rows."""
    rng = np.random.default_rng(0)
    late = np.arange(n) >= 2000
    return pd.DataFrame(
        {
            "item_id": pd.array([f"i{i}" for i in range(n)], dtype="str"),
            "reviewed_at": pd.date_range("2025-01-06", periods=n, freq="h", tz="UTC"),
            "price": rng.normal(size=n),
            "price_late_missing": np.where(np.arange(n) == 2400, np.nan, rng.normal(size=n)),
            "category": pd.array(np.where(late, "bags", None), dtype="str"),
            "brand_late": pd.Series(np.where(late, "acme", None), dtype=object),
            "count_late": pd.Series(np.where(late, 3, None), dtype=object),
            "verified": pd.array([True] * (n - 1) + [None], dtype="boolean"),
            "hits": rng.integers(0, 5, n),
            "seller": pd.Categorical(rng.choice(["a", "b"], n)),
            "label": rng.integers(0, 2, n).astype("int8"),
            "weight": rng.random(n),
        }
    )


def test_logged_schema_describes_every_column_as_full_inference_does(
    new_store: Callable[[Path], str], tmp_path: Path
) -> None:
    import mlflow
    from mlflow.types.utils import _infer_schema

    frame = _frame()
    use_tracking_uri(new_store(tmp_path))
    experiment_id = mlflow.create_experiment("schema", artifact_location=str(tmp_path / "a"))
    with mlflow.start_run(experiment_id=experiment_id) as run:
        log_dataset(frame, name="d", context="training", source=str(tmp_path), digest="0" * 32)
    (logged,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    schema = json.loads(logged.dataset.schema)["mlflow_colspec"]
    assert [c["name"] for c in schema] == list(frame.columns)
    # The reference: MLflow's own inference over every cell of the frame.
    assert schema == _infer_schema(frame).to_dict()
    by_name = {c["name"]: c for c in schema}
    assert by_name["brand_late"]["type"] == "string"
    assert by_name["count_late"]["type"] != "any"
    assert not by_name["price_late_missing"]["required"]
    assert not by_name["verified"]["required"]
    assert by_name["price"]["required"]
