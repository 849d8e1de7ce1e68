"""Two versions of a strategy side by side, for the PM deciding whether to promote one.

What each version acts on is measured exactly on the latest feature frame (`govrisk features
build` output): items hit per channel, the impressions and GMV of those items, and overlap with
the other active strategies. Errors come from the audit: a version the audit measured shows its
precision, recall, FP and FN with intervals; a version written from a suggestion shows its base
version's figures plus the suggestion's projected change and interval. Nothing is invented for
a version the audit never saw: the row says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.vocabulary import Channel, StrategyStatus
from governance.evaluator import EvaluationError, FrameEvaluator
from governance.review.orm import Suggestion
from governance.strategy import Strategy, render_condition

#: Per-channel 7-day impressions column of an entity frame (listing frames carry one per channel).
_IMPRESSIONS = "exposure_impressions_7d_{channel}"
_GMV = "exposure_gmv_30d"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% interval (either end may be unknown)."""

    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ChannelRow:
    """What each version acts on in one channel of the frame."""

    channel: str
    items: tuple[int, int]
    impressions_7d: tuple[float | None, float | None]
    gmv_30d: tuple[float, float]


@dataclass(frozen=True)
class ErrorRow:
    """One error measure for both versions, with where each figure comes from."""

    measure: str
    kind: str  # "share" or "count": how to print it
    values: tuple[Interval | None, Interval | None]


@dataclass(frozen=True)
class OverlapRow:
    """Share of each version's hit items that another active strategy also hits."""

    strategy: str
    shares: tuple[float, float]


@dataclass
class Comparison:
    """Versions A and B of one strategy, side by side."""

    a: Strategy
    b: Strategy
    conditions: tuple[str, str]
    frame_rows: int = 0
    channels: list[ChannelRow] = field(default_factory=list)
    hit_items: tuple[int, int] = (0, 0)
    both: int = 0
    errors: list[ErrorRow] = field(default_factory=list)
    error_sources: tuple[str, str] = ("", "")
    overlap: list[OverlapRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def default_pair(versions: Sequence[Strategy]) -> tuple[Strategy, Strategy]:
    """What to compare by default: the active version (else the oldest) against the newest
    other version (a shadow waiting for promotion, usually)."""
    active = [v for v in versions if v.status == StrategyStatus.ACTIVE]
    a = active[0] if active else versions[0]
    rest = [v for v in versions if v.version != a.version]
    return a, (rest[-1] if rest else a)


def read_frame(features_dir: Path | None, entity: str) -> pd.DataFrame | None:
    """The latest feature frame of `entity` (`<features_dir>/<entity>.parquet`), if present."""
    if features_dir is None:
        return None
    path = Path(features_dir) / f"{entity}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def compare_versions(
    a: Strategy,
    b: Strategy,
    *,
    frame: pd.DataFrame | None,
    metrics: pd.DataFrame | None,
    suggestion: Suggestion | None = None,
    others: Sequence[Strategy] = (),
) -> Comparison:
    """Versions `a` and `b` of one strategy side by side (see the module docstring)."""
    if a.id != b.id:
        raise ValueError(f"compare two versions of one strategy, not {a.ref} and {b.ref}")
    out = Comparison(a, b, (render_condition(a.condition), render_condition(b.condition)))
    if frame is None:
        out.notes.append(
            "No feature frame: start the service with --features-dir (the output of "
            "`govrisk features build`) to see what each version acts on."
        )
    else:
        _compute_reach(out, frame, others)
    _compute_errors(out, metrics, suggestion)
    return out


def _compute_reach(out: Comparison, frame: pd.DataFrame, others: Sequence[Strategy]) -> None:
    evaluator = FrameEvaluator(frame)
    masks = []
    for version in (out.a, out.b):
        try:
            masks.append(np.asarray(evaluator.mask(version.condition), dtype=bool))
        except EvaluationError as err:
            out.notes.append(f"{version.ref} cannot be evaluated on the frame: {err}")
            return
    mask_a, mask_b = masks
    out.frame_rows = len(frame)
    out.hit_items = (int(mask_a.sum()), int(mask_b.sum()))
    out.both = int((mask_a & mask_b).sum())
    gmv = frame[_GMV].to_numpy(dtype=float) if _GMV in frame else np.zeros(len(frame))
    for channel in Channel:
        acts = [channel in v.channels for v in (out.a, out.b)]
        if not any(acts):
            continue
        column = _IMPRESSIONS.format(channel=channel.value)
        shown = frame[column].to_numpy(dtype=float) if column in frame else None
        hit = [m if act else np.zeros_like(m) for m, act in zip(masks, acts, strict=True)]
        out.channels.append(
            ChannelRow(
                channel=channel.value,
                items=(int(hit[0].sum()), int(hit[1].sum())),
                impressions_7d=(
                    (float(np.nansum(shown[hit[0]])), float(np.nansum(shown[hit[1]])))
                    if shown is not None
                    else (None, None)
                ),
                gmv_30d=(float(np.nansum(gmv[hit[0]])), float(np.nansum(gmv[hit[1]]))),
            )
        )
    for other in others:
        if other.id == out.a.id or other.entity != out.a.entity:
            continue
        try:
            theirs = np.asarray(evaluator.mask(other.condition), dtype=bool)
        except EvaluationError:
            continue
        shares = tuple(
            float((m & theirs).sum() / m.sum()) if m.sum() else 0.0 for m in (mask_a, mask_b)
        )
        if any(shares):
            out.overlap.append(OverlapRow(other.ref, (shares[0], shares[1])))
    out.overlap.sort(key=lambda row: -max(row.shares))


_MEASURES = (
    ("Precision", "share", "precision"),
    ("Recall", "share", "recall"),
    ("False positives (honest items actioned)", "count", "fp"),
    ("False negatives (violating items missed)", "count", "fn"),
)


def _compute_errors(
    out: Comparison, metrics: pd.DataFrame | None, suggestion: Suggestion | None
) -> None:
    rows = [_audited(metrics, v.ref) for v in (out.a, out.b)]
    sources = ["audit" if r is not None else "" for r in rows]
    projected_b = None
    if (
        rows[0] is not None
        and rows[1] is None
        and suggestion is not None
        and suggestion.base_version == out.a.version
    ):
        projected_b = suggestion
        sources[1] = f"{out.a.ref} audit + suggestion {suggestion.suggestion_id} projection"
    for label, kind, name in _MEASURES:
        values = [_interval(r, name) for r in rows]
        if projected_b is not None and name in ("fp", "fn") and values[0] is not None:
            values[1] = _shifted(values[0], projected_b, name)
        out.errors.append(ErrorRow(label, kind, (values[0], values[1])))
    out.error_sources = (sources[0], sources[1])
    for version, source in zip((out.a, out.b), sources, strict=True):
        if not source:
            out.notes.append(
                f"The audit has not measured {version.ref}; its errors appear after the next "
                "`govrisk audit` (shadow versions are audited beside the active one)."
            )


def _audited(metrics: pd.DataFrame | None, ref: str) -> pd.Series | None:
    if metrics is None:
        return None
    match = metrics[(metrics["strategy"] == ref) & (metrics["channel"] == "all")]
    return match.iloc[0] if len(match) else None


def _interval(row: pd.Series | None, name: str) -> Interval | None:
    if row is None or not np.isfinite(row[name]):
        return None
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    return Interval(
        float(row[name]),
        float(low) if np.isfinite(low) else None,
        float(high) if np.isfinite(high) else None,
    )


def _shifted(base: Interval, suggestion: Suggestion, name: str) -> Interval:
    """Base version's count plus the projected change; the ends add the two intervals' ends
    (wider than either alone: both uncertainties count)."""
    delta = float(getattr(suggestion, f"delta_{name}"))
    low = float(getattr(suggestion, f"delta_{name}_low"))
    high = float(getattr(suggestion, f"delta_{name}_high"))
    base_low = base.value if base.low is None else base.low
    return Interval(
        max(base.value + delta, 0.0),
        max(base_low + low, 0.0),
        None if base.high is None else base.high + high,
    )
