"""The review queue: flagged items in, exclusive expiring leases out, one verdict per item.

Claiming is exclusive on both databases. PostgreSQL locks the chosen row with
`SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent moderators skip each other's candidates.
SQLite has one writer at a time: every transaction begins with `BEGIN IMMEDIATE` (see `db`), and
the lease is taken by a conditional `UPDATE ... WHERE lease is free` whose row count is checked,
so a claim can never overwrite a live lease whatever the isolation level.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from features.tables import ColumnSpec
from features.vocabulary import Policy
from features.vocabulary import Verdict as VerdictValue
from governance.audit.ranking import FLAG_COLUMNS  # the audit writes flags.parquet
from governance.audit.tables import FLAGS
from governance.review import audit_log
from governance.review.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from governance.review.orm import Escalation, Lease, QueueItem, Team, User, Verdict
from governance.review.users import visible_team_ids
from governance.review.vocabulary import (
    Confidence,
    ItemKind,
    LeaseOutcome,
    QueueStatus,
    utcnow,
)

#: Days of channel_exposure summarised onto each item at ingestion.
EXPOSURE_WINDOW_DAYS = 30
_AnySelect = TypeVar("_AnySelect", bound="sa.Select[*tuple[Any, ...]]")
_CLIENT_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_KEY_CHUNK = 500
_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class IngestReport:
    """What one load of flags did to the queue."""

    rows_read: int
    inserted: int
    updated: int
    duplicates_in_input: int
    skipped_closed: int

    @property
    def queued(self) -> int:
        """Items newly queued or refreshed."""
        return self.inserted + self.updated


@dataclass(frozen=True)
class Claim:
    """A lease on a queue item; `resumed` when the moderator already held it."""

    item: QueueItem
    lease: Lease
    resumed: bool


@dataclass(frozen=True)
class VerdictOutcome:
    """The recorded verdict and whether this call created it (False: idempotent replay)."""

    verdict: Verdict
    created: bool


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened to an item, for the item page."""

    at: datetime
    actor: str
    what: str


# --------------------------------------------------------------------------------------------
# Ingestion
# --------------------------------------------------------------------------------------------

#: Values of the policy vocabulary, to tell a filter that matches nothing from a valid one.
_POLICIES = frozenset(p.value for p in Policy)


def validate_flags(flags: pd.DataFrame) -> pd.DataFrame:
    """Check flags.parquet rows; raise InvalidInputError naming every bad column and row."""
    missing = [c for c in FLAG_COLUMNS if c not in flags.columns]
    if missing:
        raise InvalidInputError(
            f"flags: missing column(s) {missing}; flags.parquet needs {list(FLAG_COLUMNS)} "
            "(write it with `govrisk audit`)"
        )
    problems: list[str] = []
    df = flags.reset_index(drop=True)

    def bad(column: str, mask: pd.Series, what: str) -> None:
        if bool(mask.any()):
            rows = [int(i) for i in df.index[mask][:_MAX_EXAMPLES]]
            problems.append(f"flags.{column}: {int(mask.sum())} row(s) {what} (e.g. rows {rows})")

    for col in FLAGS.columns:
        for mask, what in _column_problems(df[col.name], col):
            bad(col.name, mask, what)
    bad("inclusion_probability", pd.to_numeric(df["inclusion_probability"]).eq(0), "zero")
    reasons_ok = df["reasons"].map(_reasons_ok)
    bad("reasons", ~reasons_ok, "not a JSON list of {feature, description, value, contribution}")
    if problems:
        raise InvalidInputError(
            "flags do not match the flags.parquet format:\n  " + "\n  ".join(problems)
        )
    return df


def _column_problems(values: pd.Series, col: ColumnSpec) -> list[tuple[pd.Series, str]]:
    """(rows, what is wrong) for one flags column, from its declaration in `FLAGS`."""
    missing = values.isna()
    out = [] if col.nullable else [(missing, "empty")]
    if col.kind == "string":
        text = values.astype(str)
        if not col.nullable:
            out.append((~missing & text.str.len().eq(0), "empty"))
        if col.enum is not None:
            allowed = sorted(col.enum)
            what = f"not null nor one of {allowed}" if col.nullable else f"not one of {allowed}"
            out.append((~missing & ~values.isin(allowed), what))
        if col.max_length is not None:
            out.append(
                (~missing & text.str.len().gt(col.max_length), f"longer than {col.max_length}")
            )
    elif col.kind == "float":
        numbers = pd.to_numeric(values, errors="coerce")
        finite = numbers.notna() & numbers.abs().lt(math.inf)
        out = [(~finite, "not a finite number")]
        low = -math.inf if col.min_value is None else col.min_value
        high = math.inf if col.max_value is None else col.max_value
        out.append((finite & ~numbers.between(low, high), f"outside [{low}, {high}]"))
    return out


def _reasons_ok(text: object) -> bool:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return True
    try:
        parsed = json.loads(str(text))
    except ValueError:
        return False
    return isinstance(parsed, list) and all(isinstance(r, dict) and "feature" in r for r in parsed)


def _parse_strategies(text: object) -> list[str]:
    if not isinstance(text, str):
        return []
    return sorted({part.strip() for part in text.split(",") if part.strip()})


def _parse_reasons(text: object) -> list[dict[str, Any]]:
    if not isinstance(text, str) or not text:
        return []
    parsed = json.loads(text)
    return [dict(r) for r in parsed]


def _compute_deduplicated(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (entity, item_id, policy).

    The highest-priority row supplies channel, p_error and reasons; strategies are merged; a
    random-audit row supplies kind and inclusion probability, because the random draw happened
    whatever the ranked lists say, and the estimators need its probability.
    """
    df = df.assign(
        _random=df["kind"].eq(ItemKind.RANDOM_AUDIT.value),
        priority=pd.to_numeric(df["priority"]).astype(float),
        p_error=pd.to_numeric(df["p_error"]).astype(float),
        inclusion_probability=pd.to_numeric(df["inclusion_probability"]).astype(float),
    )
    keys = ["entity", "item_id", "policy"]
    best = df.sort_values("priority", ascending=False, kind="stable").drop_duplicates(keys)
    strategies = (
        df.assign(_s=df["strategies"].map(_parse_strategies))
        .groupby(keys, sort=False)["_s"]
        .agg(lambda lists: sorted({s for sub in lists for s in sub}))
    )
    random_rows = df[df["_random"]].drop_duplicates(keys).set_index(keys)
    out = best.set_index(keys)
    out["strategies"] = strategies
    has_random = out.index.isin(random_rows.index)
    out.loc[has_random, "kind"] = ItemKind.RANDOM_AUDIT.value
    out.loc[has_random, "inclusion_probability"] = random_rows.loc[
        out.index[has_random], "inclusion_probability"
    ].to_numpy()
    return out.reset_index().drop(columns="_random")


def summarize_exposure(
    channel_exposure: pd.DataFrame, *, window_days: int = EXPOSURE_WINDOW_DAYS
) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (entity, item_id): impressions, clicks, orders and GMV per channel, last N days."""
    if channel_exposure.empty:
        return {}
    until = pd.Timestamp(channel_exposure["day"].max())
    recent = channel_exposure[channel_exposure["day"] > until - pd.Timedelta(days=window_days)]
    sums = recent.groupby(["entity", "item_id", "channel"], sort=False)[
        ["impressions", "clicks", "orders", "gmv"]
    ].sum()
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in sums.reset_index().to_dict("records"):
        entry = out.setdefault(
            (str(row["entity"]), str(row["item_id"])),
            {"window_days": window_days, "until": until.date().isoformat(), "channels": {}},
        )
        entry["channels"][str(row["channel"])] = {
            "impressions": int(row["impressions"]),
            "clicks": int(row["clicks"]),
            "orders": int(row["orders"]),
            "gmv": round(float(row["gmv"]), 2),
        }
    return out


def _team_routes(session: Session) -> dict[str, int]:
    routes: dict[str, int] = {}
    for team in session.scalars(sa.select(Team).order_by(Team.id)):
        for policy in team.policies:
            routes.setdefault(policy, team.id)
    return routes


def ingest_flags(
    session: Session,
    flags: pd.DataFrame,
    *,
    source: str = "",
    exposure: dict[tuple[str, str], dict[str, Any]] | None = None,
    actor: User | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Queue the audit's flags, de-duplicated by (entity, item_id, policy).

    Pending items are refreshed (priority, reasons, strategies); judged or escalated items are
    left alone. Each item is routed to the first team whose policies include its policy.
    """
    df = validate_flags(flags)
    return _compute_ingest(
        session, df, source=source, exposure=exposure or {}, actor=actor, now=now or utcnow()
    )


def _compute_ingest(
    session: Session,
    df: pd.DataFrame,
    *,
    source: str,
    exposure: dict[tuple[str, str], dict[str, Any]],
    actor: User | None,
    now: datetime,
) -> IngestReport:
    rows = _compute_deduplicated(df)
    routes = _team_routes(session)
    existing: dict[tuple[str, str, str], tuple[int, QueueStatus, ItemKind]] = {}
    item_ids = rows["item_id"].astype(str).unique().tolist()
    for start in range(0, len(item_ids), _KEY_CHUNK):
        chunk = item_ids[start : start + _KEY_CHUNK]
        query = sa.select(
            QueueItem.id,
            QueueItem.entity,
            QueueItem.item_id,
            QueueItem.policy,
            QueueItem.status,
            QueueItem.kind,
        ).where(QueueItem.item_id.in_(chunk))
        for pk, entity, item_id, policy, status, kind in session.execute(query):
            existing[(entity, item_id, policy)] = (pk, status, kind)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    skipped = 0
    records = cast(list[dict[str, Any]], rows.to_dict("records"))
    for row in records:
        key = (str(row["entity"]), str(row["item_id"]), str(row["policy"]))
        channel = row["channel"]
        values: dict[str, Any] = {
            "channel": None if channel is None or pd.isna(channel) else str(channel),
            "kind": ItemKind(str(row["kind"])),
            "priority": float(row["priority"]),
            "p_error": float(row["p_error"]),
            "inclusion_probability": float(row["inclusion_probability"]),
            "strategies": list(row["strategies"]),
            "reasons": _parse_reasons(row["reasons"]),
            "source": source[:256],
            "updated_at": now,
        }
        snapshot = exposure.get((key[0], key[1]))
        if snapshot is not None:
            values["exposure"] = snapshot
        if key in existing:
            pk, status, kind = existing[key]
            if status != QueueStatus.PENDING:
                skipped += 1
                continue
            if kind == ItemKind.RANDOM_AUDIT:  # an earlier random draw stays what it was
                del values["kind"], values["inclusion_probability"]
            updates.append({"id": pk, **values})
        else:
            inserts.append(
                {
                    "entity": key[0],
                    "item_id": key[1],
                    "policy": key[2],
                    "team_id": routes.get(key[2]),
                    "status": QueueStatus.PENDING,
                    "created_at": now,
                    "exposure": {},
                    **values,
                }
            )
    if inserts:
        session.execute(sa.insert(QueueItem), inserts)
    if updates:
        session.execute(sa.update(QueueItem), updates)
    report = IngestReport(
        rows_read=len(df),
        inserted=len(inserts),
        updated=len(updates),
        duplicates_in_input=len(df) - len(rows),
        skipped_closed=skipped,
    )
    audit_log.record(
        session,
        actor=actor,
        action="queue.ingest",
        target_type="queue",
        target_id=source or "flags",
        after=report.__dict__,
        now=now,
    )
    return report


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _visible(query: _AnySelect, user: User | None) -> _AnySelect:
    """Restrict to items `user` may see (no restriction for None: trusted callers)."""
    teams = visible_team_ids(user) if user is not None else None
    if teams is None:
        return query
    return query.where(sa.or_(QueueItem.team_id.in_(teams), QueueItem.team_id.is_(None)))


def can_see(user: User, item: QueueItem) -> bool:
    """Whether `user` may read `item` (its team is theirs or granted, or it is unrouted)."""
    teams = visible_team_ids(user)
    return teams is None or item.team_id is None or item.team_id in teams


def get_item(session: Session, user: User, queue_item_id: int) -> QueueItem:
    """The queue item, if it exists and `user` may see it."""
    item = session.get(QueueItem, queue_item_id)
    if item is None:
        raise NotFoundError(f"queue item {queue_item_id} does not exist")
    if not can_see(user, item):
        team = item.team.name if item.team else "?"
        raise PermissionDeniedError(
            f"queue item {queue_item_id} belongs to team {team!r}; ask an admin for access"
        )
    return item


def list_items(
    session: Session,
    user: User,
    *,
    status: QueueStatus | None = QueueStatus.PENDING,
    policy: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[QueueItem]:
    """Items `user` may see, highest priority first (none for a policy that does not exist)."""
    query = _visible(sa.select(QueueItem), user)
    if status is not None:
        query = query.where(QueueItem.status == status)
    if policy is not None:
        if policy not in _POLICIES:  # the typed column cannot even bind an unknown value
            return []
        query = query.where(QueueItem.policy == Policy(policy))
    query = query.order_by(QueueItem.priority.desc(), QueueItem.id).limit(limit).offset(offset)
    return list(session.scalars(query))


def queue_stats(
    session: Session, user: User | None, *, now: datetime | None = None
) -> dict[str, int]:
    """Counts of items `user` may see (all for None): open, leased, escalated, judged."""
    now = now or utcnow()
    leased = sa.and_(
        QueueItem.status == QueueStatus.PENDING,
        QueueItem.leased_by_id.is_not(None),
        QueueItem.lease_expires_at > now,
    )
    query = _visible(
        sa.select(
            sa.func.count().label("total"),
            sa.func.sum(sa.case((QueueItem.status == QueueStatus.PENDING, 1), else_=0)),
            sa.func.sum(sa.case((leased, 1), else_=0)),
            sa.func.sum(sa.case((QueueItem.status == QueueStatus.ESCALATED, 1), else_=0)),
            sa.func.sum(sa.case((QueueItem.status == QueueStatus.JUDGED, 1), else_=0)),
        ).select_from(QueueItem),
        user,
    )
    total, pending, leased_n, escalated, judged = session.execute(query).one()
    return {
        "total": int(total or 0),
        "open": int(pending or 0),
        "leased": int(leased_n or 0),
        "available": int(pending or 0) - int(leased_n or 0),
        "escalated": int(escalated or 0),
        "judged": int(judged or 0),
    }


def current_lease(session: Session, item: QueueItem) -> Lease | None:
    """The open lease on `item`, if any (expired or not)."""
    return session.scalar(
        sa.select(Lease).where(Lease.queue_item_id == item.id, Lease.outcome.is_(None))
    )


def verdict_for(session: Session, item: QueueItem) -> Verdict | None:
    """The verdict recorded on `item`, if judged."""
    return session.scalar(sa.select(Verdict).where(Verdict.queue_item_id == item.id))


def verdicts_by_item(session: Session, items: Sequence[QueueItem]) -> dict[int, Verdict]:
    """The verdict on each of `items` that has one, by queue item id."""
    ids = [item.id for item in items]
    if not ids:
        return {}
    found = session.scalars(sa.select(Verdict).where(Verdict.queue_item_id.in_(ids)))
    return {v.queue_item_id: v for v in found}


def item_history(session: Session, item: QueueItem) -> list[HistoryEntry]:
    """Leases, verdicts and escalations on this item, and verdicts on the same item's other
    policies, oldest first."""
    entries: list[HistoryEntry] = []
    users = {
        u.id: u.username
        for u in session.scalars(
            sa.select(User).where(
                User.id.in_(sa.select(Lease.user_id).where(Lease.queue_item_id == item.id))
            )
        )
    }
    for lease in session.scalars(
        sa.select(Lease).where(Lease.queue_item_id == item.id).order_by(Lease.id)
    ):
        who = users.get(lease.user_id, "?")
        entries.append(HistoryEntry(lease.claimed_at, who, "claimed"))
        if lease.outcome is not None and lease.ended_at is not None:
            entries.append(HistoryEntry(lease.ended_at, who, f"lease {lease.outcome.value}"))
    siblings = sa.select(QueueItem.id).where(
        QueueItem.entity == item.entity, QueueItem.item_id == item.item_id
    )
    for verdict in session.scalars(
        sa.select(Verdict).where(Verdict.queue_item_id.in_(siblings)).order_by(Verdict.id)
    ):
        other = "" if verdict.queue_item_id == item.id else " (other queue entry)"
        entries.append(
            HistoryEntry(
                verdict.created_at,
                verdict.reviewer.username,
                f"verdict {verdict.verdict} for {verdict.policy}, {verdict.confidence.value} "
                f"confidence{other}",
            )
        )
    for escalation in session.scalars(
        sa.select(Escalation).where(Escalation.queue_item_id == item.id).order_by(Escalation.id)
    ):
        entries.append(
            HistoryEntry(
                escalation.created_at,
                escalation.raised_by.username,
                f"escalated #{escalation.id} ({escalation.state.value}): {escalation.title}",
            )
        )
    entries.sort(key=lambda e: e.at)
    return entries


# --------------------------------------------------------------------------------------------
# Claiming, releasing, judging
# --------------------------------------------------------------------------------------------


def _lease_is_free(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(QueueItem.leased_by_id.is_(None), QueueItem.lease_expires_at <= now)


def _rowcount(result: Any) -> int:
    return int(cast(sa.CursorResult[Any], result).rowcount)


def claim_next(
    session: Session,
    user: User,
    *,
    lease_seconds: float,
    now: datetime | None = None,
) -> Claim | None:
    """Lease the highest-priority free item `user` may see (None when there is none).

    A moderator holds one item at a time: while their lease is live, claiming again returns
    (and renews) the same item. Expired leases are reclaimable and are closed as `expired`.
    """
    if lease_seconds <= 0:
        raise InvalidInputError(f"lease_seconds must be positive, got {lease_seconds}")
    now = now or utcnow()
    expires_at = now + timedelta(seconds=lease_seconds)
    held = _held_item(session, user, now)
    if held is not None:
        lease = current_lease(session, held)
        assert lease is not None, f"queue item {held.id} is leased without an open lease row"
        held.lease_expires_at = expires_at
        lease.expires_at = expires_at
        return Claim(item=held, lease=lease, resumed=True)
    dialect = session.get_bind().dialect.name
    for _ in range(8):
        candidate = _visible(sa.select(QueueItem.id), user).where(
            QueueItem.status == QueueStatus.PENDING, _lease_is_free(now)
        )
        candidate = candidate.order_by(QueueItem.priority.desc(), QueueItem.id).limit(1)
        if dialect == "postgresql":
            candidate = candidate.with_for_update(skip_locked=True, of=QueueItem)
        item_id = session.scalar(candidate)
        if item_id is None:
            return None
        taken = session.execute(
            sa.update(QueueItem)
            .where(
                QueueItem.id == item_id,
                QueueItem.status == QueueStatus.PENDING,
                _lease_is_free(now),
            )
            .values(leased_by_id=user.id, lease_expires_at=expires_at, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(taken) == 1:
            break
    else:  # every candidate was taken under us; let the client retry
        return None
    expired = session.scalar(
        sa.select(Lease).where(Lease.queue_item_id == item_id, Lease.outcome.is_(None))
    )
    if expired is not None:  # the previous holder's lease ran out: account for it
        expired.outcome = LeaseOutcome.EXPIRED
        expired.ended_at = expired.expires_at
        session.flush()
    lease = Lease(queue_item_id=item_id, user_id=user.id, claimed_at=now, expires_at=expires_at)
    session.add(lease)
    session.flush()
    item = session.get(QueueItem, item_id, populate_existing=True)
    assert item is not None
    return Claim(item=item, lease=lease, resumed=False)


def _held_item(session: Session, user: User, now: datetime) -> QueueItem | None:
    return session.scalar(
        sa.select(QueueItem)
        .where(
            QueueItem.leased_by_id == user.id,
            QueueItem.status == QueueStatus.PENDING,
            QueueItem.lease_expires_at > now,
        )
        .order_by(QueueItem.id)
        .limit(1)
    )


def release(
    session: Session, user: User, queue_item_id: int, *, now: datetime | None = None
) -> QueueItem:
    """Give an item back to the queue unjudged (only its lease holder can)."""
    now = now or utcnow()
    item = get_item(session, user, queue_item_id)
    freed = session.execute(
        sa.update(QueueItem)
        .where(
            QueueItem.id == item.id,
            QueueItem.status == QueueStatus.PENDING,
            QueueItem.leased_by_id == user.id,
        )
        .values(leased_by_id=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(freed) != 1:
        raise ConflictError(f"queue item {item.id}: you do not hold its lease; nothing to release")
    _close_open_lease(session, item.id, LeaseOutcome.RELEASED, now)
    audit_log.record(
        session,
        actor=user,
        action="queue.release",
        target_type="queue_item",
        target_id=item.id,
        now=now,
    )
    session.refresh(item)
    return item


def _close_open_lease(
    session: Session, queue_item_id: int, outcome: LeaseOutcome, now: datetime
) -> int | None:
    lease = session.scalar(
        sa.select(Lease).where(Lease.queue_item_id == queue_item_id, Lease.outcome.is_(None))
    )
    if lease is None:
        return None
    lease.outcome = outcome
    lease.ended_at = now
    return lease.id


def submit_verdict(
    session: Session,
    user: User,
    queue_item_id: int,
    *,
    verdict: VerdictValue | str,
    client_key: str,
    confidence: Confidence | str = Confidence.HIGH,
    policy: str | None = None,
    note: str = "",
    now: datetime | None = None,
) -> VerdictOutcome:
    """Record `user`'s verdict on an item they hold; the same `client_key` twice records one.

    The verdict is always the caller's own: the reviewer is `user`, never a field of the input.
    """
    if not _CLIENT_KEY_RE.match(client_key):
        raise InvalidInputError(
            "client_key: 1-64 characters of letters, digits, '.', '_', ':' or '-' "
            "(a fresh UUID per verdict is ideal)"
        )
    try:
        verdict = VerdictValue(verdict)
        confidence = Confidence(confidence)
    except ValueError as err:
        raise InvalidInputError(
            f"verdict must be one of {[v.value for v in VerdictValue]} and confidence one of "
            f"{[c.value for c in Confidence]}: {err}"
        ) from err
    replay = _replay(session, user, queue_item_id, client_key)
    if replay is not None:
        return replay
    now = now or utcnow()
    item = get_item(session, user, queue_item_id)
    if policy is not None and policy != item.policy:  # the item's state, not the body's shape
        raise ConflictError(
            f"policy: this item is queued for {item.policy.value!r}, got {policy!r}; judge the "
            "queued policy and escalate the item to report another one"
        )
    judged = session.execute(
        sa.update(QueueItem)
        .where(
            QueueItem.id == item.id,
            QueueItem.status == QueueStatus.PENDING,
            QueueItem.leased_by_id == user.id,
        )
        .values(
            status=QueueStatus.JUDGED,
            leased_by_id=None,
            lease_expires_at=None,
            judged_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if _rowcount(judged) != 1:
        # A concurrent request with the same key may have just committed (PostgreSQL waits on
        # the row lock, then re-reads): answer with its verdict rather than a conflict.
        replay = _replay(session, user, queue_item_id, client_key)
        if replay is not None:
            return replay
        session.refresh(item)
        raise ConflictError(_not_judgeable(item, user))
    lease_id = _close_open_lease(session, item.id, LeaseOutcome.JUDGED, now)
    record = Verdict(
        label_id=f"rv-{uuid.uuid4().hex}",
        queue_item_id=item.id,
        reviewer_id=user.id,
        lease_id=lease_id,
        verdict=verdict.value,
        policy=item.policy,
        confidence=confidence,
        note=note,
        client_key=client_key,
        created_at=now,
    )
    session.add(record)
    session.flush()
    audit_log.record(
        session,
        actor=user,
        action="verdict.create",
        target_type="queue_item",
        target_id=item.id,
        before={"status": QueueStatus.PENDING},
        after={
            "status": QueueStatus.JUDGED,
            "verdict_id": record.id,
            "verdict": verdict.value,
            "policy": item.policy,
            "confidence": confidence.value,
        },
        now=now,
    )
    session.refresh(item)
    return VerdictOutcome(verdict=record, created=True)


def _replay(
    session: Session, user: User, queue_item_id: int, client_key: str
) -> VerdictOutcome | None:
    previous = session.scalar(
        sa.select(Verdict).where(Verdict.reviewer_id == user.id, Verdict.client_key == client_key)
    )
    if previous is None:
        return None
    if previous.queue_item_id != queue_item_id:
        raise ConflictError(
            f"client_key {client_key!r} was already used for queue item "
            f"{previous.queue_item_id}; use a fresh key per verdict"
        )
    return VerdictOutcome(verdict=previous, created=False)


def _not_judgeable(item: QueueItem, user: User) -> str:
    if item.status == QueueStatus.JUDGED:
        return f"queue item {item.id} is already judged"
    if item.status == QueueStatus.ESCALATED:
        return f"queue item {item.id} is on hold while escalated"
    if item.leased_by_id is None:
        return f"queue item {item.id}: claim it before judging (its lease is free)"
    if item.leased_by_id != user.id:
        return f"queue item {item.id} is leased to another moderator"
    return f"queue item {item.id} cannot be judged now"


def hold_for_escalation(session: Session, item: QueueItem, *, now: datetime) -> bool:
    """Take a pending item out of the queue while it is escalated, leased or not.

    A lease held by anyone ends (outcome `escalated`): its holder can no longer judge the item
    while the case is open. False when the item is not pending (judged or already held).
    """
    held = session.execute(
        sa.update(QueueItem)
        .where(QueueItem.id == item.id, QueueItem.status == QueueStatus.PENDING)
        .values(
            status=QueueStatus.ESCALATED, leased_by_id=None, lease_expires_at=None, updated_at=now
        )
        .execution_options(synchronize_session=False)
    )
    if _rowcount(held) != 1:
        return False
    lease = session.scalar(
        sa.select(Lease).where(Lease.queue_item_id == item.id, Lease.outcome.is_(None))
    )
    if lease is not None:
        lease.outcome = LeaseOutcome.ESCALATED
        lease.ended_at = min(now, lease.expires_at)
    session.refresh(item)
    return True


def return_from_escalation(item: QueueItem, *, now: datetime) -> None:
    """Put an escalated item back in the queue (when no other escalation still holds it)."""
    if item.status == QueueStatus.ESCALATED:
        item.status = QueueStatus.PENDING
        item.updated_at = now
