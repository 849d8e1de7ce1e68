"""ModelBundle: ONNX parity with LightGBM, checksums, persistence, explanations, no pickle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from models.bundle import (
    BUNDLE_FILES,
    MANIFEST_FILE,
    BundleError,
    ChecksumError,
    ModelBundle,
    ParityError,
)
from models.calibration import Calibration
from models.encoding import EncodingError, FeatureEncoder
from models.onnx_export import ExportError, booster_to_onnx
from tests.models.bundle_factory import CATEGORICAL, DESCRIPTIONS, NUMERIC, make_frame, train_bundle


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_frame(600, seed=1)


@pytest.fixture(scope="module")
def bundle(data: tuple[pd.DataFrame, np.ndarray]) -> ModelBundle:
    frame, y = data
    return train_bundle(frame, y, n_trees=60)


def _holdout() -> pd.DataFrame:
    frame, _ = make_frame(300, seed=2)
    frame.loc[:20, "listing_category"] = "category-never-seen"
    frame.loc[20:40, "seller_verification"] = None
    frame.loc[40:60, "listing_price"] = np.nan
    return frame


def test_parity_holds_on_holdout_missing_values_unseen_categories_and_thresholds(
    bundle: ModelBundle,
) -> None:
    holdout = _holdout()
    report = bundle.check_parity(holdout, atol=1e-5)
    n_edge = 16 * (2 * len(CATEGORICAL) + len(NUMERIC) + 1)
    assert report.n_rows > len(holdout) + n_edge, "threshold probe rows were added"
    assert report.max_abs_diff_probability <= 1e-5
    assert report.max_abs_diff_raw <= 1e-9  # float64 graph: the same sums as LightGBM
    raw_onnx, p_onnx = bundle.predict(holdout)
    raw_native = bundle.native_raw_score(bundle.encoder.transform(holdout))
    np.testing.assert_allclose(raw_onnx, raw_native, rtol=0, atol=1e-9)
    np.testing.assert_allclose(p_onnx, bundle.calibration.apply(raw_native), rtol=0, atol=1e-9)


def test_float32_onnxmltools_graph_would_misroute_values_next_to_a_split(
    bundle: ModelBundle,
) -> None:
    """Why the graph is float64: the stock float32 conversion breaks exactly here."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = bundle.booster
    n = len(bundle.feature_names)
    stock = onnxmltools.convert_lightgbm(
        booster, initial_types=[("X", FloatTensorType([None, n]))], zipmap=False, target_opset=15
    )
    session = ort.InferenceSession(stock.SerializeToString(), providers=["CPUExecutionProvider"])
    dump = booster.dump_model()
    rows = []
    base = bundle.encoder.transform(_holdout())[0]
    stack = [t["tree_structure"] for t in dump["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        stack += [node["left_child"], node["right_child"]]
        threshold = float(node["threshold"]) if node["decision_type"] == "<=" else None
        if threshold is not None and float(np.float32(threshold)) != threshold:
            row = base.copy()
            # Just above the float64 split but at or below its float32 rounding: LightGBM goes
            # right, a float32 comparison goes left.
            row[node["split_feature"]] = np.nextafter(threshold, np.inf)
            if np.float32(row[node["split_feature"]]) <= np.float32(threshold):
                rows.append(row)
    assert rows, "the model has splits whose threshold is not a float32"
    X = np.vstack(rows)
    native = booster.predict(X)
    stock_p = session.run(None, {"X": X.astype(np.float32)})[1][:, 1]
    ours = 1 / (1 + np.exp(-bundle.raw_score(X)))
    assert np.abs(stock_p - native).max() > 1e-5
    np.testing.assert_allclose(ours, native, rtol=0, atol=1e-12)


def test_parity_failure_reports_the_worst_rows(
    bundle: ModelBundle, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = data
    other = train_bundle(frame, 1 - y, n_trees=20, seed=5)
    mismatched = ModelBundle(
        onnx_model=other.onnx_model,
        model_text=bundle.model_text,
        encoder=bundle.encoder,
        calibration=bundle.calibration,
        features=bundle.features,
        metadata=bundle.metadata,
        threads=1,
    )
    with pytest.raises(ParityError) as info:
        mismatched.check_parity(frame.head(50))
    worst = info.value.worst
    assert 0 < len(worst) <= 10
    assert {"row", "source", "raw_onnx", "raw_lightgbm", "p_onnx", "p_lightgbm"} <= set(worst)
    gaps = np.maximum(
        (worst["p_onnx"] - worst["p_lightgbm"]).abs(),
        (worst["raw_onnx"] - worst["raw_lightgbm"]).abs(),
    ).to_numpy()
    assert gaps[0] > 1e-5 and (np.diff(gaps) <= 0).all()
    assert "disagree" in str(info.value)


def test_save_and_load_round_trip(bundle: ModelBundle, tmp_path: Path) -> None:
    directory = bundle.save(tmp_path / "bundle")
    assert sorted(p.name for p in directory.iterdir()) == sorted([*BUNDLE_FILES, MANIFEST_FILE])
    loaded = ModelBundle.load(directory, threads=1)
    holdout = _holdout()
    for a, b in zip(loaded.predict(holdout), bundle.predict(holdout), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.fingerprint == bundle.fingerprint
    assert loaded.features == DESCRIPTIONS
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["dataset_digest"] == "sha256:test"
    assert meta["feature_set_versions"] == {"listing": "1"}
    assert meta["created_at"].endswith("Z")
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == set(BUNDLE_FILES)
    with pytest.raises(BundleError, match="not empty"):
        bundle.save(directory)


@pytest.mark.parametrize("victim", sorted(BUNDLE_FILES))
def test_tampered_file_refuses_to_load(bundle: ModelBundle, tmp_path: Path, victim: str) -> None:
    directory = bundle.save(tmp_path / "bundle")
    path = directory / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=f"{victim} does not match its manifest checksum"):
        ModelBundle.load(directory)


def test_missing_or_extra_files_refuse_to_load(bundle: ModelBundle, tmp_path: Path) -> None:
    directory = bundle.save(tmp_path / "extra")
    (directory / "model.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(ChecksumError, match="not in its manifest"):
        ModelBundle.load(directory)
    directory = bundle.save(tmp_path / "missing")
    (directory / "calibration.json").unlink()
    with pytest.raises(ChecksumError, match="calibration.json is missing"):
        ModelBundle.load(directory)
    with pytest.raises(BundleError, match="not a model bundle"):
        ModelBundle.load(tmp_path)


def test_bundle_files_are_text_json_or_onnx_never_pickle(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    directory = bundle.save(tmp_path / "bundle")
    for path in directory.iterdir():
        data = path.read_bytes()
        assert not data.startswith(b"\x80"), f"{path.name} looks like a pickle"
        if path.suffix == ".json":
            json.loads(data)
    graph = onnx.load(str(directory / "model.onnx"))
    assert [n.op_type for n in graph.graph.node] == ["TreeEnsemble"]
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert (directory / "model.lgb.txt").read_text().startswith("tree")


def test_predict_validates_columns_and_values(bundle: ModelBundle) -> None:
    frame = _holdout().head(5)
    with pytest.raises(EncodingError, match="'listing_price' is missing"):
        bundle.predict(frame.drop(columns=["listing_price"]))
    bad = frame.assign(listing_discount_depth=[0.1, np.inf, 0.2, 0.3, 0.4])
    with pytest.raises(EncodingError, match="row 1: listing_discount_depth: infinite value"):
        bundle.predict(bad, strict=True)
    raw, _ = bundle.predict(bad)  # lenient by default: scored as LightGBM scores it
    np.testing.assert_array_equal(raw, bundle.native_raw_score(bundle.encoder.transform(bad)))


def test_explain_gives_described_reasons_in_order(bundle: ModelBundle) -> None:
    frame = _holdout().head(6)
    reasons = bundle.explain(frame, 3)
    X = bundle.encoder.transform(frame)
    contributions = bundle.contributions(X)
    raw = bundle.raw_score(X)
    np.testing.assert_allclose(
        contributions.sum(axis=1) + bundle.expected_value(), raw, rtol=0, atol=1e-9
    )
    for i, row in enumerate(reasons):
        assert len(row) == 3
        magnitudes = [abs(r.contribution) for r in row]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert magnitudes[0] == pytest.approx(np.abs(contributions[i]).max())
        for reason in row:
            assert reason.description == DESCRIPTIONS[reason.feature]
            original = frame.iloc[i][reason.feature]
            if reason.feature in CATEGORICAL:
                expected = None if original in ("category-never-seen", None) else original
                assert reason.value == expected or (pd.isna(original) and reason.value is None)
            elif pd.isna(original):
                assert reason.value is None
            else:
                assert reason.value == pytest.approx(float(original))
    with pytest.raises(BundleError, match="k must be between"):
        bundle.explain(frame, 0)


def test_build_requires_a_description_for_every_input(
    data: tuple[pd.DataFrame, np.ndarray], bundle: ModelBundle
) -> None:
    frame, _ = data
    encoder = FeatureEncoder(categorical=CATEGORICAL, numeric=NUMERIC).fit(frame)
    partial = {k: v for k, v in DESCRIPTIONS.items() if k != "listing_price"}
    with pytest.raises(BundleError, match="listing_price"):
        ModelBundle.build(
            bundle.booster,
            encoder=encoder,
            calibration=Calibration.platt(-1.0, 0.0),
            features=partial,
            metadata={},
        )
    with pytest.raises(BundleError, match="JSON"):
        ModelBundle.build(
            bundle.booster,
            encoder=encoder,
            calibration=Calibration.platt(-1.0, 0.0),
            features=DESCRIPTIONS,
            metadata={"when": object()},
        )


def test_export_refuses_what_it_cannot_reproduce() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    X[X[:, 0] > 1, 0] = 0.0
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    params = {"verbosity": -1, "num_threads": 1}
    zero = lgb.train(
        {**params, "objective": "binary", "zero_as_missing": True},
        lgb.Dataset(X, y, feature_name=["a", "b"]),
        num_boost_round=5,
    )
    with pytest.raises(ExportError, match="zero_as_missing"):
        booster_to_onnx(zero, feature_names=["a", "b"])
    regression = lgb.train(
        {**params, "objective": "regression"},
        lgb.Dataset(X, X[:, 1], feature_name=["a", "b"]),
        num_boost_round=5,
    )
    with pytest.raises(ExportError, match="only binary"):
        booster_to_onnx(regression, feature_names=["a", "b"])
    binary = lgb.train(
        {**params, "objective": "binary"},
        lgb.Dataset(X, y, feature_name=["a", "b"]),
        num_boost_round=5,
    )
    with pytest.raises(ExportError, match="do not match"):
        booster_to_onnx(binary, feature_names=["b", "a"])


def test_splits_next_to_zero_follow_lightgbm_reading_tiny_values_as_zero() -> None:
    """LightGBM reads |x| <= 1e-35 as 0.0; the exported graph must route such values alike."""
    from models.onnx_export import K_ZERO_THRESHOLD

    rng = np.random.default_rng(3)
    n = 3000
    values = rng.choice([-2.0, -1.0, 0.0, 1.0, 2.0], size=n)
    other = rng.normal(size=n)
    y = ((values < 0) ^ (other > 0.5)).astype(int)
    frame = pd.DataFrame({"signed": values, "other": other})
    encoder = FeatureEncoder(numeric=["signed", "other"]).fit(frame)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "min_data_in_leaf": 5},
        lgb.Dataset(encoder.transform(frame), y, feature_name=encoder.feature_names_),
        num_boost_round=20,
    )
    dump = booster.dump_model()
    near_zero = [
        float(n["threshold"])
        for t in dump["tree_info"]
        for n in _internal_nodes(t["tree_structure"])
        if abs(float(n["threshold"])) <= K_ZERO_THRESHOLD
    ]
    assert -K_ZERO_THRESHOLD in near_zero, "no split between negative values and zero"
    bundle = ModelBundle.build(
        booster,
        encoder=encoder,
        calibration=Calibration.platt(-1.0, 0.0),
        features={"signed": "a signed count", "other": "noise"},
        metadata={},
    )
    probes = np.array(
        [0.0, -0.0, 1e-36, -1e-36, K_ZERO_THRESHOLD, -K_ZERO_THRESHOLD, 1e-30, -1e-30]
    )
    X = np.column_stack([probes, np.zeros_like(probes)])
    np.testing.assert_array_equal(
        bundle.raw_score(X), booster.predict(X, raw_score=True, num_threads=1)
    )
    assert bundle.check_parity(frame.head(50)).max_abs_diff_raw == 0.0


def _internal_nodes(node: dict[str, object]) -> Iterator[dict[str, object]]:
    if "split_feature" in node:
        yield node
        yield from _internal_nodes(node["left_child"])  # type: ignore[arg-type]
        yield from _internal_nodes(node["right_child"])  # type: ignore[arg-type]


def test_missing_versus_number_splits_keep_huge_and_infinite_values_left() -> None:
    """LightGBM's dump writes the threshold inf of a "NaN vs every number" split as 1e300;
    values above 1e300 (and inf) go left in LightGBM and must in the graph too."""
    rng = np.random.default_rng(4)
    n = 2000
    x = rng.normal(size=n)
    missing = rng.random(n) < 0.4
    x[missing] = np.nan
    y = (missing ^ (rng.random(n) < 0.1)).astype(int)
    frame = pd.DataFrame({"gappy": x, "other": rng.normal(size=n)})
    encoder = FeatureEncoder(numeric=["gappy", "other"]).fit(frame)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "min_data_in_leaf": 5},
        lgb.Dataset(encoder.transform(frame), y, feature_name=encoder.feature_names_),
        num_boost_round=10,
    )
    assert "threshold=inf" in booster.model_to_string(), "no NaN-vs-number split"
    bundle = ModelBundle.build(
        booster,
        encoder=encoder,
        calibration=Calibration.platt(-1.0, 0.0),
        features={"gappy": "often missing", "other": "noise"},
        metadata={},
    )
    probes = np.array([1e300, np.nextafter(1e300, np.inf), 1e308, np.inf, -np.inf, np.nan, 0.0])
    X = np.column_stack([probes, np.zeros_like(probes)])
    np.testing.assert_array_equal(
        bundle.raw_score(X), booster.predict(X, raw_score=True, num_threads=1)
    )
    assert bundle.check_parity(frame.head(50)).max_abs_diff_raw == 0.0


# -- text models ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_bundle() -> tuple[ModelBundle, pd.DataFrame]:
    from tests.models.bundle_factory import make_text_frame, train_text_bundle

    frame, y = make_text_frame(300, seed=3)
    return train_text_bundle(frame, y), make_text_frame(80, seed=4)[0]


def test_text_bundle_round_trips_and_scores_raw_text(
    text_bundle: tuple[ModelBundle, pd.DataFrame], tmp_path: Path
):
    from tests.models.bundle_factory import TEXT_SCORE

    bundle, holdout = text_bundle
    files = bundle.to_files()
    assert {f"text-{TEXT_SCORE}.json", f"text-{TEXT_SCORE}.npz"} <= set(files)
    loaded = ModelBundle.load(bundle.save(tmp_path / "b"))
    assert loaded.text_fields == ("title", "description")
    assert loaded.fingerprint == bundle.fingerprint
    raw = holdout.drop(columns=[TEXT_SCORE], errors="ignore")
    np.testing.assert_array_equal(loaded.predict(raw)[1], bundle.predict(raw)[1])
    # a stale score column is replaced by the score of the text itself
    stale = raw.assign(**{TEXT_SCORE: 99.0})
    np.testing.assert_array_equal(bundle.predict(stale)[1], bundle.predict(raw)[1])
    # one row alone scores as inside the batch
    single = np.array([bundle.predict(raw.iloc[[i]])[1][0] for i in range(len(raw))])
    np.testing.assert_array_equal(single, bundle.predict(raw)[1])


def test_text_bundle_parity_and_missing_text(text_bundle: tuple[ModelBundle, pd.DataFrame]):
    bundle, holdout = text_bundle
    assert bundle.check_text_parity(bundle.text_documents(holdout)) <= 1e-12
    with pytest.raises(EncodingError, match="title: missing column"):
        bundle.predict(holdout.drop(columns=["title"]))


def test_text_bundle_reasons_carry_phrases(text_bundle: tuple[ModelBundle, pd.DataFrame]):
    from tests.models.bundle_factory import TEXT_SCORE

    bundle, holdout = text_bundle
    row = holdout.iloc[[0]].assign(title="Replica leather watch", description="1:1 mirror quality")
    reasons = bundle.explain(row, len(bundle.feature_names))[0]
    text_reason = next(r for r in reasons if r.feature == TEXT_SCORE)
    assert text_reason.phrases and text_reason.phrases[0].contribution > 0
    assert text_reason.phrases[0].text.lower() in {"replica", "1:1", "mirror quality", "mirror"}
    assert all(not r.phrases for r in reasons if r.feature != TEXT_SCORE)
    assert text_reason.to_dict()["phrases"][0]["spans"]


def test_text_bundle_refuses_unlisted_text_file(
    text_bundle: tuple[ModelBundle, pd.DataFrame], tmp_path: Path
):
    bundle, _ = text_bundle
    directory = bundle.save(tmp_path / "b")
    (directory / "text-listing_text_score_other.json").write_text("{}")
    with pytest.raises(ChecksumError):
        ModelBundle.load(directory)
