"""Main journeys in a real browser: Playwright driving Debian's headless Chromium.

A real uvicorn server runs per database (SQLite and PostgreSQL) over a small marketplace, and
the journeys run in turn: a moderator signs in, reads the item's text and reasons, judges items
with the keyboard and escalates one; a PM accepts a suggestion, compares the shadow version with
the active one and promotes it, and reads the dashboard; an admin works the escalation to
resolved; a moderator is refused the PM page. Screenshots of the item, comparison and dashboard
pages go to `test-output/screenshots/` (or GOVRISK_SCREENSHOT_DIR) for a reviewer to look at.
Skipped when /usr/bin/chromium is missing (`make browser` installs it), except under CI=true.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from experiments.benchmarks.review_load import serve
from governance.review import approvals, queue, users
from governance.review.db import make_engine, make_session_factory, upgrade
from governance.review.orm import Escalation, QueueItem, Verdict
from governance.review.vocabulary import EscalationState, QueueStatus
from tests.serving.marketplace_factory import (
    write_audit_metrics,
    write_features,
    write_marketplace,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery"

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("review-browser")]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("/usr/bin/chromium is missing; run `make browser`")
        pytest.skip("/usr/bin/chromium is missing; run `make browser` to install it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots(review_db_url: str) -> Path:
    """Where the journeys leave screenshots (one folder per database)."""
    root = Path(os.environ.get("GOVRISK_SCREENSHOT_DIR", "test-output/screenshots"))
    folder = root / ("postgresql" if review_db_url.startswith("postgresql") else "sqlite")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def service(
    review_db_url: str,
    tmp_path: Path,
    review_data: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SimpleNamespace]:
    """A running review service with a moderator, a PM, an admin, 12 queued items, 2
    suggestions, the items' marketplace tables, a feature frame and audit metrics."""
    review_data.write_base_strategy(tmp_path / "strategies")
    ids = [f"L{i:05d}" for i in range(12)]
    monkeypatch.setenv(
        "GOVRISK_MARKETPLACE_DIR", str(write_marketplace(tmp_path, ids[0], others=ids[1:]))
    )
    monkeypatch.setenv("GOVRISK_FEATURES_DIR", str(write_features(tmp_path)))
    monkeypatch.setenv("GOVRISK_AUDIT_DIR", str(write_audit_metrics(tmp_path)))
    engine = make_engine(review_db_url, pool_size=2)
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        for name, role in (("mia", "moderator"), ("pat", "pm"), ("ada", "admin")):
            users.create_user(session, username=name, role=role, password=PASSWORD)
        queue.ingest_flags(session, review_data.make_flags(12, seed=31))
        approvals.ingest_suggestions(session, review_data.make_suggestions(2))
        _add_text_model_reason(session)
        session.commit()
    try:
        with serve(review_db_url, tmp_path, lease_seconds=300) as base_url:
            yield SimpleNamespace(url=base_url, factory=factory, data_dir=tmp_path)
    finally:
        engine.dispose()


def _add_text_model_reason(session: Any) -> None:
    """Every queued item also carries a counterfeit text-model reason weighing 'tote' in its
    title (as the audit writes reasons when the bundle has text models)."""
    import sqlalchemy as sa

    from governance.review.orm import QueueItem

    phrase = {
        "text": "tote",
        "contribution": 0.64,
        "field": "title",
        "spans": [{"field": "title", "start": 0, "end": 4}],
    }
    for item in session.scalars(sa.select(QueueItem)):
        item.reasons = [
            *item.reasons,
            {
                "feature": "listing_text_score_counterfeit",
                "description": "counterfeit text model",
                "value": 1.7,
                "contribution": 0.9,
                "phrases": [phrase],
            },
        ]


def _login(page: Any, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def _moderator_reads_judges_and_escalates(
    browser: Any, service: SimpleNamespace, screenshots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, service.url, "mia")
    page.wait_for_url(re.compile(r"/queue$"))
    page.keyboard.press("c")  # claim next
    page.wait_for_url(re.compile(r"/queue/items/\d+$"))
    first = page.url
    content = page.locator("#item-content")
    assert content.locator("h3", has_text="Title").count() >= 1
    assert content.locator("text=$20.00").count() >= 1  # the price, with its unit
    assert page.locator("#seller-facts").inner_text().count("unverified") == 1
    assert "Counterfeit lexicon hits" in page.locator("#reasons").inner_text()
    # The text model's phrase is marked in the title, with its push and what it means on hover.
    weighed = content.locator(".text-block mark.model-up").first
    assert weighed.inner_text().lower() == "tote"
    assert "counterfeit text model" in (weighed.get_attribute("title") or "")
    assert content.locator(".text-block sup.push").first.inner_text() == "+0.64"
    assert "title contains 'tote' (+0.64 log-odds)" in page.locator("#reasons").inner_text()
    assert page.locator("#policy-guide").is_visible()
    assert "local)" in page.locator("#lease-holder time").inner_text()  # local time beside UTC
    page.screenshot(path=str(screenshots / "item.png"), full_page=True)
    page.keyboard.press("v")  # violating; the next item opens
    page.wait_for_url(lambda url: url != first and "/queue/items/" in url)
    second = page.url
    page.keyboard.press("n")  # not violating
    page.wait_for_url(lambda url: url not in (first, second))
    escalated = page.url
    page.keyboard.press("e")
    page.fill("#escalate-title", "Seller says the brand authorised them")
    page.click("#escalate-form button[type=submit]")
    page.wait_for_url(re.compile(r"/escalations/\d+$"))
    page.goto(first)
    assert page.locator("#verdict-recorded").inner_text().startswith("Judged violating")
    with service.factory() as session:
        verdicts = session.query(Verdict).order_by(Verdict.id).all()
        assert [v.verdict for v in verdicts] == ["violating", "not_violating"]
        assert {v.reviewer.username for v in verdicts} == {"mia"}
        held = session.get(QueueItem, int(escalated.rsplit("/", 1)[1]))
        assert held is not None and held.status == QueueStatus.ESCALATED
    page.close()


def _pm_compares_and_promotes_a_suggested_version(
    browser: Any, service: SimpleNamespace, screenshots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, service.url, "pat")
    page.wait_for_url(re.compile(r"/suggestions$"))
    page.click("table.rows tbody tr:first-child a")
    page.fill("#decision-reason", "Halves false positives for a small recall cost")
    page.click("#accept")
    page.wait_for_url(re.compile(r"/strategies\?highlight="))
    row = page.locator("#v-listing-counterfeit-terms-2")
    assert row.locator("[data-status]").inner_text() == "shadow"
    assert (service.data_dir / "strategies" / "listing-counterfeit-terms@v2.yaml").exists()
    page.click("#compare-listing-counterfeit-terms-2")
    page.wait_for_url(re.compile(r"/compare\?b=2$"))
    table = page.locator("#compare-versions").inner_text()
    assert "listing_counterfeit_term_count >= 1" in table
    assert "listing_counterfeit_term_count >= 2" in table
    assert "Items hit (of 6 in the latest frame)" in table
    assert page.locator("#compare-channels").inner_text().count("shop_tab") == 1
    page.screenshot(path=str(screenshots / "compare.png"), full_page=True)
    page.click("#promote-b")
    page.wait_for_url(re.compile(r"/strategies"))
    statuses = page.locator("#v-listing-counterfeit-terms-2 [data-status]").inner_text()
    assert statuses == "active"
    page.goto(f"{service.url}/dashboard")
    audit = page.locator("#audit-estimates").inner_text()
    assert "listing-counterfeit-terms@v3" in audit and "needs about" in audit
    assert page.evaluate("document.documentElement.scrollWidth") <= 1300  # no 4,400 px page
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    page.close()


def _admin_resolves_the_escalation(
    browser: Any, service: SimpleNamespace, screenshots: Path
) -> None:
    page = browser.new_page()
    _login(page, service.url, "ada")
    page.goto(f"{service.url}/escalations")
    page.click("text=Seller says the brand authorised them")
    page.wait_for_url(re.compile(r"/escalations/\d+$"))
    page.screenshot(path=str(screenshots / "escalation-admin.png"), full_page=True)
    page.click("#move-assigned")
    page.click("#move-in_progress")
    page.fill("form.move textarea[name=resolution]", "Authorisation letter is forged: violating")
    page.click("#move-resolved")
    assert page.locator("#case-state").inner_text() == "resolved"
    assert "forged" in page.locator("#resolution").inner_text()
    with service.factory() as session:
        case = session.query(Escalation).one()
        assert case.state == EscalationState.RESOLVED and case.queue_item_id is not None
        item = session.get(QueueItem, case.queue_item_id)
        assert item is not None and item.status == QueueStatus.PENDING  # back in the queue
    page.close()
    raiser = browser.new_page()  # the moderator who raised it may confirm (close) or reopen
    _login(raiser, service.url, "mia")
    raiser.goto(page.url)
    moves = raiser.locator("form.move input[name=to_state]")
    assert sorted(moves.evaluate_all("els => els.map(e => e.value)")) == ["closed", "in_progress"]
    raiser.screenshot(path=str(screenshots / "escalation-raiser.png"), full_page=True)
    raiser.close()


def _moderator_is_refused_the_pm_page(browser: Any, service: SimpleNamespace) -> None:
    page = browser.new_page()
    _login(page, service.url, "mia")
    page.wait_for_url(re.compile(r"/queue$"))
    response = page.goto(f"{service.url}/suggestions")
    assert response is not None and response.status == 403
    assert "needs one of" in page.content()
    page.close()


def test_main_journeys(browser: Any, service: SimpleNamespace, screenshots: Path) -> None:
    """One server per database; the journeys run in order on it."""
    _moderator_reads_judges_and_escalates(browser, service, screenshots)
    _pm_compares_and_promotes_a_suggested_version(browser, service, screenshots)
    _admin_resolves_the_escalation(browser, service, screenshots)
    _moderator_is_refused_the_pm_page(browser, service)
