"""MLflow integration: log a bundle from code, resolve aliases, pyfunc predict, no pickle."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.bundle import BundleError, ChecksumError, ModelBundle, ParityError
from models.pyfunc import bundle_directory, load_bundle, log_bundle
from tests.models.bundle_factory import make_frame, train_bundle

NAME = "govrisk-listing-counterfeit"


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private SQLite tracking store and artifact root for this module."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("pyfunc-test", artifact_location=(root / "a").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    yield uri
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame(200, seed=7)[0]


@pytest.fixture(scope="module")
def logged(tracking: str, frame: pd.DataFrame) -> tuple[ModelBundle, str, str]:
    """A bundle logged and registered as champion; returns it, the run id and model URI."""
    import mlflow

    del tracking
    train, y = make_frame(500, seed=3)
    bundle = train_bundle(train, y, n_trees=25)
    with mlflow.start_run() as run:
        info = log_bundle(
            bundle, registered_model_name=NAME, aliases=["champion"], parity_frame=frame
        )
    return bundle, run.info.run_id, str(info.model_uri)


def test_alias_run_and_model_uris_resolve_to_the_same_bundle(
    logged: tuple[ModelBundle, str, str], frame: pd.DataFrame
) -> None:
    bundle, run_id, model_uri = logged
    expected = bundle.predict(frame)
    for uri in (
        f"models:/{NAME}@champion",
        f"models:/{NAME}/1",
        f"runs:/{run_id}/bundle",
        model_uri,
    ):
        loaded = load_bundle(uri, threads=1)
        assert loaded.fingerprint == bundle.fingerprint, uri
        np.testing.assert_array_equal(loaded.predict(frame)[1], expected[1])


def test_pyfunc_load_model_predicts_like_the_bundle(
    logged: tuple[ModelBundle, str, str], frame: pd.DataFrame
) -> None:
    import mlflow

    bundle, _, _ = logged
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    out = model.predict(frame)
    assert list(out.columns) == ["item_id", "raw_score", "probability"]
    raw, probability = bundle.predict(frame)
    np.testing.assert_array_equal(out["raw_score"].to_numpy(), raw)
    np.testing.assert_array_equal(out["probability"].to_numpy(), probability)
    assert out["item_id"].tolist() == frame["item_id"].tolist()
    explained = model.predict(frame.head(3), params={"explain": 2})
    assert explained["reasons"].str.startswith('[{"feature"').all()


def test_logged_model_has_no_pickle_and_parity_metrics(
    logged: tuple[ModelBundle, str, str],
) -> None:
    import mlflow

    _, run_id, model_uri = logged
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert path.suffix not in (".pkl", ".pickle", ".joblib"), path
        assert not path.read_bytes()[:2] == b"\x80\x04", f"{path} is a pickle"
    mlmodel = (local / "MLmodel").read_text()
    assert "python_model:" not in mlmodel, "the python model must not be pickled"
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel
    assert "_pyfunc_code.py" in mlmodel
    assert (bundle_directory(local) / "manifest.json").is_file()
    metrics = mlflow.get_run(run_id).data.metrics
    assert metrics["onnx_parity_max_abs_diff_probability"] <= 1e-5


def test_a_bundle_failing_parity_is_not_logged(
    tracking: str, logged: tuple[ModelBundle, str, str], frame: pd.DataFrame
) -> None:
    import mlflow

    del tracking
    bundle, _, _ = logged
    other = train_bundle(*make_frame(300, seed=11), n_trees=10, seed=2)
    broken = ModelBundle(
        onnx_model=other.onnx_model,
        model_text=bundle.model_text,
        encoder=bundle.encoder,
        calibration=bundle.calibration,
        features=bundle.features,
        metadata=bundle.metadata,
    )
    client = mlflow.MlflowClient()
    before = len(client.search_model_versions(f"name='{NAME}'"))
    with mlflow.start_run(), pytest.raises(ParityError):
        log_bundle(broken, registered_model_name=NAME, parity_frame=frame)
    assert len(client.search_model_versions(f"name='{NAME}'")) == before
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"


def test_log_bundle_needs_an_active_run(logged: tuple[ModelBundle, str, str]) -> None:
    with pytest.raises(BundleError, match="active MLflow run"):
        log_bundle(logged[0])


def test_load_bundle_from_local_paths(logged: tuple[ModelBundle, str, str], tmp_path: Path) -> None:
    bundle = logged[0]
    directory = bundle.save(tmp_path / "b")
    assert load_bundle(directory).fingerprint == bundle.fingerprint
    assert load_bundle(str(directory)).fingerprint == bundle.fingerprint
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")
    (directory / "features.json").write_text("{}")
    with pytest.raises(ChecksumError):
        load_bundle(directory)
