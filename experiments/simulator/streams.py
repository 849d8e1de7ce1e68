"""Random streams: one seed split into independent world, dynamics and label streams.

Dynamics and labels also draw *keyed* uniforms — a pure function of (stream, purpose, item,
policy) — wherever a draw should not shift when enforcement changes, so two runs of the same
world with different strategies share their randomness (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Streams:
    """The three independent streams of one simulation seed."""

    world: np.random.SeedSequence
    dynamics: np.random.SeedSequence
    labels: np.random.SeedSequence

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        """Split `seed` with SeedSequence.spawn into world, dynamics and labels streams."""
        world, dynamics, labels = np.random.SeedSequence(seed).spawn(3)
        return cls(world, dynamics, labels)


def _mix(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stream_key(seq: np.random.SeedSequence) -> int:
    """A 64-bit key derived from a seed sequence, for `keyed_uniform`."""
    return int(seq.generate_state(1, dtype=np.uint64)[0])


def keyed_uniform(key: int, purpose: int, *parts: np.ndarray | int) -> np.ndarray:
    """Uniforms in [0, 1) that depend only on (key, purpose, parts) element-wise (splitmix64)."""
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(np.uint64(key) ^ _mix(np.asarray(np.uint64(purpose)))))
        for part in parts:
            h = _mix(h ^ np.asarray(part).astype(np.uint64))
    return (np.asarray(h) >> np.uint64(11)).astype(np.float64) / float(2**53)


def day_rng(seq: np.random.SeedSequence, day: int, purpose: int) -> np.random.Generator:
    """A generator for one day and purpose of a stream, independent of every other day."""
    entropy = seq.generate_state(2, dtype=np.uint32)
    return np.random.default_rng([*entropy.tolist(), day, purpose])
