"""Calibration maps from the model's raw margin (log-odds) to a calibrated probability.

Training fits them with scikit-learn and converts them here, so serving needs neither
scikit-learn nor pickle: a map is a handful of numbers stored as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

_FORMAT_VERSION = 1

CalibrationKind = Literal["isotonic", "platt"]


class CalibrationError(ValueError):
    """A calibration map is malformed; the message says which part and how to fix it."""


@dataclass(frozen=True, eq=False)
class Calibration:
    """A map raw margin -> probability; build it with `isotonic` or `platt`."""

    kind: CalibrationKind
    x_thresholds: np.ndarray
    y_values: np.ndarray
    a: float = 0.0
    b: float = 0.0

    @classmethod
    def isotonic(
        cls, x_thresholds: Sequence[float] | np.ndarray, y_values: Sequence[float] | np.ndarray
    ) -> Calibration:
        """Piecewise-linear map through (x, y) knots, clipped outside the knots.

        Pass `IsotonicRegression(out_of_bounds="clip").X_thresholds_` and `.y_thresholds_`
        fitted on raw margins; `apply` then matches its `predict`.
        """
        x = np.asarray(x_thresholds, dtype=np.float64).copy()
        y = np.asarray(y_values, dtype=np.float64).copy()
        if x.ndim != 1 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
            raise CalibrationError(
                "isotonic calibration needs two 1-D arrays of the same non-zero length "
                f"(got shapes {x.shape} and {y.shape})"
            )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise CalibrationError("isotonic knots must be finite numbers")
        if len(x) > 1 and not (np.diff(x) > 0).all():
            raise CalibrationError(
                "isotonic x_thresholds must be strictly increasing; pass the fitted "
                "IsotonicRegression's X_thresholds_"
            )
        if len(y) > 1 and not (np.diff(y) >= 0).all():
            raise CalibrationError("isotonic y_values must be non-decreasing")
        if y.min() < 0.0 or y.max() > 1.0:
            raise CalibrationError("isotonic y_values are probabilities and must lie in [0, 1]")
        x.setflags(write=False)
        y.setflags(write=False)
        return cls("isotonic", x, y)

    @classmethod
    def platt(cls, a: float, b: float) -> Calibration:
        """Sigmoid map p = 1 / (1 + exp(a * margin + b)), scikit-learn's sigmoid convention."""
        if not (np.isfinite(a) and np.isfinite(b)):
            raise CalibrationError(f"platt parameters must be finite (got a={a}, b={b})")
        empty = np.empty(0, dtype=np.float64)
        empty.setflags(write=False)
        return cls("platt", empty, empty, float(a), float(b))

    def apply(self, raw_margin: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw margins (any shape; NaN stays NaN)."""
        margin = np.asarray(raw_margin, dtype=np.float64)
        if self.kind == "isotonic":
            # np.interp clips to the end knots, as IsotonicRegression(out_of_bounds="clip").
            out = np.interp(margin, self.x_thresholds, self.y_values)
            return np.where(np.isnan(margin), np.nan, out)
        z = self.a * margin + self.b
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(z))

    def shifted(self, offset: float) -> Calibration:
        """The same map with `offset` added to the log-odds of every probability it gives."""
        if not np.isfinite(offset):
            raise CalibrationError(f"a calibration shift must be finite (got {offset})")
        if offset == 0.0:
            return self
        if self.kind == "platt":
            return Calibration.platt(self.a, self.b - float(offset))
        q = np.clip(self.y_values, 1e-6, 1.0 - 1e-6)
        y = 1.0 / (1.0 + np.exp(-(np.log(q / (1.0 - q)) + float(offset))))
        return Calibration.isotonic(self.x_thresholds, y)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the map."""
        if self.kind == "isotonic":
            return {
                "format_version": _FORMAT_VERSION,
                "kind": "isotonic",
                "x_thresholds": [float(v) for v in self.x_thresholds],
                "y_values": [float(v) for v in self.y_values],
            }
        return {"format_version": _FORMAT_VERSION, "kind": "platt", "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Rebuild a map from `to_dict` output."""
        if data.get("format_version") != _FORMAT_VERSION:
            raise CalibrationError(
                f"calibration format_version {data.get('format_version')!r} is not supported"
            )
        kind = data.get("kind")
        try:
            if kind == "isotonic":
                return cls.isotonic(data["x_thresholds"], data["y_values"])
            if kind == "platt":
                return cls.platt(float(data["a"]), float(data["b"]))
        except KeyError as exc:
            raise CalibrationError(f"{kind} calibration is missing {exc.args[0]!r}") from exc
        raise CalibrationError(f"unknown calibration kind {kind!r}; expected isotonic or platt")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Calibration):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.kind, self.a, self.b, self.x_thresholds.tobytes()))
