"""Configuration of one simulated marketplace run: size, period, seed, enforcement and audit."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Incident(BaseModel):
    """A planted incident with a known start, for measuring monitoring against the truth.

    `complaint_surge` multiplies the complaint probability of orders in `channel` (and
    `category`, if given) by `factor` from `start_day`; `return_surge` does the same for
    returns; `strategy_outage` makes `strategy_id` stop matching from `start_day` (a broken
    deployment); `strategy_overmatch` makes it also match a `share` of the honest items it
    evaluates (those not violating its policy) from `start_day` (a broken clause).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["complaint_surge", "return_surge", "strategy_outage", "strategy_overmatch"]
    start_day: int = Field(ge=1)
    channel: str | None = None
    category: str | None = None
    strategy_id: str | None = None
    factor: float = Field(4.0, gt=0)
    share: float = Field(0.05, gt=0, le=1)


class SimulationConfig(BaseModel):
    """Everything that determines a simulated marketplace; same config and seed, same output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_listings: int = Field(20_000, ge=200, description="Listings published over the period.")
    days: int = Field(56, ge=7, le=366, description="Length of the simulated period in days.")
    seed: int = Field(1, ge=0, description="Seed of every random stream.")
    start_date: date = Field(date(2026, 1, 5), description="First simulated day (UTC).")

    listings_per_seller: float = Field(12.0, gt=1, description="Mean listings per seller.")
    listings_per_creator: float = Field(40.0, gt=1, description="Listings per affiliate creator.")
    videos_per_listing: float = Field(0.25, ge=0, le=3, description="Shoppable videos per listing.")
    lives_per_listing: float = Field(0.04, ge=0, le=1, description="Live sessions per listing.")
    traffic_scale: float = Field(
        1.0, gt=0, le=20, description="Multiplier on every item's expected daily impressions."
    )
    new_category_launch_fraction: float = Field(
        0.5, gt=0, lt=1, description="When the new category launches, as a fraction of the period."
    )
    emerging_pattern_fraction: float = Field(
        2 / 3, gt=0, lt=1, description="When the late fraud wording appears (fraction of period)."
    )

    full_evaluation_every_days: int = Field(
        1,
        ge=1,
        description=(
            "Every this many days the nightly run evaluates every item; on other nights only "
            "items younger than fresh_item_days (and every seller)."
        ),
    )
    fresh_item_days: int = Field(7, ge=1, description="Items this young are evaluated every night.")
    appeal_rate_honest: float = Field(0.45, ge=0, le=1, description="Appeal rate, wrongly blocked.")
    appeal_rate_violating: float = Field(0.06, ge=0, le=1, description="Appeal rate, rightly hit.")

    label_budget: int = Field(2_000, ge=0, description="Audit labels (random + strategy-flagged).")
    random_audit_share: float = Field(
        0.25, ge=0, le=1, description="Share of the label budget spent on the random audit."
    )
    min_labels_per_strategy: int = Field(
        20, ge=0, description="Floor of strategy-flagged labels per strategy stratum."
    )
    reviewer_noise_low: float = Field(0.03, ge=0, lt=0.5, description="Least noisy reviewer.")
    reviewer_noise_high: float = Field(0.05, ge=0, lt=0.5, description="Noisiest reviewer.")
    n_reviewers: int = Field(12, ge=1, description="Moderators sharing the audit work.")
    incidents: tuple[Incident, ...] = Field(
        (), description="Planted incidents (none by default); see `Incident`."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.reviewer_noise_high < self.reviewer_noise_low:
            raise ValueError(
                "reviewer_noise_high must be >= reviewer_noise_low "
                f"(got {self.reviewer_noise_high} < {self.reviewer_noise_low})"
            )
        if self.new_category_launch_fraction * self.days < 2:
            raise ValueError("the new category must launch after day 2; raise days")
        return self

    @property
    def start(self) -> datetime:
        """Midnight UTC of the first simulated day (naive)."""
        return datetime(self.start_date.year, self.start_date.month, self.start_date.day)

    @property
    def end(self) -> datetime:
        """Midnight UTC after the last simulated day (exclusive)."""
        return self.start + timedelta(days=self.days)

    @property
    def new_category_launch_day(self) -> int:
        """Day index (0-based) on which the new category opens."""
        return int(round(self.new_category_launch_fraction * self.days))

    @property
    def emerging_pattern_day(self) -> int:
        """Day index (0-based) from which the late fraud wording appears."""
        return int(round(self.emerging_pattern_fraction * self.days))
