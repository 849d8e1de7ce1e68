"""Closed vocabularies of strategy experiments: units, arms, statuses, metrics, decisions."""

from __future__ import annotations

from enum import StrEnum


class RandomisationUnit(StrEnum):
    """What is assigned to an arm as a whole.

    `seller` is the default: a demoted item's traffic flows to its neighbours (most of all to
    the same shop's other items), and a seller whose items straddle arms contaminates both, so
    item-level tests are biased under marketplace interference (docs/experiments.md).
    """

    ITEM = "item"
    SELLER = "seller"
    CATEGORY = "category"


class Arm(StrEnum):
    """Where a unit is: in the experiment's control or treatment arm, or outside it."""

    CONTROL = "control"
    TREATMENT = "treatment"
    OUTSIDE = "outside"


class ExperimentStatus(StrEnum):
    """Life of an experiment in the review database."""

    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"
    SHIPPED = "shipped"


class MetricKind(StrEnum):
    """How a metric aggregates over units: a per-unit mean or a ratio of two sums."""

    MEAN = "mean"
    RATIO = "ratio"


class Direction(StrEnum):
    """Which way of a metric's change is good."""

    INCREASE = "increase"
    DECREASE = "decrease"


class Recommendation(StrEnum):
    """What the ship rule recommends today."""

    SHIP = "ship"
    KEEP_RUNNING = "keep_running"
    STOP = "stop"
