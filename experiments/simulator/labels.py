"""Audit labels: appeal reviews, a strategy-flagged sample and a random audit, with noise.

Three ways an (item, policy) gets a moderator verdict, each with an exact inclusion
probability:
- `appeal`: every appeal filed and reviewed in the period (probability 1.0);
- `strategy_flagged`: actioned (item, policy) pairs, stratified by the strategy that actioned
  the pair first; a simple random sample of `n_h` out of `N_h` pairs per stratum
  (probability `n_h / N_h`);
- `random`: a simple random sample of `n_e` out of the `N_e` items of each entity created in
  the period, labelled on every policy relevant to the entity (probability `n_e / N_e`).
Each moderator flips a verdict with their own rate, drawn once in
[reviewer_noise_low, reviewer_noise_high].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.simulator.assembly import ItemIds, numbered_ids, str_array
from experiments.simulator.dynamics import AppealLog, DecisionLog
from experiments.simulator.exposure import ENTITY_CODES
from experiments.simulator.policies import ENTITY_POLICIES, POLICY_INDEX
from experiments.simulator.streams import keyed_uniform, stream_key
from experiments.simulator.world import US_PER_DAY, World
from features.vocabulary import Policy, Sampling, Verdict

_PURPOSE_FLAGGED = 21
_PURPOSE_RANDOM = 22
_PURPOSE_REVIEWER = 23
_PURPOSE_FLIP = 24
_PURPOSE_DELAY = 25
_SAMPLING_CODE = {Sampling.APPEAL: 1, Sampling.STRATEGY_FLAGGED: 2, Sampling.RANDOM: 3}
_POLICIES = tuple(Policy)
_RANDOM_FLOOR_ITEMS = 10


@dataclass
class Labels:
    """The audit_labels table and, kept apart, what the reviewers could not see."""

    table: pd.DataFrame
    truth: pd.DataFrame


def reviewer_noise(
    n_reviewers: int, low: float, high: float, seq: np.random.SeedSequence
) -> np.ndarray:
    """Each moderator's flip rate, uniform in [low, high]."""
    rng = np.random.default_rng(seq.spawn(1)[0])
    return rng.uniform(low, high, n_reviewers)


def _allocate(sizes: np.ndarray, budget: int, floor: int) -> np.ndarray:
    """Sample sizes per stratum: a floor each, the rest proportional to sqrt(size), capped."""
    n = np.minimum(sizes, floor)
    remaining = budget - int(n.sum())
    if remaining < 0:
        # not even the floors fit: share the budget proportionally to the floors
        return np.asarray(np.floor(n * budget / max(int(n.sum()), 1)), dtype=np.int64)
    for _ in range(50):
        room = sizes - n
        open_ = room > 0
        if remaining <= 0 or not open_.any():
            break
        weight = np.sqrt(sizes) * open_
        extra = np.minimum(room, np.floor(remaining * weight / weight.sum()).astype(np.int64))
        if extra.sum() == 0:
            # hand out the last few one by one to the largest open strata
            for j in np.argsort(-weight)[:remaining]:
                if room[j] > 0:
                    extra[j] += 1
        n = n + extra
        remaining = budget - int(n.sum())
    return np.asarray(n, dtype=np.int64)


def sample_labels(
    world: World,
    decisions: DecisionLog,
    appeals: AppealLog,
    *,
    strategy_policies: np.ndarray,
    strategy_refs: list[str],
    noise: np.ndarray,
    seq: np.random.SeedSequence,
) -> Labels:
    """Draw the period's audit labels."""
    cfg = world.config
    key = stream_key(seq)
    start_us = int(np.datetime64(cfg.start, "us").astype(np.int64))
    end_us = start_us + cfg.days * US_PER_DAY
    parts: list[dict[str, np.ndarray]] = []

    appealed = _appealed(appeals, end_us)
    if appealed is not None:
        parts.append(appealed)
    budget_random = round(cfg.label_budget * cfg.random_audit_share)
    budget_flagged = cfg.label_budget - budget_random
    flagged = _flagged(
        decisions,
        strategy_policies,
        strategy_refs,
        budget_flagged,
        cfg.min_labels_per_strategy,
        key,
        end_us,
    )
    if flagged is not None:
        parts.append(flagged)
    random = _random(world, budget_random, key, start_us, end_us)
    if random is not None:
        parts.append(random)

    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else None
    if cols is None:
        return Labels(_empty_table(), pd.DataFrame())
    return _review(world, cols, noise, key)


def _appealed(appeals: AppealLog, end_us: int) -> dict[str, np.ndarray] | None:
    """Every appeal reviewed before `end_us`, with the verdict its reviewer gave."""
    a = appeals.arrays()
    reviewed = a["review_us"] < end_us
    if not reviewed.any():
        return None
    n = int(reviewed.sum())
    return {
        "entity": a["entity"][reviewed].astype(np.int64),
        "item": a["item"][reviewed].astype(np.int64),
        "policy": a["policy"][reviewed].astype(np.int64),
        "reviewed_us": a["review_us"][reviewed],
        "sampling": np.full(n, _SAMPLING_CODE[Sampling.APPEAL]),
        "inclusion": np.ones(n),
        "reviewer": a["reviewer"][reviewed].astype(np.int64),
        "verdict": a["verdict"][reviewed].astype(bool),
        "stratum": np.full(n, "", dtype=object),
    }


def _review(world: World, cols: dict[str, np.ndarray], noise: np.ndarray, key: int) -> Labels:
    """Verdicts of the sampled (item, policy) pairs: the truth, flipped at each assigned
    reviewer's rate (appeals keep the verdict given when they were reviewed)."""
    e, item, pol = cols["entity"], cols["item"], cols["policy"]
    truth = np.empty(e.size, dtype=bool)
    for code in np.unique(e):
        m = e == code
        truth[m] = world.items(ENTITY_CODES[int(code)]).violates[item[m], pol[m]]
    computed = cols["sampling"] != _SAMPLING_CODE[Sampling.APPEAL]
    n_rev = noise.size
    sampling_key = cols["sampling"]
    rev = np.minimum(
        (keyed_uniform(key, _PURPOSE_REVIEWER, e, item, pol, sampling_key) * n_rev).astype(
            np.int64
        ),
        n_rev - 1,
    )
    reviewer = np.where(computed, rev, cols["reviewer"])
    flip_draw = keyed_uniform(key, _PURPOSE_FLIP, e, item, pol, sampling_key) < noise[reviewer]
    verdict = np.where(computed, truth ^ flip_draw, cols["verdict"])
    flipped = verdict != truth

    order = np.lexsort((pol, item, e, cols["sampling"], cols["reviewed_us"]))
    table = _label_table(world, cols, order, verdict, reviewer)
    truth_table = pd.DataFrame(
        {
            "label_id": table["label_id"],
            "entity": table["entity"],
            "item_id": table["item_id"],
            "policy": table["policy"],
            "sampling": table["sampling"],
            "stratum": str_array(cols["stratum"][order].astype(object)),
            "true_violating": truth[order],
            "flipped": flipped[order],
            "reviewer_noise": noise[reviewer[order]],
        }
    )
    return Labels(table, truth_table)


def _label_table(
    world: World,
    cols: dict[str, np.ndarray],
    order: np.ndarray,
    verdict: np.ndarray,
    reviewer: np.ndarray,
) -> pd.DataFrame:
    """The audit_labels table, rows in `order`."""
    e, item, pol = cols["entity"], cols["item"], cols["policy"]
    ids = ItemIds(world)
    width = max(6, len(str(order.size)))
    sampling_names = {v: k.value for k, v in _SAMPLING_CODE.items()}
    return pd.DataFrame(
        {
            "label_id": numbered_ids("A", np.arange(1, order.size + 1), width),
            "entity": str_array(
                np.asarray([c.value for c in ENTITY_CODES], dtype=object)[e[order]]
            ),
            "item_id": ids.take(e[order], item[order]),
            "policy": str_array(np.asarray([p.value for p in _POLICIES], dtype=object)[pol[order]]),
            "verdict": str_array(
                np.where(
                    verdict[order], Verdict.VIOLATING.value, Verdict.NOT_VIOLATING.value
                ).astype(object)
            ),
            "reviewer_id": numbered_ids("R", reviewer[order] + 1, 2),
            "reviewed_at": cols["reviewed_us"][order].astype("datetime64[us]"),
            "sampling": str_array(
                np.asarray([sampling_names[int(s)] for s in cols["sampling"][order]], dtype=object)
            ),
            "inclusion_probability": cols["inclusion"][order].astype(np.float64),
        }
    )


def _flagged(
    decisions: DecisionLog,
    strategy_policies: np.ndarray,
    strategy_refs: list[str],
    budget: int,
    floor: int,
    key: int,
    end_us: int,
) -> dict[str, np.ndarray] | None:
    d = decisions.arrays()
    if d["entity"].size == 0 or budget <= 0:
        return None
    pol = strategy_policies[d["strategy"]]
    pair = (d["entity"].astype(np.int64) * 2**36 + d["item"]) * 8 + pol
    # first decision per pair decides its stratum (earliest, then lowest strategy index)
    order = np.lexsort((d["strategy"], d["decided_us"], pair))
    first = np.concatenate([[True], pair[order][1:] != pair[order][:-1]])
    idx = order[first]
    e, item, p = d["entity"][idx].astype(np.int64), d["item"][idx], pol[idx]
    stratum = d["strategy"][idx].astype(np.int64)
    decided = d["decided_us"][idx]
    sizes = np.bincount(stratum, minlength=len(strategy_refs))
    n_h = _allocate(sizes, budget, floor)
    u = keyed_uniform(key, _PURPOSE_FLAGGED, e, item, p)
    rank = np.empty(u.size, dtype=np.int64)
    by = np.lexsort((u, stratum))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank[by] = np.arange(u.size) - starts[stratum[by]]
    take = rank < n_h[stratum]
    n = int(take.sum())
    delay = keyed_uniform(key, _PURPOSE_DELAY, e, item, p)
    span = np.minimum(7 * US_PER_DAY, end_us - 60_000_000 - decided[take])
    reviewed = decided[take] + np.maximum(delay[take] * span, 60_000_000).astype(np.int64)
    inclusion = (n_h / np.maximum(sizes, 1))[stratum[take]]
    return {
        "entity": e[take],
        "item": item[take],
        "policy": p[take].astype(np.int64),
        "reviewed_us": reviewed,
        "sampling": np.full(n, _SAMPLING_CODE[Sampling.STRATEGY_FLAGGED]),
        "inclusion": inclusion,
        "reviewer": np.zeros(n, dtype=np.int64),
        "verdict": np.zeros(n, dtype=bool),
        "stratum": np.asarray(strategy_refs, dtype=object)[stratum[take]],
    }


def _random(
    world: World, budget: int, key: int, start_us: int, end_us: int
) -> dict[str, np.ndarray] | None:
    if budget <= 0:
        return None
    sizes = np.asarray([world.items(e).n for e in ENTITY_CODES])
    per_item = np.asarray([len(ENTITY_POLICIES[e]) for e in ENTITY_CODES])
    # a floor of items per entity (while the budget allows), the rest by labels needed
    floor = np.minimum(sizes, _RANDOM_FLOOR_ITEMS)
    if int((floor * per_item).sum()) > budget:
        floor = np.zeros_like(sizes)
    rest = budget - int((floor * per_item).sum())
    weights = sizes * per_item
    extra = np.floor(rest * weights / weights.sum() / per_item).astype(np.int64)
    n_e = np.minimum(sizes, floor + extra).astype(np.int64)
    parts: list[dict[str, np.ndarray]] = []
    for code, entity in enumerate(ENTITY_CODES):
        items = world.items(entity)
        if n_e[code] == 0:
            continue
        u = keyed_uniform(key, _PURPOSE_RANDOM, code, np.arange(items.n))
        chosen = np.sort(np.argsort(u, kind="stable")[: n_e[code]])
        created = np.maximum(items.created_us[chosen], start_us)
        delay = keyed_uniform(key, _PURPOSE_DELAY, code, chosen, 99)
        reviewed = created + (delay * (end_us - 60_000_000 - created)).astype(np.int64)
        reviewed = np.maximum(reviewed, created + 1)
        policies = [POLICY_INDEX[p] for p in ENTITY_POLICIES[entity]]
        k = len(policies)
        parts.append(
            {
                "entity": np.full(chosen.size * k, code, dtype=np.int64),
                "item": np.repeat(chosen, k),
                "policy": np.tile(np.asarray(policies, dtype=np.int64), chosen.size),
                "reviewed_us": np.repeat(reviewed, k),
                "sampling": np.full(chosen.size * k, _SAMPLING_CODE[Sampling.RANDOM]),
                "inclusion": np.full(chosen.size * k, n_e[code] / items.n),
                "reviewer": np.zeros(chosen.size * k, dtype=np.int64),
                "verdict": np.zeros(chosen.size * k, dtype=bool),
                "stratum": np.full(chosen.size * k, entity.value, dtype=object),
            }
        )
    if not parts:
        return None
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _empty_table() -> pd.DataFrame:
    from features.tables import AUDIT_LABELS

    frame = pd.DataFrame({c: pd.Series([], dtype="str") for c in AUDIT_LABELS.column_names})
    frame["reviewed_at"] = frame["reviewed_at"].astype("datetime64[us]")
    frame["inclusion_probability"] = frame["inclusion_probability"].astype(np.float64)
    return frame
