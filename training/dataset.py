"""Training sets: moderator audit labels joined to point-in-time feature rows.

Labels come from `audit_labels` only, never from strategy decisions (a model trained on a rule's
decisions learns the rule back); strategy hits stay input features.

- Reviews of the same (entity, item, policy) collapse to one label: the majority verdict (ties go
  to the latest review) or simply the latest review (`labels.dedupe`). Its time is the latest
  review and its inclusion probability the largest of its reviews' (the probability of being
  drawn at least once is at least that; it is exact when the draws are nested or the same draw).
- The any-violation label (`policy == "any"`) of an item is 1 when any policy it was judged on
  was found violating, 0 when every judged policy was found not violating. An item judged on only
  some policies counts as negative on the evidence it has: the unjudged policies are unknown, so
  the any model slightly under-reads violations that no audit looks for. Every judged policy of
  the entity counts, whether or not the spec trains a model for it.
- Each label gets the features as of the start of the UTC week (Monday 00:00) holding its review
  (`labels.feature_cutoff: day` uses the start of the day instead): one feature build per week,
  from data strictly before that instant. Items created after that cutoff have no feature row
  yet; their labels are dropped and counted in `EntityData.dropped`.
- Weights are 1 / inclusion probability, normalised to mean 1 per target, so the model learns the
  population rather than what the rules already send to review.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from features.schema import FeatureSet
from features.vocabulary import Entity, Policy, Verdict
from training.spec import ANY, FeatureSelection, LabelSpec, SliceSpec

log = logging.getLogger(__name__)

FeatureKind = Literal["numeric", "categorical", "boolean"]

#: Columns `audit_labels` must have for training.
LABEL_COLUMNS = (
    "entity",
    "item_id",
    "policy",
    "verdict",
    "reviewed_at",
    "sampling",
    "inclusion_probability",
)
#: Feature column giving the item's category, per target entity (used for slices).
CATEGORY_FEATURE: dict[Entity, str] = {
    Entity.LISTING: "listing_category",
    Entity.VIDEO: "linked_listing_category",
    Entity.LIVE: "linked_listing_category",
}
#: Feature column giving the seller's tenure in days (used for the new-seller slice).
TENURE_FEATURE = "seller_tenure_days"


class DatasetError(ValueError):
    """Input tables or frames that cannot make a training set; says which and how to fix."""


@dataclass(frozen=True)
class EntityData:
    """Labels of one entity joined to feature rows, ready to cut into per-policy training sets.

    `features` has one row per (item_id, as_of); `labels` one row per (item_id, policy) with the
    position of its feature row in `row`; `slices` lists (row, slice) memberships.
    """

    entity: Entity
    features: pd.DataFrame
    feature_types: dict[str, FeatureKind]
    labels: pd.DataFrame
    slices: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)
    #: The features' own declaration when they are not the catalogue's (bring your own data).
    declaration: FeatureSet | None = None

    @property
    def feature_names(self) -> list[str]:
        """Model input columns, in declared order."""
        return list(self.feature_types)

    def policies(self) -> list[str]:
        """Policies with at least one label (including `any`)."""
        return sorted(self.labels["policy"].unique().tolist())


@dataclass(frozen=True)
class TrainingSet:
    """One target's labeled rows, sorted by review time: X, y, weights, metadata and slices."""

    entity: Entity
    policy: str
    X: pd.DataFrame
    y: np.ndarray
    weight: np.ndarray
    meta: pd.DataFrame
    slices: pd.DataFrame
    feature_types: dict[str, FeatureKind]
    rows: np.ndarray
    source: pd.DataFrame
    #: Untrimmed inverse-inclusion weights (mean 1): population estimates, not fitting.
    design_weight: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def population_weight(self) -> np.ndarray:
        """Untrimmed inverse-inclusion weights (the fitting weights when none were kept)."""
        return self.weight if self.design_weight is None else self.design_weight

    @property
    def n_positive(self) -> int:
        """Number of violating labels (expected number, rounded, for expected labels)."""
        return int(round(float(self.y.sum())))

    def digest(self) -> str:
        """Content hash of features, labels and weights (32 hex characters)."""
        extra = pd.DataFrame(
            {"_label": self.y, "_weight": self.weight, "_item_id": self.meta["item_id"].to_numpy()},
            index=self.X.index,
        )
        # One concat, not column inserts: X often arrives as many blocks.
        return frame_digest(pd.concat([self.X, extra], axis=1))

    def source_rows(self, positions: np.ndarray) -> pd.DataFrame:
        """Every declared feature (not only the selected ones) of the rows at `positions`."""
        rows: pd.DataFrame = self.source.iloc[self.rows[positions]]
        return rows.reset_index(drop=True)

    def logged_frame(self) -> pd.DataFrame:
        """Features plus item_id, review time, label and weight: what MLflow records."""
        return pd.concat(
            [
                self.meta[["item_id", "reviewed_at"]].reset_index(drop=True),
                self.X.reset_index(drop=True),
                pd.DataFrame({"label": self.y, "weight": self.weight}),
            ],
            axis=1,
        )


def frame_digest(df: pd.DataFrame) -> str:
    """Order-sensitive content hash of a frame (32 hex characters)."""
    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy()
    h = hashlib.sha256(hashed.tobytes())
    h.update(",".join(map(str, df.columns)).encode())
    return h.hexdigest()[:32]


def week_start(ts: pd.Series) -> pd.Series:
    """The UTC Monday 00:00 starting the week of each timestamp."""
    day = ts.dt.floor("D")
    start: pd.Series = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    return start


def feature_cutoff(ts: pd.Series, *, cadence: Literal["week", "day"] = "week") -> pd.Series:
    """The as-of instant whose features a label reviewed at `ts` gets."""
    return week_start(ts) if cadence == "week" else ts.dt.floor("D")


def prepare_labels(
    audit_labels: pd.DataFrame,
    *,
    entity: Entity,
    dedupe: Literal["majority", "latest"] = "majority",
) -> pd.DataFrame:
    """One label per (item_id, policy) for `entity`, plus one `any` label per item.

    Returns item_id, policy, y (0/1), reviewed_at, inclusion_probability, sampling, n_reviews.
    """
    missing = [c for c in LABEL_COLUMNS if c not in audit_labels.columns]
    if missing:
        raise DatasetError(
            f"table audit_labels lacks column(s) {missing}; load it through "
            "features.loader.load_tables so it matches the data contract"
        )
    rows = audit_labels.loc[audit_labels["entity"] == entity.value, list(LABEL_COLUMNS)]
    bad_verdict = ~rows["verdict"].isin([v.value for v in Verdict])
    if bad_verdict.any():
        raise DatasetError(
            f"audit_labels.verdict has {int(bad_verdict.sum())} value(s) outside "
            f"{[v.value for v in Verdict]}, e.g. {rows.loc[bad_verdict, 'verdict'].iloc[0]!r}"
        )
    bad_policy = ~rows["policy"].isin([p.value for p in Policy])
    if bad_policy.any():
        raise DatasetError(
            f"audit_labels.policy has {int(bad_policy.sum())} unknown value(s), e.g. "
            f"{rows.loc[bad_policy, 'policy'].iloc[0]!r}"
        )
    return _compute_labels(rows, dedupe=dedupe)


def _compute_labels(rows: pd.DataFrame, *, dedupe: Literal["majority", "latest"]) -> pd.DataFrame:
    columns = ["item_id", "policy", "y", "reviewed_at", "inclusion_probability", "sampling"]
    if rows.empty:
        return pd.DataFrame(
            {
                "item_id": pd.Series(dtype="str"),
                "policy": pd.Series(dtype="str"),
                "y": pd.Series(dtype="int8"),
                "reviewed_at": pd.Series(dtype="datetime64[us]"),
                "inclusion_probability": pd.Series(dtype="float64"),
                "sampling": pd.Series(dtype="str"),
                "n_reviews": pd.Series(dtype="int64"),
            }
        )
    df = rows.assign(
        y=(rows["verdict"] == Verdict.VIOLATING.value).astype("int8"),
        item_id=rows["item_id"].astype("str"),
        policy=rows["policy"].astype("str"),
        sampling=rows["sampling"].astype("str"),
    )
    # Latest review last: ties in time break on the label's own columns, deterministically.
    df = df.sort_values(["item_id", "policy", "reviewed_at", "y", "sampling"], kind="stable")
    keys = ["item_id", "policy"]
    grouped = df.groupby(keys, sort=False)
    latest = grouped.tail(1).set_index(keys)
    agg = grouped.agg(
        n_reviews=("y", "size"),
        n_violating=("y", "sum"),
        reviewed_at=("reviewed_at", "max"),
        inclusion_probability=("inclusion_probability", "max"),
    )
    if dedupe == "majority":
        n_violating = agg["n_violating"].to_numpy()
        n_other = agg["n_reviews"].to_numpy() - n_violating
        tie = n_violating == n_other
        y = np.where(tie, latest.loc[agg.index, "y"].to_numpy(), n_violating > n_other)
    else:
        y = latest.loc[agg.index, "y"].to_numpy()
    # The sampling reported is that of the review with the largest inclusion probability.
    top = df.sort_values(keys + ["inclusion_probability"], kind="stable").groupby(keys).tail(1)
    sampling = top.set_index(keys).loc[agg.index, "sampling"].to_numpy()
    per_policy = pd.DataFrame(
        {
            "item_id": agg.index.get_level_values(0).astype("str"),
            "policy": agg.index.get_level_values(1).astype("str"),
            "y": np.asarray(y, dtype="int8"),
            "reviewed_at": agg["reviewed_at"].to_numpy(),
            "inclusion_probability": agg["inclusion_probability"].to_numpy(dtype="float64"),
            "sampling": pd.array(sampling, dtype="str"),
            "n_reviews": agg["n_reviews"].to_numpy(dtype="int64"),
        }
    )
    any_rows = _compute_any(per_policy)
    out = pd.concat([per_policy, any_rows], ignore_index=True)
    out = out.sort_values(["reviewed_at", "item_id", "policy"], kind="stable", ignore_index=True)
    return out[[*columns, "n_reviews"]]


def _compute_any(per_policy: pd.DataFrame) -> pd.DataFrame:
    ordered = per_policy.sort_values(["item_id", "inclusion_probability", "policy"], kind="stable")
    grouped = ordered.groupby("item_id", sort=True)
    agg = grouped.agg(
        y=("y", "max"),
        reviewed_at=("reviewed_at", "max"),
        inclusion_probability=("inclusion_probability", "max"),
        n_reviews=("n_reviews", "sum"),
    )
    sampling = grouped.tail(1).set_index("item_id").loc[agg.index, "sampling"]
    return pd.DataFrame(
        {
            "item_id": agg.index.astype("str"),
            "policy": ANY,
            "y": agg["y"].to_numpy(dtype="int8"),
            "reviewed_at": agg["reviewed_at"].to_numpy(),
            "inclusion_probability": agg["inclusion_probability"].to_numpy(dtype="float64"),
            "sampling": pd.array(sampling.to_numpy(), dtype="str"),
            "n_reviews": agg["n_reviews"].to_numpy(dtype="int64"),
        }
    )


def assemble(
    frames: Mapping[pd.Timestamp, pd.DataFrame],
    labels: pd.DataFrame,
    *,
    entity: Entity,
    feature_types: Mapping[str, FeatureKind],
    feature_selection: FeatureSelection | None = None,
    cadence: Literal["week", "day"] = "week",
    channels: pd.DataFrame | None = None,
    new_categories: Iterable[str] = (),
    slice_spec: SliceSpec | None = None,
) -> EntityData:
    """Join prepared labels (see `prepare_labels`) to feature frames built as of each cutoff.

    `frames` maps each as-of instant to the entity's frame (`item_id` then features); every
    label's cutoff (`feature_cutoff(reviewed_at)`) must be a key. `channels` (item_id, channel)
    says which channels an item was shown or actioned in, for the channel slices.
    """
    selection = feature_selection or FeatureSelection()
    slices_cfg = slice_spec or SliceSpec()
    names = selection.select(list(feature_types))
    if not names:
        raise DatasetError(
            f"feature selection include={list(selection.include)} "
            f"exclude={list(selection.exclude)} keeps no {entity.value} feature; "
            f"declared: {list(feature_types)[:10]}..."
        )
    kinds = {n: feature_types[n] for n in names}
    missing_label_cols = [
        c
        for c in ("item_id", "policy", "y", "reviewed_at", "inclusion_probability")
        if c not in labels.columns
    ]
    if missing_label_cols:
        raise DatasetError(
            f"labels lack column(s) {missing_label_cols}; build them with prepare_labels"
        )
    cutoffs = {pd.Timestamp(k) for k in frames}
    need = feature_cutoff(labels["reviewed_at"], cadence=cadence)
    absent = sorted({pd.Timestamp(t) for t in need.unique()} - cutoffs)
    if absent:
        raise DatasetError(
            f"no {entity.value} feature frame as of {absent[0]} ({len(absent)} cutoff(s) "
            f"missing); pass a frame for every cutoff feature_cutoff(reviewed_at) gives"
        )
    for as_of, frame in frames.items():
        _check_frame(frame, entity=entity, names=names, as_of=pd.Timestamp(as_of))
    extra = [
        n
        for n in feature_types
        if n not in kinds and all(n in frame.columns for frame in frames.values())
    ]
    return _compute_assembly(
        {pd.Timestamp(k): v for k, v in frames.items()},
        labels.assign(as_of=need.to_numpy()),
        entity=entity,
        kinds=kinds,
        extra=extra,
        channels=channels,
        new_categories=frozenset(new_categories),
        slices_cfg=slices_cfg,
    )


def _check_frame(frame: pd.DataFrame, *, entity: Entity, names: list[str], as_of: object) -> None:
    where = f"{entity.value} feature frame as of {as_of}"
    if "item_id" not in frame.columns:
        raise DatasetError(f"{where} has no item_id column; build it with features.build")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DatasetError(
            f"{where} lacks selected feature(s) {missing[:5]}; rebuild features or exclude them "
            "in the spec's features.exclude"
        )
    if frame["item_id"].duplicated().any():
        dupe = frame.loc[frame["item_id"].duplicated(), "item_id"].iloc[0]
        raise DatasetError(f"{where} has item_id {dupe!r} more than once")


def _compute_assembly(
    frames: Mapping[pd.Timestamp, pd.DataFrame],
    labels: pd.DataFrame,
    *,
    entity: Entity,
    kinds: dict[str, FeatureKind],
    extra: list[str],
    channels: pd.DataFrame | None,
    new_categories: frozenset[str],
    slices_cfg: SliceSpec,
) -> EntityData:
    # Unselected declared features ride along so another model (the champion) can be scored.
    names = [*kinds, *extra]
    parts = []
    for as_of in sorted(frames):
        wanted = labels.loc[labels["as_of"] == as_of, "item_id"].unique()
        if len(wanted) == 0:
            continue
        frame = frames[as_of]
        # copy() consolidates the column blocks feature frames are built from.
        rows = frame.loc[frame["item_id"].isin(wanted), ["item_id", *names]].copy()
        parts.append(rows.assign(as_of=as_of))
    if parts:
        features = pd.concat(parts, ignore_index=True)
    else:
        features = pd.DataFrame(columns=["item_id", *names, "as_of"])
    features = features[["item_id", "as_of", *names]]
    features["item_id"] = features["item_id"].astype("str")
    features = features.sort_values(["as_of", "item_id"], kind="stable", ignore_index=True)
    index = pd.MultiIndex.from_frame(features[["item_id", "as_of"]])
    pos = index.get_indexer(pd.MultiIndex.from_frame(labels[["item_id", "as_of"]]))
    found = pos >= 0
    dropped: dict[str, int] = {}
    n_not_found = int((~found).sum())
    if n_not_found:
        dropped["item_created_after_cutoff"] = n_not_found
    usable_p = labels["inclusion_probability"].to_numpy() > 0
    n_zero = int((found & ~usable_p).sum())
    if n_zero:
        dropped["inclusion_probability_zero"] = n_zero
    keep = found & usable_p
    out_labels = labels.loc[keep].assign(row=pos[keep]).reset_index(drop=True)
    if dropped:
        log.warning("%s labels dropped: %s", entity.value, dropped)
    slices = _compute_slices(
        features,
        entity=entity,
        channels=channels,
        new_categories=new_categories,
        cfg=slices_cfg,
    )
    return EntityData(
        entity=entity,
        features=features,
        feature_types=kinds,
        labels=out_labels,
        slices=slices,
        dropped=dropped,
    )


def _compute_slices(
    features: pd.DataFrame,
    *,
    entity: Entity,
    channels: pd.DataFrame | None,
    new_categories: frozenset[str],
    cfg: SliceSpec,
) -> pd.DataFrame:
    parts: list[pd.DataFrame] = []
    rows = np.arange(len(features))
    dims = set(cfg.dimensions)
    if "channel" in dims and channels is not None and not channels.empty:
        membership = channels[["item_id", "channel"]].drop_duplicates()
        joined = features[["item_id"]].assign(row=rows).merge(membership, on="item_id")
        parts.append(pd.DataFrame({"row": joined["row"], "slice": "channel." + joined["channel"]}))
    category_col = CATEGORY_FEATURE.get(entity)
    if category_col is not None and category_col in features.columns:
        category = features[category_col].astype("str")
        present = features[category_col].notna().to_numpy()
        if "category" in dims:
            parts.append(
                pd.DataFrame({"row": rows[present], "slice": "category." + category[present]})
            )
        if "new_category" in dims and new_categories:
            is_new = present & category.isin(new_categories).to_numpy()
            parts.append(
                pd.DataFrame({"row": rows[is_new], "slice": "new_category." + category[is_new]})
            )
    if "seller" in dims and TENURE_FEATURE in features.columns:
        tenure = pd.to_numeric(features[TENURE_FEATURE], errors="coerce").to_numpy(float)
        known = ~np.isnan(tenure)
        kind = np.where(tenure < cfg.new_seller_days, "seller.new", "seller.established")
        parts.append(pd.DataFrame({"row": rows[known], "slice": kind[known]}))
    if not parts:
        return pd.DataFrame({"row": pd.Series(dtype="int64"), "slice": pd.Series(dtype="str")})
    out = pd.concat(parts, ignore_index=True)
    out["slice"] = out["slice"].astype("str")
    return out.sort_values(["row", "slice"], kind="stable", ignore_index=True)


def training_set(
    data: EntityData,
    policy: str,
    *,
    weighting: Literal["inverse_inclusion", "none"] = "inverse_inclusion",
    max_weight: float | None = None,
) -> TrainingSet:
    """The rows, labels and weights of one target (`policy` or `any`), sorted by review time."""
    if policy not in {p.value for p in Policy} | {ANY}:
        raise DatasetError(f"unknown policy {policy!r}; use a Policy value or {ANY!r}")
    labels = data.labels.loc[data.labels["policy"] == policy]
    labels = labels.sort_values(["reviewed_at", "item_id"], kind="stable", ignore_index=True)
    rows = labels["row"].to_numpy()
    X = data.features.iloc[rows][data.feature_names].reset_index(drop=True)
    if weighting == "inverse_inclusion":
        raw = 1.0 / labels["inclusion_probability"].to_numpy(dtype="float64")
    else:
        raw = np.ones(len(labels))
    weight = _normalised(raw, max_weight=max_weight)
    design_weight = _normalised(raw, max_weight=None)
    member = data.slices.loc[data.slices["row"].isin(rows)]
    slices = member.merge(pd.DataFrame({"row": rows, "position": np.arange(len(rows))}), on="row")[
        ["position", "slice"]
    ]
    meta = labels[
        ["item_id", "as_of", "reviewed_at", "inclusion_probability", "sampling", "n_reviews"]
    ].reset_index(drop=True)
    return TrainingSet(
        entity=data.entity,
        policy=policy,
        X=X,
        y=labels["y"].to_numpy(dtype="int8"),
        weight=weight,
        meta=meta,
        slices=slices.sort_values(["position", "slice"], ignore_index=True),
        feature_types=dict(data.feature_types),
        rows=rows,
        source=data.features,
        design_weight=design_weight,
    )


def judged_policies(data: EntityData) -> list[str]:
    """Policies the entity's items were judged on (any label), in vocabulary order."""
    seen = set(data.labels["policy"]) - {ANY}
    return [p.value for p in Policy if p.value in seen]


def partially_judged(ts: TrainingSet, data: EntityData) -> np.ndarray:
    """For an any-violation set: rows found clean on some, but not all, judged policies."""
    if ts.policy != ANY:
        raise DatasetError(f"partially_judged needs the {ANY!r} target, got {ts.policy!r}")
    policies = judged_policies(data)
    per_item = data.labels.loc[data.labels["policy"] != ANY].groupby("item_id")["policy"].nunique()
    n_judged = per_item.reindex(ts.meta["item_id"]).fillna(0).to_numpy()
    result: np.ndarray = (np.asarray(ts.y) == 0) & (n_judged < len(policies))
    return result


def expected_any_labels(
    ts: TrainingSet, data: EntityData, p_violation: Mapping[str, np.ndarray]
) -> TrainingSet:
    """The any-violation set with expected labels for partially judged items.

    An item found clean on the policies it was judged on may still violate one it was not
    judged on: its label becomes 1 - prod(1 - p_k) over its unjudged policies k, with
    `p_violation[k]` the calibrated probability (one per row of `ts`) from policy k's model.
    Items found violating keep 1; items judged on every policy keep 0.
    """
    if ts.policy != ANY:
        raise DatasetError(f"expected labels apply to the {ANY!r} target, got {ts.policy!r}")
    policies = judged_policies(data)
    missing = [p for p in policies if p not in p_violation]
    if missing:
        raise DatasetError(f"no violation probabilities for judged policies {missing}")
    for p in policies:
        if p_violation[p].shape != (len(ts),):
            raise DatasetError(f"p_violation[{p!r}] must have one value per row ({len(ts)})")
    per = data.labels.loc[data.labels["policy"] != ANY, ["item_id", "policy"]]
    judged = set(zip(per["item_id"], per["policy"], strict=True))
    items = ts.meta["item_id"].to_numpy()
    clean_elsewhere = np.ones(len(ts))
    for p in policies:
        unjudged = np.array([(i, p) not in judged for i in items], dtype=bool)
        clean_elsewhere *= np.where(unjudged, 1.0 - np.clip(p_violation[p], 0.0, 1.0), 1.0)
    y = np.where(np.asarray(ts.y) >= 1, 1.0, 1.0 - clean_elsewhere)
    return replace(ts, y=y.astype(np.float64))


def _normalised(raw: np.ndarray, *, max_weight: float | None) -> np.ndarray:
    if len(raw) == 0:
        return raw.astype("float64")
    weight = raw / raw.mean()
    if max_weight is not None:
        # Trim, renormalise, repeat: converges to weights with mean 1 and max <= max_weight.
        for _ in range(100):
            if weight.max() <= max_weight * (1 + 1e-9):
                break
            weight = np.minimum(weight, max_weight)
            weight = weight / weight.mean()
    out: np.ndarray = weight.astype("float64")
    return out


def channel_membership(tables: Mapping[str, pd.DataFrame], *, entity: Entity) -> pd.DataFrame:
    """(item_id, channel) pairs where an item was shown (impressions > 0) or actioned."""
    parts = []
    exposure = tables.get("channel_exposure")
    if exposure is not None:
        shown = exposure.loc[
            (exposure["entity"] == entity.value) & (exposure["impressions"] > 0),
            ["item_id", "channel"],
        ]
        parts.append(shown)
    decisions = tables.get("strategy_decisions")
    if decisions is not None:
        parts.append(decisions.loc[decisions["entity"] == entity.value, ["item_id", "channel"]])
    if not parts:
        return pd.DataFrame({"item_id": pd.Series(dtype="str"), "channel": pd.Series(dtype="str")})
    out = pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)
    return out.astype({"item_id": "str", "channel": "str"})


def detect_new_categories(listings: pd.DataFrame, *, after_days: float) -> list[str]:
    """Categories whose first listing appears more than `after_days` after the first listing."""
    if listings.empty:
        return []
    start = listings["created_at"].min()
    first = listings.groupby("category")["created_at"].min()
    late = first[first > start + pd.Timedelta(days=after_days)]
    return sorted(late.index.astype("str").tolist())


def load_entity_data(
    tables: Mapping[str, pd.DataFrame],
    *,
    entities: Sequence[Entity],
    labels: LabelSpec | None = None,
    feature_selection: FeatureSelection | None = None,
    slice_spec: SliceSpec | None = None,
    on_build: Callable[[int, int, pd.Timestamp], None] | None = None,
) -> dict[Entity, EntityData]:
    """Assemble every entity's labeled rows from contract tables, one feature build per cutoff.

    `on_build(done, total, as_of)` reports progress after each feature build.
    """
    for name in ("audit_labels", "listings"):
        if name not in tables:
            raise DatasetError(f"table {name} is missing; load every contract table")
    label_cfg = labels or LabelSpec()
    slices_cfg = slice_spec or SliceSpec()
    try:
        from features.build import build_frames
        from features.catalog import feature_types
    except ImportError as exc:  # pragma: no cover - depends on the features package
        raise DatasetError(
            "features.build / features.catalog are not available; "
            f"the features package must be installed ({exc})"
        ) from exc
    prepared = {
        e: prepare_labels(tables["audit_labels"], entity=e, dedupe=label_cfg.dedupe)
        for e in entities
    }
    for e, df in prepared.items():
        if df.empty:
            raise DatasetError(
                f"table audit_labels has no {e.value} labels; drop the {e.value} target from "
                "the spec or add reviews"
            )
    cutoffs: dict[pd.Timestamp, set[Entity]] = {}
    for e, df in prepared.items():
        for t in feature_cutoff(df["reviewed_at"], cadence=label_cfg.feature_cutoff).unique():
            cutoffs.setdefault(pd.Timestamp(t), set()).add(e)
    frames: dict[Entity, dict[pd.Timestamp, pd.DataFrame]] = {e: {} for e in entities}
    order = sorted(cutoffs)
    for i, as_of in enumerate(order, start=1):
        wanted = sorted(cutoffs[as_of], key=lambda e: list(Entity).index(e))
        built = build_frames(tables, as_of=as_of.to_pydatetime(), entities=tuple(wanted))
        for e in wanted:
            needed = prepared[e].loc[
                feature_cutoff(prepared[e]["reviewed_at"], cadence=label_cfg.feature_cutoff)
                == as_of,
                "item_id",
            ]
            frame = built[e]
            frames[e][as_of] = frame.loc[frame["item_id"].isin(needed)].reset_index(drop=True)
        if on_build is not None:
            on_build(i, len(order), as_of)
    if slices_cfg.new_categories is not None:
        new_categories = list(slices_cfg.new_categories)
    else:
        new_categories = detect_new_categories(
            tables["listings"], after_days=slices_cfg.new_category_after_days
        )
    out = {}
    for e in entities:
        out[e] = assemble(
            frames[e],
            prepared[e],
            entity=e,
            feature_types=feature_types(e),
            feature_selection=feature_selection,
            cadence=label_cfg.feature_cutoff,
            channels=channel_membership(tables, entity=e),
            new_categories=new_categories,
            slice_spec=slices_cfg,
        )
    return out
