"""Scoring API: scores match the bundle, every bad input is a 4xx, hot swap drops nothing."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.bundle import BundleError, ModelBundle
from serving import scoring_api
from serving.limits import RequestLimits
from serving.model_store import ModelStore, parse_alias_uri
from serving.scoring_api import install, router
from serving.settings import get_settings
from tests.models.bundle_factory import make_frame, train_bundle

MAX_BODY = 40_000


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    trained = train_bundle(*make_frame(500, seed=12), n_trees=25)
    trained.threads = 1
    return trained


@pytest.fixture(scope="module")
def other_bundle() -> ModelBundle:
    frame, y = make_frame(500, seed=13)
    trained = train_bundle(frame, y, n_trees=15, seed=3, calibration="platt")
    trained.threads = 1
    return trained


def _app(store: ModelStore | None) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.add_middleware(RequestLimits, max_bytes=MAX_BODY)
    install(app, store)
    return app


@pytest.fixture(scope="module")
def client(bundle: ModelBundle) -> Iterator[TestClient]:
    with TestClient(_app(ModelStore.fixed(bundle, uri="models:/test/1"))) as c:
        yield c


def _items(n: int, *, seed: int = 20) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    frame, _ = make_frame(n, seed=seed)
    items = []
    for row in frame.to_dict("records"):
        features = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items()
            if k != "item_id"
        }
        features = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in features.items()}
        items.append({"item_id": row["item_id"], "features": features})
    return items, frame


def test_scores_and_reasons_match_the_bundle(client: TestClient, bundle: ModelBundle) -> None:
    items, frame = _items(12)
    response = client.post("/v1/score", json={"items": items, "explain": 4})
    assert response.status_code == 200, response.text
    body = response.json()
    raw, probability = bundle.predict(frame)
    assert [i["item_id"] for i in body["items"]] == frame["item_id"].tolist()
    np.testing.assert_array_equal([i["raw_score"] for i in body["items"]], raw)
    np.testing.assert_array_equal([i["probability"] for i in body["items"]], probability)
    reasons = bundle.explain(frame, 4)
    for got, want in zip(body["items"], reasons, strict=True):
        assert [r["feature"] for r in got["reasons"]] == [r.feature for r in want]
        assert [r["contribution"] for r in got["reasons"]] == [r.contribution for r in want]
        assert all(r["description"] for r in got["reasons"])
        assert got["risk_band"] in get_settings().risk_bands
    assert body["model"]["fingerprint"] == bundle.fingerprint
    assert body["model"]["entity"] == "listing"
    plain = client.post("/v1/score", json={"items": items[:1], "explain": 0}).json()
    assert plain["items"][0]["reasons"] == []


def test_small_calls_score_on_the_loop_and_large_ones_in_a_worker_thread(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[int] = []

    async def counting(func: Any, *args: Any) -> Any:
        hops.append(len(args[0].items))
        return await run_in_threadpool(func, *args)

    monkeypatch.setattr(scoring_api, "run_in_threadpool", counting)
    limit = get_settings().inline_max_items
    items, _ = _items(limit + 1, seed=21)
    small = client.post("/v1/score", json={"items": items[:limit], "explain": 3})
    assert small.status_code == 200, small.text
    assert hops == []
    large = client.post("/v1/score", json={"items": items, "explain": 3})
    assert large.status_code == 200, large.text
    assert hops == [limit + 1]
    assert large.json()["items"][:limit] == small.json()["items"], "same answer either way"
    bad = client.post("/v1/score", json={"items": items, "explain": 99})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "explain"]


def _valid(n: int = 1) -> dict[str, Any]:
    return {"items": _items(n)[0], "explain": 2}


def _with(change: dict[str, Any], *, drop: str | None = None) -> dict[str, Any]:
    body = _valid()
    body["items"][0]["features"].update(change)
    if drop:
        del body["items"][0]["features"][drop]
    return body


def _raw(text: str) -> dict[str, Any]:
    return {"content": text, "headers": {"content-type": "application/json"}}


BAD_INPUTS: list[tuple[str, dict[str, Any], int, list[Any]]] = [
    (
        "missing feature",
        {"json": _with({}, drop="listing_price")},
        422,
        ["body", "items", 0, "features", "listing_price"],
    ),
    (
        "number as text",
        {"json": _with({"listing_price": "19.90"})},
        422,
        ["body", "items", 0, "features", "listing_price"],
    ),
    (
        "category as number",
        {"json": _with({"listing_category": 3})},
        422,
        ["body", "items", 0, "features", "listing_category"],
    ),
    (
        "unknown category",
        {"json": _with({"seller_verification": "gold"})},
        422,
        ["body", "items", 0, "features", "seller_verification"],
    ),
    (
        "unknown feature",
        {"json": _with({"listing_colour": "red"})},
        422,
        ["body", "items", 0, "features", "listing_colour"],
    ),
    (
        "null where never missing",
        {"json": _with({"seller_tenure_days": None})},
        422,
        ["body", "items", 0, "features", "seller_tenure_days"],
    ),
    (
        "NaN literal",
        _raw(json.dumps(_with({"listing_price": float("nan")}))),
        422,
        ["body", "items", 0, "features"],
    ),
    (
        "Infinity literal",
        _raw(json.dumps(_with({"listing_discount_depth": float("inf")}))),
        422,
        ["body", "items", 0, "features"],
    ),
    (
        "400-digit integer",
        _raw(json.dumps(_with({"listing_price": 10**400}))),
        422,
        ["body", "items", 0, "features", "listing_price"],
    ),
    (
        "list as value",
        {"json": _with({"listing_price": [1, 2]})},
        422,
        ["body", "items", 0, "features"],
    ),
    (
        "missing item_id",
        {"json": {"items": [{"features": {}}]}},
        422,
        ["body", "items", 0, "item_id"],
    ),
    (
        "empty item_id",
        {"json": {"items": [{"item_id": "", "features": {}}]}},
        422,
        ["body", "items", 0, "item_id"],
    ),
    (
        "numeric item_id",
        {"json": {"items": [{"item_id": 7, "features": {}}]}},
        422,
        ["body", "items", 0, "item_id"],
    ),
    (
        "neither features nor fields",
        {"json": {"items": [{"item_id": "a"}]}},
        422,
        ["body", "items", 0],
    ),
    (
        "both features and fields",
        {"json": {"items": [{"item_id": "a", "features": {}, "fields": {}}]}},
        422,
        ["body", "items", 0],
    ),
    ("no items", {"json": {"items": []}}, 422, ["body", "items"]),
    ("items not a list", {"json": {"items": {"item_id": "a"}}}, 422, ["body", "items"]),
    ("unknown top-level key", {"json": {**_valid(), "priority": 1}}, 422, ["body", "priority"]),
    ("explain too large", {"json": {**_valid(), "explain": 99}}, 422, ["body", "explain"]),
    ("explain negative", {"json": {**_valid(), "explain": -1}}, 422, ["body", "explain"]),
    ("explain as text", {"json": {**_valid(), "explain": "5"}}, 422, ["body", "explain"]),
    (
        "too many items",
        {"json": {"items": [{"item_id": "a", "features": {}}] * 300}},
        422,
        ["body", "items"],
    ),
    (
        "negative price",
        {"json": _with({"listing_price": -0.01})},
        422,
        ["body", "items", 0, "features", "listing_price"],
    ),
    (
        "true as a number",
        {"json": _with({"listing_price": True})},
        422,
        ["body", "items", 0, "features", "listing_price"],
    ),
    (
        "7 as a boolean",
        {"json": _with({"listing_has_brand": 7})},
        422,
        ["body", "items", 0, "features", "listing_has_brand"],
    ),
    (
        "1 as a boolean",
        {"json": _with({"listing_has_brand": 1})},
        422,
        ["body", "items", 0, "features", "listing_has_brand"],
    ),
    ("body is a list", {"json": [1, 2]}, 422, ["body"]),
    ("malformed JSON", _raw('{"items": [}'), 422, ["body"]),
    ("empty body", _raw(""), 422, ["body"]),
]


@pytest.mark.parametrize(
    ("case", "request_kwargs", "status", "loc"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_a_4xx_naming_the_field(
    client: TestClient, case: str, request_kwargs: dict[str, Any], status: int, loc: list[Any]
) -> None:
    response = client.post("/v1/score", **request_kwargs)
    assert response.status_code == status, (case, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, case
    locations = [d["loc"] for d in detail]
    assert any(list(found[: len(loc)]) == loc for found in locations), (case, locations)
    assert all(d["msg"] for d in detail)


def test_oversized_bodies_are_refused_with_413(client: TestClient) -> None:
    items = _valid(1)["items"] * 200
    body = json.dumps({"items": items}).encode()
    assert len(body) > MAX_BODY
    response = client.post("/v1/score", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    chunked = client.post(
        "/v1/score", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    small = json.dumps(_valid(1)).encode()
    ok = client.post(
        "/v1/score",
        content=iter([small[:10], small[10:]]),
        headers={"content-type": "application/json"},
    )
    assert ok.status_code == 200, ok.text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_json)
def test_fuzzed_bodies_never_cause_a_server_error(client: TestClient, body: Any) -> None:
    response = client.post(
        "/v1/score", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 413, 422), response.text


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    feature=st.sampled_from(
        ["listing_category", "listing_price", "seller_tenure_days", "listing_has_brand", "other"]
    ),
    value=_json,
    explain=st.integers(-3, 30) | st.none(),
)
def test_fuzzed_values_in_a_valid_body_are_200_or_422(
    client: TestClient, feature: str, value: Any, explain: int | None
) -> None:
    body = _valid(2)
    body["items"][1]["features"][feature] = value
    if explain is None:
        del body["explain"]
    else:
        body["explain"] = explain
    response = client.post(
        "/v1/score", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert all(d["loc"][0] == "body" for d in response.json()["detail"])


def test_request_schema_is_the_served_models_contract(
    client: TestClient, bundle: ModelBundle
) -> None:
    document = client.get("/openapi.json").json()
    body = document["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]
    item = body["schema"]["properties"]["items"]["items"]
    features = item["properties"]["features"]
    assert sorted(features["required"]) == sorted(bundle.feature_names)
    assert features["additionalProperties"] is False
    props = features["properties"]
    category = props["listing_category"]["anyOf"][0]
    assert category["enum"] == bundle.encoder.categories_["listing_category"]
    assert props["listing_price"]["anyOf"][0]["minimum"] == 0  # price is nullable in training
    assert props["seller_tenure_days"]["minimum"] == 0
    assert props["listing_has_brand"]["type"] == "boolean"
    assert "fields" not in item["properties"], "no snapshot configured: features only"
    assert body["schema"]["properties"]["items"]["maxItems"] == get_settings().max_items_per_request


def test_schema_valid_score_requests_are_scored(client: TestClient) -> None:
    import schemathesis
    from hypothesis import Phase
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operation = schema["/v1/score"]["POST"]
    statuses: list[int] = []

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    def run(case: Any) -> None:
        response = case.call()
        statuses.append(response.status_code)
        assert response.status_code == 200, response.text

    run()
    assert len(statuses) >= 20


def test_scoring_tokens_are_off_by_default_and_required_when_set(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _valid()
    assert get_settings().scoring_tokens == []
    assert client.post("/v1/score", json=body).status_code == 200
    document = client.get("/openapi.json").json()
    assert "401" not in document["paths"]["/v1/score"]["post"]["responses"]
    assert "security" not in document["paths"]["/v1/score"]["post"]
    token = "t0ken-" + "k" * 30
    monkeypatch.setenv("GOVRISK_SCORING_TOKENS", f"{token}, other-token-{'z' * 20}")
    get_settings.cache_clear()
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
            refused = client.post("/v1/score", json=body, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "GOVRISK_SCORING_TOKENS" in refused.json()["detail"]
        assert client.get("/v1/model").status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/v1/score", json=body, headers=auth).status_code == 200
        assert client.get("/v1/model", headers=auth).status_code == 200
        document = client.get("/openapi.json").json()
        operation = document["paths"]["/v1/score"]["post"]
        assert "401" in operation["responses"]
        assert operation["security"] == [{"ScoringToken": []}]
        assert document["components"]["securitySchemes"]["ScoringToken"]["scheme"] == "bearer"
        assert client.get("/healthz").status_code == 200, "health stays open"
        monkeypatch.setenv("GOVRISK_SCORING_TOKENS", "short")
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="shorter than 16"):
            get_settings()
    finally:
        monkeypatch.delenv("GOVRISK_SCORING_TOKENS")
        get_settings.cache_clear()


def test_health_readiness_metrics_and_docs(client: TestClient, bundle: ModelBundle) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model"]["fingerprint"] == bundle.fingerprint
    client.post("/v1/score", json=_valid(3))
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'govrisk_score_requests_total{outcome="ok"}' in metrics.text
    assert "govrisk_score_latency_seconds_bucket" in metrics.text
    schema = client.get("/openapi.json").json()
    assert "/v1/score" in schema["paths"]
    body_schema = schema["paths"]["/v1/score"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert body_schema["title"] == "ScoreRequest"
    assert "item_id" in body_schema["properties"]["items"]["items"]["properties"]
    assert "$ref" not in json.dumps(body_schema)
    detail = client.get("/v1/model").json()
    assert detail["features"] == bundle.features
    assert detail["categorical"]["seller_verification"] == ["basic", "none", "verified"]


def test_readiness_waits_for_the_first_load_and_unconfigured_is_503(bundle: ModelBundle) -> None:
    release = threading.Event()

    def slow_load(uri: str) -> ModelBundle:
        assert uri == "models:/govrisk-listing-counterfeit/4"
        release.wait(timeout=20)
        return bundle

    loading = ModelStore(
        "models:/govrisk-listing-counterfeit@champion",
        poll_seconds=0,
        loader=slow_load,
        resolver=lambda name, alias: "4",
    )
    with TestClient(_app(loading)) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
        assert c.post("/v1/score", json=_valid()).status_code == 503
        release.set()
        deadline = time.monotonic() + 20
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "model never became ready"
            time.sleep(0.02)
        assert c.post("/v1/score", json=_valid()).status_code == 200
    with TestClient(_app(None)) as c:
        assert c.get("/readyz").status_code == 200
        response = c.post("/v1/score", json=_valid())
        assert response.status_code == 503 and "--model" in response.json()["detail"]


def test_a_failed_first_load_is_reported_and_retried(bundle: ModelBundle) -> None:
    attempts: list[str] = []
    unblock = threading.Event()

    def flaky_load(uri: str) -> ModelBundle:
        attempts.append(uri)
        if len(attempts) == 1:
            raise BundleError("checksum mismatch in model.onnx")
        unblock.wait(timeout=20)
        return bundle

    store = ModelStore(
        "models:/govrisk-listing-counterfeit@champion",
        poll_seconds=0,
        loader=flaky_load,
        resolver=lambda name, alias: "7",
        retry_seconds=0.05,
    )
    with TestClient(_app(store)) as c:
        deadline = time.monotonic() + 20
        while len(attempts) < 2:
            assert time.monotonic() < deadline, "no retry"
            time.sleep(0.01)
        not_ready = c.get("/readyz")
        assert not_ready.status_code == 503
        assert "checksum mismatch" in not_ready.json()["detail"]
        unblock.set()
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.02)
        assert store.last_error is None


class _Registry:
    """A fake registry alias whose version the test moves, loading one of two bundles."""

    def __init__(self, bundles: dict[str, ModelBundle]) -> None:
        self.bundles = bundles
        self.version = "1"
        self.loads: list[str] = []

    def resolve(self, name: str, alias: str) -> str:
        assert (name, alias) == ("govrisk-listing-counterfeit", "champion")
        return self.version

    def load(self, uri: str) -> ModelBundle:
        self.loads.append(uri)
        version = uri.rsplit("/", 1)[1]
        if version == "3":
            raise BundleError("checksum mismatch")
        time.sleep(0.05)  # a slow download: requests keep flowing meanwhile
        return self.bundles[version]


def test_store_follows_the_alias_and_survives_a_broken_version(
    bundle: ModelBundle, other_bundle: ModelBundle
) -> None:
    registry = _Registry({"1": bundle, "2": other_bundle})
    failures: list[Exception] = []
    store = ModelStore(
        "models:/govrisk-listing-counterfeit@champion",
        poll_seconds=0,
        loader=registry.load,
        resolver=registry.resolve,
        on_failure=failures.append,
    )
    assert parse_alias_uri(store.uri) == ("govrisk-listing-counterfeit", "champion")
    store.start()
    assert store.current.version == "1" and store.current.uri.endswith("/1")
    assert store.refresh() is False, "same version: nothing to do"
    registry.version = "3"
    assert store.refresh() is False and store.current.version == "1"
    assert len(failures) == 1
    registry.version = "2"
    assert store.refresh() is True
    assert store.current.bundle is other_bundle
    assert registry.loads == [
        "models:/govrisk-listing-counterfeit/1",
        "models:/govrisk-listing-counterfeit/3",
        "models:/govrisk-listing-counterfeit/2",
    ]


def _hammer_during_promotions(
    bundle: ModelBundle, other_bundle: ModelBundle, *, min_requests: int, clients: int = 4
) -> tuple[list[tuple[int, str | None, list[float] | None]], int]:
    """Requests from `clients` threads against uvicorn on loopback while the champion alias
    moves between two versions and the store's poller swaps them in; (results, swaps)."""
    import uvicorn

    registry = _Registry({"1": bundle, "2": other_bundle})
    swaps: list[str | None] = []
    store = ModelStore(
        "models:/govrisk-listing-counterfeit@champion",
        poll_seconds=0.02,
        loader=registry.load,
        resolver=registry.resolve,
        on_swap=lambda loaded: swaps.append(loaded.version),
    )
    store.start()
    server = uvicorn.Server(
        uvicorn.Config(_app(store), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    items, _ = _items(3, seed=30)
    results: list[tuple[int, str | None, list[float] | None]] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            while not stop.is_set():
                try:
                    r = http.post("/v1/score", json={"items": items, "explain": 2})
                except httpx.HTTPError as exc:  # a dropped connection is a failed request
                    results.append((0, type(exc).__name__, None))
                    continue
                if r.status_code != 200:
                    results.append((r.status_code, None, None))
                    continue
                body = r.json()
                results.append(
                    (200, body["model"]["fingerprint"], [i["probability"] for i in body["items"]])
                )

    workers = [threading.Thread(target=hammer) for _ in range(clients)]
    try:
        for w in workers:
            w.start()
        promotions = 0
        give_up = time.monotonic() + 300
        while len(results) < min_requests or promotions < 3:
            assert time.monotonic() < give_up, f"only {len(results)} requests in 300 s"
            time.sleep(0.15)
            registry.version = "2" if registry.version == "1" else "1"  # promote the other
            promotions += 1
        registry.version = "2"
        time.sleep(0.3)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=20)
        server.should_exit = True
        thread.join(timeout=20)
        store.stop()
    return results, len(swaps)


def _check_no_request_failed(
    results: list[tuple[int, str | None, list[float] | None]],
    bundle: ModelBundle,
    other_bundle: ModelBundle,
) -> None:
    _, frame = _items(3, seed=30)
    expected = {b.fingerprint: b.predict(frame)[1].tolist() for b in (bundle, other_bundle)}
    failed = [(code, note) for code, note, _ in results if code != 200]
    assert not failed, f"{len(failed)} of {len(results)} requests failed: {set(failed)}"
    assert {fp for _, fp, _ in results} == set(expected), "both models served"
    for _, fingerprint, probabilities in results:
        assert fingerprint is not None
        assert probabilities == expected[fingerprint], "a response mixed two models"
    assert results[-1][1] == other_bundle.fingerprint


def test_hot_swap_under_concurrent_requests_drops_nothing(
    bundle: ModelBundle, other_bundle: ModelBundle, record_property: Any
) -> None:
    results, swaps = _hammer_during_promotions(bundle, other_bundle, min_requests=600)
    record_property("requests", len(results))
    record_property("swaps", swaps)
    assert len(results) >= 600 and swaps >= 3
    _check_no_request_failed(results, bundle, other_bundle)


@pytest.mark.slow
def test_hot_swap_under_5000_requests_drops_nothing(
    bundle: ModelBundle, other_bundle: ModelBundle, record_property: Any
) -> None:
    results, swaps = _hammer_during_promotions(bundle, other_bundle, min_requests=5_000)
    record_property("requests", len(results))
    record_property("swaps", swaps)
    assert len(results) >= 5_000 and swaps >= 10
    _check_no_request_failed(results, bundle, other_bundle)


def test_the_service_app_serves_scoring_routes(tmp_path: Any) -> None:
    from governance.review.settings import ReviewSettings
    from serving.app import create_app

    app = create_app(ReviewSettings(data_dir=tmp_path, secret_key="s" * 40))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        response = client.post("/v1/score", json=_valid())
        assert response.status_code == 503
        big = json.dumps({"items": _valid(1)["items"] * 5000})
        assert len(big) > get_settings().max_body_bytes
        refused = client.post(
            "/v1/score", content=big, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 413


@pytest.fixture(scope="module")
def marketplace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Synthetic contract tables, their listing frame and snapshot, and a model trained on it."""
    from datetime import datetime, timedelta

    from experiments.synthetic.tables import make_tables
    from features.build import build_features
    from features.catalog import feature_descriptions, feature_types
    from features.vocabulary import Entity
    from models.calibration import Calibration
    from models.encoding import FeatureEncoder

    tables = make_tables(400, seed=5)
    built = build_features(
        tables,
        as_of=datetime(2025, 1, 1) + timedelta(days=45),
        entities=[Entity.LISTING],
        threads=1,
    )
    snapshot_dir = tmp_path_factory.mktemp("features") / "snapshot"
    built.snapshot.write(snapshot_dir)
    frame = built.frames[Entity.LISTING]
    kinds = feature_types(Entity.LISTING)
    encoder = FeatureEncoder(
        categorical=[n for n, k in kinds.items() if k == "categorical"],
        numeric=[n for n, k in kinds.items() if k != "categorical"],
        nullable=[n for n, k in kinds.items() if k != "categorical"],
    ).fit(frame)
    rng = np.random.default_rng(0)
    y = (frame["listing_counterfeit_term_count"] > 0).to_numpy() ^ (rng.random(len(frame)) < 0.2)
    import lightgbm as lgb

    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "min_data_in_leaf": 5},
        lgb.Dataset(
            encoder.transform(frame),
            y.astype(int),
            feature_name=encoder.feature_names_,
            categorical_feature=encoder.categorical_indices_,
        ),
        num_boost_round=15,
    )
    bundle = ModelBundle.build(
        booster,
        encoder=encoder,
        calibration=Calibration.platt(-1.0, 0.0),
        features=feature_descriptions(Entity.LISTING),
        metadata={"entity": "listing"},
    )
    bundle.threads = 1
    return {"tables": tables, "frame": frame, "snapshot_dir": snapshot_dir, "bundle": bundle}


def _listing_fields(listings: pd.DataFrame, listing_id: str) -> dict[str, Any]:
    row = listings.loc[listings["listing_id"] == listing_id].iloc[0]
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, pd.Timestamp):
            out[str(key)] = value.isoformat()
        elif pd.isna(value):
            out[str(key)] = None
        else:
            out[str(key)] = value.item() if isinstance(value, np.generic) else value
    return out


def test_raw_item_fields_are_scored_like_the_batch_frame(marketplace: dict[str, Any]) -> None:
    bundle: ModelBundle = marketplace["bundle"]
    frame: pd.DataFrame = marketplace["frame"].head(8)
    app = _app(ModelStore.fixed(bundle))
    install(app, ModelStore.fixed(bundle), snapshot_dir=marketplace["snapshot_dir"].parent)
    listings = marketplace["tables"]["listings"]
    items = [
        {"item_id": item_id, "fields": _listing_fields(listings, item_id)}
        for item_id in frame["item_id"]
    ]
    with TestClient(app) as c:
        response = c.post("/v1/score", json={"items": items, "explain": 3})
        assert response.status_code == 200, response.text
        got = [i["probability"] for i in response.json()["items"]]
        np.testing.assert_allclose(got, bundle.predict(frame)[1], rtol=0, atol=1e-12)
        broken = [dict(items[0]), {"item_id": "x", "fields": {**items[1]["fields"], "price": "0"}}]
        bad = c.post("/v1/score", json={"items": broken})
        assert bad.status_code == 422
        assert [d["loc"] for d in bad.json()["detail"]] == [["body", "items", 1, "fields", "price"]]
    install(app, ModelStore.fixed(bundle))  # no snapshot configured
    with TestClient(app) as c:
        refused = c.post("/v1/score", json={"items": items[:1]})
        assert refused.status_code == 422
        assert "no feature snapshot" in refused.json()["detail"][0]["msg"]


# -- text models: raw text online and in batch ------------------------------------------------


def test_raw_text_scores_identically_online_and_in_batch(tmp_path: Any) -> None:
    from serving.batch import read_output, score_file
    from tests.models.bundle_factory import TEXT_SCORE, make_text_frame, train_text_bundle

    bundle = train_text_bundle(*make_text_frame(300, seed=5), n_trees=20)
    bundle.threads = 1
    frame, _ = make_text_frame(40, seed=6)
    frame.loc[0, "title"] = ""
    frame.loc[1, "title"] = "r3plica " * 400
    frame.loc[2, "title"] = "Ünïcödé replica — 日本語 テスト"
    frame.loc[3, "description"] = None
    path = tmp_path / "frame.parquet"
    frame.to_parquet(path)
    score_file(bundle, path, tmp_path / "out", explain_k=len(bundle.feature_names))
    batch = read_output(tmp_path / "out").set_index("item_id")
    items = []
    for row in frame.to_dict("records"):
        features = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items()
            if k != "item_id"
        }
        features = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in features.items()}
        items.append({"item_id": row["item_id"], "features": features})
    with TestClient(_app(ModelStore.fixed(bundle, uri="models:/text/1"))) as c:
        response = c.post("/v1/score", json={"items": items, "explain": len(bundle.feature_names)})
    assert response.status_code == 200, response.text
    for item in response.json()["items"]:
        expected = batch.loc[item["item_id"]]
        assert item["probability"] == expected["probability"]
        assert item["raw_score"] == expected["raw_score"]
        online = next(r for r in item["reasons"] if r["feature"] == TEXT_SCORE)
        offline = next(r for r in expected["reasons"] if r["feature"] == TEXT_SCORE)
        assert [p["text"] for p in online["phrases"]] == [p["text"] for p in offline["phrases"]]
        assert [p["contribution"] for p in online["phrases"]] == pytest.approx(
            [p["contribution"] for p in offline["phrases"]], abs=0
        )
    replica = response.json()["items"][2]
    phrases = next(r for r in replica["reasons"] if r["feature"] == TEXT_SCORE)["phrases"]
    span = phrases[0]["spans"][0]
    assert frame.loc[2, span["field"]][span["start"] : span["end"]] == phrases[0]["text"]


def test_raw_fields_in_the_future_are_refused_and_newer_items_are_clamped_with_a_warning(
    marketplace: dict[str, Any],
) -> None:
    from datetime import UTC, datetime, timedelta

    bundle: ModelBundle = marketplace["bundle"]
    listings = marketplace["tables"]["listings"]
    app = _app(ModelStore.fixed(bundle))
    install(app, ModelStore.fixed(bundle), snapshot_dir=marketplace["snapshot_dir"].parent)
    fields = _listing_fields(listings, str(marketplace["frame"]["item_id"].iloc[0]))
    now = datetime.now(UTC).replace(tzinfo=None)
    with TestClient(app) as c:
        for future in ("9999-12-31T00:00:00", (now + timedelta(days=2)).isoformat()):
            item = {"item_id": "f", "fields": {**fields, "created_at": future}}
            refused = c.post("/v1/score", json={"items": [item]})
            assert refused.status_code == 422, future
            assert [d["loc"] for d in refused.json()["detail"]] == [
                ["body", "items", 0, "fields", "created_at"]
            ]
            assert "future" in refused.json()["detail"][0]["msg"]
        # Published after the snapshot's cutoff (2025-02-15) but not in the future.
        newer = {"item_id": "n", "fields": {**fields, "created_at": now.isoformat()}}
        old = {"item_id": "o", "fields": fields}
        response = c.post("/v1/score", json={"items": [old, newer], "explain": 0})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["items"][0]["warnings"] == []
        (warning,) = body["items"][1]["warnings"]
        assert warning.startswith("listing_age_days: computed -")
        assert body["snapshot"]["as_of"].startswith("2025-02-15")
        assert body["snapshot"]["age_days"] > 300
    frame = build_frame_for(marketplace, [fields, {**fields, "created_at": now.isoformat()}])
    assert frame["listing_age_days"].iloc[1] < 0, "the batch code would give a negative age"


def build_frame_for(marketplace: dict[str, Any], payloads: list[dict[str, Any]]) -> pd.DataFrame:
    from features.online import build_online_frame
    from features.snapshot import FeatureSnapshot

    return build_online_frame(
        "listing", payloads, FeatureSnapshot.load(marketplace["snapshot_dir"])
    )
