"""The experiment decision in a real browser: a PM reads the page and ships the candidate.

Same setup as tests/serving/test_browser.py (a uvicorn server, Debian's headless Chromium;
skipped when /usr/bin/chromium is missing, a failure under CI=true).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from experiments.benchmarks.review_load import serve
from governance.experiments.analysis import analyze
from governance.experiments.store import create_experiment, get_experiment, record_analysis
from governance.registry import StrategyRegistry, write_version
from governance.review import audit_log, users
from governance.review.db import make_engine, make_session_factory, upgrade
from tests.governance.experiments.factories import make_experiment, make_registry
from tests.governance.experiments.test_analysis import make_units
from tests.serving.test_browser import PASSWORD
from tests.serving.test_browser import browser as browser  # noqa: F401  (module fixture)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("review-browser")]


@pytest.fixture
def service(review_db_url: str, tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A running review service with a PM and one analysed experiment whose candidate wins."""
    registry = make_registry()
    for strategy in registry:
        write_version(strategy, tmp_path / "strategies")
    engine = make_engine(review_db_url, pool_size=2)
    upgrade(engine)
    factory = make_session_factory(engine)
    experiment = make_experiment(
        guardrails=[{"metric": "complaint_rate", "margin": 0.25}, {"metric": "nps", "margin": 0.02}]
    )
    with factory() as session:
        users.create_user(session, username="pat", role="pm", password=PASSWORD)
        create_experiment(session, experiment, registry=registry, actor=None)
        for seed in (1, 2):
            result = analyze(experiment, make_units(seed=seed, gmv_lift=0.08))
            record_analysis(session, experiment.id, result, actor=None)
        session.commit()
    try:
        with serve(review_db_url, tmp_path, lease_seconds=300) as base_url:
            yield SimpleNamespace(
                url=base_url, factory=factory, data_dir=tmp_path, experiment_id=experiment.id
            )
    finally:
        engine.dispose()


def test_pm_reads_the_experiment_and_ships(browser: Any, service: SimpleNamespace) -> None:
    page = browser.new_page()
    page.goto(f"{service.url}/login")
    page.fill("input[name=username]", "pat")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/suggestions$"))
    page.click("nav >> text=Experiments")
    page.wait_for_url(re.compile(r"/experiments$"))
    page.click(f"text={service.experiment_id}")
    page.wait_for_url(re.compile(rf"/experiments/{service.experiment_id}$"))
    assert "ship" in page.locator("#recommendation").inner_text()
    assert page.locator("#srm").inner_text().startswith("ok")
    assert page.locator("svg.chart").count() == 2
    page.fill("#ship-reason", "GMV up, complaints and NPS within margins")
    page.click("#ship")
    page.wait_for_url(re.compile(rf"/experiments/{service.experiment_id}$"))
    assert page.locator("#experiment-status").inner_text() == "shipped"
    registry = StrategyRegistry.from_directory(service.data_dir / "strategies")
    assert registry.get("campaign-deep-discount@v2").status.value == "active"
    with service.factory() as session:
        assert get_experiment(session, service.experiment_id).status.value == "shipped"
        actions = [e.action for e in audit_log.entries(session, target_type="experiment")]
        assert actions[0] == "experiment.ship"
    page.close()
