"""Server-rendered pages: sign-in, CSRF, the moderator loop, approvals, offline assets."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import itsdangerous
import pytest
from fastapi.testclient import TestClient

from governance.review import users
from serving.app import SESSION_COOKIE
from tests.serving.marketplace_factory import (
    write_audit_metrics,
    write_features,
    write_marketplace,
)

PASSWORD = "correct horse battery"
ON_SQLITE = pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)


@ON_SQLITE
def test_forms_without_the_session_csrf_token_are_refused(review_app: SimpleNamespace) -> None:
    client = review_app.client
    login_page = client.get("/login")
    refused = client.post(
        "/login",
        data={"username": "moderator", "password": "correct horse battery", "csrf_token": "forged"},
    )
    assert refused.status_code == 403 and "CSRF" in refused.text
    csrf = review_app.login(client, "moderator")
    assert csrf != review_app.csrf_of(login_page.text)  # rotated at sign-in
    claim = client.post("/queue/claim", data={}, follow_redirects=False)
    assert claim.status_code == 403
    stats = client.get("/api/review/queue/stats", headers=review_app.auth("admin")).json()
    assert stats["leased"] == 0  # the refused form changed nothing


@ON_SQLITE
def test_wrong_password_and_open_redirects(review_app: SimpleNamespace) -> None:
    client = review_app.client
    csrf = review_app.csrf_of(client.get("/login").text)
    bad = client.post(
        "/login", data={"username": "pm", "password": "nope nope nope", "csrf_token": csrf}
    )
    assert bad.status_code == 401 and "wrong password" in bad.text
    ok = client.post(
        "/login",
        data={
            "username": "pm",
            "password": "correct horse battery",
            "csrf_token": csrf,
            "next": "//evil.example/x",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/suggestions"


def test_moderator_judges_from_the_item_page(review_app: SimpleNamespace) -> None:
    client = review_app.client
    csrf = review_app.login(client, "moderator")
    claimed = client.post("/queue/claim", data={"csrf_token": csrf}, follow_redirects=False)
    item_path = claimed.headers["location"]
    page = client.get(item_path)
    assert page.status_code == 200
    assert "Counterfeit lexicon hits" in page.text and "<svg" in page.text
    assert 'id="verdict-violating"' in page.text and "content-security-policy" in page.headers
    key = re.search(r'name="client_key" value="([^"]+)"', page.text)
    assert key is not None
    form = {
        "csrf_token": csrf,
        "client_key": key.group(1),
        "verdict": "not_violating",
        "confidence": "high",
    }
    done = client.post(f"{item_path}/verdict", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] != item_path
    replay = client.post(f"{item_path}/verdict", data=form, follow_redirects=False)
    assert replay.status_code == 303  # same form twice: still one verdict
    stats = client.get("/api/review/queue/stats", headers=review_app.auth("admin")).json()
    assert stats["judged"] == 1
    judged = client.get(item_path)
    assert 'id="verdict-recorded"' in judged.text


@ON_SQLITE
def test_pages_refuse_what_the_api_refuses(review_app: SimpleNamespace) -> None:
    """Page forms go through the API's request schemas: the same input is a 422 on both."""
    client = review_app.client
    csrf = review_app.login(client, "admin")
    api = review_app.auth("admin")
    item_path = client.post("/queue/claim", data={"csrf_token": csrf}, follow_redirects=False)
    item_pk = int(item_path.headers["location"].rsplit("/", 1)[1])
    case = client.post(
        "/api/review/escalations",
        headers=api,
        json={"kind": "strategy", "strategy_id": "listing-counterfeit-terms", "title": "t"},
    ).json()["id"]
    cases = [  # (page path, form, API path, JSON body, field named)
        (
            f"/queue/items/{item_pk}/verdict",
            {"verdict": "maybe", "client_key": "k1"},
            f"/api/review/queue/items/{item_pk}/verdict",
            {"verdict": "maybe", "client_key": "k1"},
            "verdict",
        ),
        (
            f"/queue/items/{item_pk}/verdict",
            {"verdict": "violating", "client_key": "no spaces allowed"},
            f"/api/review/queue/items/{item_pk}/verdict",
            {"verdict": "violating", "client_key": "no spaces allowed"},
            "client_key",
        ),
        (
            "/escalations",
            {"title": "t", "strategy_id": "s", "priority": "urgent"},
            "/api/review/escalations",
            {"kind": "strategy", "title": "t", "strategy_id": "s", "priority": "urgent"},
            "priority",
        ),
        (
            f"/escalations/{case}/transition",
            {"to_state": "resolved"},
            f"/api/review/escalations/{case}/transitions",
            {"to_state": "resolved"},
            "resolution",
        ),
        (
            "/suggestions/1/decision",
            {"decision": "maybe", "reason": "r"},
            "/api/review/suggestions/1/decision",
            {"decision": "maybe", "reason": "r"},
            "decision",
        ),
        (
            "/strategies/listing-counterfeit-terms/versions/1/status",
            {"status": "shadow"},
            "/api/review/strategies/listing-counterfeit-terms/versions/1/status",
            {"status": "shadow"},
            "status",
        ),
    ]
    for page_path, form, api_path, body, field in cases:
        page = client.post(page_path, data={"csrf_token": csrf, **form})
        assert page.status_code == 422 and f"{field}:" in page.text, (page_path, page.text[:300])
        answer = client.post(api_path, headers=api, json=body)
        assert answer.status_code == 422, api_path
        assert answer.json()["detail"][0]["loc"][-1] == field, (api_path, answer.json())
    stats = client.get("/api/review/queue/stats", headers=api).json()
    assert stats["judged"] == 0  # nothing was written by any refused form


@ON_SQLITE
def test_pm_accepts_and_promotes_from_the_pages(review_app: SimpleNamespace) -> None:
    client = review_app.client
    csrf = review_app.login(client, "pm")
    listing = client.get("/suggestions")
    first = re.search(r'href="/suggestions/(\d+)"', listing.text)
    assert first is not None
    detail = client.get(f"/suggestions/{first.group(1)}")
    assert "ΔFP" in listing.text and "value: 2}" in detail.text
    accepted = client.post(
        f"/suggestions/{first.group(1)}/decision",
        data={"csrf_token": csrf, "decision": "accept", "reason": "fewer false positives"},
    )
    assert accepted.status_code == 200
    assert 'id="v-listing-counterfeit-terms-2"' in accepted.text
    assert 'data-status="shadow"' in accepted.text
    promoted = client.post(
        "/strategies/listing-counterfeit-terms/versions/2/status",
        data={"csrf_token": csrf, "status": "active"},
    )
    assert promoted.status_code == 200
    statuses = re.findall(r'data-status="(\w+)"', promoted.text)
    assert statuses == ["retired", "active"]


@ON_SQLITE
def test_moderator_is_refused_pm_pages(review_app: SimpleNamespace) -> None:
    client = review_app.client
    review_app.login(client, "moderator")
    for path in ("/suggestions", "/dashboard", "/strategies", "/audit-log"):
        response = client.get(path)
        assert response.status_code == 403 and "needs one of" in response.text, path


@ON_SQLITE
def test_dashboard_and_board_render_offline(review_app: SimpleNamespace) -> None:
    client = review_app.client
    review_app.login(client, "admin")
    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 200 and dashboard.text.count("<svg") >= 5
    for page in (dashboard.text, client.get("/escalations").text, client.get("/queue").text):
        assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in page
    assert client.get("/static/review.js").status_code == 200
    assert client.get("/static/review.css").status_code == 200


def _set_password(review_app: SimpleNamespace, username: str, password: str) -> None:
    with review_app.state.session_factory() as session:
        user = users.user_by_username(session, username)
        users.set_password(session, user, password, actor=None)
        session.commit()


def _redirects_to_login(client: TestClient, path: str) -> bool:
    response = client.get(path, follow_redirects=False)
    return response.status_code == 303 and response.headers["location"].startswith("/login")


@ON_SQLITE
def test_a_password_change_ends_page_sessions_but_not_api_tokens(
    review_app: SimpleNamespace,
) -> None:
    laptop = review_app.client
    with TestClient(review_app.app) as phone:
        review_app.login(laptop, "pm")
        review_app.login(phone, "pm")
        assert laptop.get("/suggestions", follow_redirects=False).status_code == 200
        _set_password(review_app, "pm", "a brand new password")
        assert _redirects_to_login(laptop, "/suggestions")
        assert _redirects_to_login(phone, "/suggestions")
        assert _redirects_to_login(laptop, "/suggestions")  # the session was cleared, not renewed
        review_app.login(laptop, "pm", "a brand new password")
        assert laptop.get("/suggestions", follow_redirects=False).status_code == 200
        assert _redirects_to_login(phone, "/suggestions")
    me = review_app.client.get("/api/review/me", headers=review_app.auth("pm"))
    assert me.status_code == 200 and me.json()["username"] == "pm"


def _set_active(review_app: SimpleNamespace, username: str, active: bool) -> None:
    with review_app.state.session_factory() as session:
        user = users.user_by_username(session, username)
        users.set_active(session, user, active, actor=None)
        session.commit()


@ON_SQLITE
def test_disabling_a_user_ends_their_page_sessions_for_good(review_app: SimpleNamespace) -> None:
    client = review_app.client
    with TestClient(review_app.app) as phone:
        review_app.login(client, "moderator")
        review_app.login(phone, "moderator")
        assert client.get("/queue", follow_redirects=False).status_code == 200
        _set_active(review_app, "moderator", False)
        assert _redirects_to_login(client, "/queue")
        csrf = review_app.csrf_of(client.get("/login").text)
        refused = client.post(
            "/login",
            data={
                "username": "moderator",
                "password": "correct horse battery",
                "csrf_token": csrf,
            },
        )
        assert refused.status_code == 401
        # Enabled again: the phone, untouched while disabled, does not come back signed in.
        _set_active(review_app, "moderator", True)
        assert _redirects_to_login(phone, "/queue")
        review_app.login(client, "moderator")
        assert client.get("/queue", follow_redirects=False).status_code == 200


@ON_SQLITE
def test_a_session_without_a_stamp_is_signed_out(review_app: SimpleNamespace) -> None:
    """A cookie holding only the user id (as signed before stamps existed) no longer works."""
    signer = itsdangerous.TimestampSigner(review_app.state.settings.secret_key)

    def cookie(session: dict[str, object]) -> str:
        payload = base64.b64encode(json.dumps(session).encode("utf-8"))
        return signer.sign(payload).decode("utf-8")

    uid = review_app.ids["admin"]
    with review_app.state.session_factory() as session:
        stamp = users.session_stamp(users.user_by_username(session, "admin"))
    client = review_app.client
    client.cookies.set(SESSION_COOKIE, cookie({"uid": uid, "stamp": stamp}))
    assert client.get("/queue", follow_redirects=False).status_code == 200  # forged right
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie({"uid": uid}))
    assert _redirects_to_login(client, "/queue")


def _sign_in(client: TestClient, username: str, password: str) -> httpx.Response:
    login_page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page)
    assert csrf is not None
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )


@ON_SQLITE
def test_repeated_failures_lock_the_username_until_the_window_frees(
    review_app: SimpleNamespace, advance_clock: Callable[[float], None], argon2_checks: list[str]
) -> None:
    client = review_app.client
    assert review_app.state.throttle.max_failures == review_app.state.settings.login_max_failures
    for attempt in range(5):
        advance_clock(1)
        assert _sign_in(client, "pm", f"wrong password {attempt}").status_code == 401
    assert len(argon2_checks) == 5
    locked = _sign_in(client, "PM", PASSWORD)  # right password, other case
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text and "try again in 15 minutes" in locked.text
    assert 'name="password"' in locked.text  # the form is still there
    assert int(locked.headers["retry-after"]) == 15 * 60 - 4  # the first failure leaves first
    assert len(argon2_checks) == 5  # refused without checking the password
    assert _redirects_to_login(client, "/suggestions")

    with TestClient(review_app.app, client=("10.0.0.2", 50000)) as elsewhere:
        assert _sign_in(elsewhere, "moderator", PASSWORD).status_code == 303
        assert _sign_in(elsewhere, "pm", PASSWORD).status_code == 429  # the username is locked

    advance_clock(15 * 60 - 5)
    assert _sign_in(client, "pm", PASSWORD).status_code == 429  # one second early
    advance_clock(1)
    assert _sign_in(client, "pm", PASSWORD).status_code == 303
    assert client.get("/suggestions", follow_redirects=False).status_code == 200


@ON_SQLITE
def test_failures_from_one_address_lock_it_for_every_username(
    review_app: SimpleNamespace, advance_clock: Callable[[float], None]
) -> None:
    del advance_clock
    client = review_app.client
    for name in ("alice", "bob", "carol", "dave", "erin"):  # unknown users count too
        assert _sign_in(client, name, PASSWORD).status_code == 401
    assert _sign_in(client, "admin", PASSWORD).status_code == 429
    with TestClient(review_app.app, client=("10.0.0.3", 50000)) as elsewhere:
        assert _sign_in(elsewhere, "admin", PASSWORD).status_code == 303


@ON_SQLITE
def test_a_success_resets_the_username_count(
    review_app: SimpleNamespace, advance_clock: Callable[[float], None]
) -> None:
    del advance_clock
    addresses = iter(f"10.0.1.{n}" for n in range(1, 20))

    def from_new_address(password: str) -> int:
        with TestClient(review_app.app, client=(next(addresses), 50000)) as client:
            return _sign_in(client, "ml-engineer", password).status_code

    assert [from_new_address("wrong password") for _ in range(4)] == [401] * 4
    assert from_new_address(PASSWORD) == 303
    assert [from_new_address("wrong password") for _ in range(5)] == [401] * 5  # count restarted
    assert from_new_address(PASSWORD) == 429


@ON_SQLITE
def test_dashboard_shows_audit_estimates_a_person_reads(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    review_app.state.settings.audit_dir = write_audit_metrics(tmp_path)
    review_app.state.settings.marketplace_dir = write_marketplace(tmp_path, "L1")
    review_app.login(review_app.client, "pm")
    page = review_app.client.get("/dashboard").text
    table = page[page.index('id="audit-estimates"') :]
    table = table[: table.index("</table>")]
    assert "listing-counterfeit-terms@v3" in table and "91%" in table and "86% – 95%" in table
    assert "302" in table and "302.3963" not in table and "4,568" in table
    assert "nan" not in table.lower() and "None" not in table
    assert "fn_impressions" not in table  # no raw column names
    assert table.count(">pinned<") == 1
    # 25 labels give an 80-point interval; (80 / 20)^2 x 25 = 400 labels would pin it.
    assert table.count("needs about") == 1
    assert "precision needs about 375 more labels among its actioned items" in table
    assert table.index("listing-counterfeit-terms") < table.index("campaign-deep-discount")
    assert table.count('class="spark"') == 1 and "no decisions in the data" in table


def _give_text_model_reasons(review_app: SimpleNamespace, item_pk: int) -> None:
    """The queue item's reasons as the audit writes them for a text-model score."""
    from governance.review.orm import QueueItem

    phrase = {
        "text": "Mirror quality",
        "contribution": 0.91,
        "field": "description",
        "spans": [{"field": "description", "start": 0, "end": 14}],
    }
    reason = {
        "feature": "listing_text_score_counterfeit",
        "description": "counterfeit text model",
        "value": 2.4,
        "contribution": 1.3,
        "phrases": [phrase],
    }
    with review_app.state.session_factory() as session:
        item = session.get(QueueItem, item_pk)
        item.reasons = [*item.reasons, reason]
        session.commit()


@ON_SQLITE
def test_the_moderator_sees_the_item_they_judge(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    client = review_app.client
    csrf = review_app.login(client, "moderator")
    claimed = client.post("/queue/claim", data={"csrf_token": csrf}, follow_redirects=False)
    item_path = claimed.headers["location"]
    bare = client.get(item_path).text
    assert 'id="no-item-content"' in bare and "--marketplace-dir" in bare
    listing_id = re.search(r"<code>(L\d+)</code>", bare)
    assert listing_id is not None
    review_app.state.settings.marketplace_dir = write_marketplace(tmp_path, listing_id.group(1))
    _give_text_model_reasons(review_app, int(item_path.rsplit("/", 1)[1]))
    page = client.get(item_path).text
    content = page[page.index('id="item-content"') : page.index('id="reasons"')]
    # the text model's phrases where it found them, with their push; the reason in words
    assert '<mark class="model-up" title="the counterfeit text model weighs' in content
    assert '>Mirror quality</mark><sup class="push">+0.91</sup>' in content
    assert 'id="highlight-legend"' in content
    assert "description contains &#39;Mirror quality&#39; (+0.91 log-odds)" in page
    # the text, escaped, with the lexicon phrases highlighted
    assert '<mark class="lexicon" title="counterfeit phrase (counterfeit lexicon)">1:1</mark>' in (
        content
    )
    assert ">Replica</mark>" in content and ">Mirror quality</mark>" in content
    assert "&lt;b&gt;bag&lt;/b&gt;" in content and "Café-grade" in content
    # money and time with units, the seller's record
    assert "$3,671.73" in content and "$9,999.00" in content and "63%" in content
    assert "26.8 days" in content and "unverified" in content
    assert "2 strategy decisions on 1 listings" in content
    assert "cluster <code>img-42</code>" in content
    # the policy beside the verdict buttons; no audit jargon for moderators
    assert 'id="policy-guide"' in page and "Counterfeit: what violates" in page
    assert "inclusion probability" not in page and "impressions at stake" in page
    assert "What raised the risk" in page and "What lowered the risk" in page
    assert 'id="lease-holder"' in page and "<time datetime=" in page


@ON_SQLITE
def test_pm_compares_a_suggested_version_with_the_active_one(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    settings = review_app.state.settings
    settings.features_dir = write_features(tmp_path)
    settings.audit_dir = write_audit_metrics(tmp_path)  # measures listing-counterfeit-terms@v3 only
    client = review_app.client
    csrf = review_app.login(client, "pm")
    bare = client.get("/strategies/listing-counterfeit-terms/compare").text
    assert "v1 and v1" in bare and "not measured" in bare
    first = re.search(r'href="/suggestions/(\d+)"', client.get("/suggestions").text)
    assert first is not None
    client.post(
        f"/suggestions/{first.group(1)}/decision",
        data={"csrf_token": csrf, "decision": "accept", "reason": "fewer false positives"},
    )
    listing = client.get("/strategies").text
    assert 'href="/strategies/listing-counterfeit-terms/compare?b=2"' in listing
    page = client.get("/strategies/listing-counterfeit-terms/compare?b=2").text
    table = page[page.index('id="compare-versions"') : page.index("</table>")]
    assert "listing_counterfeit_term_count &gt;= 1" in table
    assert "listing_counterfeit_term_count &gt;= 2" in table
    assert "Items hit (of 6 in the latest frame)" in table
    assert '<td class="num">4</td><td class="num">2</td>' in table  # >= 1 hits 4, >= 2 hits 2
    assert "2 items; only A: 2, only B: 0" in table
    channels = page[page.index('id="compare-channels"') :]
    assert '<td>shop_tab</td><td class="num">4</td><td class="num">2</td>' in channels
    assert "1,400" in channels and "900" in channels  # 7-day shop_tab impressions of the hits
    assert "The audit has not measured listing-counterfeit-terms@v1" in page
    promoted = client.post(
        "/strategies/listing-counterfeit-terms/versions/2/status",
        data={"csrf_token": csrf, "status": "active"},
    )
    assert re.findall(r'data-status="(\w+)"', promoted.text) == ["retired", "active"]


@ON_SQLITE
@pytest.mark.parametrize(
    ("who", "moves", "comments"),
    [
        ("ml_engineer", [], False),  # sees every case, works none it is not part of
        ("moderator", ["assigned"], True),  # raised it: may take it, not dismiss it
        ("pm", ["assigned", "closed"], True),  # manages every case
    ],
)
def test_a_case_page_offers_only_the_moves_the_viewer_may_make(
    review_app: SimpleNamespace, who: str, moves: list[str], comments: bool
) -> None:
    case = review_app.client.post(
        "/api/review/escalations",
        headers=review_app.auth("moderator"),
        json={"kind": "strategy", "strategy_id": "listing-counterfeit-terms", "title": "t"},
    ).json()["id"]
    client = review_app.client
    review_app.login(client, who.replace("_", "-"))
    page = client.get(f"/escalations/{case}")
    assert page.status_code == 200
    offered = re.findall(r'name="to_state" value="(\w+)"', page.text)
    assert offered == moves
    assert (f"/escalations/{case}/comments" in page.text) == comments
    if not moves:
        assert "You can see this case" in page.text
