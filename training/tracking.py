"""MLflow logging of training runs: where runs go and what each one records.

The tracking store is `--tracking-uri`, else MLFLOW_TRACKING_URI, else MLflow's default local
SQLite file `sqlite:///mlflow.db` in the working directory (a PostgreSQL URI works the same way).
Nothing is configured at import; `configure` is called by the pipeline.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pandas as pd

from models.registry import (
    CALIBRATION_FILE,
    ENCODER_FILE,
    MODEL_TEXT_FILE,
    RUN_MODEL_DIR,
    use_tracking_uri,
)
from training.fit import FittedTarget


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at the resolved tracking URI; returns it."""
    return use_tracking_uri(tracking_uri)


def ensure_experiment(name: str, *, artifact_location: str | None = None) -> str:
    """Id of experiment `name`, created (with `artifact_location` if given) when missing."""
    import mlflow

    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        experiment_id = str(existing.experiment_id)
    else:
        experiment_id = str(mlflow.create_experiment(name, artifact_location=artifact_location))
    return experiment_id


def log_params(params: Mapping[str, Any]) -> None:
    """Log parameters, values rendered as strings (MLflow caps them at 6000 characters)."""
    import mlflow

    mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Log finite metrics; NaN and infinite values are left out."""
    import mlflow

    clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
    if clean:
        mlflow.log_metrics(clean)


def log_dataset(frame: pd.DataFrame, *, name: str, context: str, source: str, digest: str) -> None:
    """Record a dataset as an MLflow run input with its content digest."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        # A local path matches MLflow's local artifact source twice; integer columns get a
        # schema hint meant for model signatures. Neither applies to a logged training set.
        warnings.filterwarnings("ignore", message=".*interpreted in multiple ways.*")
        warnings.filterwarnings("ignore", message=".*integer column.*")
        dataset = from_pandas(frame, source=source, name=name, targets="label", digest=digest)
        # MLflow infers the schema cell by cell (about 40 s per 300k x 100 frame); infer it
        # from a witness with a present and (where there is one) a missing value of every
        # column. `schema` is a functools.cached_property, which reads the instance dict first.
        dataset.__dict__["schema"] = infer_signature(_schema_witness(frame)).inputs
        mlflow.log_input(dataset, context=context)


def _schema_witness(frame: pd.DataFrame, *, head: int = 1000) -> pd.DataFrame:
    """A few rows of `frame` with the same column types, values and missing-value pattern.

    The first `head` rows plus, for every column, its first missing and first present row: a
    column's type is inferred from a present value and its `required` flag from a missing one.
    """
    rows = set(range(min(head, len(frame))))
    for column in frame:
        missing = frame[column].isna().to_numpy()
        if missing.any():
            rows.add(int(missing.argmax()))
        if not missing.all():
            rows.add(int((~missing).argmax()))
    return frame.iloc[sorted(rows)]


def log_model_files(fit: FittedTarget) -> None:
    """Log the plain model files (LightGBM text, encoder and calibration JSON) under `govrisk/`."""
    import mlflow

    mlflow.log_text(fit.model_text, f"{RUN_MODEL_DIR}/{MODEL_TEXT_FILE}")
    mlflow.log_dict(fit.encoder.to_dict(), f"{RUN_MODEL_DIR}/{ENCODER_FILE}")
    mlflow.log_dict(fit.calibration.to_dict(), f"{RUN_MODEL_DIR}/{CALIBRATION_FILE}")
    mlflow.log_dict(dict(fit.training_set.feature_types), f"{RUN_MODEL_DIR}/feature_types.json")


def log_lightgbm_model(booster: lgb.Booster, *, name: str = "model") -> str:
    """Log the booster with MLflow's LightGBM flavour (text format, no pickle); returns its URI."""
    import mlflow.lightgbm

    info = mlflow.lightgbm.log_model(
        booster, name=name, pip_requirements=[f"lightgbm=={lgb.__version__}"]
    )
    return str(info.model_uri)


def log_bytes(content: bytes, artifact_file: str) -> None:
    """Log bytes as one run artifact at `artifact_file` (folder/name)."""
    import tempfile

    import mlflow

    folder, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="govrisk-artifact-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        mlflow.log_artifact(str(path), artifact_path=folder or None)


def log_onnx(onnx_model: bytes) -> None:
    """Log the served ONNX graph beside the plain model files (`govrisk/model.onnx`)."""
    log_bytes(onnx_model, f"{RUN_MODEL_DIR}/model.onnx")


def log_file(path: Path, artifact_dir: str | None = None) -> None:
    """Log one local file as a run artifact."""
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_dir)


def log_frame(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log a frame as a CSV artifact."""
    import mlflow

    mlflow.log_text(frame.to_csv(index=False), artifact_file)


def log_json(data: Any, artifact_file: str) -> None:
    """Log JSON-able data as an artifact."""
    import mlflow

    mlflow.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set run tags, values as strings."""
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items()})
