"""Per-channel trust objectives, declared in YAML, and the multi-window burn-rate rules.

The same file holds the PM's watch list: categories declared as launching or under watch
(a supplier recall, a seasonal launch), on which the sequential category test alerts at a
lower threshold (`WatchedCategory`).

An objective says a trust metric stays at or below a target over a window (28 days by
default). Its error budget is what the target allows: for complaints per 1,000 orders,
`target / 1000 * orders` complaints. The burn rate over a window is the bad events seen divided
by the budget of that window (1 = spending exactly the budget). Alerts follow the multi-window,
multi-burn-rate scheme of the Google SRE Workbook (chapter 5, table 5-8): a rule fires when
the burn rate exceeds its threshold over a long window and over a short one (still burning).
Our finest window is a day, so the workbook's hours become days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.vocabulary import Channel, values
from governance.monitoring.vocabulary import ALL, Severity, TrustMetric


class Objective(BaseModel):
    """One channel's trust objective."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str
    metric: TrustMetric
    target: float = Field(gt=0)
    owner: str = Field(min_length=1)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, v: str) -> str:
        allowed = [ALL, *values(Channel)]
        if v not in allowed:
            raise ValueError(f"channel {v!r} is not one of {allowed}")
        return v


class WatchedCategory(BaseModel):
    """A category a PM watches: its complaints and returns alert at the watch threshold from
    `since` to `until` (either open)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str = Field(min_length=1)
    reason: str = ""
    owner: str | None = None
    since: date | None = None
    until: date | None = None

    def active(self, day: date) -> bool:
        """Whether the watch covers `day`."""
        return (self.since is None or self.since <= day) and (
            self.until is None or day <= self.until
        )


class ObjectiveSet(BaseModel):
    """Every objective, the window their budgets cover and the watched categories."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(28, ge=7, le=366)
    objectives: tuple[Objective, ...]
    watch: tuple[WatchedCategory, ...] = ()

    def expanded(self) -> list[Objective]:
        """Objectives per concrete channel (and `all`): a channel's own beats the `all` one."""
        own = {(o.channel, o.metric): o for o in self.objectives}
        out: list[Objective] = []
        for channel in (ALL, *values(Channel)):
            for metric in TrustMetric:
                o = own.get((channel, metric)) or own.get((ALL, metric))
                if o is not None:
                    out.append(o.model_copy(update={"channel": channel}))
        return out


@dataclass(frozen=True)
class BurnRule:
    """Fire at `severity` when the burn rate exceeds `burn` over both windows."""

    severity: Severity
    long_days: int
    short_days: int
    burn: float


def default_rules(window_days: int) -> tuple[BurnRule, ...]:
    """The workbook's three tiers scaled to days: budget share `f` spent within `long_days`
    gives the threshold `f * window_days / long_days`."""
    return (
        BurnRule(Severity.CRITICAL, long_days=2, short_days=1, burn=0.2 * window_days / 2),
        BurnRule(Severity.HIGH, long_days=5, short_days=1, burn=0.3 * window_days / 5),
        BurnRule(Severity.MEDIUM, long_days=10, short_days=3, burn=0.5 * window_days / 10),
    )


#: Numerator, denominator and scale of each metric in the daily base counts.
METRIC_PARTS: dict[TrustMetric, tuple[str, str, float]] = {
    TrustMetric.COMPLAINTS_PER_1K_ORDERS: ("complaints", "orders", 1000.0),
    TrustMetric.RETURNS_PER_1K_ORDERS: ("returns", "orders", 1000.0),
    TrustMetric.REFUND_PER_GMV: ("refund_usd", "gmv", 1.0),
    TrustMetric.LOW_STAR_SHARE: ("low_stars", "reviews", 1.0),
}
#: The outcome kind whose delays set each metric's completeness.
METRIC_KIND: dict[TrustMetric, str] = {
    TrustMetric.COMPLAINTS_PER_1K_ORDERS: "complaint",
    TrustMetric.RETURNS_PER_1K_ORDERS: "return",
    TrustMetric.REFUND_PER_GMV: "refund",
    TrustMetric.LOW_STAR_SHARE: "review",
}


def default_objectives_path() -> Path:
    """The objectives shipped with govrisk."""
    return Path(__file__).with_name("objectives.yaml")


def load_objectives(path: Path | None = None) -> ObjectiveSet:
    """Read and check an objectives YAML; errors name the file and the field."""
    path = path or default_objectives_path()
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"objectives file {path}: {err}") from err
    try:
        return ObjectiveSet.model_validate(raw)
    except ValidationError as err:
        raise ValueError(f"objectives file {path}: {err}") from err
