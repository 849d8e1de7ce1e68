"""Tests of the importance-sampled audit slice."""

from __future__ import annotations

import numpy as np
import pytest

from features.vocabulary import Entity, Policy
from governance.audit.estimators import LabelDraws, estimate_totals
from governance.audit.population import Population, build_populations
from governance.audit.sampling import audit_sample, importance_scores, inclusion_probabilities
from tests.governance.audit.audit_world import World


def test_inclusion_probabilities_hit_the_size_cap_and_floor() -> None:
    rng = np.random.default_rng(0)
    scores = rng.lognormal(0, 2, 5000)
    pi = inclusion_probabilities(scores, 300.0, floor=0.2)
    assert pi.sum() == pytest.approx(300.0, rel=1e-6)
    assert pi.max() <= 1.0
    assert pi.min() >= 0.2 * 300 / 5000 - 1e-12
    assert np.corrcoef(np.log(scores), np.log(pi))[0, 1] > 0.5


def _unlabelled_populations(world: World) -> dict[tuple[Entity, Policy], Population]:
    """The world's populations before any label, every unit in the `model_ranked` frame."""
    return build_populations(
        {**world.tables, "audit_labels": world.tables["audit_labels"].iloc[:0]},
        world.strategies,
        world.predictions,
        items={Entity.LISTING: world.frame["item_id"]},
        flip_rate=0.0,
        design_frames={"model_ranked": "population"},
    )


def test_audit_sample_gives_unbiased_estimates(world: World) -> None:
    pops = _unlabelled_populations(world)
    pop = next(iter(pops.values()))
    y = world.truth.set_index("item_id")["violating"].reindex(pop.item_ids).to_numpy()
    scores = importance_scores(pop)
    assert scores.shape == (len(pop),) and (scores > 0).all()
    errors = []
    for seed in range(40):
        sample = audit_sample(pops, size=250, seed=seed)
        assert set(sample.columns) >= {"entity", "item_id", "policy", "inclusion_probability"}
        pos = np.asarray(
            [int(np.flatnonzero(pop.item_ids == i)[0]) for i in sample["item_id"]], dtype=np.int64
        )
        draws = LabelDraws(
            pos,
            y[pos].astype(float),
            np.ones(len(pos), dtype=np.int64),
            sample["inclusion_probability"].to_numpy(),
            np.array(["model_ranked"] * len(pos), dtype=object),
            pop.f[pos],
        )
        # A deliberately biased model: the design-weighted correction must remove the bias.
        f_biased = np.clip(pop.f * 1.5, 0, 1)
        draws = LabelDraws(
            draws.position,
            draws.y_obs,
            draws.n_reviews,
            draws.inclusion_probability,
            draws.design,
            f_biased[pos],
        )
        est = estimate_totals(
            f_biased,
            np.ones(len(pop)),
            draws,
            frames={"model_ranked": np.ones(len(pop), dtype=bool)},
            flip_rate=0.0,
        )
        errors.append(est.point[0] - y.sum())
    assert abs(np.mean(errors)) < 3 * np.std(errors) / np.sqrt(len(errors)) + 2
    assert abs(f_biased.sum() - y.sum()) > 5 * abs(np.mean(errors))


def test_a_watched_category_is_sampled_more_and_estimates_stay_unbiased(world: World) -> None:
    from governance.audit.sampling import category_boost
    from governance.monitoring.launch import category_items

    pops = _unlabelled_populations(world)
    pop = next(iter(pops.values()))
    listings = world.frame.rename(columns={"item_id": "listing_id", "listing_category": "category"})
    tables = {"listings": listings}  # a dataset of listings only: no videos or lives
    watched = "cards"  # a tenth of the listings
    boost = category_boost(pops, category_items(tables, [watched]), [watched], 3.0)
    in_watched = np.isin(pop.item_ids, listings.loc[listings["category"] == watched, "listing_id"])
    assert 0 < in_watched.sum() < len(pop) and set(boost) == set(pops)
    y = world.truth.set_index("item_id")["violating"].reindex(pop.item_ids).to_numpy()
    share = {False: [], True: []}
    errors = []
    for seed in range(40):
        for boosted in (False, True):
            sample = audit_sample(pops, size=250, seed=seed, boost=boost if boosted else None)
            pos = np.searchsorted(pop.item_ids, sample["item_id"].to_numpy(dtype=object))
            assert (pop.item_ids[pos] == sample["item_id"].to_numpy()).all()
            share[boosted].append(in_watched[pos].mean())
        pi = sample["inclusion_probability"].to_numpy()
        draws = LabelDraws(
            pos,
            y[pos].astype(float),
            np.ones(len(pos), dtype=np.int64),
            pi,
            np.array(["model_ranked"] * len(pos), dtype=object),
            np.zeros(len(pos)),
        )
        frames = {"model_ranked": np.ones(len(pop), dtype=bool)}
        est = estimate_totals(
            np.zeros(len(pop)), np.ones(len(pop)), draws, frames=frames, flip_rate=0.0
        )
        errors.append(est.point[0] - y.sum())
    # about three times the share of the sample (less where probabilities cap at 1)
    assert np.mean(share[True]) > 2 * np.mean(share[False])
    # the recorded inclusion probabilities keep the Horvitz-Thompson total unbiased
    assert abs(np.mean(errors)) < 3 * np.std(errors) / np.sqrt(len(errors)) + 2
    assert category_boost(pops, category_items(tables, []), [], 3.0) == {}
