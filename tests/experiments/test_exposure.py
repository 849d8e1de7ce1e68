"""Thinning traffic by enforcement actions."""

from __future__ import annotations

import numpy as np

from experiments.simulator.exposure import DayTraffic, thin


def _traffic(n: int, rng: np.random.Generator) -> DayTraffic:
    impressions = rng.poisson(200, n)
    clicks = rng.binomial(impressions, 0.1)
    orders = rng.binomial(clicks, 0.2)
    likes = rng.binomial(impressions, 0.05)
    return DayTraffic(
        entity=np.zeros(n, dtype=np.int8),
        item=np.arange(n),
        channel=np.zeros(n, dtype=np.int8),
        start_frac=np.zeros(n),
        price=np.full(n, 10.0),
        impressions=impressions,
        clicks=clicks,
        orders=orders,
        likes=likes,
        comments=np.zeros(n, dtype=np.int64),
        shares=np.zeros(n, dtype=np.int64),
    )


def test_thin_blocks_keeps_and_reduces() -> None:
    rng = np.random.default_rng(0)
    full = _traffic(3_000, rng)
    keep = np.repeat([0.0, 0.3, 1.0], 1_000)
    kept = thin(full, keep, np.random.default_rng(1))
    blocked, demoted, free = slice(0, 1000), slice(1000, 2000), slice(2000, 3000)
    for name in ("impressions", "clicks", "orders", "likes"):
        assert getattr(kept, name)[blocked].sum() == 0
        assert np.array_equal(getattr(kept, name)[free], getattr(full, name)[free])
        assert np.all(getattr(kept, name) <= getattr(full, name))
    share = kept.impressions[demoted].sum() / full.impressions[demoted].sum()
    assert 0.28 < share < 0.32
    assert np.all(kept.orders <= kept.clicks) and np.all(kept.clicks <= kept.impressions)
    ctr_full = full.clicks[demoted].sum() / full.impressions[demoted].sum()
    ctr_kept = kept.clicks[demoted].sum() / kept.impressions[demoted].sum()
    assert abs(ctr_full - ctr_kept) < 0.01
