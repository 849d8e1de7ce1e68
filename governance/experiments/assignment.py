"""Deterministic assignment of units to arms by a hash of (experiment id, unit id).

The same function serves the nightly enforcement, the simulator and online lookups: a unit's
arm depends only on the experiment id, its own id and the traffic share, never on which other
units are assigned with it or in which order. Two independent hashes decide inclusion (is the
unit in the experiment at this traffic share?) and the arm (control or treatment, 50/50), so
ramping the traffic share up only adds units: an included unit never changes arm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from governance.experiments.vocabulary import Arm

_SCALE = float(2**64)


def _uniform(experiment_id: str, unit_id: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by (experiment, unit, salt)."""
    digest = hashlib.blake2b(
        f"{experiment_id}\x1f{salt}\x1f{unit_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign_unit(experiment_id: str, unit_id: str, *, traffic_share: float) -> Arm:
    """The arm of one unit (online lookups use this; `assign` is its vectorised form)."""
    if not 0 < traffic_share <= 1:
        raise ValueError(f"traffic_share must be in (0, 1], got {traffic_share}")
    return _compute_arm(experiment_id, str(unit_id), traffic_share)


def _compute_arm(experiment_id: str, unit_id: str, traffic_share: float) -> Arm:
    if _uniform(experiment_id, unit_id, "in") >= traffic_share:
        return Arm.OUTSIDE
    return Arm.TREATMENT if _uniform(experiment_id, unit_id, "arm") < 0.5 else Arm.CONTROL


def assign(experiment_id: str, unit_ids: Iterable[object], *, traffic_share: float) -> np.ndarray:
    """The arm (its string value) of every unit, as an object array in the order given."""
    if not 0 < traffic_share <= 1:
        raise ValueError(f"traffic_share must be in (0, 1], got {traffic_share}")
    cache: dict[str, str] = {}
    out = []
    for unit in unit_ids:
        key = str(unit)
        arm = cache.get(key)
        if arm is None:
            arm = cache[key] = _compute_arm(experiment_id, key, traffic_share).value
        out.append(arm)
    return np.asarray(out, dtype=object)
