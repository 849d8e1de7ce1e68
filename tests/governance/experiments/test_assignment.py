"""Assignment: deterministic, order-free, balanced, and a unit never changes arm."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.experiments.assignment import assign, assign_unit
from governance.experiments.vocabulary import Arm

unit_ids = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40, unique=True)
experiment_ids = st.from_regex(r"[a-z0-9]{1,10}(-[a-z0-9]{1,6}){0,2}", fullmatch=True)
shares = st.floats(min_value=0.01, max_value=1.0)


@given(experiment_ids, unit_ids, shares, st.randoms(use_true_random=False))
@settings(max_examples=60, deadline=None)
def test_same_arm_whatever_the_batch_and_order(
    experiment_id: str, units: list[str], share: float, rnd: object
) -> None:
    arms = dict(zip(units, assign(experiment_id, units, traffic_share=share), strict=True))
    shuffled = list(units)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    half = shuffled[: max(1, len(shuffled) // 2)]
    again = dict(zip(half, assign(experiment_id, half, traffic_share=share), strict=True))
    assert all(again[u] == arms[u] for u in half)
    # offline (vectorised) and online (one unit) agree
    assert all(assign_unit(experiment_id, u, traffic_share=share).value == arms[u] for u in half)


@given(experiment_ids, unit_ids, shares, shares)
@settings(max_examples=60, deadline=None)
def test_ramping_up_never_moves_a_unit_between_arms(
    experiment_id: str, units: list[str], a: float, b: float
) -> None:
    low, high = sorted((a, b))
    before = assign(experiment_id, units, traffic_share=low)
    after = assign(experiment_id, units, traffic_share=high)
    inside = before != Arm.OUTSIDE.value
    assert (after[inside] == before[inside]).all()


def test_balanced_and_share_respected() -> None:
    units = [f"seller-{i}" for i in range(20_000)]
    arms = assign("exp-1", units, traffic_share=0.4)
    counts = {arm: int((arms == arm.value).sum()) for arm in Arm}
    assert abs(counts[Arm.OUTSIDE] / 20_000 - 0.6) < 0.015
    assert abs(counts[Arm.TREATMENT] - counts[Arm.CONTROL]) < 0.05 * 8_000


def test_experiments_assign_independently() -> None:
    units = [f"seller-{i}" for i in range(4_000)]
    a = assign("exp-a", units, traffic_share=1.0) == Arm.TREATMENT.value
    b = assign("exp-b", units, traffic_share=1.0) == Arm.TREATMENT.value
    agreement = float(np.mean(a == b))
    assert 0.45 < agreement < 0.55
