"""Approvals: accepting writes a shadow version; promoting retires the old active one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from features.vocabulary import StrategyStatus
from governance.review import approvals, audit_log
from governance.review.db import ReviewSession
from governance.review.errors import ConflictError, InvalidInputError
from governance.review.orm import User
from governance.review.strategy_store import StrategyStore
from governance.review.vocabulary import SuggestionStatus
from governance.strategy import load_strategy


@pytest.fixture
def store(tmp_path: Path, review_data: SimpleNamespace) -> StrategyStore:
    directory = tmp_path / "strategies"
    review_data.write_base_strategy(directory)
    return StrategyStore(directory)


def _ingest(session: ReviewSession, review_data: SimpleNamespace, n: int = 2) -> None:
    approvals.ingest_suggestions(session, review_data.make_suggestions(n), source="test")
    session.commit()


def test_accept_writes_the_next_version_in_shadow_status(
    session: ReviewSession,
    store: StrategyStore,
    review_data: SimpleNamespace,
    make_user: Callable[..., User],
) -> None:
    _ingest(session, review_data)
    pm = make_user("pam", "pm")
    first = approvals.list_suggestions(session)[0]
    diff = approvals.proposed_diff(first, store).splitlines()
    assert any(line.startswith("-") and "value: 1}" in line for line in diff)
    assert any(line.startswith("+") and "value: 2}" in line for line in diff)
    decision = approvals.decide(
        session, pm, first.id, accept=True, reason="Fewer honest resellers blocked", store=store
    )
    session.commit()
    path = store.directory / "listing-counterfeit-terms@v2.yaml"
    written = load_strategy(path)
    assert written.status == StrategyStatus.SHADOW and written.version == 2
    assert written.parent == "listing-counterfeit-terms@v1"
    assert load_strategy(store.directory / "listing-counterfeit-terms@v1.yaml").status == "active"
    assert decision.strategy_version is not None and decision.strategy_version.status == "shadow"
    assert first.status == SuggestionStatus.ACCEPTED
    actions = [e.action for e in audit_log.entries(session)]
    assert {"suggestion.accept", "strategy_version.create", "suggestions.ingest"} <= set(actions)


def test_reject_keeps_the_reason_and_decisions_are_final(
    session: ReviewSession,
    store: StrategyStore,
    review_data: SimpleNamespace,
    make_user: Callable[..., User],
) -> None:
    _ingest(session, review_data)
    pm = make_user("pam", "pm")
    target = approvals.list_suggestions(session)[1]
    with pytest.raises(InvalidInputError, match="reason"):
        approvals.decide(session, pm, target.id, accept=False, reason="  ", store=store)
    approvals.decide(session, pm, target.id, accept=False, reason="Too many misses", store=store)
    session.commit()
    with pytest.raises(ConflictError, match="already rejected"):
        approvals.decide(session, pm, target.id, accept=True, reason="changed mind", store=store)
    decision = approvals.decision_for(session, target)
    assert decision is not None and decision.reason == "Too many misses"
    assert sorted(p.name for p in store.directory.iterdir()) == [
        "listing-counterfeit-terms@v1.yaml"
    ]
    # a decided suggestion is not overwritten by a later load
    report = approvals.ingest_suggestions(session, review_data.make_suggestions(2))
    assert (report.updated, report.skipped_decided) == (1, 1)


def test_promoting_a_shadow_version_retires_the_active_one(
    session: ReviewSession,
    store: StrategyStore,
    review_data: SimpleNamespace,
    make_user: Callable[..., User],
) -> None:
    _ingest(session, review_data)
    pm = make_user("pam", "pm")
    first = approvals.list_suggestions(session)[0]
    approvals.decide(session, pm, first.id, accept=True, reason="ok", store=store)
    with pytest.raises(ConflictError, match="only \\['shadow'\\]"):
        approvals.set_version_status(
            session, pm, "listing-counterfeit-terms", 1, status=StrategyStatus.ACTIVE, store=store
        )
    rows = approvals.set_version_status(
        session, pm, "listing-counterfeit-terms", 2, status=StrategyStatus.ACTIVE, store=store
    )
    session.commit()
    assert {(r.version, r.status) for r in rows} == {(1, "retired"), (2, "active")}
    statuses = {s.version: s.status for s in store.versions("listing-counterfeit-terms")}
    assert statuses == {1: StrategyStatus.RETIRED, 2: StrategyStatus.ACTIVE}
    (promotion,) = audit_log.entries(session, action_prefix="strategy_version.promote")
    assert promotion.before == {
        "listing-counterfeit-terms@v1": "active",
        "listing-counterfeit-terms@v2": "shadow",
    }
    assert promotion.after == {
        "listing-counterfeit-terms@v1": "retired",
        "listing-counterfeit-terms@v2": "active",
    }


def test_a_proposal_for_another_strategy_is_refused(
    session: ReviewSession,
    store: StrategyStore,
    review_data: SimpleNamespace,
    make_user: Callable[..., User],
) -> None:
    suggestions = review_data.make_suggestions(1).assign(strategy_id="some-other-strategy")
    approvals.ingest_suggestions(session, suggestions)
    pm = make_user("pam", "pm")
    (only,) = approvals.list_suggestions(session)
    with pytest.raises(InvalidInputError, match="is for strategy 'listing-counterfeit-terms'"):
        approvals.decide(session, pm, only.id, accept=True, reason="ok", store=store)


def test_suggestion_validation_names_columns(
    session: ReviewSession, review_data: SimpleNamespace
) -> None:
    bad = review_data.make_suggestions(2)
    bad.loc[1, "kind"] = "vibes"
    bad.loc[0, "delta_fp"] = float("nan")
    with pytest.raises(InvalidInputError) as err:
        approvals.ingest_suggestions(session, bad)
    assert "suggestions.kind" in str(err.value) and "suggestions.delta_fp" in str(err.value)


def test_a_change_to_a_version_missing_from_the_store_is_refused(
    session: ReviewSession,
    tmp_path: Path,
    review_data: SimpleNamespace,
    make_user: Callable[..., User],
) -> None:
    # the service pointed at an empty strategies folder must not write "v1 with parent v1"
    empty = StrategyStore(tmp_path / "elsewhere")
    _ingest(session, review_data)
    pm = make_user("pam", "pm")
    first = approvals.list_suggestions(session)[0]
    with pytest.raises(ConflictError, match="--strategies-dir"):
        approvals.decide(session, pm, first.id, accept=True, reason="ok", store=empty)
    assert not (tmp_path / "elsewhere").exists()


def test_a_version_number_recorded_before_is_never_reused(
    session: ReviewSession,
    store: StrategyStore,
    review_data: SimpleNamespace,
    make_user: Callable[..., User],
) -> None:
    _ingest(session, review_data)
    pm = make_user("pam", "pm")
    first, second = approvals.list_suggestions(session)[:2]
    approvals.decide(session, pm, first.id, accept=True, reason="ok", store=store)
    session.commit()
    # the v2 file disappears from the folder (restored from an old copy, say)
    (store.directory / "listing-counterfeit-terms@v2.yaml").unlink()
    decision = approvals.decide(session, pm, second.id, accept=True, reason="ok", store=store)
    session.commit()
    assert decision.strategy_version is not None and decision.strategy_version.version == 3
    assert (store.directory / "listing-counterfeit-terms@v3.yaml").is_file()


def test_a_repeated_suggestion_id_keeps_the_last_row(
    session: ReviewSession, review_data: SimpleNamespace
) -> None:
    import pandas as pd

    rows = review_data.make_suggestions(2)
    again = rows.iloc[[0]].assign(summary="the later row")
    report = approvals.ingest_suggestions(session, pd.concat([rows, again], ignore_index=True))
    assert (report.rows_read, report.inserted, report.duplicates_in_input) == (3, 2, 1)
    stored = {s.suggestion_id: s.summary for s in approvals.list_suggestions(session)}
    assert stored[str(rows["suggestion_id"].iloc[0])] == "the later row"
