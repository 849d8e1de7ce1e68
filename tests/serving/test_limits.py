"""Edge bounds: integers beyond 64 bits, oversized or mistyped bodies, for every route."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from serving.limits import MAX_DB_INT, parse_row_id

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
