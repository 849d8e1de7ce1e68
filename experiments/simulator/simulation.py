"""`simulate(config)`: one simulated marketplace, its contract tables and its hidden truth."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from experiments.simulator import ground_truth
from experiments.simulator.arms import experiment_arms
from experiments.simulator.config import SimulationConfig
from experiments.simulator.dynamics import BuildFramesFn, EvaluateFn, History, Marketplace, RunLog
from experiments.simulator.labels import reviewer_noise, sample_labels
from experiments.simulator.policies import POLICY_INDEX
from experiments.simulator.strategy_set import active, starter_strategies
from experiments.simulator.streams import Streams
from experiments.simulator.world import World, generate_world
from features.vocabulary import Policy

if TYPE_CHECKING:
    from governance.experiments.declaration import Experiment
    from governance.strategy import Strategy

#: Called as progress(stage, done, total) while the simulation runs.
ProgressFn = Callable[[str, int, int], None]


@dataclass
class GroundTruth:
    """What only evaluation code may read."""

    items: pd.DataFrame
    sellers: pd.DataFrame
    labels: pd.DataFrame
    defects: dict[str, Any]
    reviewer_noise: np.ndarray


@dataclass
class SimulationResult:
    """Contract tables, the strategy set that ran, the ground truth and run statistics."""

    config: SimulationConfig
    tables: dict[str, pd.DataFrame]
    strategies: list[Strategy]
    ground_truth: GroundTruth
    runs: list[RunLog]
    seconds: dict[str, float] = field(default_factory=dict)
    world: World | None = None
    history: History | None = None


def _default_build_frames() -> BuildFramesFn:
    try:
        from features.build import build_frames
    except ImportError as err:  # pragma: no cover - only while features.build is missing
        raise ImportError(
            "features.build.build_frames is needed to enforce strategies in the simulator; "
            "pass build_frames_fn= or strategies=[] to simulate without enforcement"
        ) from err
    return build_frames  # type: ignore[return-value]


def _default_evaluate() -> EvaluateFn:
    from governance.evaluator import strategy_masks

    def evaluate(strategies: Sequence[Any], frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return strategy_masks(strategies, frame)

    return evaluate


def simulate(
    config: SimulationConfig,
    *,
    strategies: Sequence[Strategy] | None = None,
    build_frames_fn: BuildFramesFn | None = None,
    evaluate_fn: EvaluateFn | None = None,
    progress: ProgressFn | None = None,
    keep_world: bool = False,
    experiment: Experiment | None = None,
) -> SimulationResult:
    """Simulate a marketplace: world, daily enforcement and traffic, audit labels, truth.

    `strategies` defaults to the starter set; only `active` versions act, all are returned
    (and written). The world, its truth and the random audit depend only on the config, so
    re-running with another strategy set changes only decisions, traffic, outcomes and the
    strategy-flagged and appeal labels.

    With `experiment`, its treatment version (a draft or shadow version in `strategies`) acts
    on the treatment arm during the experiment and its control version everywhere else
    (experiments/simulator/arms.py).
    """
    strategies = list(starter_strategies() if strategies is None else strategies)
    acting = active(strategies)
    if experiment is not None:
        acting = _with_treatment(acting, strategies, experiment)
    if acting:
        build_frames_fn = build_frames_fn or _default_build_frames()
        evaluate_fn = evaluate_fn or _default_evaluate()
    return _compute_simulation(
        config,
        strategies,
        acting,
        build_frames_fn=build_frames_fn,
        evaluate_fn=evaluate_fn,
        progress=progress,
        keep_world=keep_world,
        experiment=experiment,
    )


def _with_treatment(
    acting: list[Strategy], strategies: list[Strategy], experiment: Experiment
) -> list[Strategy]:
    refs = {s.ref: s for s in strategies}
    if experiment.control not in {s.ref for s in acting}:
        raise ValueError(
            f"experiment {experiment.id}: control {experiment.control} is not an active version "
            "of the strategy set"
        )
    treatment = refs.get(experiment.treatment)
    if treatment is None:
        raise ValueError(
            f"experiment {experiment.id}: treatment {experiment.treatment} is not in the strategy "
            "set; add it as a shadow version"
        )
    return [*acting, treatment] if treatment not in acting else acting


def _compute_simulation(
    config: SimulationConfig,
    strategies: list[Strategy],
    acting: list[Strategy],
    *,
    build_frames_fn: BuildFramesFn | None,
    evaluate_fn: EvaluateFn | None,
    progress: ProgressFn | None,
    keep_world: bool,
    experiment: Experiment | None = None,
) -> SimulationResult:
    seconds: dict[str, float] = {}
    streams = Streams.from_seed(config.seed)
    tick = time.perf_counter()
    if progress:
        progress("world", 0, 1)
    world = generate_world(config, streams.world)
    seconds["world"] = time.perf_counter() - tick
    if progress:
        progress("world", 1, 1)

    noise = reviewer_noise(
        config.n_reviewers, config.reviewer_noise_low, config.reviewer_noise_high, streams.labels
    )
    market = Marketplace(
        world,
        acting,
        streams=streams,
        reviewer_noise=noise,
        build_frames_fn=build_frames_fn,
        evaluate_fn=evaluate_fn,
        progress=(lambda d, n: progress("days", d, n)) if progress else None,
        arms=experiment_arms(world, experiment) if experiment is not None else None,
    )
    tick = time.perf_counter()
    history = market.run()
    seconds["days"] = time.perf_counter() - tick
    seconds["frames"] = sum(r.seconds_frames for r in history.runs)
    seconds["evaluate"] = sum(r.seconds_evaluate for r in history.runs)

    tick = time.perf_counter()
    policies = np.asarray([POLICY_INDEX[Policy(s.policy)] for s in acting], dtype=np.int64)
    labels = sample_labels(
        world,
        history.decisions,
        history.appeals,
        strategy_policies=policies,
        strategy_refs=[s.ref for s in acting],
        noise=noise,
        seq=streams.labels,
    )
    tables = market.tables_at(market.end_us)
    tables["audit_labels"] = labels.table
    tables = {name: tables[name] for name in _TABLE_ORDER}
    seconds["labels_and_tables"] = time.perf_counter() - tick

    truth = GroundTruth(
        items=ground_truth.items_frame(world),
        sellers=ground_truth.sellers_frame(world),
        labels=labels.truth,
        defects=ground_truth.defects(world),
        reviewer_noise=noise,
    )
    return SimulationResult(
        config=config,
        tables=tables,
        strategies=strategies,
        ground_truth=truth,
        runs=history.runs,
        seconds=seconds,
        world=world if keep_world else None,
        history=history if keep_world else None,
    )


_TABLE_ORDER = (
    "sellers",
    "creators",
    "listings",
    "videos",
    "live_sessions",
    "channel_exposure",
    "strategy_decisions",
    "audit_labels",
    "outcomes",
)
