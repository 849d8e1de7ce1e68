"""The experiment page: effects, SRM, recommendation, charts; ship and stop from the page."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from governance.experiments.analysis import analyze, channel_effects
from governance.experiments.label_effects import ErrorRateEffect
from governance.experiments.store import create_experiment, get_experiment, record_analysis
from governance.registry import write_version
from governance.review import audit_log
from tests.governance.experiments.factories import make_experiment, make_registry
from tests.governance.experiments.test_analysis import make_units

ON_SQLITE = pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)


def _seed(review_app: SimpleNamespace, *, analysed: bool = True) -> str:
    registry = make_registry()
    for strategy in registry:
        write_version(strategy, review_app.state.store.directory)
    experiment = make_experiment()
    with review_app.state.session_factory() as session:
        create_experiment(session, experiment, registry=registry, actor=None)
        if analysed:
            for seed in (1, 2):
                units = make_units(seed=seed, gmv_lift=0.08)
                result = analyze(experiment, units)
                channels = channel_effects(experiment, {"campaigns": units})
                errors = {"fp": ErrorRateEffect("fp", 0.08, 0.03, -0.05, -0.08, -0.02, 600)}
                record_analysis(
                    session,
                    experiment.id,
                    result,
                    actor=None,
                    channels=channels,
                    errors=errors,
                )
        session.commit()
    return experiment.id


@ON_SQLITE
def test_page_shows_the_decision(review_app: SimpleNamespace) -> None:
    experiment_id = _seed(review_app)
    client = review_app.client
    review_app.login(client, "pm")
    listing = client.get("/experiments")
    assert experiment_id in listing.text
    page = client.get(f"/experiments/{experiment_id}")
    assert page.status_code == 200
    text = page.text
    assert 'id="recommendation"' in text and "Recommendation:" in text
    assert 'id="srm"' in text and "always-valid" in text
    assert text.count("<svg") >= 2
    assert "complaint_rate" in text and "margin" in text
    assert 'id="ship"' in text and 'id="stop"' in text
    assert 'id="by-channel"' in text and "campaigns" in text
    assert 'id="errors"' in text and "-5.00%" in text


@ON_SQLITE
def test_engineers_read_but_cannot_decide(review_app: SimpleNamespace) -> None:
    experiment_id = _seed(review_app, analysed=False)
    client = review_app.client
    review_app.login(client, "ml-engineer")
    page = client.get(f"/experiments/{experiment_id}")
    assert page.status_code == 200 and "Not analysed yet" in page.text
    assert 'id="ship"' not in page.text


@ON_SQLITE
def test_ship_promotes_treatment_and_is_audited(review_app: SimpleNamespace) -> None:
    experiment_id = _seed(review_app)
    client = review_app.client
    csrf = review_app.login(client, "pm")
    response = client.post(
        f"/experiments/{experiment_id}/ship",
        data={"reason": "gmv up, guardrails held", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303
    registry = review_app.state.store.registry()
    assert registry.get("campaign-deep-discount@v2").status.value == "active"
    with review_app.state.session_factory() as session:
        assert get_experiment(session, experiment_id).status.value == "shipped"
        (event, *_) = audit_log.entries(session, target_type="experiment")
        assert event.action == "experiment.ship" and event.actor == "pm"
    again = client.post(
        f"/experiments/{experiment_id}/stop",
        data={"reason": "too late", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert again.status_code == 409


@ON_SQLITE
def test_stop_needs_a_reason_and_unknown_is_404(review_app: SimpleNamespace) -> None:
    experiment_id = _seed(review_app)
    client = review_app.client
    csrf = review_app.login(client, "pm")
    blank = client.post(
        f"/experiments/{experiment_id}/stop", data={"reason": " ", "csrf_token": csrf}
    )
    assert blank.status_code == 422
    stopped = client.post(
        f"/experiments/{experiment_id}/stop",
        data={"reason": "guardrail", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert stopped.status_code == 303
    assert client.get("/experiments/nope").status_code == 404


@ON_SQLITE
def test_experiment_this_from_an_accepted_suggestion(review_app: SimpleNamespace) -> None:
    client = review_app.client
    csrf = review_app.login(client, "pm")
    suggestion = client.get("/api/review/suggestions", headers=review_app.auth("pm")).json()[0]
    early = client.post(
        f"/suggestions/{suggestion['id']}/experiment",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert early.status_code == 409
    accepted = client.post(
        f"/suggestions/{suggestion['id']}/decision",
        data={"decision": "accept", "reason": "try it", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert accepted.status_code == 303
    page = client.get(f"/suggestions/{suggestion['id']}")
    assert 'id="experiment-this"' in page.text
    started = client.post(
        f"/suggestions/{suggestion['id']}/experiment",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    experiment_page = client.get(started.headers["location"])
    assert experiment_page.status_code == 200
    assert "running" in experiment_page.text and "(control)" in experiment_page.text
