"""Verdicts become audit labels in the data contract's audit_labels format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from features.contract import validate_table
from governance.review import labels, queue
from governance.review.db import ReviewSession
from governance.review.orm import User


def _judge_all(session: ReviewSession, user: User) -> int:
    n = 0
    while (claim := queue.claim_next(session, user, lease_seconds=60)) is not None:
        verdict = "violating" if claim.item.p_error > 0.5 else "not_violating"
        queue.submit_verdict(session, user, claim.item.id, verdict=verdict, client_key=f"k{n}")
        n += 1
    session.commit()
    return n


def test_labels_carry_sampling_and_inclusion_probability(
    session: ReviewSession,
    review_data: SimpleNamespace,
    make_user: Callable[..., User],
    tmp_path: Path,
) -> None:
    flags = review_data.make_flags(12, seed=11, random_share=0.5)
    queue.ingest_flags(session, flags)
    n = _judge_all(session, make_user("ana"))
    df = labels.audit_labels(session)
    assert len(df) == n == 12
    validate_table("audit_labels", df)
    merged = df.merge(flags, on=["entity", "item_id", "policy"])
    random = merged["kind"] == "random_audit"
    assert set(merged.loc[random, "sampling"]) == {"random"}
    assert set(merged.loc[~random, "sampling"]) == {"model_ranked"}
    assert (merged["inclusion_probability_x"] == merged["inclusion_probability_y"]).all()
    assert set(df["reviewer_id"]) == {"ana"} and df["label_id"].is_unique
    path, rows = labels.export_labels(session, tmp_path / "out" / "audit_labels.parquet")
    back = pd.read_parquet(path)
    assert rows == 12 and str(back["reviewed_at"].dtype) == "datetime64[us]"
    validate_table("audit_labels", back)


def test_no_verdicts_export_an_empty_valid_table(session: ReviewSession) -> None:
    df = labels.audit_labels(session)
    assert df.empty and list(df.columns)[:2] == ["label_id", "entity"]
    validate_table("audit_labels", df)
