"""MLflow integration: log a bundle as a pyfunc model ("models from code") and load it back.

The logged model holds the bundle directory as an artifact and refers to `models/_pyfunc_code.py`
for its Python class, so nothing is pickled: MLflow runs that file to get the model object and
`load_context` reads the checksummed bundle. `models:/NAME@champion` therefore resolves both to
a pyfunc (`mlflow.pyfunc.load_model(uri).predict(df)`) and, through `load_bundle`, to the bundle.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.bundle import MANIFEST_FILE, BundleError, ModelBundle

#: Name of the bundle directory inside the MLflow model's artifacts.
ARTIFACT_KEY = "bundle"
_CODE_FILE = Path(__file__).with_name("_pyfunc_code.py")
_REQUIREMENTS = ("mlflow", "lightgbm", "onnxruntime", "numpy", "pandas", "pyarrow", "numba")


def log_bundle(
    bundle: ModelBundle,
    *,
    artifact_path: str = "bundle",
    registered_model_name: str | None = None,
    aliases: Sequence[str] = (),
    parity_frame: pd.DataFrame | None = None,
    parity_atol: float = 1e-5,
) -> Any:
    """Log `bundle` as a pyfunc model in the active MLflow run; returns MLflow's ModelInfo.

    With `registered_model_name` the model is also registered as a new version, and each of
    `aliases` (e.g. "champion") is pointed at that version. With `parity_frame` (the holdout
    feature frame) `bundle.check_parity` runs first: a failing bundle raises ParityError and
    nothing is logged; the parity gaps are logged as run metrics.
    """
    import mlflow

    if mlflow.active_run() is None:
        raise BundleError(
            "log_bundle needs an active MLflow run; call it inside mlflow.start_run()"
        )
    if aliases and registered_model_name is None:
        raise BundleError("aliases need registered_model_name")
    if parity_frame is not None:
        report = bundle.check_parity(parity_frame, atol=parity_atol)
        mlflow.log_metrics(
            {
                "onnx_parity_max_abs_diff_probability": report.max_abs_diff_probability,
                "onnx_parity_max_abs_diff_raw": report.max_abs_diff_raw,
                "onnx_parity_rows": float(report.n_rows),
            }
        )
    with tempfile.TemporaryDirectory(prefix="govrisk-bundle-") as tmp, warnings.catch_warnings():
        # Inputs are validated by the bundle's encoder, not by an MLflow input example.
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        bundle_dir = bundle.save(Path(tmp) / ARTIFACT_KEY)
        info = mlflow.pyfunc.log_model(
            name=artifact_path,
            python_model=str(_CODE_FILE),
            artifacts={ARTIFACT_KEY: str(bundle_dir)},
            registered_model_name=registered_model_name,
            pip_requirements=_pip_requirements(),
            signature=_signature(),
            metadata={
                "govrisk_bundle": {
                    k: bundle.metadata.get(k)
                    for k in ("run_id", "dataset_digest", "feature_set_versions", "created_at")
                },
                "govrisk_bundle_checksums": bundle.file_checksums(),
            },
        )
    version_number = getattr(info, "registered_model_version", None)
    if aliases and registered_model_name is not None and version_number is not None:
        client = mlflow.MlflowClient()
        for alias in aliases:
            client.set_registered_model_alias(registered_model_name, alias, str(version_number))
    return info


def save_pyfunc(bundle: ModelBundle, path: Path | str) -> Path:
    """Write `bundle` as a local MLflow pyfunc model directory (e.g. for `mlflow models serve`)."""
    import mlflow

    target = Path(path)
    with tempfile.TemporaryDirectory(prefix="govrisk-bundle-") as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        bundle_dir = bundle.save(Path(tmp) / ARTIFACT_KEY)
        mlflow.pyfunc.save_model(
            str(target),
            python_model=str(_CODE_FILE),
            artifacts={ARTIFACT_KEY: str(bundle_dir)},
            pip_requirements=_pip_requirements(),
            signature=_signature(),
        )
    return target


def load_bundle(uri: str | Path, *, threads: int | None = None) -> ModelBundle:
    """Load a bundle from `runs:/...`, `models:/NAME@alias`, `models:/NAME/VERSION`, `m-...`
    model URIs, an MLflow model directory or a bundle directory."""
    local, downloaded = _local_directory(uri)
    try:
        return ModelBundle.load(bundle_directory(local), threads=threads)
    finally:
        if downloaded is not None:
            shutil.rmtree(downloaded, ignore_errors=True)


def bundle_directory(path: Path) -> Path:
    """The bundle inside a local path: the path itself, or an MLflow model's artifact."""
    if (path / MANIFEST_FILE).is_file():
        return path
    candidate = path / "artifacts" / ARTIFACT_KEY
    if (path / "MLmodel").is_file() and (candidate / MANIFEST_FILE).is_file():
        return candidate
    raise BundleError(
        f"{path} holds neither a model bundle ({MANIFEST_FILE}) nor an MLflow model logged "
        "with models.pyfunc.log_bundle"
    )


def _local_directory(uri: str | Path) -> tuple[Path, Path | None]:
    """A local directory holding the model, and the temporary download folder if any."""
    text = str(uri)
    if isinstance(uri, Path) or "://" not in text and not text.startswith(("models:", "runs:")):
        path = Path(text).expanduser()
        if not path.exists():
            raise BundleError(f"model path {path} does not exist")
        return path, None
    import mlflow

    # Download to a fresh folder; the bundle is read into memory, then the folder is removed.
    target = Path(tempfile.mkdtemp(prefix="govrisk-model-"))
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=text, dst_path=str(target))
    except Exception as exc:  # MLflow raises several exception types for unknown URIs
        shutil.rmtree(target, ignore_errors=True)
        raise BundleError(f"cannot fetch model {text!r} from MLflow: {exc}") from exc
    return Path(local), target


def _signature() -> Any:
    """Params only: inputs are checked by the bundle's own encoder, which names bad columns."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    return ModelSignature(params=ParamSchema([ParamSpec("explain", "long", 0)]))


def _pip_requirements() -> list[str]:
    out: list[str] = []
    for package in _REQUIREMENTS:
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            out.append(package)
    return out


def predict_frame(bundle: ModelBundle, model_input: Any, *, explain: int = 0) -> pd.DataFrame:
    """The pyfunc prediction: raw_score, probability (and reasons as JSON when explain > 0)."""
    frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
    X = bundle.encode(frame)
    raw, probability = bundle.predict_matrix(X)
    out = pd.DataFrame({"raw_score": raw, "probability": probability})
    if "item_id" in frame.columns:
        out.insert(0, "item_id", frame["item_id"].to_numpy())
    if explain > 0:
        import json

        reasons = bundle.explain_matrix(X, min(explain, len(bundle.feature_names)))
        reasons = bundle.with_phrases(reasons, frame.reset_index(drop=True))
        out["reasons"] = [json.dumps([r.to_dict() for r in row]) for row in reasons]
    return out.astype({"raw_score": np.float64, "probability": np.float64})
