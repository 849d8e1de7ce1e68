"""Exact SHAP explanations of LightGBM risk scores, several times faster than `pred_contrib`.

`TreeExplainer().fit(model_text)` parses the LightGBM text model once; `shap_values(X)` then
returns what `shap.TreeExplainer(booster).shap_values(X)` and `booster.predict(X,
pred_contrib=True)[:, :-1]` return (path-dependent TreeSHAP in raw margin space, |Δ| ~ 1e-14),
and `top_k(X, k)` the k strongest contributions of each row. The algorithm is described in
`models.treeshap`.

The numba kernels compile once per machine and source version (about 2.5 s of CPU, cached on
disk in the package's __pycache__, or NUMBA_CACHE_DIR when that is not writable); later
processes load them in under a second. `fit` parses the model (about 0.2 s for 250 trees) and
runs a one-row warm-up by default, so neither cost lands on the first request.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal, NamedTuple, Self

import numpy as np
from numpy.typing import NDArray

from models import treeshap

if TYPE_CHECKING:
    import lightgbm


class TopK(NamedTuple):
    """The k strongest SHAP contributions of each row, strongest first."""

    indices: NDArray[np.int64]  # (n_rows, k) feature positions
    values: NDArray[np.float64]  # (n_rows, k) contributions in raw margin (log-odds) units


class TreeExplainer:
    """Exact path-dependent SHAP values of a LightGBM model, scikit-learn style.

    `n_threads` splits batches of at least 64 rows per thread over plain threads (the kernels
    release the GIL); None reads `GOVRISK_THREADS`. Instances are safe to share between threads
    once fitted.
    """

    def __init__(self, *, n_threads: int | None = None, warm_up: bool = True) -> None:
        self.n_threads = n_threads
        self.warm_up = warm_up

    def fit(self, model: lightgbm.Booster | str) -> Self:
        """Parse a LightGBM Booster or text model (`Booster.model_to_string()`)."""
        text = model if isinstance(model, str) else _model_text(model)
        n_threads = self.n_threads if self.n_threads is not None else _default_threads()
        if n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        self.ensemble_ = treeshap.parse_model(text)
        self.n_threads_ = n_threads
        self.expected_value_ = self.ensemble_.expected_value
        self.n_features_in_ = self.ensemble_.n_features
        self.feature_names_in_ = np.asarray(self.ensemble_.feature_names, dtype=object)
        self.objective_ = self.ensemble_.objective
        self.warm_up_seconds_ = 0.0
        if self.warm_up:
            start = time.perf_counter()
            row = np.zeros((1, self.n_features_in_))
            treeshap.shap_values(self.ensemble_, row)
            treeshap.predict_raw(self.ensemble_, row)
            self.warm_up_seconds_ = time.perf_counter() - start
        return self

    def shap_values(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """SHAP values (n_rows, n_features) of X (n_rows, n_features) float64, NaN = missing."""
        ensemble = self._fitted()
        return treeshap.shap_values(ensemble, X, n_threads=self.n_threads_)

    def predict_raw(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """Raw margin (n_rows,), equal to expected_value_ + shap_values(X).sum(axis=1)."""
        return treeshap.predict_raw(self._fitted(), X)

    def top_k(
        self, X: NDArray[np.float64], k: int, *, by: Literal["abs", "positive"] = "abs"
    ) -> TopK:
        """The k strongest contributions of each row of X, exact (same values as shap_values).

        `by="abs"` ranks by magnitude, `by="positive"` by signed value (strongest push towards
        risk first). Ties go to the lower feature position.
        """
        ensemble = self._fitted()
        if not 1 <= k <= ensemble.n_features:
            raise ValueError(f"k must be between 1 and {ensemble.n_features}, got {k}")
        values = treeshap.shap_values(ensemble, X, n_threads=self.n_threads_)
        indices, top = treeshap.top_k(values, k, by=by)
        return TopK(indices=indices, values=top)

    def _fitted(self) -> treeshap.TreeEnsemble:
        ensemble: treeshap.TreeEnsemble | None = getattr(self, "ensemble_", None)
        if ensemble is None:
            raise RuntimeError("this TreeExplainer is not fitted yet; call fit(model) first")
        return ensemble


def _model_text(model: object) -> str:
    booster = getattr(model, "booster_", model)  # LGBMClassifier and friends
    to_string = getattr(booster, "model_to_string", None)
    if to_string is None:
        raise TypeError(
            f"model must be a lightgbm.Booster, an LGBM estimator or LightGBM model text, "
            f"got {type(model).__name__}"
        )
    text: str = to_string()
    return text


def _default_threads() -> int:
    from features.settings import thread_count

    return thread_count()
