"""Dashboard estimates: design-weighted proportions with Wilson intervals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from governance.review import dashboard, queue
from governance.review.db import ReviewSession
from governance.review.orm import User


def test_weighted_proportion_and_interval() -> None:
    est = dashboard.weighted_proportion([(1.0, True), (1.0, False), (2.0, True), (4.0, False)])
    assert est.value == pytest.approx(3 / 8)
    assert est.low is not None and est.high is not None and est.low < 3 / 8 < est.high
    assert est.n_labels == 4
    assert dashboard.weighted_proportion([]).value is None
    low, high = dashboard.wilson_interval(0.0, 10)
    assert low == 0.0 and 0.2 < high < 0.35


def test_strategy_precision_uses_only_the_random_slice(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    flags = review_data.make_flags(30, seed=12, random_share=0.5)
    queue.ingest_flags(session, flags)
    mod = make_user("ana")
    truth = {}
    while (claim := queue.claim_next(session, mod, lease_seconds=60)) is not None:
        violating = claim.item.item_id.endswith(("0", "2", "4"))
        truth[claim.item.item_id] = violating
        queue.submit_verdict(
            session,
            mod,
            claim.item.id,
            verdict="violating" if violating else "not_violating",
            client_key=claim.item.item_id,
        )
    session.commit()
    scopes = {"listing-counterfeit-terms": ("listing", "counterfeit")}
    (row,) = dashboard.strategy_metrics(session, scopes)
    random_hit = flags[(flags.kind == "random_audit") & (flags.strategies != "")]
    expected = sum(truth[i] for i in random_hit.item_id) / len(random_hit)
    assert row.precision.value == pytest.approx(expected)
    assert row.precision.n_labels == len(random_hit)
    assert row.recall.value is not None and 0.0 <= row.recall.value <= 1.0
    channels = dashboard.channel_metrics(session)
    assert {c.key for c in channels} <= {"shop_tab", "campaigns", "shop_ads"}


def test_weekly_hits_count_decisions_per_version_and_week(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    import pandas as pd

    from governance.review.dashboard import weekly_hits

    (tmp_path / "tables").mkdir()
    start = datetime(2026, 3, 2)  # a Monday
    days = [start + timedelta(days=d) for d in (0, 1, 8, 9, 10, 30)]
    pd.DataFrame(
        {
            "strategy_id": ["a"] * 5 + ["b"],
            "strategy_version": [1, 1, 1, 1, 2, 1],
            "decided_at": days,
        }
    ).to_parquet(tmp_path / "tables" / "strategy_decisions.parquet")
    hits = weekly_hits(tmp_path, weeks=5)
    assert hits == {"a@v1": [2, 2, 0, 0, 0], "a@v2": [0, 1, 0, 0, 0], "b@v1": [0, 0, 0, 0, 1]}
    assert weekly_hits(tmp_path / "missing") == {} and weekly_hits(None) == {}


def test_pinned_reads_the_audit_settings_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    from governance.audit.metrics import METRIC_COLUMNS
    from governance.audit.settings import get_settings

    row = dict.fromkeys(METRIC_COLUMNS, 0.0) | {
        "strategy": "s@v1",
        "entity": "listing",
        "policy": "counterfeit",
        "channel": "all",
        "precision": 0.8,
        "precision_low": 0.65,
        "precision_high": 0.95,
        "n_labels": 40,
        "recall": 0.5,
        "recall_low": 0.4,
        "recall_high": 0.55,
        "n_labels_population": 400,
    }
    metrics = pd.DataFrame([row])
    get_settings.cache_clear()
    (narrow,) = dashboard.audit_rows(metrics)
    assert dashboard.pinned_max_width() == 0.2 and not narrow.pinned
    # 40 labels give a 30-point interval: (30 / 20)^2 x 40 = 90 would pin it.
    assert narrow.precision_support.note == "needs about 50 more labels among its actioned items"
    assert narrow.recall_support.pinned and narrow.recall_support.note == ""
    monkeypatch.setenv("GOVRISK_AUDIT_PINNED_MAX_WIDTH", "0.3")
    get_settings.cache_clear()
    try:
        (wide,) = dashboard.audit_rows(metrics)
        assert wide.pinned
    finally:
        monkeypatch.delenv("GOVRISK_AUDIT_PINNED_MAX_WIDTH")
        get_settings.cache_clear()
