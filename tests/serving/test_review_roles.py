"""Every route × every role: who is refused (401 / login redirect / 403) and who gets through.

The table below is the access specification. The test walks `app.routes`, so a route added
without a rule here fails, and a rule left behind for a removed route fails too.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount

from governance.experiments.store import create_experiment
from tests.governance.experiments.factories import make_experiment, make_registry

ALL = frozenset({"moderator", "pm", "ml_engineer", "admin"})
MOD = frozenset({"moderator", "admin"})
PM = frozenset({"pm", "admin"})
ENG = frozenset({"ml_engineer", "admin"})
ANALYST = frozenset({"pm", "ml_engineer", "admin"})
ADMIN = frozenset({"admin"})
PUBLIC = None

#: (method, path) -> roles allowed (None: no sign-in needed).
RULES: dict[tuple[str, str], frozenset[str] | None] = {
    # JSON API
    ("POST", "/api/review/tokens"): PUBLIC,
    ("GET", "/api/review/tokens"): ALL,
    ("DELETE", "/api/review/tokens/{token_id}"): ALL,  # own tokens; admins anyone's (404 else)
    ("GET", "/api/review/me"): ALL,
    ("GET", "/api/review/users"): ADMIN,
    ("POST", "/api/review/users"): ADMIN,
    ("GET", "/api/review/queue"): ALL,
    ("GET", "/api/review/queue/stats"): ALL,
    ("POST", "/api/review/queue/claim"): MOD,
    ("GET", "/api/review/queue/items/{item_pk}"): ALL,
    ("POST", "/api/review/queue/items/{item_pk}/release"): MOD,
    ("POST", "/api/review/queue/items/{item_pk}/verdict"): MOD,
    ("POST", "/api/review/queue/flags"): ENG,
    ("GET", "/api/review/labels"): ANALYST,
    ("GET", "/api/review/escalations"): ALL,
    ("POST", "/api/review/escalations"): ALL,
    ("GET", "/api/review/escalations/{escalation_id}"): ALL,
    ("POST", "/api/review/escalations/{escalation_id}/transitions"): ALL,
    ("POST", "/api/review/escalations/{escalation_id}/comments"): ALL,
    ("GET", "/api/review/notifications"): ALL,
    ("POST", "/api/review/notifications/{notification_id}/read"): ALL,
    ("GET", "/api/review/suggestions"): ANALYST,
    ("POST", "/api/review/suggestions"): ENG,
    ("GET", "/api/review/suggestions/{suggestion_pk}"): ANALYST,
    ("POST", "/api/review/suggestions/{suggestion_pk}/decision"): PM,
    ("GET", "/api/review/strategies"): ANALYST,
    ("POST", "/api/review/strategies/{strategy_id}/versions/{version}/status"): PM,
    ("GET", "/api/review/dashboard"): ANALYST,
    ("GET", "/api/review/audit-log"): ADMIN,
    # pages
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): ALL,
    ("GET", "/"): ALL,
    ("GET", "/queue"): ALL,
    ("POST", "/queue/claim"): MOD,
    ("GET", "/queue/items/{item_pk}"): ALL,
    ("POST", "/queue/items/{item_pk}/verdict"): MOD,
    ("POST", "/queue/items/{item_pk}/release"): MOD,
    ("POST", "/queue/items/{item_pk}/escalate"): ALL,
    ("GET", "/escalations"): ALL,
    ("POST", "/escalations"): ALL,
    ("GET", "/escalations/{escalation_id}"): ALL,
    ("POST", "/escalations/{escalation_id}/transition"): ALL,
    ("POST", "/escalations/{escalation_id}/comments"): ALL,
    ("GET", "/notifications"): ALL,
    ("POST", "/notifications/{notification_id}/read"): ALL,
    ("GET", "/dashboard"): ANALYST,
    ("GET", "/monitoring"): ANALYST,
    ("GET", "/suggestions"): ANALYST,
    ("GET", "/suggestions/{suggestion_pk}"): ANALYST,
    ("POST", "/suggestions/{suggestion_pk}/decision"): PM,
    ("GET", "/strategies"): ANALYST,
    ("GET", "/strategies/{strategy_id}/compare"): ANALYST,
    ("POST", "/strategies/{strategy_id}/versions/{version}/status"): PM,
    ("GET", "/experiments"): ANALYST,
    ("GET", "/experiments/{experiment_id}"): ANALYST,
    ("POST", "/experiments/{experiment_id}/ship"): PM,
    ("POST", "/experiments/{experiment_id}/stop"): PM,
    ("POST", "/suggestions/{suggestion_pk}/experiment"): PM,
    ("GET", "/audit-log"): ADMIN,
    # scoring (service-to-service, no user auth: see serving/scoring_api.py)
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/v1/model"): PUBLIC,
    ("POST", "/v1/score"): PUBLIC,
    # framework
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
}

#: JSON bodies / form fields that pass validation, so only access decides the outcome.
API_BODIES: dict[str, dict[str, Any]] = {
    "/api/review/tokens": {"username": "pm", "password": "correct horse battery"},
    "/api/review/users": {"username": "newbie", "role": "moderator", "password": "a long password"},
    "/api/review/queue/items/{item_pk}/verdict": {"verdict": "violating", "client_key": "k"},
    "/api/review/queue/flags": {
        "rows": [
            {
                "entity": "listing",
                "item_id": "NEW1",
                "policy": "counterfeit",
                "kind": "random_audit",
                "priority": 1.0,
                "p_error": 0.5,
                "inclusion_probability": 0.1,
            }
        ]
    },
    "/api/review/escalations": {
        "kind": "strategy",
        "strategy_id": "listing-counterfeit-terms",
        "title": "check",
    },
    "/api/review/escalations/{escalation_id}/transitions": {
        "to_state": "closed",
        "resolution": "dup",
    },
    "/api/review/escalations/{escalation_id}/comments": {"body": "noted"},
    "/api/review/suggestions": {
        "rows": [
            {
                "suggestion_id": "sg-new",
                "strategy_id": "listing-counterfeit-terms",
                "kind": "threshold",
                "summary": "s",
                "proposed_yaml": "id: x",
                "delta_fp": 0,
                "delta_fp_low": 0,
                "delta_fp_high": 0,
                "delta_fn": 0,
                "delta_fn_low": 0,
                "delta_fn_high": 0,
                "delta_impressions": 0,
                "delta_gmv": 0,
                "labels_used": 1,
                "rank": 9,
            }
        ]
    },
    "/api/review/suggestions/{suggestion_pk}/decision": {"decision": "reject", "reason": "no"},
    "/api/review/strategies/{strategy_id}/versions/{version}/status": {"status": "retired"},
}
FORM_FIELDS: dict[str, dict[str, str]] = {
    "/login": {"username": "pm", "password": "correct horse battery"},
    "/queue/items/{item_pk}/verdict": {"verdict": "violating", "client_key": "page-k"},
    "/queue/items/{item_pk}/escalate": {"title": "look"},
    "/escalations": {"title": "look", "strategy_id": "listing-counterfeit-terms"},
    "/escalations/{escalation_id}/transition": {"to_state": "closed", "resolution": "dup"},
    "/escalations/{escalation_id}/comments": {"body": "noted"},
    "/suggestions/{suggestion_pk}/decision": {"decision": "reject", "reason": "no"},
    "/strategies/{strategy_id}/versions/{version}/status": {"status": "retired"},
    "/experiments/{experiment_id}/ship": {"reason": "won"},
    "/experiments/{experiment_id}/stop": {"reason": "done"},
}
FORBIDDEN_MARK = "cannot do this; needs one of"
#: Access rules do not depend on the database; the API tests cover both databases.
ON_SQLITE = pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)


def _flat_routes(routes: Any) -> Any:
    """Leaf routes; FastAPI keeps included routers as nested, lazily prefixed groups."""
    for route in routes:
        if hasattr(route, "effective_candidates"):
            yield from _flat_routes(route.effective_candidates())
        else:
            yield route


def _routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    for route in _flat_routes(app.routes):
        if isinstance(route, Mount):
            continue  # /static: public files
        methods = getattr(getattr(route, "original_route", route), "methods", None)
        assert methods, f"route {route!r} has no methods"
        for method in methods:
            if method != "HEAD":
                found.add((method, route.path))
    return found


@ON_SQLITE
def test_every_route_has_an_access_rule(review_app: SimpleNamespace) -> None:
    routes = _routes(review_app.app)
    assert not routes - RULES.keys(), f"routes without an access rule: {routes - RULES.keys()}"
    assert not RULES.keys() - routes, f"rules for missing routes: {RULES.keys() - routes}"


def _objects(review_app: SimpleNamespace) -> dict[str, str]:
    """Path parameters naming real objects every allowed role may reach."""
    client, mod = review_app.client, review_app.auth("moderator")
    item = client.get("/api/review/queue", headers=mod).json()[0]
    case = client.post(
        "/api/review/escalations",
        headers=mod,
        json={"kind": "strategy", "strategy_id": "listing-counterfeit-terms", "title": "fixture"},
    )
    suggestion = client.get("/api/review/suggestions", headers=review_app.auth("pm")).json()[0]
    client.post(
        "/api/review/tokens",
        json={"username": "pm", "password": "correct horse battery", "name": "fixture"},
    )
    tokens = client.get("/api/review/tokens", headers=review_app.auth("pm")).json()
    with review_app.state.session_factory() as session:
        experiment = make_experiment()
        create_experiment(session, experiment, registry=make_registry(), actor=None)
        session.commit()
    return {
        "experiment_id": experiment.id,
        "token_id": str(next(t["id"] for t in tokens if t["name"] == "fixture")),
        "item_pk": str(item["id"]),
        "escalation_id": str(case.json()["id"]),
        "suggestion_pk": str(suggestion["id"]),
        "notification_id": "1",
        "strategy_id": "listing-counterfeit-terms",
        "version": "1",
    }


def _call(
    client: TestClient,
    method: str,
    path: str,
    template: str,
    headers: dict[str, str],
    csrf: str | None,
) -> Any:
    if template.startswith(("/api/", "/v1/")) or template in ("/openapi.json",):
        body = API_BODIES.get(template)
        return client.request(
            method, path, json=body if method == "POST" else None, headers=headers
        )
    if method == "POST":
        data = {**FORM_FIELDS.get(template, {}), "csrf_token": csrf or ""}
        return client.post(path, data=data, follow_redirects=False)
    return client.get(path, follow_redirects=False)


@ON_SQLITE
@pytest.mark.parametrize("who", ["anonymous", "moderator", "pm", "ml_engineer", "admin"])
def test_each_route_admits_exactly_its_roles(review_app: SimpleNamespace, who: str) -> None:
    objects = _objects(review_app)
    client: TestClient = review_app.client
    csrf = None
    if who != "anonymous":
        csrf = review_app.login(client, who.replace("_", "-"))
    headers = review_app.auth(who) if who != "anonymous" else {}
    failures = []
    for (method, template), allowed in sorted(RULES.items()):
        if template in ("/logout", "/login") and method == "POST":
            continue  # would end or replace the session the loop relies on; tested on its own
        path = template.format(**objects)
        response = _call(client, method, path, template, headers, csrf)
        to_login = response.status_code == 303 and "/login" in response.headers.get("location", "")
        refused_auth = response.status_code == 401 or to_login
        refused_role = response.status_code == 403 and FORBIDDEN_MARK in response.text
        if allowed is None:  # may still answer 4xx/503 (no body, no model loaded)
            ok = not refused_auth and not refused_role
        elif who == "anonymous":
            ok = refused_auth
        elif who in allowed:
            ok = not refused_auth and not refused_role and response.status_code < 500
            if method == "GET":
                ok = ok and response.status_code in (200, 303)
        else:
            ok = refused_role
        if not ok:
            failures.append(f"{method} {template}: {response.status_code} {response.text[:120]}")
    assert not failures, "\n".join(failures)


@ON_SQLITE
def test_logout_needs_a_session_and_a_csrf_token(review_app: SimpleNamespace) -> None:
    client: TestClient = review_app.client
    anonymous = client.post("/logout", data={"csrf_token": "x"}, follow_redirects=False)
    assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
    csrf = review_app.login(client, "pm")
    assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    after = client.get("/queue", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/login")


#: Escalation moves by someone who is not part of the case (an admin raised it; nobody else
#: is assigned): (from state, to state) -> roles that may make it. PMs and admins manage
#: every case; an ML engineer sees every case but acts on none of these; a moderator does
#: not even see it. Every move of `escalations.TRANSITIONS` has a row.
NON_PARTICIPANT_MOVES: dict[tuple[str, str], frozenset[str]] = {
    ("open", "assigned"): PM,
    ("open", "closed"): PM,
    ("assigned", "assigned"): PM,
    ("assigned", "open"): PM,
    ("assigned", "in_progress"): PM,
    ("assigned", "closed"): PM,
    ("in_progress", "assigned"): PM,
    ("in_progress", "resolved"): PM,
    ("resolved", "in_progress"): PM,
    ("resolved", "closed"): PM,
}
#: How an admin brings a fresh case to each state before the move under test.
_PATH_TO: dict[str, list[str]] = {
    "open": [],
    "assigned": ["assigned"],
    "in_progress": ["assigned", "in_progress"],
    "resolved": ["assigned", "in_progress", "resolved"],
}


def _move(review_app: SimpleNamespace, who: str, case_id: int, to_state: str) -> Any:
    body: dict[str, Any] = {"to_state": to_state, "resolution": "done"}
    if to_state == "assigned":
        body["assignee_id"] = review_app.ids[who]
    return review_app.client.post(
        f"/api/review/escalations/{case_id}/transitions", headers=review_app.auth(who), json=body
    )


def _admin_case(review_app: SimpleNamespace, state: str) -> int:
    client, admin = review_app.client, review_app.auth("admin")
    case = client.post(
        "/api/review/escalations",
        headers=admin,
        json={"kind": "strategy", "strategy_id": "listing-counterfeit-terms", "title": "t"},
    ).json()
    for step in _PATH_TO[state]:
        assert _move(review_app, "admin", case["id"], step).status_code == 200
    return int(case["id"])


@ON_SQLITE
def test_every_escalation_move_admits_exactly_its_roles(review_app: SimpleNamespace) -> None:
    from governance.review.escalations import TRANSITIONS

    moves = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert moves == NON_PARTICIPANT_MOVES.keys()
    failures = []
    for (from_state, to_state), allowed in sorted(NON_PARTICIPANT_MOVES.items()):
        for who in ("moderator", "pm", "ml_engineer", "admin"):
            case_id = _admin_case(review_app, from_state)
            response = _move(review_app, who, case_id, to_state)
            expected = 200 if who in allowed else 403
            if response.status_code != expected:
                failures.append(
                    f"{who} {from_state}->{to_state}: {response.status_code} {response.text[:100]}"
                )
    assert not failures, "\n".join(failures)


@ON_SQLITE
def test_commenting_needs_a_part_in_the_case_or_a_managing_role(
    review_app: SimpleNamespace,
) -> None:
    client = review_app.client
    case_id = _admin_case(review_app, "open")
    for who, expected in (("moderator", 403), ("ml_engineer", 403), ("pm", 201), ("admin", 201)):
        response = client.post(
            f"/api/review/escalations/{case_id}/comments",
            headers=review_app.auth(who),
            json={"body": "noted"},
        )
        assert response.status_code == expected, (who, response.text)
    # the page route goes through the same rule
    csrf = review_app.login(client, "ml-engineer")
    page = client.post(f"/escalations/{case_id}/comments", data={"body": "x", "csrf_token": csrf})
    assert page.status_code == 403


@ON_SQLITE
def test_an_ml_engineer_works_the_cases_they_are_part_of(review_app: SimpleNamespace) -> None:
    client, mle = review_app.client, review_app.auth("ml_engineer")
    own = client.post(
        "/api/review/escalations",
        headers=mle,
        json={"kind": "strategy", "strategy_id": "listing-counterfeit-terms", "title": "mine"},
    ).json()["id"]
    assert (
        client.post(
            f"/api/review/escalations/{own}/comments", headers=mle, json={"body": "more"}
        ).status_code
        == 201
    )
    assigned = _admin_case(review_app, "open")
    body = {"to_state": "assigned", "assignee_id": review_app.ids["ml_engineer"]}
    assert (
        client.post(
            f"/api/review/escalations/{assigned}/transitions",
            headers=review_app.auth("pm"),
            json=body,
        ).status_code
        == 200
    )
    for step in ("in_progress", "resolved"):
        assert _move(review_app, "ml_engineer", assigned, step).status_code == 200


@ON_SQLITE
def test_logout_ends_the_session_on_the_server(review_app: SimpleNamespace) -> None:
    client: TestClient = review_app.client
    csrf = review_app.login(client, "moderator")
    copied = dict(client.cookies)
    assert (
        client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    )
    client.cookies.clear()
    client.cookies.update(copied)
    replay = client.get("/queue", follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/login")


@ON_SQLITE
def test_a_password_change_ends_the_session_on_the_server(review_app: SimpleNamespace) -> None:
    from governance.review import users

    client: TestClient = review_app.client
    review_app.login(client, "moderator")
    assert client.get("/queue", follow_redirects=False).status_code == 200
    with review_app.state.session_factory() as session:
        user = users.user_by_username(session, "moderator")
        users.set_password(session, user, "another long password", actor=None)
        session.commit()
    replay = client.get("/queue", follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/login")
