"""Verdicts become audit labels in the data contract's audit_labels format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from features.contract import validate_table
from features.vocabulary import Entity, Policy
from governance.audit.population import build_populations
from governance.audit.ranking import rank_flags
from governance.audit.sampling import audit_sample
from governance.audit.settings import AuditSettings
from governance.review import labels, queue
from governance.review.db import ReviewSession
from governance.review.orm import User
from tests.governance.audit.audit_world import make_world


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
    assert set(merged.loc[random, "sampling"]) == {"model_ranked"}
    assert set(merged.loc[~random, "sampling"]) == {"ranked_list"}
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


def test_audit_sample_round_trips_through_the_queue_as_its_own_design(
    session: ReviewSession, make_user: Callable[..., User]
) -> None:
    """audit slice -> queue -> verdicts -> labels export -> audit: the slice's draws come back
    as the `model_ranked` design with the inclusion probabilities they were drawn with, and the
    take-all ranked-list picks stay out of the estimates."""
    world = make_world(n=600, seed=3)
    frames = AuditSettings().design_frames
    items = {Entity.LISTING: world.frame["item_id"]}

    def pops(tables: dict[str, pd.DataFrame]):  # type: ignore[no-untyped-def]
        return build_populations(
            tables,
            world.strategies,
            world.predictions,
            items=items,
            flip_rate=world.flip_rate,
            design_frames=frames,
        )

    before = pops(world.tables)
    sample = audit_sample(before, size=40, seed=1)
    flags = rank_flags(
        before, labels=world.tables["audit_labels"], list_size=15, audit_slice=sample
    )
    queue.ingest_flags(session, flags)
    n = _judge_all(session, make_user("ana"))
    exported = labels.audit_labels(session)
    assert len(exported) == n > len(sample)
    both = pd.concat([world.tables["audit_labels"], exported], ignore_index=True)
    after = pops({**world.tables, "audit_labels": both})[(Entity.LISTING, Policy.COUNTERFEIT)]
    d = after.draws
    mr = d.design == "model_ranked"
    got = pd.Series(d.inclusion_probability[mr], index=after.item_ids[d.position[mr]])
    want = sample.set_index("item_id")["inclusion_probability"]
    assert set(got.index) == set(want.index)
    assert np.allclose(got.sort_index().to_numpy(), want.sort_index().to_numpy())
    assert "ranked_list" not in set(d.design.tolist()) and "ranked_list" not in after.frames
    assert after.label_counts["ranked_list"] == int((exported["sampling"] == "ranked_list").sum())
    assert set(d.design.tolist()) - set(
        pops(world.tables)[(Entity.LISTING, Policy.COUNTERFEIT)].draws.design.tolist()
    ) == {"model_ranked"}
