"""Online scoring: `POST /v1/score`, model info, health, readiness and Prometheus metrics.

The served model comes from a registry alias (`models:/NAME@champion`, see
`serving.model_store`) and is swapped for a new champion without dropping a request. Every bad
input is a 4xx with the offending field: schema problems (pydantic, 422), unknown features or
categories, missing or non-finite values (422), too many items (422), oversized bodies (413, by
`serving.limits.RequestLimits`, as for every route). Scoring itself runs the same bundle code as
batch scoring.
"""

from __future__ import annotations

import copy
import hmac
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from models.bundle import ModelBundle
from models.encoding import EncodingError
from serving.limits import refuse_unknown_query
from serving.model_store import LoadedModel, ModelNotReadyError, ModelStore
from serving.risk_bands import assign_bands, bundle_bands
from serving.schemas_scoring import (
    ModelDetail,
    ModelPublic,
    PhrasePublic,
    ReadyPublic,
    ReasonPublic,
    ScoredItem,
    ScoreRequest,
    ScoreResponse,
    SnapshotPublic,
)
from serving.scoring_contract import (
    catalog_entity,
    clamp_to_domain,
    model_inputs,
    record_problems,
    request_schema,
)
from serving.settings import get_settings

log = logging.getLogger(__name__)

#: "items[3].price: must be a number" / "item.price: ..." from features.online.PayloadError.
_PAYLOAD_PROBLEM = re.compile(r"^(?:items\[(?P<index>\d+)\]|item)\.?(?P<field>[^:]*): (?P<msg>.*)$")


@dataclass
class ScoringState:
    """What the scoring routes share for the app's lifetime (kept on `app.state.scoring`).

    `snapshot_dir` is the feature snapshot of `govrisk features build` (OUT or OUT/snapshot)
    used to build features from raw item fields; it is opened on first use.
    """

    store: ModelStore | None
    snapshot_dir: Path | None = None
    _snapshot: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> Any:
        """The feature snapshot (a `features.snapshot.FeatureSnapshot`), or None if unset."""
        if self.snapshot_dir is None:
            return None
        with self._lock:
            if self._snapshot is None:
                from features.snapshot import META_FILE, FeatureSnapshot

                directory = self.snapshot_dir
                if not (directory / META_FILE).is_file() and (directory / "snapshot").is_dir():
                    directory = directory / "snapshot"
                self._snapshot = FeatureSnapshot.load(directory)
            return self._snapshot


# -- metrics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Metrics:
    registry: Any
    requests: Any
    items: Any
    latency: Any
    model_info: Any
    swaps: Any
    reload_failures: Any


@lru_cache(maxsize=1)
def metrics() -> _Metrics:
    """The scoring metrics, in their own registry (created on first use)."""
    from prometheus_client import (
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        gc_collector,
        platform_collector,
        process_collector,
    )

    registry = CollectorRegistry(auto_describe=True)
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    return _Metrics(
        registry=registry,
        requests=Counter(
            "govrisk_score_requests",
            "POST /v1/score calls by outcome.",
            ["outcome"],
            registry=registry,
        ),
        items=Counter("govrisk_score_items", "Items scored.", registry=registry),
        latency=Histogram(
            "govrisk_score_latency_seconds",
            "Time to validate, score and explain one call.",
            ["explained"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        ),
        model_info=Gauge(
            "govrisk_model_info",
            "The served model (value 1).",
            ["uri", "version", "fingerprint"],
            registry=registry,
        ),
        swaps=Counter("govrisk_model_swaps", "Models swapped in.", registry=registry),
        reload_failures=Counter(
            "govrisk_model_reload_failures", "Failed loads of a new version.", registry=registry
        ),
    )


def _record_swap(loaded: LoadedModel) -> None:
    m = metrics()
    m.model_info.clear()
    m.model_info.labels(loaded.uri, loaded.version or "", loaded.bundle.fingerprint[:12]).set(1)
    m.swaps.inc()


def _record_failure(exc: Exception) -> None:
    del exc
    metrics().reload_failures.inc()


# -- state and dependencies ---------------------------------------------------------------------


def make_store(uri: str, *, poll_seconds: float | None = None) -> ModelStore:
    """A store for `uri` that reports swaps and failed reloads to the metrics."""
    seconds = get_settings().model_poll_seconds if poll_seconds is None else poll_seconds
    return ModelStore(uri, poll_seconds=seconds, on_swap=_record_swap, on_failure=_record_failure)


def install(app: FastAPI, store: ModelStore | None, *, snapshot_dir: Path | None = None) -> None:
    """Serve `store`'s model from `app` (the lifespan then leaves it alone)."""
    app.state.scoring = ScoringState(store=store, snapshot_dir=snapshot_dir)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the configured model in the background; stop following its alias at shutdown."""
    state: ScoringState | None = getattr(app.state, "scoring", None)
    if state is None:
        settings = get_settings()
        uri = getattr(app.state, "scoring_model_uri", None) or settings.model_uri
        snapshot = getattr(app.state, "scoring_snapshot_dir", None) or settings.snapshot_dir
        state = ScoringState(
            store=make_store(uri) if uri else None,
            snapshot_dir=None if snapshot is None else Path(snapshot),
        )
        app.state.scoring = state
    store = state.store
    document_scoring(app)
    if store is not None:
        # Load in the background: the rest of the service starts at once and /readyz says
        # when scoring can begin.
        store.start(block=False)
    try:
        yield
    finally:
        if store is not None:
            store.stop()


async def get_model(request: Request) -> LoadedModel:
    """The model for this request, read once (503 until the first model is loaded).

    One dependency rather than a model dependency on a store dependency: FastAPI spends tens
    of microseconds per request on each level, and this is the scoring hot path.
    """
    state: ScoringState | None = getattr(request.app.state, "scoring", None)
    if state is None or state.store is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "no model is configured; start with `govrisk serve --model URI` or set "
            "GOVRISK_MODEL_URI",
        )
    try:
        return state.store.current
    except ModelNotReadyError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


ModelDep = Annotated[LoadedModel, Depends(get_model)]

_TOKEN_HELP = (
    "send a scoring token as `Authorization: Bearer <token>` (one of GOVRISK_SCORING_TOKENS)"
)


def check_scoring_token(request: Request) -> None:
    """Refuse the call (401) when scoring tokens are configured and none of them is sent.

    A plain function called first by each route rather than a security dependency: with no
    tokens configured the OpenAPI document must not claim the routes need one.
    """
    tokens = get_settings().scoring_tokens
    if not tokens:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    sent = given.strip().encode()
    # Compare with every token (no early exit), so timing does not tell which one matched.
    matches = [hmac.compare_digest(sent, token.encode()) for token in tokens]
    if scheme.lower() != "bearer" or not any(matches):
        metrics().requests.labels("unauthorized").inc()
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, _TOKEN_HELP, headers={"WWW-Authenticate": "Bearer"}
        )


router = APIRouter(
    lifespan=_lifespan, tags=["scoring"], dependencies=[Depends(refuse_unknown_query)]
)


def _request_schema() -> dict[str, Any]:
    """ScoreRequest's JSON schema with its definitions inlined (for the OpenAPI document)."""
    schema = ScoreRequest.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}


def document_scoring(app: FastAPI) -> None:
    """Make `app`'s OpenAPI document describe scoring as this deployment serves it.

    The `POST /v1/score` body schema is the served model's contract (its inputs, kinds,
    categories and domains; see `serving.scoring_contract`), and the scoring routes declare
    401 and a bearer scheme when scoring tokens are configured. Rebuilt when the model changes.
    """
    if getattr(app.state, "scoring_documented", False):
        return
    app.state.scoring_documented = True
    base = app.openapi
    cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        document = base()
        state: ScoringState | None = getattr(app.state, "scoring", None)
        loaded = None
        if state is not None and state.store is not None and state.store.ready:
            loaded = state.store.current
        settings = get_settings()
        key = (
            id(document),
            None if loaded is None else loaded.bundle.fingerprint,
            bool(settings.scoring_tokens),
            settings.max_items_per_request,
            settings.max_reasons,
            state is not None and state.snapshot_dir is not None,
        )
        if key not in cache:
            cache.clear()
            cache[key] = _documented(document, loaded, state, settings.scoring_tokens != [])
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]


def _documented(
    document: dict[str, Any],
    loaded: LoadedModel | None,
    state: ScoringState | None,
    tokens: bool,
) -> dict[str, Any]:
    out = copy.deepcopy(document)
    paths = out.get("paths", {})
    score_op = paths.get("/v1/score", {}).get("post")
    if score_op is not None and loaded is not None:
        settings = get_settings()
        raw_fields = (
            state is not None
            and state.snapshot_dir is not None
            and catalog_entity(loaded.bundle) is not None
        )
        schema = request_schema(
            loaded.bundle,
            max_items=settings.max_items_per_request,
            max_reasons=settings.max_reasons,
            raw_fields=raw_fields,
        )
        score_op["requestBody"]["content"]["application/json"]["schema"] = schema
    if tokens:
        schemes = out.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["ScoringToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "A token of GOVRISK_SCORING_TOKENS.",
        }
        for path, method in (("/v1/score", "post"), ("/v1/model", "get")):
            operation = paths.get(path, {}).get(method)
            if operation is None:
                continue
            operation["security"] = [{"ScoringToken": []}]
            operation.setdefault("responses", {})["401"] = {
                "description": "Scoring tokens are configured and none was sent.",
                "content": {"application/json": {"schema": _ERROR_SCHEMA}},
            }
    return out


# -- routes -------------------------------------------------------------------------------------


# The hot path first: routes are matched in the order they are declared.
@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    summary="Score items with calibrated probabilities and reasons",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _request_schema()}},
        }
    },
    responses={
        413: {"description": "Request body too large."},
        422: {"description": "Invalid input; `detail` lists each offending field."},
        503: {"description": "No model loaded yet."},
    },
)
async def score(request: Request, model: ModelDep) -> Response:
    """Score one or many items: raw score, calibrated probability, risk band, top reasons.

    The body is parsed by pydantic's strict JSON parser (NaN and Infinity are not JSON), and
    validation errors never echo the offending input back.
    """
    check_scoring_token(request)
    started = time.perf_counter()
    m = metrics()
    body = await request.body()
    try:
        payload = ScoreRequest.model_validate_json(body)
    except ValidationError as exc:
        m.requests.labels("invalid").inc()
        raise _invalid(
            [
                (("body", *error["loc"]), error["msg"])
                for error in exc.errors(
                    include_url=False, include_context=False, include_input=False
                )
            ]
        ) from None
    try:
        state: ScoringState = request.app.state.scoring
        if _runs_inline(payload):
            response = _compute_scores(payload, model, state)
        else:
            response = await run_in_threadpool(_compute_scores, payload, model, state)
    except HTTPException as exc:
        m.requests.labels("invalid" if exc.status_code < 500 else "error").inc()
        raise
    m.requests.labels("ok").inc()
    m.items.inc(len(payload.items))
    body_out = response.model_dump_json()  # already validated: skip FastAPI's second pass
    m.latency.labels(str(payload.explain > 0).lower()).observe(time.perf_counter() - started)
    return Response(body_out, media_type="application/json")


def _runs_inline(payload: ScoreRequest) -> bool:
    """Whether to score on the event loop rather than in a worker thread.

    A few items given as model inputs score in well under a millisecond, less than the thread
    hop costs; raw fields (feature building, a snapshot read on first use) and larger calls go
    to a worker thread so the loop keeps serving other requests meanwhile.
    """
    items = payload.items
    return len(items) <= get_settings().inline_max_items and all(
        item.fields is None for item in items
    )


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=ReadyPublic,
    responses={503: {"model": ReadyPublic}},
)
def readyz(request: Request) -> Any:
    """Ready when the configured model is loaded (or no model is configured)."""
    state: ScoringState | None = getattr(request.app.state, "scoring", None)
    if state is None or state.store is None:
        return ReadyPublic(ready=True, detail="no model configured")
    if not state.store.ready:
        return JSONResponse(
            ReadyPublic(
                ready=False,
                detail=f"loading {state.store.uri}"
                + (
                    f"; last attempt failed: {state.store.last_error}"
                    if state.store.last_error
                    else ""
                ),
            ).model_dump(),
            status_code=503,
        )
    return ReadyPublic(ready=True, model=_model_public(state.store.current))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics_endpoint(request: Request) -> Response:
    """Scoring counters and latencies, and the current monitoring values when the service
    reads a monitor directory, in the Prometheus text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from serving.monitoring_pages import monitoring_registry

    review = getattr(request.app.state, "review", None)
    monitor_dir = review.settings.monitor_dir if review is not None else None
    body = generate_latest(metrics().registry) + generate_latest(monitoring_registry(monitor_dir))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/model", response_model=ModelDetail, summary="The served model and its inputs")
def model_detail(request: Request, model: ModelDep) -> ModelDetail:
    """The served model, its inputs with descriptions, categories and risk bands."""
    check_scoring_token(request)
    bundle = model.bundle
    return ModelDetail(
        **_model_public(model).model_dump(),
        features=bundle.features,
        categorical=bundle.encoder.categories_,
        nullable=bundle.encoder.nullable_,
        risk_bands=dict(bundle_bands(model.bundle)),
        loaded_at=model.loaded_at.isoformat(),
    )


# -- scoring ------------------------------------------------------------------------------------


def _compute_scores(
    payload: ScoreRequest, model: LoadedModel, state: ScoringState
) -> ScoreResponse:
    settings = get_settings()
    bundle = model.bundle
    n_items = len(payload.items)
    if n_items > settings.max_items_per_request:
        raise _invalid(
            [
                (
                    ("body", "items"),
                    f"at most {settings.max_items_per_request} items per call, "
                    f"got {n_items}; split the request",
                )
            ]
        )
    max_k = min(settings.max_reasons, len(bundle.feature_names))
    explain = payload.explain if "explain" in payload.model_fields_set else min(5, max_k)
    if explain > max_k:
        raise _invalid([(("body", "explain"), f"at most {max_k} reasons per item")])
    records, warnings = _records(payload, model, state)
    texts = _text_fields(payload, bundle, records)
    try:
        X = bundle.encoder.encode_records(records)
    except EncodingError as exc:
        source = ["features" if item.features is not None else "fields" for item in payload.items]
        raise _invalid(
            [(("body", "items", i, source[i], col), msg) for i, col, msg in exc.locations]
            or [(("body", "items"), str(exc))]
        ) from exc
    raw, probability = bundle.predict_matrix(X)
    reasons = bundle.explain_matrix(X, explain) if explain else None
    if reasons is not None and texts:
        reasons = [
            rows if texts[i] is None else bundle.with_phrases([rows], pd.DataFrame([texts[i]]))[0]
            for i, rows in enumerate(reasons)
        ]
    band_names = assign_bands(bundle_bands(model.bundle), probability)
    items = [
        ScoredItem(
            item_id=item.item_id,
            raw_score=float(raw[i]),
            probability=float(probability[i]),
            risk_band=str(band_names[i]),
            reasons=[
                ReasonPublic(
                    feature=r.feature,
                    description=r.description,
                    value=r.value,
                    contribution=r.contribution,
                    phrases=[PhrasePublic.model_validate(p.to_dict()) for p in r.phrases],
                )
                for r in (reasons[i] if reasons is not None else ())
            ],
            warnings=warnings[i],
        )
        for i, item in enumerate(payload.items)
    ]
    snapshot = None
    if any(item.fields is not None for item in payload.items):
        snapshot = _snapshot_public(state)
    return ScoreResponse(model=_model_public(model), items=items, snapshot=snapshot)


def _snapshot_public(state: ScoringState) -> SnapshotPublic | None:
    """The snapshot's cutoff and age, so a caller sees when features come from old data."""
    snapshot = state.snapshot()
    if snapshot is None:
        return None
    as_of = np.datetime64(snapshot.as_of, "us")
    now = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "us")
    age_days = float((now - as_of) / np.timedelta64(1, "D"))
    return SnapshotPublic(as_of=f"{as_of}Z", age_days=round(age_days, 3))


def _text_fields(
    payload: ScoreRequest, bundle: ModelBundle, records: list[dict[str, Any]]
) -> list[dict[str, Any] | None]:
    """Compute text score inputs from raw text, in place; each item's raw text (or None).

    An item given as `fields` reads its raw text fields from them; an item given as
    `features` may carry the raw text fields among them (then the scores are computed, the
    same way batch scoring does) or the text scores themselves.
    """
    if not bundle.text_models:
        return []
    from features.text_source import join_fields

    texts: list[dict[str, Any] | None] = []
    for item, record in zip(payload.items, records, strict=True):
        source = item.fields if item.fields is not None else record
        raw = {f: source.get(f) for f in bundle.text_fields}
        given = any(f in source for f in bundle.text_fields)
        for f in bundle.text_fields:
            record.pop(f, None)
        texts.append(raw if given else None)
    scored = [i for i, t in enumerate(texts) if t is not None]
    if scored:
        docs = [join_fields([texts[i][f] for f in bundle.text_fields]) for i in scored]  # type: ignore[index]
        for name, values in bundle.text_scores(docs).items():
            for i, value in zip(scored, values, strict=True):
                records[i][name] = float(value)
    return texts


def _records(
    payload: ScoreRequest, model: LoadedModel, state: ScoringState
) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Model input dicts and warnings per item.

    Refuses unknown features, unknown categories and values outside their input's kind or
    domain; computed features (from raw fields) below their domain are raised to it with a
    warning instead, as the caller cannot fix them.
    """
    encoder = model.bundle.encoder
    inputs = model_inputs(model.bundle)
    warnings: list[list[str]] = [[] for _ in payload.items]
    known = set(encoder.feature_names_) | set(model.bundle.text_fields)
    problems: list[tuple[tuple[str | int, ...], str]] = []
    records: list[dict[str, Any]] = []
    raw_items = [(i, item) for i, item in enumerate(payload.items) if item.fields is not None]
    built = _online_features(
        model,
        state,
        [item.fields or {} for _, item in raw_items],
        [i for i, _ in raw_items],
        problems,
    )
    built_by_index = dict(zip((i for i, _ in raw_items), built, strict=True))
    for i, item in enumerate(payload.items):
        if item.features is not None:
            record: dict[str, Any] = dict(item.features)
            source = "features"
            for name in sorted(set(record) - known):
                problems.append(
                    (
                        ("body", "items", i, source, name),
                        "unknown feature; GET /v1/model lists the model's inputs",
                    )
                )
            for name, message in record_problems(inputs, record):
                problems.append((("body", "items", i, source, name), message))
        else:
            record = built_by_index[i]
            source = "fields"
            warnings[i] = clamp_to_domain(inputs, record)
        for name, value in encoder.unseen_categories(record).items():
            known_values = encoder.categories_[name]
            shown = ", ".join(known_values[:20]) + (" ..." if len(known_values) > 20 else "")
            problems.append(
                (("body", "items", i, source, name), f"unknown category {value!r}; known: {shown}")
            )
        records.append(record)
    if problems:
        raise _invalid(problems)
    return records, warnings


def _online_features(
    model: LoadedModel,
    state: ScoringState,
    fields: list[dict[str, Any]],
    positions: list[int],
    problems: list[tuple[tuple[str | int, ...], str]],
) -> list[dict[str, Any]]:
    """Model inputs built from raw item fields by the feature code batch uses.

    Problems (unknown or mistyped fields, no snapshot, a model without an entity) are added to
    `problems` with the position of the item they belong to.
    """
    if not fields:
        return []
    entity = catalog_entity(model.bundle)
    snapshot = state.snapshot()
    reason = None
    if model.bundle.metadata.get("feature_declaration") is not None:
        reason = "this model's features are its dataset's own, so raw fields cannot be used"
    elif entity is None:
        reason = "this model does not record its entity, so raw fields cannot be used"
    elif snapshot is None:
        reason = "no feature snapshot is configured (GOVRISK_SNAPSHOT_DIR or --snapshot)"
    if reason is not None:
        for i in positions:
            problems.append((("body", "items", i, "fields"), f"{reason}; send `features`"))
        return [{} for _ in fields]
    from features.online import PayloadError, build_online_frame

    try:
        frame = build_online_frame(str(entity), fields, snapshot)
    except PayloadError as exc:
        for text in exc.problems:
            match = _PAYLOAD_PROBLEM.match(text)
            if match is None:
                problems.append((("body", "items"), text))
                continue
            index = int(match["index"]) if match["index"] is not None else 0
            loc: tuple[str | int, ...] = ("body", "items", positions[index], "fields")
            problems.append(((*loc, match["field"]) if match["field"] else loc, match["msg"]))
        return [{} for _ in fields]
    features = frame.drop(columns=["item_id"])
    clean = features.astype(object).where(features.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in clean.to_dict("records")]


def _model_public(model: LoadedModel) -> ModelPublic:
    bundle = model.bundle
    meta = bundle.metadata
    return ModelPublic(
        uri=model.uri,
        name=model.name,
        version=model.version,
        fingerprint=bundle.fingerprint,
        run_id=bundle.run_id,
        entity=None if meta.get("entity") is None else str(meta["entity"]),
        policy=None if meta.get("policy") is None else str(meta["policy"]),
    )


def _invalid(problems: Sequence[tuple[Sequence[str | int], str]]) -> HTTPException:
    """A 422 whose detail has FastAPI's shape: [{loc, msg, type}]."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": list(loc), "msg": msg, "type": "value_error"} for loc, msg in problems],
    )
