"""Main journeys in a real browser: Playwright driving Debian's headless Chromium.

A real uvicorn server runs per database (SQLite and PostgreSQL) and the journeys run in turn:
a moderator signs in, claims and judges items with the keyboard; a PM accepts a suggestion and
sees the new shadow version; a moderator is refused the PM page. Skipped when /usr/bin/chromium
is missing (`make browser` installs it), except under CI=true where that is a failure.
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
from governance.review.orm import Verdict

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
def service(
    review_db_url: str, tmp_path: Path, review_data: SimpleNamespace
) -> Iterator[SimpleNamespace]:
    """A running review service with a moderator, a PM, 12 queued items and 2 suggestions."""
    review_data.write_base_strategy(tmp_path / "strategies")
    engine = make_engine(review_db_url, pool_size=2)
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        for name, role in (("mia", "moderator"), ("pat", "pm")):
            users.create_user(session, username=name, role=role, password=PASSWORD)
        queue.ingest_flags(session, review_data.make_flags(12, seed=31))
        approvals.ingest_suggestions(session, review_data.make_suggestions(2))
        session.commit()
    try:
        with serve(review_db_url, tmp_path, lease_seconds=300) as base_url:
            yield SimpleNamespace(url=base_url, factory=factory, data_dir=tmp_path)
    finally:
        engine.dispose()


def _login(page: Any, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def _moderator_claims_and_judges_with_the_keyboard(browser: Any, service: SimpleNamespace) -> None:
    page = browser.new_page()
    _login(page, service.url, "mia")
    page.wait_for_url(re.compile(r"/queue$"))
    page.keyboard.press("c")  # claim next
    page.wait_for_url(re.compile(r"/queue/items/\d+$"))
    first = page.url
    assert page.locator("text=listing_counterfeit_term_count").count() >= 1
    page.keyboard.press("v")  # violating; the next item opens
    page.wait_for_url(lambda url: url != first and "/queue/items/" in url)
    second = page.url
    page.keyboard.press("n")  # not violating
    page.wait_for_url(lambda url: url not in (first, second))
    page.goto(first)
    assert page.locator("#verdict-recorded").inner_text().startswith("Judged violating")
    with service.factory() as session:
        verdicts = session.query(Verdict).order_by(Verdict.id).all()
        assert [v.verdict for v in verdicts] == ["violating", "not_violating"]
        assert {v.reviewer.username for v in verdicts} == {"mia"}
    page.close()


def _pm_accepts_a_suggestion_and_sees_the_shadow_version(
    browser: Any, service: SimpleNamespace
) -> None:
    page = browser.new_page()
    _login(page, service.url, "pat")
    page.wait_for_url(re.compile(r"/suggestions$"))
    page.click("table.rows tbody tr:first-child a")
    page.fill("#decision-reason", "Halves false positives for a small recall cost")
    page.click("#accept")
    page.wait_for_url(re.compile(r"/strategies\?highlight="))
    row = page.locator("#v-listing-counterfeit-terms-2")
    assert row.locator("[data-status]").inner_text() == "shadow"
    assert (service.data_dir / "strategies" / "listing-counterfeit-terms@v2.yaml").exists()
    page.close()


def _moderator_is_refused_the_pm_page(browser: Any, service: SimpleNamespace) -> None:
    page = browser.new_page()
    _login(page, service.url, "mia")
    page.wait_for_url(re.compile(r"/queue$"))
    response = page.goto(f"{service.url}/suggestions")
    assert response is not None and response.status == 403
    assert "needs one of" in page.content()
    page.close()


def test_main_journeys(browser: Any, service: SimpleNamespace) -> None:
    """One server per database; the journeys run in order on it."""
    _moderator_claims_and_judges_with_the_keyboard(browser, service)
    _pm_accepts_a_suggestion_and_sees_the_shadow_version(browser, service)
    _moderator_is_refused_the_pm_page(browser, service)
