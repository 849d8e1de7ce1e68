"""The scoring contract of one model: its inputs, their kinds and domains, and the JSON schema.

A bundle's inputs come from its encoder (names, categories, which may be missing) and, when the
bundle records its entity, from the feature declarations (`features.catalog`): which numeric
inputs are booleans and which are never negative. The same description drives the request
schema `/openapi.json` shows for `POST /v1/score` and the checks the route applies, so a
request valid under the schema is scored and an out-of-domain value is a 422 naming the field.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.schema import Feature, FeatureKind, feature_from_dict
from models.bundle import ModelBundle
from serving.limits import MAX_SAFE_INT


@dataclass(frozen=True)
class ModelInput:
    """One input of a model as a caller sends it."""

    name: str
    kind: FeatureKind
    description: str
    #: May be null (missing); the key must still be sent.
    nullable: bool
    #: Known categories of a categorical input (others are refused online).
    categories: tuple[str, ...] = ()
    #: Smallest valid value of a numeric input (None: unbounded).
    minimum: float | None = None
    #: Computed from the raw text fields when they are sent (a text score), so optional.
    from_text: bool = False


_CACHE: weakref.WeakKeyDictionary[ModelBundle, tuple[ModelInput, ...]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def model_inputs(bundle: ModelBundle) -> tuple[ModelInput, ...]:
    """The inputs of `bundle`, in model input order (computed once per bundle)."""
    with _CACHE_LOCK:
        found = _CACHE.get(bundle)
        if found is None:
            found = _compute_inputs(bundle)
            _CACHE[bundle] = found
        return found


def catalog_entity(bundle: ModelBundle) -> str | None:
    """The entity whose feature catalogue (and raw fields) describe the bundle's inputs; None
    for a model without an entity or with its own declaration (bring your own data)."""
    if bundle.metadata.get("feature_declaration") is not None:
        return None
    entity = bundle.metadata.get("entity")
    return None if entity is None else str(entity)


def declared_features(bundle: ModelBundle) -> dict[str, Feature]:
    """The declarations of the bundle's inputs: its own (bring your own data), else the
    catalogue's for its entity (empty when it names none this version declares)."""
    own = bundle.metadata.get("feature_declaration")
    if own is not None:
        return {f.name: f for f in map(feature_from_dict, own)}
    entity = catalog_entity(bundle)
    if entity is None:
        return {}
    from features.catalog import frame_features
    from features.vocabulary import Entity

    try:
        return {f.name: f for f in frame_features(Entity(entity))}
    except ValueError:  # an entity this version does not declare: encoder kinds only
        return {}


def _compute_inputs(bundle: ModelBundle) -> tuple[ModelInput, ...]:
    encoder = bundle.encoder
    declared = declared_features(bundle)
    nullable = set(encoder.nullable_)
    out = [
        ModelInput(
            name=name,
            kind="categorical",
            description=bundle.features.get(name, ""),
            nullable=True,
            categories=tuple(encoder.categories_[name]),
        )
        for name in encoder.categorical
    ]
    for name in encoder.numeric:
        feature = declared.get(name)
        kind: FeatureKind = (
            "boolean" if feature is not None and feature.kind == "boolean" else ("numeric")
        )
        out.append(
            ModelInput(
                name=name,
                kind=kind,
                description=bundle.features.get(name, ""),
                nullable=name in nullable,
                minimum=None if feature is None else feature.minimum,
                from_text=name in bundle.text_models,
            )
        )
    return tuple(out)


def value_problem(model_input: ModelInput, value: Any) -> str | None:
    """Why `value` is not a valid value of `model_input` by its kind and domain (or None).

    Missing keys, nulls where never missing and unknown categories are checked by the encoder
    and the scoring route; this adds what they let through: booleans given as numbers and
    numbers as booleans, and values outside the declared domain.
    """
    if value is None:
        return None
    if model_input.kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if model_input.kind == "numeric":
        if isinstance(value, bool):
            return "must be a number, not true or false"
        if not isinstance(value, int | float):
            return None
        if model_input.minimum is not None and value < model_input.minimum:
            return f"must be >= {model_input.minimum:g} (its declared domain)"
        if abs(value) > MAX_SAFE_INT:
            return f"must be within +-{MAX_SAFE_INT} (larger numbers are not exact)"
    return None


def record_problems(
    inputs: Sequence[ModelInput], record: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(input name, message) for each value of `record` outside its input's kind or domain."""
    out: list[tuple[str, str]] = []
    for model_input in inputs:
        message = value_problem(model_input, record.get(model_input.name))
        if message is not None:
            out.append((model_input.name, message))
    return out


def clamp_to_domain(inputs: Sequence[ModelInput], record: dict[str, Any]) -> list[str]:
    """Raise values below their declared minimum to it, in place; one warning per value raised.

    For features the service computed itself (from raw fields and a snapshot), where the
    caller cannot fix the value: an item published after the snapshot's cutoff would otherwise
    get a negative age.
    """
    warnings: list[str] = []
    for model_input in inputs:
        value = record.get(model_input.name)
        if (
            model_input.kind == "numeric"
            and model_input.minimum is not None
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and not math.isnan(value)
            and value < model_input.minimum
        ):
            record[model_input.name] = model_input.minimum
            warnings.append(
                f"{model_input.name}: computed {value:g} is below its domain; scored as "
                f"{model_input.minimum:g} (the item is newer than the feature snapshot)"
            )
    return warnings


def features_schema(bundle: ModelBundle) -> dict[str, Any]:
    """JSON schema of an item's `features` object for `bundle` (OpenAPI 3.1)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for model_input in model_inputs(bundle):
        schema: dict[str, Any]
        if model_input.kind == "categorical":
            schema = {"type": "string", "enum": list(model_input.categories)}
        elif model_input.kind == "boolean":
            schema = {"type": "boolean"}
        else:
            low = -MAX_SAFE_INT if model_input.minimum is None else model_input.minimum
            schema = {"type": "number", "minimum": low, "maximum": MAX_SAFE_INT}
        if model_input.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        schema["description"] = model_input.description or model_input.name
        properties[model_input.name] = schema
        if not model_input.from_text:
            required.append(model_input.name)
    for name in bundle.text_fields:
        properties[name] = {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "Raw text; the text scores are computed from it.",
        }
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        "description": "Model inputs by name (see GET /v1/model); null means missing.",
    }


def request_schema(
    bundle: ModelBundle, *, max_items: int, max_reasons: int, raw_fields: bool
) -> dict[str, Any]:
    """JSON schema of a `POST /v1/score` body for `bundle`.

    `raw_fields`: whether items may be sent as raw `fields` (a snapshot is configured and the
    bundle records its entity). Their schema is only an object: which of them the snapshot can
    join is known when the request arrives.
    """
    item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "item_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "features": features_schema(bundle),
        },
        "required": ["item_id", "features"],
        "additionalProperties": False,
    }
    if raw_fields:
        item["properties"]["fields"] = {
            "type": "object",
            "description": "Raw item fields; features are built from them by the same code as "
            "batch (see docs/data-contract.md for the entity's table).",
        }
        item["required"] = ["item_id"]
        item["oneOf"] = [{"required": ["features"]}, {"required": ["fields"]}]
    return {
        "title": "ScoreRequest",
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": item, "minItems": 1, "maxItems": max_items},
            "explain": {
                "type": "integer",
                "minimum": 0,
                "maximum": min(max_reasons, len(bundle.feature_names)),
                "default": min(5, max_reasons, len(bundle.feature_names)),
                "description": "Reasons per item (0 skips explanations).",
            },
        },
        "required": ["items"],
        "additionalProperties": False,
    }


def frame_problems(
    inputs: Sequence[ModelInput], frame: pd.DataFrame, *, unknown_categories: bool = True
) -> np.ndarray:
    """Per-row reason a batch row breaks its inputs' contract ("" when it keeps it).

    The batch counterpart of the online checks: unknown categories (unless
    `unknown_categories` is False: they are then scored as missing), booleans that are not
    0/1, numbers below their declared domain. Rows the encoder refuses (infinite values,
    missing where never missing) are its business (`FeatureEncoder.row_problems`).
    """
    reasons = np.full(len(frame), "", dtype=object)
    for model_input in inputs:
        if model_input.name not in frame.columns:
            continue
        column = frame[model_input.name]
        if model_input.kind == "categorical" and not unknown_categories:
            continue
        if model_input.kind == "categorical":
            text = column.astype("str")
            bad = (column.notna() & ~text.isin(model_input.categories)).to_numpy()
            for i in np.flatnonzero(bad):
                _add(reasons, int(i), f"{model_input.name}: unknown category {text.iloc[i]!r}")
            continue
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        if model_input.kind == "boolean":
            bad = finite & (values != 0) & (values != 1)
            message = f"{model_input.name}: not true or false"
        elif model_input.minimum is not None:
            bad = finite & (values < model_input.minimum)
            message = f"{model_input.name}: below its declared domain (>= {model_input.minimum:g})"
        else:
            continue
        for i in np.flatnonzero(bad):
            _add(reasons, int(i), message)
    return reasons


def _add(reasons: np.ndarray, i: int, reason: str) -> None:
    reasons[i] = f"{reasons[i]}; {reason}" if reasons[i] else reason
