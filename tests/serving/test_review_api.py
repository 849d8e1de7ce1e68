"""The review JSON API: token auth, the moderator journey, escalations and approvals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient

from governance.review import audit_log


def test_token_login_and_bearer_auth(review_app: SimpleNamespace) -> None:
    client = review_app.client
    bad = client.post("/api/review/tokens", json={"username": "pm", "password": "nope nope nope"})
    assert bad.status_code == 401
    issued = client.post(
        "/api/review/tokens", json={"username": "pm", "password": "correct horse battery"}
    )
    assert issued.status_code == 201
    me = client.get("/api/review/me", headers={"Authorization": f"Bearer {issued.json()['token']}"})
    assert me.json()["role"] == "pm"
    unauth = client.get("/api/review/me")
    assert unauth.status_code == 401 and unauth.headers["www-authenticate"] == "Bearer"


def test_every_token_expires_and_only_admins_choose_long_lifetimes(
    review_app: SimpleNamespace,
) -> None:
    client = review_app.client

    def issue(username: str, **extra: object) -> Any:
        body = {"username": username, "password": "correct horse battery", **extra}
        return client.post("/api/review/tokens", json=body)

    for unlimited in ({"ttl_days": None}, {}):
        issued = issue("pm", **unlimited)
        assert issued.status_code == 201, issued.text
        expires = datetime.fromisoformat(issued.json()["expires_at"]).replace(tzinfo=UTC)
        assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert issue("pm", ttl_days=90).status_code == 201
    too_long = issue("pm", ttl_days=91)
    assert too_long.status_code == 422 and "ttl_days" in too_long.text
    assert issue("admin", ttl_days=365).status_code == 201
    assert issue("admin", ttl_days=366).status_code == 422
    assert issue("admin", ttl_days=1e308).status_code == 422


def test_people_list_and_revoke_their_own_tokens_and_admins_anyones(
    review_app: SimpleNamespace,
) -> None:
    client, auth = review_app.client, review_app.auth
    issued = client.post(
        "/api/review/tokens",
        json={"username": "pm", "password": "correct horse battery", "name": "laptop"},
    ).json()
    laptop = {"Authorization": f"Bearer {issued['token']}"}
    mine = client.get("/api/review/tokens", headers=auth("pm"))
    assert mine.status_code == 200
    listed = mine.json()
    assert [t["name"] for t in listed] == ["laptop", "test"]  # newest first
    assert {t["state"] for t in listed} == {"active"} and {t["username"] for t in listed} == {"pm"}
    assert all("token" not in t for t in listed)  # never the secret
    assert issued["token"] not in mine.text
    laptop_id = listed[0]["id"]
    # Nobody else's tokens: a moderator can neither list nor (even learn of and) revoke them.
    forbidden = client.get("/api/review/tokens?username=pm", headers=auth("moderator"))
    assert forbidden.status_code == 403
    hidden = client.delete(f"/api/review/tokens/{laptop_id}", headers=auth("moderator"))
    assert hidden.status_code == 404
    assert client.get("/api/review/me", headers=laptop).status_code == 200
    # The owner revokes it (twice is fine); the token stops working at once.
    assert client.delete(f"/api/review/tokens/{laptop_id}", headers=auth("pm")).status_code == 204
    assert client.delete(f"/api/review/tokens/{laptop_id}", headers=auth("pm")).status_code == 204
    assert client.get("/api/review/me", headers=laptop).status_code == 401
    states = {
        t["name"]: t["state"] for t in client.get("/api/review/tokens", headers=auth("pm")).json()
    }
    assert states == {"laptop": "revoked", "test": "active"}
    # Admins see and revoke anyone's.
    seen = client.get("/api/review/tokens?username=moderator", headers=auth("admin")).json()
    assert [t["username"] for t in seen] == ["moderator"]
    gone = client.delete(f"/api/review/tokens/{seen[0]['id']}", headers=auth("admin"))
    assert gone.status_code == 204
    assert client.get("/api/review/me", headers=auth("moderator")).status_code == 401
    missing = client.get("/api/review/tokens?username=nobody", headers=auth("admin"))
    assert missing.status_code == 404
    events = [
        e["action"] for e in client.get("/api/review/audit-log", headers=auth("admin")).json()
    ]
    assert events.count("token.revoke") == 2


def test_token_exchange_is_throttled_after_repeated_failures(
    review_app: SimpleNamespace,
    advance_clock: Callable[[float], None],
    argon2_checks: list[str],
) -> None:
    client = review_app.client
    for _ in range(5):
        bad = client.post("/api/review/tokens", json={"username": "pm", "password": "nope nope"})
        assert bad.status_code == 401
    advance_clock(60)
    locked = client.post(
        "/api/review/tokens", json={"username": "Pm ", "password": "correct horse battery"}
    )
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(15 * 60 - 60)
    assert "Too many failed sign-ins" in locked.json()["detail"]
    assert "try again in 14 minutes" in locked.json()["detail"]
    assert len(argon2_checks) == 5  # the refused attempt checked no password
    with TestClient(review_app.app, client=("10.0.0.9", 50000)) as elsewhere:
        other = elsewhere.post(
            "/api/review/tokens", json={"username": "admin", "password": "correct horse battery"}
        )
        assert other.status_code == 201
    advance_clock(15 * 60 - 60)
    issued = client.post(
        "/api/review/tokens", json={"username": "pm", "password": "correct horse battery"}
    )
    assert issued.status_code == 201


def test_moderator_claims_judges_and_replays(review_app: SimpleNamespace) -> None:
    client, mod = review_app.client, review_app.auth("moderator")
    claim = client.post("/api/review/queue/claim", headers=mod)
    assert claim.status_code == 200
    item = claim.json()["item"]
    assert item["reasons"] and item["strategies"] is not None
    body = {
        "verdict": "violating",
        "client_key": "abc-1",
        "confidence": "medium",
        "note": "replica wording",
    }
    first = client.post(f"/api/review/queue/items/{item['id']}/verdict", json=body, headers=mod)
    again = client.post(f"/api/review/queue/items/{item['id']}/verdict", json=body, headers=mod)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["reviewer"] == "moderator"
    stats = client.get("/api/review/queue/stats", headers=mod).json()
    assert (stats["judged"], stats["total"]) == (1, 20)
    labels = client.get("/api/review/labels", headers=review_app.auth("ml_engineer")).json()
    assert [row["item_id"] for row in labels] == [item["item_id"]]


def test_the_queue_lists_every_status_as_the_page_does(review_app: SimpleNamespace) -> None:
    client, mod = review_app.client, review_app.auth("moderator")
    item = client.post("/api/review/queue/claim", headers=mod).json()["item"]
    body = {"verdict": "violating", "client_key": "all-1", "confidence": "high"}
    client.post(f"/api/review/queue/items/{item['id']}/verdict", json=body, headers=mod)
    every = client.get("/api/review/queue?status=all&limit=500", headers=mod)
    assert every.status_code == 200
    assert {i["status"] for i in every.json()} == {"pending", "judged"} and len(every.json()) == 20
    judged = client.get("/api/review/queue?status=judged", headers=mod).json()
    assert [i["id"] for i in judged] == [item["id"]]
    assert client.get("/api/review/queue?status=bogus", headers=mod).status_code == 422
    review_app.login(client, "moderator")
    page = client.get("/queue?status=judged")
    assert page.status_code == 200 and '<option value="judged" selected>' in page.text
    row = page.text[page.text.index(f'data-href="/queue/items/{item["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert "violating</b> by moderator" in row and "<time datetime=" in row


def test_bad_input_is_a_422_naming_the_field(review_app: SimpleNamespace) -> None:
    client, mod = review_app.client, review_app.auth("moderator")
    item = client.post("/api/review/queue/claim", headers=mod).json()["item"]
    response = client.post(
        f"/api/review/queue/items/{item['id']}/verdict",
        json={"verdict": "maybe", "client_key": "k"},
        headers=mod,
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "verdict"
    missing = client.get("/api/review/queue/items/999999", headers=mod)
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]


def test_pm_cannot_judge_and_a_moderator_cannot_approve(review_app: SimpleNamespace) -> None:
    client = review_app.client
    item = client.get("/api/review/queue", headers=review_app.auth("pm")).json()[0]
    judged = client.post(
        f"/api/review/queue/items/{item['id']}/verdict",
        json={"verdict": "violating", "client_key": "x"},
        headers=review_app.auth("pm"),
    )
    assert judged.status_code == 403
    suggestion = client.get("/api/review/suggestions", headers=review_app.auth("pm")).json()[0]
    approve = client.post(
        f"/api/review/suggestions/{suggestion['id']}/decision",
        json={"decision": "accept", "reason": "yes"},
        headers=review_app.auth("moderator"),
    )
    assert approve.status_code == 403


def test_escalation_round_trip_notifies_the_raiser(review_app: SimpleNamespace) -> None:
    client = review_app.client
    mod, pm = review_app.auth("moderator"), review_app.auth("pm")
    item = client.post("/api/review/queue/claim", headers=mod).json()["item"]
    case = client.post(
        "/api/review/escalations",
        headers=mod,
        json={
            "kind": "item",
            "queue_item_id": item["id"],
            "title": "Brand letter looks forged",
            "priority": "critical",
        },
    )
    assert case.status_code == 201 and case.json()["state"] == "open"
    case_id = case.json()["id"]
    for move in (
        {"to_state": "assigned", "assignee_id": review_app.ids["pm"]},
        {"to_state": "in_progress"},
        {"to_state": "resolved", "resolution": "Forged; judge violating."},
    ):
        response = client.post(
            f"/api/review/escalations/{case_id}/transitions", json=move, headers=pm
        )
        assert response.status_code == 200, response.text
    wrong = client.post(
        f"/api/review/escalations/{case_id}/transitions", json={"to_state": "open"}, headers=pm
    )
    assert wrong.status_code == 409
    notes = client.get("/api/review/notifications", headers=mod).json()
    assert any(
        n["kind"] == "escalation_resolved" and n["body"] == "Forged; judge violating."
        for n in notes
    )
    detail = client.get(f"/api/review/escalations/{case_id}", headers=mod).json()
    assert [h["kind"] for h in detail["history"]].count("state_changed") == 3


def test_accept_then_promote_through_the_api(review_app: SimpleNamespace) -> None:
    client, pm = review_app.client, review_app.auth("pm")
    suggestion = client.get("/api/review/suggestions", headers=pm).json()[0]
    decided = client.post(
        f"/api/review/suggestions/{suggestion['id']}/decision",
        headers=pm,
        json={"decision": "accept", "reason": "halves false positives"},
    )
    assert decided.status_code == 200, decided.text
    version = decided.json()["strategy_version"]
    assert (version["version"], version["status"]) == (2, "shadow")
    promoted = client.post(
        "/api/review/strategies/listing-counterfeit-terms/versions/2/status",
        json={"status": "active"},
        headers=pm,
    )
    assert promoted.status_code == 200
    assert [(v["version"], v["status"]) for v in promoted.json()] == [(1, "retired"), (2, "active")]
    log = client.get("/api/review/audit-log", headers=review_app.auth("admin")).json()
    assert {"suggestion.accept", "strategy_version.promote"} <= {e["action"] for e in log}
    with review_app.state.session_factory() as session:
        assert audit_log.entries(session, target_type="suggestion")[0].actor == "pm"


def _timestamps(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, text) of every timestamp field in a JSON document (`*_at` and `at` keys)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _timestamps(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _timestamps(v, key)
    elif isinstance(value, str) and (key == "at" or key.endswith("_at")):
        yield key, value


def test_every_timestamp_the_api_returns_is_utc_with_its_zone(review_app: SimpleNamespace) -> None:
    client, auth = review_app.client, review_app.auth
    mod, admin = auth("moderator"), auth("admin")
    bodies: list[Any] = []
    issued = client.post(
        "/api/review/tokens", json={"username": "pm", "password": "correct horse battery"}
    )
    bodies.append(issued.json())
    claim = client.post("/api/review/queue/claim", headers=mod).json()
    bodies.append(claim)
    item = claim["item"]["id"]
    bodies.append(
        client.post(
            f"/api/review/queue/items/{item}/verdict",
            headers=mod,
            json={"verdict": "violating", "client_key": "tz"},
        ).json()
    )
    case = client.post(
        "/api/review/escalations",
        headers=mod,
        json={"kind": "strategy", "strategy_id": "listing-counterfeit-terms", "title": "tz"},
    ).json()
    moved = client.post(
        f"/api/review/escalations/{case['id']}/transitions",
        headers=admin,
        json={"to_state": "closed", "resolution": "dup"},
    )
    bodies += [case, moved.json()]
    for path, headers in [
        ("/api/review/tokens", admin),
        ("/api/review/queue?status=judged", admin),
        (f"/api/review/queue/items/{item}", admin),
        ("/api/review/escalations", admin),
        (f"/api/review/escalations/{case['id']}", admin),
        ("/api/review/notifications", mod),
        ("/api/review/labels", admin),
        ("/api/review/audit-log", admin),
    ]:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        bodies.append(response.json())
    found = [t for body in bodies for t in _timestamps(body)]
    assert {k for k, _ in found} >= {"expires_at", "created_at", "due_at", "at", "reviewed_at"}
    naive = [
        (k, v) for k, v in found if datetime.fromisoformat(v.replace("Z", "+00:00")).tzinfo is None
    ]
    assert not naive, naive[:5]
    assert all(v.endswith(("Z", "+00:00")) for _, v in found)


def test_422_bodies_list_the_fields_and_never_echo_the_input(review_app: SimpleNamespace) -> None:
    client, mod = review_app.client, review_app.auth("moderator")
    long_title = "x" * 5000
    schema_error = client.post(
        "/api/review/escalations",
        headers=mod,
        json={"kind": "strategy", "strategy_id": "s", "title": long_title, "priority": "urgent!"},
    )
    service_error = client.post(
        "/api/review/tokens",
        json={"username": "pm", "password": "correct horse battery", "ttl_days": 9999},
    )
    for response in (schema_error, service_error):
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert isinstance(detail, list) and detail
        assert all(set(d) == {"loc", "msg", "type"} for d in detail)
        assert "xxxxxxxxxx" not in response.text and "urgent!" not in response.text
    # a body whose shape depends on its kind names the kind in the path: body > strategy > title
    assert ["body", "strategy", "title"] in [d["loc"] for d in schema_error.json()["detail"]]
    assert service_error.json()["detail"][0]["loc"] == ["body", "ttl_days"]


def test_openapi_declares_every_error_a_review_route_answers(review_app: SimpleNamespace) -> None:
    spec = review_app.client.get("/openapi.json").json()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            wanted = {"400", "408", "413", "415"}
            if path.startswith("/api/review/"):
                wanted |= {"401", "403", "404", "409", "422", "503"}
            if path == "/api/review/tokens" and method == "post":
                wanted.add("429")
            if not wanted <= declared:
                missing.append(f"{method.upper()} {path}: {sorted(wanted - declared)}")
    assert not missing, "\n".join(missing)
    error = spec["components"]["schemas"]["ErrorPublic"]
    assert error["properties"]["detail"]["type"] == "string"
