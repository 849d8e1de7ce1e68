"""The audit's populations and estimates over a partitioned marketplace, on Dask.

The partitions are the seller-closed ones of `features.partitioned`; each holds its own
exposure, decisions and labels. What the audit needs from every unit (its model probability,
exposure per channel, what each strategy did to it) is computed where the partition lives, one
Dask task per partition, by the single audit's own functions (`population_units`,
`entity_exposure`); the one quantity that spans partitions, each channel's daily rate of
un-actioned exposure (the counterfactual behind lost exposure), is summed from per-partition
sums first. The client then joins the units, turns the labels into design draws, calibrates and
estimates exactly as `run_audit` does (`assemble_population`, `strategy_metrics`,
`likely_errors`), so the metrics equal a single audit's on the same data.

Slices and suggestions (searches over every feature of every unit and its weekly history) are
not part of the partitioned audit yet; run `govrisk audit` on a partition or a sample for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.loader import load_tables
from features.vocabulary import Entity, Policy
from governance.audit.pipeline import (
    audited_strategies,
    estimated_metrics,
    flip_rate_for,
    likely_errors,
)
from governance.audit.population import (
    Calibration,
    Population,
    PopulationUnits,
    assemble_population,
    entity_exposure,
    exposure_baseline,
    join_units,
    population_units,
)
from governance.audit.settings import AuditSettings, get_settings
from governance.strategy import Strategy

#: Where a partition's scores are found: `<scores root>/<partition>/` (a `govrisk score` output).
ScoreRoots = Mapping[tuple[Entity, Policy], Path]
_TABLES = ("channel_exposure", "strategy_decisions")


@dataclass(frozen=True)
class PartitionedAuditResult:
    """Metrics and flags of a partitioned audit, with the populations and timings behind them."""

    metrics: pd.DataFrame
    flags: pd.DataFrame
    populations: dict[tuple[Entity, Policy], Population]
    settings: AuditSettings
    seconds: dict[str, float] = field(default_factory=dict)
    worker_peak_bytes: dict[str, int] = field(default_factory=dict)


def _groups(strategies: Sequence[Strategy]) -> dict[tuple[Entity, Policy], list[Strategy]]:
    out: dict[tuple[Entity, Policy], list[Strategy]] = {}
    for s in strategies:
        out.setdefault((s.entity, s.policy), []).append(s)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], kv[0][1])))


def _period_end(tables: Mapping[str, pd.DataFrame]) -> pd.Timestamp | None:
    ends = []
    if len(tables["channel_exposure"]):
        ends.append(pd.Timestamp(tables["channel_exposure"]["day"].max()) + pd.Timedelta(days=1))
    decided = tables["strategy_decisions"]["decided_at"]
    if len(decided):
        ends.append(pd.Timestamp(decided.max()).normalize() + pd.Timedelta(days=1))
    return max(ends) if ends else None


def partition_summary(part: Path, entities: Sequence[Entity]) -> dict[str, Any]:
    """A Dask task: the partition's period end, strategies that decided, and baseline sums."""
    tables = load_tables(part, _TABLES)
    end = _period_end(tables) or pd.Timestamp("1970-01-01")
    decided = tables["strategy_decisions"][["strategy_id", "strategy_version"]]
    return {
        "period_end": end,
        "decided": decided.drop_duplicates(),
        "baseline": {
            e: exposure_baseline(e, tables["channel_exposure"], tables["strategy_decisions"], end)
            for e in entities
        },
    }


def _scores(root: Path, part: str, entity: Entity, policy: Policy) -> pd.DataFrame:
    folder = root / part
    if not folder.is_dir():
        raise FileNotFoundError(f"no scores for partition {part} at {folder}; score it first")
    df = pd.read_parquet(folder, columns=["item_id", "probability"])
    return pd.DataFrame(
        {
            "entity": entity.value,
            "item_id": df["item_id"].astype(str).to_numpy(object),
            "policy": policy.value,
            "p": df["probability"].to_numpy(float),
        }
    )


def partition_units(
    part: Path,
    scores: ScoreRoots,
    strategies: Sequence[Strategy],
    *,
    period_end: pd.Timestamp,
    baselines: Mapping[Entity, pd.DataFrame],
) -> dict[tuple[Entity, Policy], PopulationUnits]:
    """A Dask task: the partition's units of every audited (entity, policy) population."""
    tables = load_tables(part, _TABLES)
    decisions = tables["strategy_decisions"]
    exposure = {
        e: entity_exposure(
            e, tables["channel_exposure"], decisions, period_end, baseline=baselines[e]
        )
        for e in {s.entity for s in strategies}
    }
    out: dict[tuple[Entity, Policy], PopulationUnits] = {}
    first: dict[Entity, PopulationUnits] = {}
    for (entity, policy), group in _groups(strategies).items():
        predictions = _scores(scores[(entity, policy)], part.name, entity, policy)
        units = population_units(entity, policy, group, predictions, decisions, exposure[entity])
        out[(entity, policy)] = units.sharing_items_of(first.setdefault(entity, units))
    return out


def score_roots(scores_dir: Path, strategies: Sequence[Strategy]) -> ScoreRoots:
    """Each target's scores in `scores_dir`: `<entity>-<policy>/`, else the entity's
    any-violation model's `<entity>-any/` (each a `govrisk score` output of the partitions)."""
    out: dict[tuple[Entity, Policy], Path] = {}
    missing = []
    for entity, policy in sorted({(s.entity, s.policy) for s in strategies}):
        names = (f"{entity.value}-{policy.value}", f"{entity.value}-any")
        found = [scores_dir / n for n in names if (scores_dir / n).is_dir()]
        if found:
            out[(entity, policy)] = found[0]
        else:
            missing.append(names[0])
    if missing:
        raise FileNotFoundError(
            f"{scores_dir} lacks the scores of {missing}: give one `govrisk score` output per "
            "target, named <entity>-<policy> (or <entity>-any for every policy of the entity)"
        )
    return out


def write_outputs(result: PartitionedAuditResult, out_dir: Path) -> dict[str, Path]:
    """Write the metrics and flags tables into `out_dir`; returns the paths."""
    from governance.audit.pipeline import OUTPUT_FILES

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key in ("metrics", "flags"):
        paths[key] = out_dir / OUTPUT_FILES[key]
        getattr(result, key).to_parquet(paths[key], index=False)
    return paths


def _labels(parts: Sequence[Path]) -> pd.DataFrame:
    return pd.concat(
        [load_tables(p, ["audit_labels"])["audit_labels"] for p in parts], ignore_index=True
    )


def _summaries(
    client: Any, parts: Sequence[Path], entities: Sequence[Entity]
) -> list[dict[str, Any]]:
    futures = [client.submit(partition_summary, p, list(entities), pure=False) for p in parts]
    summaries: list[dict[str, Any]] = client.gather(futures)
    return summaries


def _collect(futures: list[Any]) -> list[Any]:
    """Each task's result in submission order, fetched as it finishes and released on the
    workers at once (held there, twenty partitions' units overflow a 4 GB worker)."""
    from distributed import as_completed  # type: ignore[attr-defined]

    index = {f.key: k for k, f in enumerate(futures)}
    out: list[Any] = [None] * len(futures)
    for future in as_completed(futures):  # type: ignore[no-untyped-call]
        out[index[future.key]] = future.result()
        future.release()
    futures.clear()
    return out


def _baselines(
    summaries: Sequence[Mapping[str, Any]], entities: Sequence[Entity]
) -> dict[Entity, pd.DataFrame]:
    out = {}
    for e in entities:
        frames = [s["baseline"][e] for s in summaries]
        out[e] = pd.concat(frames).groupby(level=0).sum()
    return out


def audit_partitioned(
    parts: Sequence[Path],
    strategies: Sequence[Strategy],
    scores: ScoreRoots | Path,
    *,
    client: Any,
    settings: AuditSettings | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> PartitionedAuditResult:
    """Estimate every audited strategy of the partitions' decisions (metrics and flags).

    `scores` maps each (entity, policy) to its scores' folder, or is the folder `score_roots`
    looks them up in."""
    from features.cluster import worker_peaks

    cfg = settings or get_settings()
    stage = on_stage or (lambda _name: None)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    stage("summaries")
    entities = sorted({s.entity for s in strategies}, key=list(Entity).index)
    summaries = _summaries(client, parts, entities)
    decided = pd.concat([s["decided"] for s in summaries]).drop_duplicates()
    audited = audited_strategies(list(strategies), decided)
    if isinstance(scores, Path):
        scores = score_roots(scores, audited)
    missing = sorted({(s.entity, s.policy) for s in audited} - set(scores))
    if missing:
        raise ValueError(f"no scores given for {[(e.value, p.value) for e, p in missing]}")
    period_end = max(s["period_end"] for s in summaries)
    baselines = _baselines(summaries, entities)
    seconds["summaries"] = time.perf_counter() - start

    stage("units")
    start = time.perf_counter()
    futures = [
        client.submit(
            partition_units,
            p,
            dict(scores),
            audited,
            period_end=period_end,
            baselines=baselines,
            pure=False,
        )
        for p in parts
    ]
    units = _collect(futures)
    seconds["units"] = time.perf_counter() - start

    stage("estimate")
    start = time.perf_counter()
    labels = _labels(parts)
    flip_rate, _source = flip_rate_for(labels, cfg)
    groups = _groups(audited)
    joined = join_units({key: [u[key] for u in units] for key in groups})
    del units

    def assemble(calibration: Calibration) -> dict[tuple[Entity, Policy], Population]:
        return {
            key: assemble_population(
                key[0],
                key[1],
                joined[key].item_ids,
                joined[key].p_model,
                joined[key].exposure,
                actioned=joined[key].actioned,
                strategy_channels={s.ref: tuple(c.value for c in s.channels) for s in group},
                labels=labels,
                oof=None,
                flip_rate=flip_rate,
                design_frames=cfg.design_frames,
                calibration=calibration,
            )
            for key, group in groups.items()
        }

    pops = assemble(cfg.calibration)
    same = cfg.estimate_calibration == cfg.calibration
    est_pops = pops if same else assemble(cfg.estimate_calibration)
    metrics = estimated_metrics(est_pops, cfg)
    seconds["estimate"] = time.perf_counter() - start
    stage("flags")
    start = time.perf_counter()
    flags = likely_errors(pops, est_pops, labels, cfg, reasons=None)
    seconds["flags"] = time.perf_counter() - start
    return PartitionedAuditResult(
        metrics, flags, pops, cfg, seconds=seconds, worker_peak_bytes=worker_peaks(client)
    )
