"""Verdicts as audit labels: the `audit_labels` contract table that training and the audit read.

The audit decides the mapping (`governance.audit.ranking.SAMPLING_OF_KIND`): items of its
importance-sampled slice (`random_audit`) come back as `sampling=model_ranked` with the inclusion
probability they were drawn with, so the audit's estimates stay unbiased; picks from the ranked
lists come back as `sampling=ranked_list` (take-all, kept out of the estimates).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from features.contract import validate_table
from features.tables import AUDIT_LABELS
from features.vocabulary import Sampling
from governance.audit.ranking import SAMPLING_OF_KIND  # the audit that reads them decides
from governance.review.orm import QueueItem, User, Verdict
from governance.review.vocabulary import ItemKind


def sampling_of(kind: ItemKind) -> Sampling:
    """How an item of this queue kind was sampled, in audit_labels terms."""
    return Sampling(SAMPLING_OF_KIND[kind.value])


def _contract_time(values: list[datetime]) -> pd.Series:
    """Aware UTC timestamps from the database as the contract's naive-UTC column."""
    return pd.Series(pd.to_datetime(values, utc=True).tz_convert(None), dtype="datetime64[us]")


def audit_labels(session: Session, *, since: datetime | None = None) -> pd.DataFrame:
    """Every verdict as one audit_labels row, validated against the data contract."""
    query = (
        sa.select(
            Verdict.label_id,
            QueueItem.entity,
            QueueItem.item_id,
            Verdict.policy,
            Verdict.verdict,
            User.username,
            Verdict.created_at,
            QueueItem.kind,
            QueueItem.inclusion_probability,
        )
        .join(QueueItem, QueueItem.id == Verdict.queue_item_id)
        .join(User, User.id == Verdict.reviewer_id)
        .order_by(Verdict.id)
    )
    if since is not None:
        query = query.where(Verdict.created_at > since)
    rows = session.execute(query).all()
    df = pd.DataFrame(
        {
            "label_id": pd.Series([r[0] for r in rows], dtype="str"),
            "entity": pd.Series([r[1] for r in rows], dtype="str"),
            "item_id": pd.Series([r[2] for r in rows], dtype="str"),
            "policy": pd.Series([r[3] for r in rows], dtype="str"),
            "verdict": pd.Series([r[4] for r in rows], dtype="str"),
            "reviewer_id": pd.Series([r[5] for r in rows], dtype="str"),
            "reviewed_at": _contract_time([r[6] for r in rows]),
            "sampling": pd.Series([sampling_of(r[7]).value for r in rows], dtype="str"),
            "inclusion_probability": pd.Series([r[8] for r in rows], dtype="float64"),
        }
    )
    return validate_table(AUDIT_LABELS.name, df[AUDIT_LABELS.column_names])


def export_labels(session: Session, out_path: Path | str) -> tuple[Path, int]:
    """Write the audit labels as Parquet (validated first); returns the path and row count."""
    out_path = Path(out_path)
    df = audit_labels(session)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out_path, index=False)
    return out_path, len(df)
