"""Strategy-change approvals: audit suggestions in, PM decisions out, shadow versions promoted.

Accepting a suggestion writes its proposed strategy as the next version in `shadow` status (it is
evaluated, never enforced). Promoting a shadow version makes it `active` and retires the version
that was active. Every step is in the audit log with the state before and after.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from features.vocabulary import StrategyStatus
from governance.audit.suggestions import SUGGESTION_COLUMNS
from governance.audit.tables import SUGGESTIONS
from governance.audit.vocabulary import SuggestionKind
from governance.review import audit_log
from governance.review.errors import ConflictError, InvalidInputError, NotFoundError
from governance.review.orm import StrategyVersion, Suggestion, SuggestionDecision, User
from governance.review.strategy_store import StrategyStore
from governance.review.vocabulary import SuggestionStatus, utcnow
from governance.strategy import Strategy, dump_strategy

#: Columns suggestions.parquet must have: the audit, which writes it, owns the list.
SUGGESTION_KINDS = tuple(k.value for k in SuggestionKind)
_FLOAT_COLUMNS = tuple(c.name for c in SUGGESTIONS.columns if c.kind == "float")


@dataclass(frozen=True)
class SuggestionIngestReport:
    """What one load of suggestions did."""

    rows_read: int
    inserted: int
    updated: int
    skipped_decided: int
    #: Rows whose suggestion_id came again later in the same load (the last one is kept).
    duplicates_in_input: int = 0


def validate_suggestions(suggestions: pd.DataFrame) -> pd.DataFrame:
    """Check suggestions.parquet rows; raise InvalidInputError naming bad columns and rows."""
    missing = [c for c in SUGGESTION_COLUMNS if c not in suggestions.columns]
    if missing:
        raise InvalidInputError(
            f"suggestions: missing column(s) {missing}; suggestions.parquet needs "
            f"{list(SUGGESTION_COLUMNS)} (write it with `govrisk audit`)"
        )
    df = suggestions.reset_index(drop=True)
    problems: list[str] = []

    def bad(column: str, mask: pd.Series, what: str) -> None:
        if bool(mask.any()):
            rows = [int(i) for i in df.index[mask][:5]]
            problems.append(
                f"suggestions.{column}: {int(mask.sum())} row(s) {what} (e.g. rows {rows})"
            )

    bad("suggestion_id", df["suggestion_id"].isna(), "empty")
    bad("kind", ~df["kind"].isin(SUGGESTION_KINDS), f"not one of {list(SUGGESTION_KINDS)}")
    bad("proposed_yaml", df["proposed_yaml"].isna(), "empty")
    for column in _FLOAT_COLUMNS:
        values = pd.to_numeric(df[column], errors="coerce")
        bad(column, ~(values.notna() & values.abs().lt(math.inf)), "not a finite number")
    for column in ("labels_used", "rank"):
        values = pd.to_numeric(df[column], errors="coerce")
        bad(column, values.isna() | (values < 0) | (values % 1 != 0), "not a whole number >= 0")
    base = pd.to_numeric(df["base_version"], errors="coerce")
    bad("base_version", df["base_version"].notna() & ~(base >= 1), "not empty nor a version >= 1")
    if problems:
        raise InvalidInputError(
            "suggestions do not match the suggestions.parquet format:\n  " + "\n  ".join(problems)
        )
    return df


def ingest_suggestions(
    session: Session,
    suggestions: pd.DataFrame,
    *,
    source: str = "",
    actor: User | None = None,
    now: datetime | None = None,
) -> SuggestionIngestReport:
    """Store suggestions for review; pending ones are refreshed, decided ones left alone."""
    read = validate_suggestions(suggestions)
    df = read.drop_duplicates("suggestion_id", keep="last")
    now = now or utcnow()
    existing = {
        s.suggestion_id: s
        for s in session.scalars(
            sa.select(Suggestion).where(
                Suggestion.suggestion_id.in_(df["suggestion_id"].astype(str).tolist())
            )
        )
    }
    inserted = updated = skipped = 0
    for row in df.to_dict("records"):
        values: dict[str, Any] = {
            "strategy_id": str(row["strategy_id"]),
            "base_version": None if pd.isna(row["base_version"]) else int(row["base_version"]),
            "kind": str(row["kind"]),
            "summary": str(row["summary"]),
            "proposed_yaml": str(row["proposed_yaml"]),
            **{c: float(row[c]) for c in _FLOAT_COLUMNS},
            "labels_used": int(row["labels_used"]),
            "rank": int(row["rank"]),
            "source": source[:256],
        }
        found = existing.get(str(row["suggestion_id"]))
        if found is None:
            session.add(
                Suggestion(suggestion_id=str(row["suggestion_id"]), created_at=now, **values)
            )
            inserted += 1
        elif found.status == SuggestionStatus.PENDING:
            for key, value in values.items():
                setattr(found, key, value)
            updated += 1
        else:
            skipped += 1
    report = SuggestionIngestReport(len(read), inserted, updated, skipped, len(read) - len(df))
    session.flush()
    audit_log.record(
        session,
        actor=actor,
        action="suggestions.ingest",
        target_type="suggestions",
        target_id=source or "suggestions",
        after=report.__dict__,
        now=now,
    )
    return report


def list_suggestions(
    session: Session, *, status: SuggestionStatus | None = None, limit: int = 200
) -> list[Suggestion]:
    """Suggestions by rank (best trade-off first)."""
    query = sa.select(Suggestion).order_by(Suggestion.rank, Suggestion.id).limit(limit)
    if status is not None:
        query = query.where(Suggestion.status == status)
    return list(session.scalars(query))


def get_suggestion(session: Session, suggestion_pk: int) -> Suggestion:
    """One suggestion by its database id."""
    suggestion = session.get(Suggestion, suggestion_pk)
    if suggestion is None:
        raise NotFoundError(f"suggestion {suggestion_pk} does not exist")
    return suggestion


def decision_for(session: Session, suggestion: Suggestion) -> SuggestionDecision | None:
    """The PM decision on a suggestion, if decided."""
    return session.scalar(
        sa.select(SuggestionDecision).where(SuggestionDecision.suggestion_pk == suggestion.id)
    )


def proposed_diff(suggestion: Suggestion, store: StrategyStore) -> str:
    """Unified diff from the base version's YAML to the proposed YAML ('' for new strategies)."""
    if suggestion.base_version is None:
        return ""
    base = store.yaml_text(suggestion.strategy_id, suggestion.base_version)
    if base is None:
        return ""
    ref = f"{suggestion.strategy_id}@v{suggestion.base_version}"
    return "".join(
        difflib.unified_diff(
            base.splitlines(keepends=True),
            suggestion.proposed_yaml.splitlines(keepends=True),
            fromfile=ref,
            tofile="proposed",
        )
    )


def _record_version(
    session: Session,
    strategy: Strategy,
    file_name: str,
    *,
    created_by: User | None,
    now: datetime,
) -> StrategyVersion:
    """Insert or refresh the database record of one strategy version."""
    row = session.scalar(
        sa.select(StrategyVersion).where(
            StrategyVersion.strategy_id == strategy.id,
            StrategyVersion.version == strategy.version,
        )
    )
    status = strategy.status.value
    if row is None:
        row = StrategyVersion(
            strategy_id=strategy.id,
            version=strategy.version,
            status=status,
            entity=strategy.entity.value,
            policy=strategy.policy.value,
            yaml_text=dump_strategy(strategy),
            file_name=file_name,
            created_by_id=created_by.id if created_by is not None else None,
            created_at=now,
        )
        session.add(row)
    else:
        row.status = status
        row.yaml_text = dump_strategy(strategy)
    if strategy.status == StrategyStatus.ACTIVE:
        row.promoted_at = now
    if strategy.status == StrategyStatus.RETIRED:
        row.retired_at = now
    session.flush()
    return row


def _require_base_version(suggestion: Suggestion, store: StrategyStore) -> None:
    """Refuse a change whose base version is not in the service's strategy set."""
    if suggestion.base_version is None:
        return
    try:
        store.get(suggestion.strategy_id, suggestion.base_version)
    except NotFoundError as err:
        raise ConflictError(
            f"suggestion {suggestion.suggestion_id} changes "
            f"{suggestion.strategy_id}@v{suggestion.base_version}, which is not in "
            f"{store.directory}; serve the strategy set the audit read "
            "(govrisk serve --strategies-dir DIR or GOVRISK_STRATEGIES_DIR)"
        ) from err


def _next_recorded_version(session: Session, strategy_id: str) -> int:
    """One above every version of `strategy_id` the database has recorded."""
    highest = session.scalar(
        sa.select(sa.func.max(StrategyVersion.version)).where(
            StrategyVersion.strategy_id == strategy_id
        )
    )
    return int(highest or 0) + 1


def decide(
    session: Session,
    actor: User,
    suggestion_pk: int,
    *,
    accept: bool,
    reason: str,
    store: StrategyStore,
    now: datetime | None = None,
) -> SuggestionDecision:
    """Accept (write the shadow version) or reject a pending suggestion, with a reason."""
    reason = reason.strip()
    if not reason:
        raise InvalidInputError("reason: say why you accept or reject; it stays in the record")
    now = now or utcnow()
    suggestion = get_suggestion(session, suggestion_pk)
    previous = decision_for(session, suggestion)
    if suggestion.status != SuggestionStatus.PENDING or previous is not None:
        raise ConflictError(
            f"suggestion {suggestion.suggestion_id} was already {suggestion.status.value}"
        )
    version_row: StrategyVersion | None = None
    if accept:
        proposed = store.parse(
            suggestion.proposed_yaml, source=f"suggestion {suggestion.suggestion_id}"
        )
        if proposed.id != suggestion.strategy_id:
            raise InvalidInputError(
                f"suggestion {suggestion.suggestion_id}: proposed_yaml is for strategy "
                f"{proposed.id!r}, not {suggestion.strategy_id!r}; re-run the audit"
            )
        _require_base_version(suggestion, store)
        shadow, path = store.add_shadow(
            proposed, created_at=now, min_version=_next_recorded_version(session, proposed.id)
        )
        version_row = _record_version(session, shadow, path.name, created_by=actor, now=now)
        audit_log.record(
            session,
            actor=actor,
            action="strategy_version.create",
            target_type="strategy_version",
            target_id=shadow.ref,
            after={"status": shadow.status, "file": path.name, "from": suggestion.suggestion_id},
            now=now,
        )
    status = SuggestionStatus.ACCEPTED if accept else SuggestionStatus.REJECTED
    decision = SuggestionDecision(
        suggestion_pk=suggestion.id,
        decided_by_id=actor.id,
        decision=status,
        reason=reason,
        strategy_version_pk=version_row.id if version_row is not None else None,
        created_at=now,
    )
    session.add(decision)
    suggestion.status = status
    session.flush()
    audit_log.record(
        session,
        actor=actor,
        action=f"suggestion.{'accept' if accept else 'reject'}",
        target_type="suggestion",
        target_id=suggestion.suggestion_id,
        before={"status": SuggestionStatus.PENDING},
        after={
            "status": status,
            "reason": reason,
            "strategy_version": (
                f"{version_row.strategy_id}@v{version_row.version}" if version_row else None
            ),
        },
        now=now,
    )
    return decision


def set_version_status(
    session: Session,
    actor: User,
    strategy_id: str,
    version: int,
    *,
    status: StrategyStatus,
    store: StrategyStore,
    now: datetime | None = None,
) -> list[StrategyVersion]:
    """Promote a shadow version to active (retiring the old active one) or retire a version.

    Returns the database records of every version whose status changed.
    """
    now = now or utcnow()
    target = store.get(strategy_id, version)
    allowed = {
        StrategyStatus.ACTIVE: {StrategyStatus.SHADOW},
        StrategyStatus.RETIRED: {
            StrategyStatus.SHADOW,
            StrategyStatus.ACTIVE,
            StrategyStatus.DRAFT,
        },
    }
    if status not in allowed:
        raise InvalidInputError(f"status: promote to active or retire; got {status.value}")
    if target.status not in allowed[status]:
        raise ConflictError(
            f"{target.ref} is {target.status.value}; only "
            f"{sorted(s.value for s in allowed[status])} versions can become {status.value}"
        )
    before = {s.ref: s.status for s in store.versions(strategy_id)}
    changed = store.set_status(strategy_id, version, status)
    rows = [_record_version(session, s, s.file_name, created_by=None, now=now) for s in changed]
    audit_log.record(
        session,
        actor=actor,
        action="strategy_version.promote"
        if status == StrategyStatus.ACTIVE
        else "strategy_version.retire",
        target_type="strategy_version",
        target_id=target.ref,
        before={ref: before[ref] for ref in (s.ref for s in changed)},
        after={s.ref: s.status for s in changed},
        now=now,
    )
    return rows


def suggestion_behind(session: Session, strategy_id: str, version: int) -> Suggestion | None:
    """The accepted suggestion whose shadow version is `strategy_id@v<version>`, if any."""
    return session.scalar(
        sa.select(Suggestion)
        .join(SuggestionDecision, SuggestionDecision.suggestion_pk == Suggestion.id)
        .join(StrategyVersion, StrategyVersion.id == SuggestionDecision.strategy_version_pk)
        .where(StrategyVersion.strategy_id == strategy_id, StrategyVersion.version == version)
    )


def version_records(session: Session) -> dict[tuple[str, int], StrategyVersion]:
    """Database records of the versions the service created or changed, by (id, version)."""
    return {(r.strategy_id, r.version): r for r in session.scalars(sa.select(StrategyVersion))}
