"""The model bundle: everything needed to score and explain, checksummed, without pickle.

A bundle directory holds

- `model.onnx`: the booster as a float64 ONNX graph (`features` -> `raw_score`), scored with
  onnxruntime;
- `model.lgb.txt`: the LightGBM text model, used for explanations and parity checks;
- `features.json`: model input names in matrix order, one-line descriptions, the encoder;
- `calibration.json`: the raw margin -> probability map;
- `metadata.json`: MLflow run id, dataset digest, feature-set versions, created_at, versions;
- `text-<feature>.json` + `text-<feature>.npz` (optional): the n-gram text model behind each
  text score input (`models.text_model`), which the bundle computes from the raw text fields
  listed in `features.json` before the ONNX graph runs;
- `manifest.json`: the sha256 of every other file. `ModelBundle.load` refuses a bundle whose
  files do not match it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.settings import thread_count
from models.calibration import Calibration
from models.encoding import EncodingError, FeatureEncoder
from models.settings import get_settings
from models.text_model import ARRAYS_FILE as ARRAYS
from models.text_model import PARAMS_FILE as PARAMS
from models.text_model import Phrase, TextModel, TextModelError

BUNDLE_FORMAT_VERSION = 1
ONNX_FILE = "model.onnx"
LIGHTGBM_FILE = "model.lgb.txt"
FEATURES_FILE = "features.json"
CALIBRATION_FILE = "calibration.json"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
BUNDLE_FILES = (ONNX_FILE, LIGHTGBM_FILE, FEATURES_FILE, CALIBRATION_FILE, METADATA_FILE)

#: Category value used to probe unseen-category handling in parity checks.
UNSEEN_CATEGORY = "__govrisk_unseen__"

#: Phrases attached to a text score reason.
TEXT_PHRASES_PER_REASON = 5
_MAX_WORST_ROWS = 10
_PARITY_BASE_ROWS = 16


class BundleError(ValueError):
    """A bundle cannot be built, saved or loaded; the message says why and how to fix it."""


class ChecksumError(BundleError):
    """A bundle file does not match the sha256 recorded in its manifest."""


class ParityError(BundleError):
    """onnxruntime and LightGBM disagree; `worst` holds the rows with the largest gaps."""

    def __init__(self, message: str, *, worst: pd.DataFrame) -> None:
        self.worst = worst
        super().__init__(message)


@dataclass(frozen=True)
class Reason:
    """One explanation of a score: a feature, its value and its signed contribution.

    `contribution` is the SHAP value in raw margin (log-odds) units: positive raises the risk.
    """

    feature: str
    description: str
    value: str | float | None
    contribution: float
    #: For a text score input: the text model's phrases, exact log-odds of the text model.
    phrases: tuple[Phrase, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form ({feature, description, value, contribution, phrases})."""
        return {
            "feature": self.feature,
            "description": self.description,
            "value": self.value,
            "contribution": self.contribution,
            "phrases": [p.to_dict() for p in self.phrases],
        }


@dataclass(frozen=True)
class ParityReport:
    """Outcome of a passed parity check."""

    n_rows: int
    max_abs_diff_probability: float
    max_abs_diff_raw: float


class _Explainer(Protocol):
    expected_value_: float

    def shap_values(self, X: np.ndarray) -> np.ndarray: ...

    def top_k(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class ModelBundle:
    """A scored, explainable, checksummed model; build it with `build` or read it with `load`."""

    def __init__(
        self,
        *,
        onnx_model: bytes,
        model_text: str,
        encoder: FeatureEncoder,
        calibration: Calibration,
        features: Mapping[str, str],
        metadata: Mapping[str, Any],
        threads: int | None = None,
        text_models: Mapping[str, TextModel] | None = None,
        text_fields: Sequence[str] = (),
    ) -> None:
        self.onnx_model = onnx_model
        self.model_text = model_text
        self.encoder = encoder
        self.calibration = calibration
        self.features = dict(features)
        self.metadata = dict(metadata)
        self.threads = threads
        self.text_models = dict(text_models or {})
        self.text_fields = tuple(text_fields)
        self._lock = threading.Lock()
        self._booster: Any = None
        self._explainer: _Explainer | None = None
        self._session = self._make_session()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        booster: Any,
        *,
        encoder: FeatureEncoder,
        calibration: Calibration,
        features: Mapping[str, str],
        metadata: Mapping[str, Any],
        text_models: Mapping[str, TextModel] | None = None,
        text_fields: Sequence[str] = (),
    ) -> ModelBundle:
        """Export `booster` to ONNX and assemble a bundle (run `check_parity` before logging).

        `features` maps every model input name to its one-line description; `metadata` should
        carry run_id, dataset_digest and feature_set_versions (any JSON values are kept).
        `text_models` maps text score inputs to the text models computing them from the raw
        `text_fields` (joined in that order).
        """
        from models.onnx_export import booster_to_onnx

        if not encoder.is_fitted():
            raise BundleError("the encoder is not fitted; pass the encoder used for training")
        names = encoder.feature_names_
        missing = [n for n in names if n not in features]
        extra = sorted(set(features) - set(names))
        if missing or extra:
            raise BundleError(
                f"features must describe exactly the model inputs; missing descriptions for "
                f"{missing}, unknown features {extra}"
            )
        try:
            json.dumps(dict(metadata), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"metadata must be JSON-serializable: {exc}") from exc
        unknown_text = sorted(set(text_models or {}) - set(names))
        if unknown_text:
            raise BundleError(f"text models for {unknown_text}, which are not model inputs")
        if text_models and not text_fields:
            raise BundleError("text models need the raw text_fields they read")
        model_text = str(booster.model_to_string())
        onnx_model = booster_to_onnx(booster, feature_names=names).SerializeToString()
        meta = {
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **dict(metadata),
            "bundle_format_version": BUNDLE_FORMAT_VERSION,
            "feature_names": list(names),
            "n_trees": int(booster.num_trees()),
            "versions": _library_versions(),
        }
        return cls(
            onnx_model=onnx_model,
            model_text=model_text,
            encoder=encoder,
            calibration=calibration,
            features={n: str(features[n]) for n in names},
            metadata=meta,
            text_models=text_models,
            text_fields=text_fields,
        )

    # -- persistence --------------------------------------------------------------------------

    def save(self, directory: Path | str, *, overwrite: bool = False) -> Path:
        """Write the bundle files and their manifest to `directory` (atomically)."""
        target = Path(directory)
        if target.exists() and any(target.iterdir()) and not overwrite:
            raise BundleError(f"{target} exists and is not empty; pass overwrite=True")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=target.parent))
        try:
            for name, data in self.to_files().items():
                (staging / name).write_bytes(data)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, directory: Path | str, *, threads: int | None = None) -> ModelBundle:
        """Read a bundle after checking every file against its manifest."""
        root = Path(directory)
        manifest_path = root / MANIFEST_FILE
        if not manifest_path.is_file():
            raise BundleError(f"{root} is not a model bundle: {MANIFEST_FILE} is missing")
        present = {p.name for p in root.iterdir()}
        try:
            listed = set(json.loads(manifest_path.read_bytes())["files"])
        except (ValueError, KeyError, TypeError):
            listed = set(BUNDLE_FILES)
        unexpected = sorted(present - {MANIFEST_FILE, *BUNDLE_FILES, *_text_files(listed)})
        if unexpected:
            raise ChecksumError(
                f"bundle {root} contains files not in its manifest: {unexpected}; refusing to load"
            )
        contents = {name: (root / name).read_bytes() for name in present}
        return cls.from_files(contents, threads=threads, where=str(root))

    @classmethod
    def from_files(
        cls, contents: Mapping[str, bytes], *, threads: int | None = None, where: str = "bundle"
    ) -> ModelBundle:
        """Build from file name -> bytes (manifest included) after verifying every checksum."""
        try:
            manifest = json.loads(contents[MANIFEST_FILE])
            recorded: dict[str, str] = dict(manifest["files"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{where}: {MANIFEST_FILE} is missing or invalid: {exc}") from exc
        if manifest.get("bundle_format_version") != BUNDLE_FORMAT_VERSION:
            raise BundleError(
                f"{where}: bundle format {manifest.get('bundle_format_version')!r} is not "
                f"supported (expected {BUNDLE_FORMAT_VERSION}); re-export the model"
            )
        try:
            features_doc = json.loads(contents.get(FEATURES_FILE) or b"{}")
            text_doc = dict(features_doc.get("text") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            text_doc = {}  # the checksum check below says what is wrong with the file
        text_names = [str(n) for n in text_doc.get("models", [])]
        expected = [*BUNDLE_FILES, *(f for n in text_names for f in _text_model_files(n))]
        if sorted(recorded) != sorted(expected):
            raise ChecksumError(
                f"{where}: manifest lists {sorted(recorded)}, expected {sorted(expected)}"
            )
        for name, digest in recorded.items():
            data = contents.get(name)
            if data is None:
                raise ChecksumError(f"{where}: {name} is missing; refusing to load")
            if _sha256(data) != digest:
                raise ChecksumError(
                    f"{where}/{name} does not match its manifest checksum (sha256 "
                    f"{_sha256(data)[:12]}… != {digest[:12]}…); the bundle was modified or "
                    "corrupted, refusing to load"
                )
        text_models = {}
        for name in text_names:
            json_file, npz_file = _text_model_files(name)
            try:
                text_models[name] = TextModel.from_files(
                    {PARAMS: contents[json_file], ARRAYS: contents[npz_file]}
                )
            except (TextModelError, ValueError, KeyError) as exc:
                raise BundleError(f"{where}: text model {name} cannot be read: {exc}") from exc
        return cls(
            onnx_model=contents[ONNX_FILE],
            model_text=contents[LIGHTGBM_FILE].decode("utf-8"),
            encoder=FeatureEncoder.from_dict(features_doc["encoder"]),
            calibration=Calibration.from_dict(json.loads(contents[CALIBRATION_FILE])),
            features=dict(features_doc["descriptions"]),
            metadata=json.loads(contents[METADATA_FILE]),
            threads=threads,
            text_models=text_models,
            text_fields=[str(f) for f in text_doc.get("fields", [])],
        )

    def to_files(self) -> dict[str, bytes]:
        """File name -> bytes of the saved form, manifest included."""
        contents = self._file_contents()
        manifest = {
            "bundle_format_version": BUNDLE_FORMAT_VERSION,
            "files": {name: _sha256(data) for name, data in contents.items()},
        }
        contents[MANIFEST_FILE] = _json_bytes(manifest)
        return contents

    @property
    def fingerprint(self) -> str:
        """sha256 of the manifest: identifies the exact model, encoder and calibration."""
        cached: str | None = getattr(self, "_fingerprint", None)
        if cached is None:
            cached = _sha256(self.to_files()[MANIFEST_FILE])
            self._fingerprint = cached
        return cached

    def file_checksums(self) -> dict[str, str]:
        """sha256 of each bundle file as `save` would write it."""
        return {name: _sha256(data) for name, data in self._file_contents().items()}

    # -- scoring ------------------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        """Model input names in matrix order."""
        return self.encoder.feature_names_

    @property
    def run_id(self) -> str | None:
        """MLflow run that produced the model, if recorded."""
        value = self.metadata.get("run_id")
        return None if value is None else str(value)

    @property
    def risk_bands(self) -> dict[str, float] | None:
        """Band name -> lower probability bound, if the bundle carries its own bands."""
        bands = self.metadata.get("risk_bands")
        return None if bands is None else {str(k): float(v) for k, v in dict(bands).items()}

    def encode(self, frame: pd.DataFrame, *, strict: bool = False) -> np.ndarray:
        """Check a feature frame's columns and encode it (EncodingError names bad columns).

        With `strict`, rows the encoder flags (infinite values, missing values in features
        never missing in training) are refused too; otherwise they are scored as LightGBM
        would score them.
        """
        frame = self.with_text_scores(frame)
        X = self.encoder.transform(frame)
        if strict:
            problems = self.encoder.row_problems(frame)
            bad = problems.to_numpy() != ""
            if bad.any():
                rows = np.flatnonzero(bad)
                shown = [f"row {int(i)}: {problems.iloc[int(i)]}" for i in rows[:5]]
                more = [f"... and {len(rows) - 5} more row(s)"] if len(rows) > 5 else []
                raise EncodingError(shown + more)
        return X

    def predict(
        self, frame: pd.DataFrame, *, strict: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw margins and calibrated probabilities (each of shape (rows,)) via onnxruntime."""
        return self.predict_matrix(self.encode(frame, strict=strict))

    def predict_matrix(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`predict` for an already encoded float64 matrix."""
        raw = self.raw_score(X)
        return raw, self.calibration.apply(raw)

    def raw_score(self, X: np.ndarray) -> np.ndarray:
        """Raw margins (rows,) of an encoded matrix via onnxruntime."""
        from models.onnx_export import INPUT_NAME, OUTPUT_NAME

        X = self._check_matrix(X)
        out = self._session.run([OUTPUT_NAME], {INPUT_NAME: X})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def native_raw_score(self, X: np.ndarray) -> np.ndarray:
        """Raw margins (rows,) of an encoded matrix via LightGBM itself."""
        X = self._check_matrix(X)
        raw = self.booster.predict(X, raw_score=True, num_threads=self._threads())
        return np.asarray(raw, dtype=np.float64).reshape(-1)

    @property
    def booster(self) -> Any:
        """The LightGBM booster rebuilt from the text model (loaded on first use)."""
        if self._booster is None:
            import lightgbm as lgb

            with self._lock:
                if self._booster is None:
                    self._booster = lgb.Booster(model_str=self.model_text)
        return self._booster

    # -- explanations -------------------------------------------------------------------------

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact SHAP values (rows, features) of an encoded matrix, in raw margin units."""
        X = self._check_matrix(X)
        return np.asarray(self._get_explainer().shap_values(X), dtype=np.float64)

    def top_reasons(self, X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Column indices and SHAP values (rows, k) of each row's k largest |contributions|."""
        k = self._check_k(k)
        X = self._check_matrix(X)
        index, values = self._get_explainer().top_k(X, k)
        return np.asarray(index, dtype=np.int64), np.asarray(values, dtype=np.float64)

    def explain(self, frame: pd.DataFrame, k: int, *, strict: bool = False) -> list[list[Reason]]:
        """Top-k reasons per row of a feature frame, largest |contribution| first.

        A text score reason carries the text model's top phrases when the frame has the raw
        text fields.
        """
        reasons = self.explain_matrix(self.encode(frame, strict=strict), k)
        return self.with_phrases(reasons, frame)

    # -- text models ----------------------------------------------------------------------------

    def with_text_scores(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with every text score input computed from its raw text fields.

        Without text models the frame is returned as is. The raw fields (`text_fields`) must be
        columns of the frame (missing values read as empty text); scores already present are
        replaced, so a score always comes from the text itself.
        """
        if not self.text_models:
            return frame
        missing = [f for f in self.text_fields if f not in frame.columns]
        if missing:
            raise EncodingError(
                [
                    f"{f}: missing column; this model reads the raw text fields "
                    f"{list(self.text_fields)} (its text models compute "
                    f"{sorted(self.text_models)} from them)"
                    for f in missing
                ]
            )
        scores = self.text_scores(self.text_documents(frame))
        out = frame.copy()
        for name, values in scores.items():
            out[name] = values
        return out

    def text_scores(self, documents: Sequence[object]) -> dict[str, np.ndarray]:
        """Text score input name -> log-odds (len(documents),) of each text model."""
        scores = {name: np.empty(len(documents)) for name in self.text_models}
        groups: dict[object, list[str]] = {}
        for name, model in self.text_models.items():
            groups.setdefault(model.analysis_key, []).append(name)
        for names in groups.values():
            # Models reading the same n-grams share one analysis of each document.
            first = self.text_models[names[0]]
            for i, document in enumerate(documents):
                grams = first.analyze(document)
                for name in names:
                    scores[name][i] = self.text_models[name].margin(grams)
        return scores

    def text_documents(self, frame: pd.DataFrame) -> list[str]:
        """The document each row's text models read (its text fields joined by a newline)."""
        from features.text_source import join_fields

        columns = [frame[f].tolist() for f in self.text_fields]
        return [join_fields(values) for values in zip(*columns, strict=True)] if columns else []

    def phrases(self, name: str, fields: Mapping[str, object], *, k: int) -> tuple[Phrase, ...]:
        """Top-k phrases of text score input `name` for one item's raw text fields."""
        model = self.text_models[name]
        pairs = [(f, fields.get(f)) for f in self.text_fields]
        return tuple(model.phrases(pairs, top_k=k))

    def with_phrases(
        self, reasons: list[list[Reason]], frame: pd.DataFrame, *, k: int = TEXT_PHRASES_PER_REASON
    ) -> list[list[Reason]]:
        """Reasons with the text model's phrases attached to each text score reason."""
        if not self.text_models or any(f not in frame.columns for f in self.text_fields):
            return reasons
        out = []
        for i, row_reasons in enumerate(reasons):
            fields = {f: frame[f].iat[i] for f in self.text_fields}
            out.append(
                [
                    replace(r, phrases=self.phrases(r.feature, fields, k=k))
                    if r.feature in self.text_models
                    else r
                    for r in row_reasons
                ]
            )
        return out

    def check_text_parity(self, documents: Sequence[object]) -> float:
        """Largest |Δ log-odds| between the text models as held and as read back from files.

        `documents` should hold holdout texts; empty, very long and non-ASCII texts are added.
        Raises ParityError above 1e-12 (the stored path is meant to be exact).
        """
        docs = [*documents, *_TEXT_EDGE_CASES]
        worst = 0.0
        files = self.to_files()
        for name, model in self.text_models.items():
            json_file, npz_file = _text_model_files(name)
            stored = TextModel.from_files({PARAMS: files[json_file], ARRAYS: files[npz_file]})
            diff = np.abs(stored.decision_function(docs) - model.decision_function(docs))
            single = np.array([model.decision_function([d])[0] for d in docs])
            diff = np.maximum(diff, np.abs(single - model.decision_function(docs)))
            worst = max(worst, float(diff.max(initial=0.0)))
            if worst > 1e-12:
                bad = int(np.argmax(diff))
                raise ParityError(
                    f"text model {name}: stored or one-row scores differ by {worst:.3g} on "
                    f"document {bad} ({str(docs[bad])[:60]!r})",
                    worst=pd.DataFrame({"document": [str(docs[bad])], "diff": [worst]}),
                )
        return worst

    def explain_matrix(self, X: np.ndarray, k: int) -> list[list[Reason]]:
        """`explain` for an already encoded float64 matrix."""
        index, values = self.top_reasons(X, k)
        names = self.feature_names
        return [
            [
                Reason(
                    feature=names[j],
                    description=self.features[names[j]],
                    value=self.display_value(j, float(X[i, j])),
                    contribution=float(values[i, r]),
                )
                for r, j in enumerate(index[i])
            ]
            for i in range(X.shape[0])
        ]

    def display_value(self, column: int, code: float) -> str | float | None:
        """A matrix cell as the original value: category text, number, or None when missing."""
        return self.encoder.decode_value(self.feature_names[column], code)

    def expected_value(self) -> float:
        """The SHAP base value: raw margin = expected value + sum of contributions."""
        return float(self._get_explainer().expected_value_)

    def warm_up(self, *, explain: bool = True) -> None:
        """Run one row through scoring (and explanations) so first requests are not slow."""
        X = np.full((1, len(self.feature_names)), np.nan)
        self.raw_score(X)
        if explain:
            self.top_reasons(X, 1)

    # -- parity -------------------------------------------------------------------------------

    def check_parity(self, frame: pd.DataFrame, *, atol: float = 1e-5) -> ParityReport:
        """Compare onnxruntime with LightGBM on `frame` plus synthetic edge rows.

        Edge rows copy a few rows of `frame` with each feature in turn set missing (and each
        categorical set to an unseen category), and with each numeric split threshold of the
        booster placed exactly on, just below and just above the split. Raises ParityError
        when a calibrated probability or raw margin differs by more than `atol`.
        """
        if len(frame) == 0:
            raise BundleError("parity needs at least one row; pass the holdout feature frame")
        edge = _edge_frame(frame.head(_PARITY_BASE_ROWS), self.encoder)
        X_frame = self.encoder.transform(pd.concat([frame, edge], ignore_index=True))
        X = np.vstack([X_frame, _threshold_rows(self.model_text, X_frame[:_PARITY_BASE_ROWS])])
        source = np.array(
            ["frame"] * len(frame) + ["edge"] * len(edge) + ["threshold"] * (len(X) - len(X_frame)),
            dtype=object,
        )
        return self._compute_parity(X, source, atol=atol)

    def _compute_parity(self, X: np.ndarray, source: np.ndarray, *, atol: float) -> ParityReport:
        raw_onnx = self.raw_score(X)
        raw_native = self.native_raw_score(X)
        p_onnx = self.calibration.apply(raw_onnx)
        p_native = self.calibration.apply(raw_native)
        diff_raw = np.abs(raw_onnx - raw_native)
        diff_p = np.abs(p_onnx - p_native)
        bad = (diff_p > atol) | (diff_raw > atol) | (np.isnan(raw_onnx) != np.isnan(raw_native))
        if bad.any():
            order = np.argsort(-np.nan_to_num(np.maximum(diff_p, diff_raw), nan=np.inf))
            worst_idx = order[:_MAX_WORST_ROWS]
            worst = pd.DataFrame(X[worst_idx], columns=self.feature_names)
            worst.insert(0, "row", worst_idx)
            worst.insert(1, "source", source[worst_idx])
            worst["raw_onnx"] = raw_onnx[worst_idx]
            worst["raw_lightgbm"] = raw_native[worst_idx]
            worst["p_onnx"] = p_onnx[worst_idx]
            worst["p_lightgbm"] = p_native[worst_idx]
            summary = worst[["row", "source", "raw_onnx", "raw_lightgbm", "p_onnx", "p_lightgbm"]]
            raise ParityError(
                f"onnxruntime and LightGBM disagree on {int(bad.sum())} of {len(X)} rows "
                f"(max |Δp| {np.nanmax(diff_p):.3g}, max |Δraw| {np.nanmax(diff_raw):.3g}, "
                f"atol {atol:g}); worst rows:\n{summary.to_string(index=False)}",
                worst=worst,
            )
        return ParityReport(
            n_rows=len(X),
            max_abs_diff_probability=float(np.max(diff_p, initial=0.0)),
            max_abs_diff_raw=float(np.max(diff_raw, initial=0.0)),
        )

    # -- private ------------------------------------------------------------------------------

    def _threads(self) -> int:
        """Threads for explanations and native LightGBM (both split work by rows)."""
        return self.threads if self.threads is not None else thread_count()

    def _make_session(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        settings = get_settings()
        options.intra_op_num_threads = settings.onnx_intra_op_threads
        options.inter_op_num_threads = settings.onnx_inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # One session serves many request threads; don't spin idle cores between calls.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(
                self.onnx_model, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"onnxruntime cannot load the bundle's ONNX graph: {exc}") from exc

    def _get_explainer(self) -> _Explainer:
        if self._explainer is None:
            with self._lock:
                if self._explainer is None:
                    self._explainer = _make_explainer(self.model_text, threads=self._threads())
        return self._explainer

    def _check_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise BundleError(
                f"expected an encoded matrix of shape (rows, {len(self.feature_names)}), "
                f"got {X.shape}; encode frames with bundle.encode(frame)"
            )
        return X

    def _check_k(self, k: int) -> int:
        if not 1 <= k <= len(self.feature_names):
            raise BundleError(f"k must be between 1 and {len(self.feature_names)}, got {k}")
        return int(k)

    def _file_contents(self) -> dict[str, bytes]:
        features_doc = {
            "feature_names": self.feature_names,
            "descriptions": self.features,
            "encoder": self.encoder.to_dict(),
        }
        text_files: dict[str, bytes] = {}
        if self.text_models:
            features_doc["text"] = {
                "fields": list(self.text_fields),
                "models": sorted(self.text_models),
            }
            for name in sorted(self.text_models):
                files = self.text_models[name].to_files()
                json_file, npz_file = _text_model_files(name)
                text_files[json_file] = files[PARAMS]
                text_files[npz_file] = files[ARRAYS]
        return {
            ONNX_FILE: self.onnx_model,
            LIGHTGBM_FILE: self.model_text.encode("utf-8"),
            FEATURES_FILE: _json_bytes(features_doc),
            CALIBRATION_FILE: _json_bytes(self.calibration.to_dict()),
            METADATA_FILE: _json_bytes(self.metadata),
            **text_files,
        }


_TEXT_EDGE_CASES = (
    "",
    None,
    "x" * 20_000,
    "Ünïcödé café naïve — 日本語 テスト İstanbul straße",
    "  tabs\tand\nnewlines   r3plica 0zempic-like  ",
    "REPLICA!!! 100% MIRACLE cure \u200b zero\u00a0width",
    "a",
)


def _text_model_files(name: str) -> tuple[str, str]:
    """Bundle file names of the text model behind input `name`."""
    return f"text-{name}.json", f"text-{name}.npz"


def _text_files(listed: set[str]) -> set[str]:
    return {n for n in listed if n.startswith("text-") and n.endswith((".json", ".npz"))}


def _make_explainer(model_text: str, *, threads: int) -> _Explainer:
    """The project's exact TreeSHAP explainer for this model."""
    from models.explainer import TreeExplainer

    return TreeExplainer(n_threads=threads).fit(model_text)


def _edge_frame(base: pd.DataFrame, encoder: FeatureEncoder) -> pd.DataFrame:
    """Copies of `base` with each feature in turn missing, and each categorical unseen."""
    parts: list[pd.DataFrame] = []
    for col in encoder.categorical:
        for value in (None, UNSEEN_CATEGORY):
            part = base.copy()
            part[col] = pd.Series([value] * len(part), index=part.index, dtype="str")
            parts.append(part)
    for col in encoder.numeric:
        part = base.copy()
        part[col] = pd.Series(np.nan, index=part.index, dtype="float64")
        parts.append(part)
    part = base.copy()
    for col in encoder.categorical:
        part[col] = pd.Series([None] * len(part), index=part.index, dtype="str")
    for col in encoder.numeric:
        part[col] = pd.Series(np.nan, index=part.index, dtype="float64")
    parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _threshold_rows(model_text: str, base: np.ndarray) -> np.ndarray:
    """Rows with one numeric feature on, just below and just above each split threshold."""
    import lightgbm as lgb

    dump = lgb.Booster(model_str=model_text).dump_model()
    thresholds: set[tuple[int, float]] = set()
    stack = [tree["tree_structure"] for tree in dump["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        if node["decision_type"] == "<=":
            thresholds.add((int(node["split_feature"]), float(node["threshold"])))
        stack.extend((node["left_child"], node["right_child"]))
    from models.onnx_export import DUMP_INF_THRESHOLD
    from models.onnx_export import K_ZERO_THRESHOLD as k

    # LightGBM reads |x| <= k as 0.0, so splits near zero also get probes around +-k.
    near_zero = (0.0, -0.0, k, -k, k / 2, -k / 2, np.nextafter(k, 1.0), np.nextafter(-k, -1.0))
    rows: list[np.ndarray] = []
    for n, (feature, threshold) in enumerate(sorted(thresholds)):
        values = [threshold, np.nextafter(threshold, -math.inf), np.nextafter(threshold, math.inf)]
        if abs(threshold) <= 2 * k:
            values.extend(near_zero)
        if abs(threshold) >= DUMP_INF_THRESHOLD:  # the booster's threshold is +-inf
            values.extend((math.inf, -math.inf, np.finfo(np.float64).max))
        for value in values:
            row = base[n % len(base)].copy()
            row[feature] = value
            rows.append(row)
    if not rows:
        return np.empty((0, base.shape[1]))
    return np.vstack(rows)


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for package in ("lightgbm", "onnx", "onnxmltools", "onnxruntime", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            continue
    return out


def _json_bytes(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
