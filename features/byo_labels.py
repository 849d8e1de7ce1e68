"""Review samples of a bring-your-own dataset, and verdicts revealed from its label column.

A sample is drawn with known inclusion probabilities, as audits need: `draw_random` takes each
row independently with probability `size / rows` (sampling `random`); a sample drawn by the
audit (its `random_audit` flags) comes in through `sample_from_draws`. With a label column
(the fraud data's `class`), `reveal` turns a sample into `audit_labels` rows whose verdicts
stand in for reviewers' — a stated stand-in: real reviewers would judge the sampled rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from features.byo import ByoDataset, GovernanceDecl
from features.contract import validate_table
from features.tables import AUDIT_LABELS
from features.vocabulary import Sampling, Verdict

#: Columns of a review sample (an audit_labels table before verdicts).
SAMPLE_COLUMNS = ("entity", "item_id", "policy", "sampling", "inclusion_probability")
#: reviewer_id of verdicts read from the dataset's label column.
REVEALED_BY = "dataset-label"


def governance_of(dataset: ByoDataset) -> GovernanceDecl:
    """The dataset's governance section, or an error saying to add one."""
    if dataset.spec.governance is None:
        raise ValueError(
            f"dataset spec {dataset.spec.name!r} has no governance section (entity, policy); "
            "add one to the spec (docs/byo-walkthrough.md) and rebuild with `govrisk features byo`"
        )
    return dataset.spec.governance


def draw_random(dataset: ByoDataset, *, size: int, seed: int = 0) -> pd.DataFrame:
    """Each row with probability `size / rows` (about `size` rows), as a review sample."""
    gov = governance_of(dataset)
    n = len(dataset.frame)
    if not 0 < size <= n:
        raise ValueError(f"--size must be between 1 and the dataset's {n:,} rows, got {size}")
    pi = size / n
    drawn = np.random.default_rng(seed).random(n) < pi
    ids = dataset.frame["item_id"].astype(str).to_numpy()[drawn]
    return _sample(gov, ids, np.full(len(ids), pi), Sampling.RANDOM.value)


def sample_from_draws(dataset: ByoDataset, draws: pd.DataFrame) -> pd.DataFrame:
    """A review sample from drawn rows (item_id, sampling, inclusion_probability) of this
    dataset, e.g. the audit slice an audit drew; unknown ids are an error."""
    gov = governance_of(dataset)
    missing = sorted(set(draws["item_id"].astype(str)) - set(dataset.frame["item_id"]))
    if missing:
        raise ValueError(
            f"{len(missing)} drawn item(s) are not rows of dataset {dataset.spec.name!r}, e.g. "
            f"{missing[:3]}; draw from the same feature build"
        )
    out = _sample(
        gov,
        draws["item_id"].astype(str).to_numpy(),
        draws["inclusion_probability"].to_numpy(dtype=float),
        "",
    )
    out["sampling"] = draws["sampling"].astype(str).to_numpy()
    return out


def _sample(gov: GovernanceDecl, ids: np.ndarray, pi: np.ndarray, sampling: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity": gov.entity.value,
            "item_id": pd.array(ids, dtype="str"),
            "policy": gov.policy.value,
            "sampling": sampling,
            "inclusion_probability": pi,
        },
        columns=list(SAMPLE_COLUMNS),
    )


def reveal(dataset: ByoDataset, sample: pd.DataFrame, *, reviewed_at: datetime) -> pd.DataFrame:
    """The sample as audit_labels rows, verdicts from the dataset's label column (> 0.5:
    violating), validated against the data contract."""
    if "label" not in dataset.frame.columns:
        raise ValueError(
            f"dataset {dataset.spec.name!r} has no label column (rows.label in its spec): "
            "nothing to reveal; have reviewers judge the sample instead"
        )
    label = dataset.frame.set_index("item_id")["label"].astype(float)
    y = label.reindex(sample["item_id"].astype(str)).to_numpy()
    if np.isnan(y).any():
        raise ValueError(f"{int(np.isnan(y).sum())} sampled row(s) have no label value")
    verdict = np.where(y > 0.5, Verdict.VIOLATING.value, Verdict.NOT_VIOLATING.value)
    labels = sample.assign(
        label_id=[f"{s}-{i}" for s, i in zip(sample["sampling"], sample["item_id"], strict=True)],
        verdict=verdict,
        reviewer_id=REVEALED_BY,
        reviewed_at=pd.Timestamp(reviewed_at),
    )
    return validate_table(AUDIT_LABELS.name, labels[list(AUDIT_LABELS.column_names)])


def labels_file(
    dataset: ByoDataset,
    sample: pd.DataFrame,
    *,
    with_verdicts: bool,
    existing: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """What `govrisk labels draw` writes: the sample to review, or (`with_verdicts`) its
    audit_labels rows revealed now, after the `existing` ones."""
    if not with_verdicts:
        return sample
    labels = reveal(dataset, sample, reviewed_at=_now())
    return labels if existing is None else append_labels(existing, labels)


def _now() -> datetime:
    """Now, as the naive UTC time the data contract stores."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def append_labels(existing: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """`existing` audit labels followed by `new` ones (a label id seen before is refused)."""
    again = sorted(set(existing["label_id"]) & set(new["label_id"]))
    if again:
        raise ValueError(
            f"{len(again)} label(s) are already in the labels file, e.g. {again[:3]}; "
            "draw a new sample or write to a new file"
        )
    combined = pd.concat([existing, new], ignore_index=True)
    return validate_table(AUDIT_LABELS.name, combined)
