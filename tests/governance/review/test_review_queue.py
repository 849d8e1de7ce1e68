"""The review queue: ingestion, exclusive expiring leases, idempotent verdicts, team scopes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from governance.review import queue, users
from governance.review.db import ReviewSession, begin_write
from governance.review.errors import ConflictError, InvalidInputError, PermissionDeniedError
from governance.review.orm import Lease, QueueItem, User, Verdict
from governance.review.vocabulary import ItemKind, LeaseOutcome, QueueStatus

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def _load(session: ReviewSession, flags: pd.DataFrame) -> queue.IngestReport:
    report = queue.ingest_flags(session, flags, source="test", now=T0)
    session.commit()
    return report


def test_ingest_deduplicates_and_keeps_the_random_draw(
    session: ReviewSession, review_data: SimpleNamespace
) -> None:
    flags = review_data.make_flags(3, seed=1)
    dup = flags.iloc[[0, 0]].copy()
    dup["kind"] = ["likely_false_positive", "random_audit"]
    dup["priority"] = [500.0, 1.0]
    dup["inclusion_probability"] = [1.0, 0.05]
    dup["strategies"] = ["a@v1", "b@v2"]
    report = _load(session, pd.concat([flags, dup], ignore_index=True))
    assert (report.rows_read, report.inserted, report.duplicates_in_input) == (5, 3, 2)
    item = session.scalar(sa.select(QueueItem).where(QueueItem.item_id == flags.item_id[0]))
    assert item is not None
    assert item.kind == ItemKind.RANDOM_AUDIT
    assert item.inclusion_probability == pytest.approx(0.05)
    assert item.priority == pytest.approx(500.0)
    assert set(item.strategies) >= {"a@v1", "b@v2"}
    assert item.reasons[0]["feature"] == "listing_counterfeit_term_count"


def test_reingest_refreshes_pending_and_leaves_judged_items(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    flags = review_data.make_flags(4, seed=2)
    flags.loc[[0, 1], "kind"] = ["random_audit", "likely_false_negative"]
    _load(session, flags)
    mod = make_user("mod")
    claim = queue.claim_next(session, mod, lease_seconds=60, now=T0)
    assert claim is not None
    queue.submit_verdict(session, mod, claim.item.id, verdict="violating", client_key="k", now=T0)
    session.commit()
    flags2 = flags.assign(
        priority=flags["priority"] + 1000, kind="likely_false_positive", inclusion_probability=1.0
    )
    was_random = set(flags.loc[flags["kind"] == "random_audit", "item_id"])
    report = _load(session, flags2)
    kinds = dict(session.execute(sa.select(QueueItem.item_id, QueueItem.kind)).all())
    assert was_random and {i for i, k in kinds.items() if k == ItemKind.RANDOM_AUDIT} == was_random
    assert (report.inserted, report.updated, report.skipped_closed) == (0, 3, 1)
    assert (
        session.scalar(
            sa.select(sa.func.min(QueueItem.priority)).where(
                QueueItem.status == QueueStatus.PENDING
            )
        )
        >= 1000
    )


def test_ingest_names_bad_columns_and_rows(
    session: ReviewSession, review_data: SimpleNamespace
) -> None:
    flags = review_data.make_flags(5, seed=3)
    flags.loc[2, "kind"] = "hunch"
    flags.loc[4, "inclusion_probability"] = 0.0
    with pytest.raises(InvalidInputError) as err:
        queue.ingest_flags(session, flags)
    message = str(err.value)
    assert "flags.kind: 1 row(s) not one of" in message and "rows [2]" in message
    assert "flags.inclusion_probability" in message and "rows [4]" in message
    with pytest.raises(InvalidInputError, match=r"missing column\(s\) \['reasons'\]"):
        queue.ingest_flags(session, flags.drop(columns="reasons"))


def test_an_item_id_longer_than_the_database_holds_is_a_named_input_error(
    session: ReviewSession, review_data: SimpleNamespace
) -> None:
    from governance.audit.tables import ITEM_ID_MAX_LENGTH

    flags = review_data.make_flags(3, seed=4)
    flags.loc[1, "item_id"] = "L" * (ITEM_ID_MAX_LENGTH + 1)
    with pytest.raises(InvalidInputError) as err:
        queue.ingest_flags(session, flags)
    assert f"flags.item_id: 1 row(s) longer than {ITEM_ID_MAX_LENGTH}" in str(err.value)
    assert "rows [1]" in str(err.value)
    flags.loc[1, "item_id"] = "L" * ITEM_ID_MAX_LENGTH  # the longest id the database holds
    assert queue.ingest_flags(session, flags).rows_read == 3


def test_claims_follow_priority_and_resume_the_held_item(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    flags = review_data.make_flags(6, seed=4)
    _load(session, flags)
    ana, bo = make_user("ana"), make_user("bo")
    first = queue.claim_next(session, ana, lease_seconds=60, now=T0)
    again = queue.claim_next(session, ana, lease_seconds=60, now=T0 + timedelta(seconds=5))
    second = queue.claim_next(session, bo, lease_seconds=60, now=T0)
    session.commit()
    assert first is not None and again is not None and second is not None
    ranked = flags.sort_values("priority", ascending=False)["item_id"].tolist()
    assert [first.item.item_id, second.item.item_id] == ranked[:2]
    assert again.resumed and again.item.id == first.item.id
    assert again.lease.expires_at == T0 + timedelta(seconds=65)


def test_concurrent_claims_never_share_an_item(
    factory: sessionmaker[ReviewSession],
    session: ReviewSession,
    review_data: SimpleNamespace,
    make_user: Callable[..., User],
) -> None:
    n_items, n_workers = 40, 8
    _load(session, review_data.make_flags(n_items, seed=5))
    moderators = [make_user(f"m{i}").id for i in range(n_workers)]
    claimed: dict[int, list[int]] = {m: [] for m in moderators}
    errors: list[BaseException] = []
    start = threading.Barrier(n_workers)

    def work(user_id: int) -> None:
        try:
            start.wait()
            while True:
                with factory() as s:
                    begin_write(s)
                    user = s.get(User, user_id)
                    assert user is not None
                    claim = queue.claim_next(s, user, lease_seconds=600)
                    if claim is None:
                        s.commit()
                        return
                    item_id = claim.item.id
                    s.commit()
                    begin_write(s)
                    queue.submit_verdict(
                        s, user, item_id, verdict="not_violating", client_key=f"c{item_id}"
                    )
                    s.commit()
                    claimed[user_id].append(item_id)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(m,)) for m in moderators]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    judged = [i for items in claimed.values() for i in items]
    assert len(judged) == len(set(judged)) == n_items
    assert session.scalar(sa.select(sa.func.count()).select_from(Verdict)) == n_items
    leases = session.scalars(sa.select(Lease)).all()
    assert len(leases) == n_items and {lease.outcome for lease in leases} == {LeaseOutcome.JUDGED}


def test_expired_lease_is_reclaimed_and_the_late_verdict_refused(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    _load(session, review_data.make_flags(1, seed=6))
    ana, bo = make_user("ana"), make_user("bo")
    first = queue.claim_next(session, ana, lease_seconds=60, now=T0)
    assert first is not None
    assert queue.claim_next(session, bo, lease_seconds=60, now=T0 + timedelta(seconds=59)) is None
    taken = queue.claim_next(session, bo, lease_seconds=60, now=T0 + timedelta(seconds=61))
    session.commit()
    assert taken is not None and taken.item.id == first.item.id
    old = session.get(Lease, first.lease.id)
    assert old is not None and old.outcome == LeaseOutcome.EXPIRED
    assert old.ended_at == T0 + timedelta(seconds=60)
    with pytest.raises(ConflictError, match="leased to another moderator"):
        queue.submit_verdict(session, ana, first.item.id, verdict="violating", client_key="a1")
    session.rollback()
    outcome = queue.submit_verdict(session, bo, first.item.id, verdict="violating", client_key="b1")
    session.commit()
    assert outcome.created and outcome.verdict.reviewer_id == bo.id


def test_verdicts_are_idempotent_per_client_key(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    _load(session, review_data.make_flags(2, seed=7))
    ana = make_user("ana")
    claim = queue.claim_next(session, ana, lease_seconds=60)
    assert claim is not None
    one = queue.submit_verdict(
        session, ana, claim.item.id, verdict="violating", client_key="k-1", note="replica wording"
    )
    session.commit()
    two = queue.submit_verdict(session, ana, claim.item.id, verdict="violating", client_key="k-1")
    session.commit()
    assert one.created and not two.created and one.verdict.id == two.verdict.id
    assert session.scalar(sa.select(sa.func.count()).select_from(Verdict)) == 1
    with pytest.raises(ConflictError, match="already judged"):
        queue.submit_verdict(session, ana, claim.item.id, verdict="violating", client_key="k-2")
    session.rollback()
    other = queue.claim_next(session, ana, lease_seconds=60)
    assert other is not None
    with pytest.raises(ConflictError, match="already used for queue item"):
        queue.submit_verdict(session, ana, other.item.id, verdict="violating", client_key="k-1")


def test_verdict_needs_the_lease_and_the_queued_policy(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    _load(session, review_data.make_flags(2, seed=8))
    ana, bo = make_user("ana"), make_user("bo")
    item_id = session.scalars(sa.select(QueueItem.id)).first()
    assert item_id is not None
    with pytest.raises(ConflictError, match="claim it before judging"):
        queue.submit_verdict(session, ana, item_id, verdict="violating", client_key="x")
    claim = queue.claim_next(session, ana, lease_seconds=60)
    assert claim is not None
    with pytest.raises(InvalidInputError, match="queued for 'counterfeit'"):
        queue.submit_verdict(
            session, ana, claim.item.id, verdict="violating", client_key="y", policy="fake_discount"
        )
    with pytest.raises(ConflictError, match="another moderator"):
        queue.submit_verdict(session, bo, claim.item.id, verdict="violating", client_key="z")


def test_release_returns_the_item_to_the_queue(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    _load(session, review_data.make_flags(1, seed=9))
    ana, bo = make_user("ana"), make_user("bo")
    claim = queue.claim_next(session, ana, lease_seconds=600)
    assert claim is not None
    with pytest.raises(ConflictError, match="do not hold"):
        queue.release(session, bo, claim.item.id)
    queue.release(session, ana, claim.item.id)
    session.commit()
    assert session.get(Lease, claim.lease.id).outcome == LeaseOutcome.RELEASED  # type: ignore[union-attr]
    again = queue.claim_next(session, bo, lease_seconds=600)
    assert again is not None and again.item.id == claim.item.id


def test_teams_only_see_their_own_queue_unless_granted(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    brand = users.create_team(session, name="brand", policies=["counterfeit"])
    safety = users.create_team(session, name="safety", policies=["prohibited_item"])
    session.commit()
    _load(session, review_data.make_flags(10, seed=10, policies=("counterfeit", "prohibited_item")))
    ana = make_user("ana", team=brand)
    items = queue.list_items(session, ana, status=None, limit=100)
    assert items and {i.policy for i in items} == {"counterfeit"}
    foreign = session.scalars(sa.select(QueueItem).where(QueueItem.team_id == safety.id)).first()
    assert foreign is not None
    with pytest.raises(PermissionDeniedError, match="belongs to team 'safety'"):
        queue.get_item(session, ana, foreign.id)
    users.grant_team(session, ana, safety, actor=None)
    session.commit()
    assert queue.get_item(session, ana, foreign.id).id == foreign.id
    admin = make_user("root", "admin")
    assert queue.queue_stats(session, admin)["total"] == 10
