"""Edge bounds: integers beyond 64 bits, oversized or mistyped bodies, for every route."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from serving.limits import MAX_DB_INT, RequestLimits, parse_row_id
from serving.settings import get_settings

ON_SQLITE = pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
HUGE = MAX_DB_INT + 1
DIGITS_400 = "9" * 400

#: (method, path, json body, role): every review API route that takes an integer.
_INTEGER_ROUTES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("DELETE", "/api/review/tokens/{n}", None, "admin"),
    ("GET", "/api/review/queue/items/{n}", None, "admin"),
    ("POST", "/api/review/queue/items/{n}/release", None, "admin"),
    (
        "POST",
        "/api/review/queue/items/{n}/verdict",
        {"verdict": "violating", "client_key": "k"},
        "admin",
    ),
    ("GET", "/api/review/queue?offset={n}", None, "admin"),
    ("GET", "/api/review/escalations/{n}", None, "admin"),
    ("POST", "/api/review/escalations/{n}/transitions", {"to_state": "open"}, "admin"),
    ("POST", "/api/review/escalations/{n}/comments", {"body": "x"}, "admin"),
    ("POST", "/api/review/notifications/{n}/read", None, "admin"),
    ("GET", "/api/review/suggestions/{n}", None, "admin"),
    (
        "POST",
        "/api/review/suggestions/{n}/decision",
        {"decision": "reject", "reason": "r"},
        "admin",
    ),
    (
        "POST",
        "/api/review/strategies/listing-counterfeit-terms/versions/{n}/status",
        {"status": "retired"},
        "admin",
    ),
    ("GET", "/api/review/audit-log?before_id={n}", None, "admin"),
    (
        "POST",
        "/api/review/escalations",
        {"kind": "item", "title": "t", "queue_item_id": "{n}"},
        "admin",
    ),
    (
        "POST",
        "/api/review/escalations/1/transitions",
        {"to_state": "assigned", "assignee_id": "{n}"},
        "admin",
    ),
]


def _fill(value: Any, n: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, n) for k, v in value.items()}
    return int(n) if value == "{n}" else value


@ON_SQLITE
@pytest.mark.parametrize("number", [str(HUGE), DIGITS_400, "0", "-1"])
def test_out_of_range_integers_are_422_never_a_server_error(
    review_app: SimpleNamespace, number: str
) -> None:
    client = review_app.client
    client.post(  # an escalation 1 exists, so only the bound decides
        "/api/review/escalations",
        headers=review_app.auth("admin"),
        json={"kind": "strategy", "strategy_id": "listing-counterfeit-terms", "title": "t"},
    )
    failures = []
    for method, template, body, role in _INTEGER_ROUTES:
        path = template.replace("{n}", number)
        json_body = _fill(body, number) if body is not None else None
        if number == "0" and "offset" in template:
            continue  # a valid offset
        response = client.request(method, path, json=json_body, headers=review_app.auth(role))
        if response.status_code != 422:
            failures.append(f"{method} {template}: {response.status_code} {response.text[:100]}")
    assert not failures, "\n".join(failures)


@ON_SQLITE
def test_pages_refuse_out_of_range_ids(review_app: SimpleNamespace) -> None:
    client = review_app.client
    csrf = review_app.login(client, "admin")
    assert client.get(f"/queue/items/{HUGE}").status_code == 422
    assert client.get(f"/escalations/{DIGITS_400}").status_code == 422
    case = client.post(
        "/api/review/escalations",
        headers=review_app.auth("admin"),
        json={"kind": "strategy", "strategy_id": "listing-counterfeit-terms", "title": "t"},
    ).json()["id"]
    moved = client.post(
        f"/escalations/{case}/transition",
        data={"to_state": "assigned", "assignee_id": str(HUGE), "csrf_token": csrf},
    )
    assert moved.status_code == 422  # no assignee named: the service says so


def test_parse_row_id() -> None:
    assert parse_row_id(" 12 ") == 12
    assert parse_row_id(str(MAX_DB_INT)) == MAX_DB_INT
    for bad in ("", "0", "-3", str(HUGE), DIGITS_400, "١٢", "1e3"):
        assert parse_row_id(bad) is None, bad


def _asgi_call(
    app: Any, method: str, path: str, headers: dict[str, str], receive: Any
) -> tuple[int, bytes]:
    """Call an ASGI app directly (no test client buffering the body first)."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), body


@ON_SQLITE
def test_a_50_mb_body_is_refused_before_a_byte_is_read(review_app: SimpleNamespace) -> None:
    reads: list[int] = []

    async def receive() -> dict[str, Any]:
        reads.append(1)  # 50 MB in 64 kB chunks, then the end
        return {"type": "http.request", "body": b"[" * 65536, "more_body": len(reads) < 800}

    headers = {"content-type": "application/json", "content-length": str(50 * 2**20)}
    for path in ("/api/review/tokens", "/login", "/v1/score"):
        status, body = _asgi_call(review_app.app, "POST", path, headers, receive)
        assert status == 413 and b"larger than" in body, path
    assert reads == []


@ON_SQLITE
def test_a_streamed_body_is_cut_off_at_the_limit(review_app: SimpleNamespace) -> None:
    reads: list[int] = []

    async def receive() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b" " * 65536, "more_body": len(reads) < 800}

    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    status, _ = _asgi_call(review_app.app, "POST", "/api/review/tokens", headers, receive)
    limit = get_settings().max_body_bytes
    assert status == 413
    assert len(reads) == limit // 65536 + 1  # read up to the limit, not to the end


def test_a_body_that_stalls_is_refused_with_408() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not run")

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    limited = RequestLimits(app, max_bytes=1000, read_timeout_seconds=0.05)
    headers = {"content-type": "application/json", "content-length": "10"}
    status, body = _asgi_call(limited, "POST", "/v1/score", headers, receive)
    assert status == 408 and b"did not arrive" in body


@ON_SQLITE
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/review/tokens", "text/plain"),
        ("/api/review/tokens", "application/x-www-form-urlencoded"),
        ("/v1/score", "text/plain"),
        ("/login", "application/json"),
    ],
)
def test_a_body_of_the_wrong_media_type_is_415(
    review_app: SimpleNamespace, path: str, content_type: str
) -> None:
    body = '{"username": "pm", "password": "correct horse battery"}'
    response = review_app.client.post(path, content=body, headers={"content-type": content_type})
    assert response.status_code == 415
    assert response.headers["x-content-type-options"] == "nosniff"


@ON_SQLITE
def test_bodiless_requests_and_json_with_a_charset_pass(review_app: SimpleNamespace) -> None:
    client = review_app.client
    assert client.get("/healthz").status_code == 200
    claim = client.post("/api/review/queue/claim", headers=review_app.auth("moderator"))
    assert claim.status_code == 200
    issued = client.post(
        "/api/review/tokens",
        content='{"username": "pm", "password": "correct horse battery"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert issued.status_code == 201


@ON_SQLITE
def test_a_json_body_with_half_a_surrogate_pair_is_400_not_a_server_error(
    review_app: SimpleNamespace,
) -> None:
    client = review_app.client
    lone = '{"username": "\\ud800", "password": "correct horse battery"}'
    refused = client.post(
        "/api/review/tokens", content=lone, headers={"content-type": "application/json"}
    )
    assert refused.status_code == 400 and "surrogate" in refused.json()["detail"]
    pair = '{"username": "pm", "password": "correct horse battery", "name": "\\ud83d\\ude00"}'
    issued = client.post(
        "/api/review/tokens", content=pair, headers={"content-type": "application/json"}
    )
    assert issued.status_code == 201 and issued.json()["name"] == "\N{GRINNING FACE}"


@ON_SQLITE
@pytest.mark.parametrize("path", ["/api/review/tokens", "/v1/score", "/login"])
def test_a_client_that_goes_away_mid_body_is_not_an_error(
    review_app: SimpleNamespace, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Half a body, then the connection closes: nothing to answer, nothing logged as an error."""
    half = {"type": "http.request", "body": b'{"user', "more_body": True}
    messages = iter([half, {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    media = "application/x-www-form-urlencoded" if path == "/login" else "application/json"
    headers = [(b"content-type", media.encode()), (b"content-length", b"100")]
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    scope |= {"query_string": b"", "root_path": "", "raw_path": path.encode(), "state": {}}
    with caplog.at_level(logging.INFO):
        asyncio.run(review_app.app(scope, receive, send))
    assert sent == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
