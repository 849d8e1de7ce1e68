"""Model input encoding: a feature frame becomes the float64 matrix the model was trained on.

Categorical features become integer codes into a sorted vocabulary learned at fit time; a
missing or unseen category becomes NaN, which LightGBM and the exported ONNX graph both send
down the "not in the category set" branch (the same branch as a missing value). Numeric and
boolean features become float64 with missing values as NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

_FORMAT_VERSION = 1


class EncodingError(ValueError):
    """A frame or payload cannot be encoded; the message names every offending column.

    `locations` holds (record index, column, message) for payload problems found by
    `encode_records`, so an API can point at the offending field.
    """

    def __init__(
        self, problems: Sequence[str], *, locations: Sequence[tuple[int, str, str]] = ()
    ) -> None:
        self.problems = list(problems)
        self.locations = list(locations)
        body = "\n  ".join(self.problems)
        super().__init__(f"{len(self.problems)} model input problem(s):\n  {body}")


class FeatureEncoder:
    """Encode categorical and numeric feature columns into a float64 matrix.

    Output columns are `categorical` then `numeric`, each in the order given. `nullable` names
    the numeric columns allowed to be missing at scoring time; by default every numeric column
    that had a missing value in the fitting frame (categorical columns are always nullable).
    """

    def __init__(
        self,
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        *,
        nullable: Sequence[str] | None = None,
    ) -> None:
        self.categorical = list(categorical)
        self.numeric = list(numeric)
        self.nullable = None if nullable is None else list(nullable)

    # -- fitted state -------------------------------------------------------------------------

    categories_: dict[str, list[str]]
    nullable_: list[str]

    @property
    def feature_names_(self) -> list[str]:
        """Model input column names, in matrix order."""
        return [*self.categorical, *self.numeric]

    @property
    def categorical_indices_(self) -> list[int]:
        """Matrix column indices of the categorical features (for LightGBM)."""
        return list(range(len(self.categorical)))

    def get_feature_names_out(self) -> list[str]:
        """Model input column names, in matrix order (scikit-learn spelling)."""
        return self.feature_names_

    def is_fitted(self) -> bool:
        """Whether `fit` (or `from_dict`) has set the vocabularies."""
        return hasattr(self, "categories_")

    # -- public API ---------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame) -> FeatureEncoder:
        """Learn sorted category vocabularies and nullable columns from `frame`."""
        self._check_declaration()
        _raise_if(_frame_problems(frame, self.categorical, self.numeric))
        self.categories_ = {
            col: sorted({str(v) for v in frame[col].dropna().unique()}) for col in self.categorical
        }
        if self.nullable is not None:
            unknown = sorted(set(self.nullable) - set(self.numeric))
            if unknown:
                raise EncodingError(
                    [f"nullable column {c!r} is not a declared numeric column" for c in unknown]
                )
            self.nullable_ = list(self.nullable)
        else:
            self.nullable_ = [col for col in self.numeric if bool(frame[col].isna().any())]
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode `frame` as a float64 matrix of shape (rows, len(feature_names_))."""
        self._check_fitted()
        _raise_if(_frame_problems(frame, self.categorical, self.numeric))
        return self._compute_matrix(frame)

    def fit_transform(self, frame: pd.DataFrame) -> np.ndarray:
        """`fit` then `transform`."""
        return self.fit(frame).transform(frame)

    def row_problems(self, frame: pd.DataFrame) -> pd.Series:
        """Per-row reason the row cannot be scored ("" when it can), after column checks.

        Flags infinite numbers anywhere and missing values in numeric columns that are not
        nullable. Unseen categories are not problems: they encode like a missing category.
        """
        self._check_fitted()
        _raise_if(_frame_problems(frame, self.categorical, self.numeric))
        reasons = np.full(len(frame), "", dtype=object)
        nullable = set(self.nullable_)
        for col in self.numeric:
            values = _numeric_values(frame[col])
            bad_inf = np.isinf(values)
            if bad_inf.any():
                _append(reasons, bad_inf, f"{col}: infinite value")
            if col not in nullable:
                bad_nan = np.isnan(values)
                if bad_nan.any():
                    _append(reasons, bad_nan, f"{col}: missing (never missing in training)")
        return pd.Series(reasons, index=frame.index, dtype="str", name="reason")

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode a few payload dicts without pandas (the online path); validates every field.

        Unseen categories encode as missing; check them first with `unseen_categories` when
        they should be refused.
        """
        self._check_fitted()
        matrix = np.empty((len(records), len(self.feature_names_)), dtype=np.float64)
        lookups = self._lookups()
        n_cat = len(self.categorical)
        required = self._required_mask()
        bad_records: list[int] = []
        for i, record in enumerate(records):
            for j, col in enumerate(self.categorical):
                value = record.get(col, _ABSENT)
                if isinstance(value, str):
                    matrix[i, j] = lookups[col].get(value, math.nan)
                elif value is None:
                    matrix[i, j] = math.nan
                else:
                    bad_records.append(i)
                    break
            else:
                values: list[Any] = [record.get(col, _ABSENT) for col in self.numeric]
                if not all(type(v) in _NUMBER_TYPES for v in values):
                    numbers = [None if v is _ABSENT else _as_number(v) for v in values]
                    if any(n is None for n in numbers):
                        bad_records.append(i)
                        continue
                    values = numbers
                row = np.array(values, dtype=np.float64)  # None -> NaN
                if np.isinf(row).any() or (np.isnan(row) & required).any():
                    bad_records.append(i)
                    continue
                matrix[i, n_cat:] = row
        if bad_records:
            locations = [loc for i in bad_records for loc in self._record_problems(i, records[i])]
            raise EncodingError(
                [f"items[{i}].{col}: {msg}" for i, col, msg in locations], locations=locations
            )
        return matrix

    def _record_problems(self, i: int, record: Mapping[str, Any]) -> list[tuple[int, str, str]]:
        """Every problem of one payload dict, in column order (the slow, detailed path)."""
        out: list[tuple[int, str, str]] = []
        nullable = set(self.nullable_)
        for col in self.categorical:
            value = record.get(col, _ABSENT)
            if value is _ABSENT:
                out.append((i, col, "field required"))
            elif value is not None and not isinstance(value, str):
                out.append((i, col, f"expected text (a category), got {type(value).__name__}"))
        for col in self.numeric:
            value = record.get(col, _ABSENT)
            if value is _ABSENT:
                out.append((i, col, "field required"))
                continue
            number = _as_number(value)
            if number is None:
                out.append((i, col, f"expected a number, got {type(value).__name__}"))
            elif math.isinf(number):
                out.append((i, col, "infinite value"))
            elif math.isnan(number) and col not in nullable:
                out.append((i, col, "missing (never missing in training)"))
        return out

    def _required_mask(self) -> np.ndarray:
        cached: np.ndarray | None = getattr(self, "_required_cache", None)
        if cached is None:
            nullable = set(self.nullable_)
            cached = np.array([col not in nullable for col in self.numeric], dtype=bool)
            self._required_cache = cached
        return cached

    def unseen_categories(self, record: Mapping[str, Any]) -> dict[str, str]:
        """Categorical fields of one payload whose value is not in the learned vocabulary."""
        self._check_fitted()
        lookups = self._lookups()
        return {
            col: value
            for col in self.categorical
            if isinstance(value := record.get(col), str) and value not in lookups[col]
        }

    def decode_value(self, column: str, code: float) -> str | float | None:
        """The original value behind one encoded matrix cell (None when missing)."""
        self._check_fitted()
        if math.isnan(code):
            return None
        if column in self.categories_:
            return self.categories_[column][int(code)]
        return code

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the declaration and the fitted vocabularies."""
        self._check_fitted()
        return {
            "format_version": _FORMAT_VERSION,
            "categorical": list(self.categorical),
            "numeric": list(self.numeric),
            "categories": {col: list(v) for col, v in self.categories_.items()},
            "nullable": list(self.nullable_),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        """Rebuild a fitted encoder from `to_dict` output."""
        version = data.get("format_version")
        if version != _FORMAT_VERSION:
            raise EncodingError(
                [f"encoder format_version {version!r} is not supported (expected 1)"]
            )
        try:
            categorical = [str(c) for c in data["categorical"]]
            numeric = [str(c) for c in data["numeric"]]
            categories = {str(k): [str(v) for v in vs] for k, vs in data["categories"].items()}
            nullable = [str(c) for c in data["nullable"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise EncodingError([f"encoder description is malformed: {exc!r}"]) from exc
        encoder = cls(categorical, numeric, nullable=nullable)
        encoder._check_declaration()
        problems = [
            f"categories of {col!r} are not sorted and unique"
            for col, vocab in categories.items()
            if vocab != sorted(set(vocab))
        ]
        if set(categories) != set(categorical):
            problems.append("categories must list exactly the categorical columns")
        _raise_if(problems)
        encoder.categories_ = categories
        encoder.nullable_ = nullable
        return encoder

    # -- private ------------------------------------------------------------------------------

    def _check_declaration(self) -> None:
        names = self.feature_names_
        dupes = sorted({n for n in names if names.count(n) > 1})
        problems = [f"column {n!r} is declared more than once" for n in dupes]
        if not names:
            problems.append("no feature columns declared; pass categorical=[...] and/or numeric=")
        _raise_if(problems)

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise RuntimeError("FeatureEncoder is not fitted; call fit(frame) or from_dict(...)")

    def _lookups(self) -> dict[str, dict[str, float]]:
        cache: dict[str, dict[str, float]] | None = getattr(self, "_lookup_cache", None)
        if cache is None:
            cache = {
                col: {v: float(i) for i, v in enumerate(vocab)}
                for col, vocab in self.categories_.items()
            }
            self._lookup_cache = cache
        return cache

    def _indexes(self) -> dict[str, pd.Index]:
        cache: dict[str, pd.Index] | None = getattr(self, "_index_cache", None)
        if cache is None:
            cache = {col: pd.Index(vocab, dtype="str") for col, vocab in self.categories_.items()}
            self._index_cache = cache
        return cache

    def _compute_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        matrix = np.empty((len(frame), len(self.feature_names_)), dtype=np.float64)
        for j, col in enumerate(self.categorical):
            values = pd.Index(frame[col].astype("str"))
            codes = self._indexes()[col].get_indexer(values).astype(np.float64)
            codes[codes < 0] = np.nan  # missing or unseen
            matrix[:, j] = codes
        offset = len(self.categorical)
        for j, col in enumerate(self.numeric, start=offset):
            matrix[:, j] = _numeric_values(frame[col])
        return matrix


class _Absent:
    """Marker for a payload field that is not present at all."""


_ABSENT: Any = _Absent()


def _raise_if(problems: Sequence[str]) -> None:
    if problems:
        raise EncodingError(problems)


def _frame_problems(
    frame: pd.DataFrame, categorical: Iterable[str], numeric: Iterable[str]
) -> list[str]:
    """Column-level problems: absent columns and wrong dtypes, each naming the column."""
    if not isinstance(frame, pd.DataFrame):
        return [f"expected a pandas DataFrame, got {type(frame).__name__}"]
    problems: list[str] = []
    for col in categorical:
        if col not in frame.columns:
            problems.append(f"column {col!r} is missing (categorical feature)")
        elif not _is_text(frame[col]):
            problems.append(
                f"column {col!r} must hold text categories, got dtype {frame[col].dtype}; "
                "convert it with .astype('str')"
            )
    for col in numeric:
        if col not in frame.columns:
            problems.append(f"column {col!r} is missing (numeric feature)")
        elif not _is_numeric(frame[col]):
            problems.append(
                f"column {col!r} must hold numbers or booleans, got dtype {frame[col].dtype}; "
                "convert it with pd.to_numeric"
            )
    return problems


def _is_text(series: pd.Series) -> bool:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.api.types.infer_dtype(dtype.categories, skipna=True) in ("string", "empty")
    if pd.api.types.is_string_dtype(dtype) and dtype != np.dtype(object):
        return True
    if dtype == np.dtype(object):
        return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")
    # A column that is entirely missing may arrive as float NaN (e.g. from JSON nulls).
    return bool(pd.api.types.is_float_dtype(dtype) and series.isna().all())


def _is_numeric(series: pd.Series) -> bool:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return not pd.api.types.is_complex_dtype(dtype)
    if dtype == np.dtype(object):
        return pd.api.types.infer_dtype(series, skipna=True) in (
            "empty",
            "integer",
            "floating",
            "mixed-integer-float",
            "boolean",
        )
    return False


def _numeric_values(series: pd.Series) -> np.ndarray:
    # Object columns (checked numeric by `_is_numeric`) may mix None, NaN and pd.NA.
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


#: Python types accepted as numbers on the online path (None means missing).
_NUMBER_TYPES = frozenset({float, int, bool, type(None), np.float64, np.int64, np.bool_})


def _as_number(value: Any) -> float | None:
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float | np.integer | np.floating | np.bool_):
        return float(value)
    return None


def _append(reasons: np.ndarray, mask: np.ndarray, reason: str) -> None:
    for i in np.flatnonzero(mask):
        reasons[i] = f"{reasons[i]}; {reason}" if reasons[i] else reason
