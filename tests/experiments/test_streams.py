"""Keyed uniforms: a pure function of their key, in [0, 1), and well spread."""

from __future__ import annotations

import numpy as np

from experiments.simulator.streams import Streams, day_rng, keyed_uniform, stream_key


def test_keyed_uniform_is_pure_and_uniform() -> None:
    items = np.arange(200_000)
    u = keyed_uniform(42, 3, items, 1)
    assert np.array_equal(u, keyed_uniform(42, 3, items, 1))
    assert np.array_equal(u[1000:1010], keyed_uniform(42, 3, items[1000:1010], 1))
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 19_000
    assert not np.array_equal(u, keyed_uniform(43, 3, items, 1))
    assert not np.array_equal(u, keyed_uniform(42, 4, items, 1))
    assert abs(np.corrcoef(u, keyed_uniform(42, 3, items, 2))[0, 1]) < 0.01


def test_streams_are_independent_and_reproducible() -> None:
    a, b = Streams.from_seed(5), Streams.from_seed(5)
    assert stream_key(a.world) == stream_key(b.world)
    assert len({stream_key(a.world), stream_key(a.dynamics), stream_key(a.labels)}) == 3
    x = day_rng(a.dynamics, 3, 0).random(5)
    assert np.array_equal(x, day_rng(b.dynamics, 3, 0).random(5))
    assert not np.array_equal(x, day_rng(a.dynamics, 4, 0).random(5))
