"""The static world: ordering, launch dates, truth, text signals against the real lexicon."""

from __future__ import annotations

import re

import numpy as np
import pytest

from experiments.simulator.categories import NEW_CATEGORY
from experiments.simulator.config import SimulationConfig
from experiments.simulator.policies import ENTITY_POLICIES
from experiments.simulator.streams import Streams
from experiments.simulator.text import PHRASES, Wording
from experiments.simulator.world import US_PER_DAY, generate_world
from features.lexicon import GROUP_POLICY, group_pattern
from features.vocabulary import Entity, Policy


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    config = SimulationConfig(n_listings=4_000, days=28, seed=11)
    return generate_world(config, Streams.from_seed(config.seed).world)


def test_items_sorted_and_inside_the_period(world) -> None:  # type: ignore[no-untyped-def]
    cfg = world.config
    start = np.datetime64(cfg.start, "us").astype(np.int64)
    end = start + cfg.days * US_PER_DAY
    for entity in (Entity.LISTING, Entity.VIDEO, Entity.LIVE):
        items = world.items(entity)
        assert np.all(np.diff(items.created_us) >= 0), entity
        assert items.created_us.min() >= start and items.created_us.max() < end, entity
        assert items.table.iloc[:, 0].is_unique
    sellers_us = world.sellers.created_us[world.listings.seller_idx]
    assert np.all(world.listings.created_us >= np.minimum(sellers_us, end))
    assert np.all(world.listings.created_us >= sellers_us)
    linked = world.videos.hidden["listing_idx"]
    assert np.all(world.videos.created_us >= world.listings.created_us[linked])


def test_new_category_opens_mid_period(world) -> None:  # type: ignore[no-untyped-def]
    cfg = world.config
    cats = world.listings.table["category"].to_numpy()
    created = world.listings.table["created_at"].to_numpy()
    launch = np.datetime64(cfg.start) + np.timedelta64(cfg.new_category_launch_day, "D")
    new = cats == NEW_CATEGORY
    assert new.sum() > 50
    assert created[new].min() >= launch
    assert (created[~new] < launch).any()


def test_truth_is_probabilistic_and_entity_specific(world) -> None:  # type: ignore[no-untyped-def]
    for entity in Entity:
        items = world.items(entity)
        relevant = [j for j, p in enumerate(Policy) if p in ENTITY_POLICIES[entity]]
        for j, policy in enumerate(Policy):
            v, p = items.violates[:, j], items.p[:, j]
            if j not in relevant:
                assert not v.any() and not p.any(), (entity, policy)
                continue
            assert 0.005 < v.mean() < 0.2, (entity, policy, v.mean())
            if entity is Entity.SELLER:
                continue
            assert 0.01 < p.mean() < 0.25, (entity, policy)
            if entity is Entity.LISTING:
                # even the true probability cannot rank perfectly: violations are Bernoulli(p)
                assert (v & (p < 0.5)).any() and (~v & (p > 0.5)).any(), (entity, policy)
        v, p = items.violates[:, relevant], items.p[:, relevant]
        assert (v & (p < 0.5)).any() and (~v & (p > 0.5)).any(), entity


def test_listing_violations_follow_observables(world) -> None:  # type: ignore[no-untyped-def]
    lst = world.listings
    v = lst.violates[:, list(Policy).index(Policy.COUNTERFEIT)]
    cheap_branded = (lst.hidden["price_ratio_true"] < 0.45) & lst.hidden["has_brand"]
    assert v[cheap_branded].mean() > 5 * v[~cheap_branded].mean()
    fd = lst.violates[:, list(Policy).index(Policy.FAKE_DISCOUNT)]
    assert fd[lst.hidden["discount_depth"] >= 0.6].mean() > 0.5
    assert fd[lst.hidden["discount_depth"] < 0.35].mean() < 0.03


def _hits(text: str, group: str) -> int:
    normalized = re.sub(r"\s+", " ", text.lower()).strip()
    return len(re.findall(group_pattern(group), normalized))


@pytest.mark.parametrize("group", ["counterfeit", "claim", "prohibited"])
def test_lexicon_wording_hits_and_obfuscated_wording_misses(group: str) -> None:
    policy = GROUP_POLICY[group]
    phrases = PHRASES[policy]
    for phrase in phrases[Wording.LEXICON]:
        assert _hits(phrase, group) >= 1, phrase
    for wording in (Wording.OBFUSCATED, Wording.NOVEL):
        for phrase in phrases[wording]:
            for other in ("counterfeit", "claim", "prohibited"):
                assert _hits(phrase, other) == 0, (phrase, other)


def test_text_carries_the_hidden_wording(world) -> None:  # type: ignore[no-untyped-def]
    lst = world.listings
    text = (lst.table["title"] + " " + lst.table["description"]).to_numpy(dtype=object)
    wording = lst.hidden["wording_counterfeit"]
    honest = lst.hidden["honest_lexicon_phrase"]
    lex = np.flatnonzero(wording == Wording.LEXICON)[:200]
    assert lex.size > 20
    assert all(_hits(text[i], "counterfeit") >= 1 for i in lex)
    clean = np.flatnonzero((wording != Wording.LEXICON) & ~honest)[:500]
    assert sum(_hits(text[i], "counterfeit") for i in clean) == 0
    late = lst.hidden["emerging_pattern"]
    assert late.sum() > 5
    assert (lst.hidden["wording_misleading_claim"][late] == Wording.NOVEL).mean() > 0.6
