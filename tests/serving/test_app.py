"""The assembled app: sessions only on pages, JSON errors and OpenAPI schemas on the APIs."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient

from governance.review.settings import ReviewSettings
from models.bundle import ModelBundle
from serving.app import SESSION_COOKIE, create_app, default_routers
from serving.model_store import ModelStore
from serving.scoring_api import install
from tests.models.bundle_factory import make_frame, train_bundle


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    trained = train_bundle(*make_frame(300, seed=12), n_trees=10)
    trained.threads = 1
    return trained


def _score_body(n: int = 1) -> dict[str, Any]:
    frame, _ = make_frame(n, seed=20)
    items = []
    for row in frame.to_dict("records"):
        features = {
            k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in row.items()
            if k != "item_id"
        }
        features = {k: v.item() if isinstance(v, np.generic) else v for k, v in features.items()}
        items.append({"item_id": row["item_id"], "features": features})
    return {"items": items, "explain": 2}


@pytest.fixture
def scoring_app(review_app: SimpleNamespace, bundle: ModelBundle) -> SimpleNamespace:
    """The review app of conftest, serving `bundle` on /v1/score."""
    install(review_app.app, ModelStore.fixed(bundle))
    return review_app


def test_api_responses_never_set_the_session_cookie(scoring_app: SimpleNamespace) -> None:
    client = scoring_app.client
    scoring_app.login(client, "moderator")
    assert SESSION_COOKIE in client.cookies
    scored = client.post("/v1/score", json=_score_body())
    assert scored.status_code == 200, scored.text
    invalid = client.post("/v1/score", json={"items": []})
    assert invalid.status_code == 422
    api = client.get("/api/review/me", headers=scoring_app.auth("moderator"))
    assert api.status_code == 200, api.text
    for response in (scored, invalid, api):
        assert "set-cookie" not in response.headers, response.request.url
        assert "cookie" not in response.headers.get("vary", "").lower(), response.request.url
    assert client.get("/queue").status_code == 200, "pages still see the signed-in session"


def test_sessions_are_decoded_for_pages_only(review_settings: ReviewSettings) -> None:
    probe = APIRouter()

    @probe.get("/api/probe")
    @probe.get("/v1/probe")
    @probe.get("/probe")
    def has_session(request: Request) -> dict[str, bool]:
        return {"session": "session" in request.scope}

    app = create_app(review_settings, routers=[*default_routers(), probe])
    with TestClient(app) as client:
        assert client.get("/probe").json() == {"session": True}
        assert client.get("/v1/probe").json() == {"session": False}
        assert client.get("/api/probe").json() == {"session": False}


def test_scoring_errors_are_json_naming_the_field(scoring_app: SimpleNamespace) -> None:
    client = scoring_app.client
    body = _score_body()
    body["items"][0]["features"]["listing_price"] = "19.90"
    response = client.post("/v1/score", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    locations = [d["loc"] for d in response.json()["detail"]]
    assert ["body", "items", 0, "features", "listing_price"] in locations
    missing = client.post("/v1/score", json={"items": [{"features": {}}]})
    assert missing.status_code == 422
    assert ["body", "items", 0, "item_id"] in [d["loc"] for d in missing.json()["detail"]]
    unknown = client.get("/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Not Found"}
    page_404 = client.get("/nothing-here")
    assert page_404.status_code == 404
    assert page_404.headers["content-type"].startswith("text/html")


def test_responses_carry_the_hardening_headers(scoring_app: SimpleNamespace) -> None:
    client = scoring_app.client
    scored = client.post("/v1/score", json=_score_body())
    page = client.get("/login")
    docs = client.get("/docs")
    for response in (scored, page, docs):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" in scored.headers
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "content-security-policy" not in docs.headers


def test_openapi_lists_the_scoring_schemas(scoring_app: SimpleNamespace) -> None:
    client = scoring_app.client
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/score"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["title"] == "ScoreRequest"
    ok = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ScoreResponse"}
    schemas = set(spec["components"]["schemas"])
    assert {"ScoreResponse", "ScoredItem", "ReasonPublic", "FlagReasonPublic"} <= schemas
    # Every schema has a plain name (no module-qualified duplicates of one class name).
    assert not [name for name in schemas if "__" in name]
    assert client.get("/docs").status_code == 200
    assert client.get("/static/review.css").status_code == 200


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_a_locked_sqlite_database_is_a_503_to_retry_not_a_500(
    review_settings: ReviewSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    import sqlalchemy as sa

    from governance.review import db, users

    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_S", 0.2)  # wait 0.2 s for the lock, not 30
    app = create_app(review_settings)
    with app.state.review.session_factory() as session:
        user = users.create_user(session, username="pm", role="pm", password="a long password")
        _, token = users.issue_token(session, user, name="t")
        session.commit()
    path = sa.make_url(review_settings.resolved_database_url()).database
    assert path is not None
    blocker = sqlite3.connect(path, isolation_level=None)  # another process holding the lock
    headers = {"Authorization": f"Bearer {token}"}
    body = {"kind": "strategy", "strategy_id": "listing-counterfeit-terms", "title": "busy"}
    with TestClient(app, raise_server_exceptions=False) as client:
        blocker.execute("BEGIN IMMEDIATE")
        try:
            busy = client.post("/api/review/escalations", headers=headers, json=body)
        finally:
            blocker.execute("ROLLBACK")
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"] == "1" and "try again" in busy.json()["detail"]
        again = client.post("/api/review/escalations", headers=headers, json=body)
        assert again.status_code == 201


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_an_undeclared_method_is_405_with_allow_on_health_and_pages(
    review_app: SimpleNamespace,
) -> None:
    client: TestClient = review_app.client
    trace = client.request("TRACE", "/readyz")
    assert trace.status_code == 405 and trace.headers["allow"] == "GET"
    assert trace.headers["content-type"] == "application/json"
    page = client.request("PUT", "/login")
    assert page.status_code == 405 and "GET" in page.headers["allow"]  # the error page keeps it
