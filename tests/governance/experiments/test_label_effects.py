"""FP / FN per arm from random-audit labels: exact on a census, covering the truth on a sample."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from governance.experiments.assignment import assign
from governance.experiments.label_effects import error_rate_effects
from tests.governance.experiments.factories import make_experiment

N = 6_000


def _tables(seed: int = 0) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"L{i}" for i in range(N)]
    sellers = [f"S{i % 600}" for i in range(N)]
    listings = pd.DataFrame(
        {
            "listing_id": ids,
            "seller_id": sellers,
            "category": "bags",
            "created_at": datetime(2026, 1, 1),
        }
    )
    experiment = make_experiment(traffic_share=1.0)
    treated = assign(experiment.id, sellers, traffic_share=1.0) == "treatment"
    violating = rng.random(N) < 0.1
    flagged = rng.random(N) < 0.2
    # control (v1) actions every flagged item; the fix (v2) spares honest ones half the time
    actioned = np.where(treated, flagged & (violating | (rng.random(N) < 0.5)), flagged)
    decisions = pd.DataFrame(
        {
            "entity": "listing",
            "item_id": np.asarray(ids)[actioned],
            "strategy_id": "campaign-deep-discount",
            "decided_at": datetime(2026, 1, 20),
            "lifted_at": pd.NaT,
        }
    )
    truth = pd.DataFrame({"item_id": ids, "violating": violating, "actioned": actioned})
    empty = pd.DataFrame({"video_id": [], "listing_id": [], "created_at": []})
    lives = pd.DataFrame({"live_id": [], "listing_id": [], "started_at": []})
    tables = {
        "listings": listings,
        "videos": empty,
        "live_sessions": lives,
        "strategy_decisions": decisions,
    }
    return tables, truth.assign(treated=treated)


def _labels(truth: pd.DataFrame, chosen: np.ndarray, pi: float) -> pd.DataFrame:
    picked = truth.iloc[chosen]
    return pd.DataFrame(
        {
            "entity": "listing",
            "item_id": picked["item_id"],
            "policy": "fake_discount",
            "verdict": np.where(picked["violating"], "violating", "not_violating"),
            "sampling": "random",
            "inclusion_probability": pi,
        }
    )


def test_census_gives_the_exact_difference() -> None:
    tables, truth = _tables()
    tables["audit_labels"] = _labels(truth, np.arange(N), 1.0)
    effects = error_rate_effects(
        tables, make_experiment(traffic_share=1.0), entity="listing", policy="fake_discount"
    )
    t, c = truth[truth["treated"]], truth[~truth["treated"]]
    fp_t = (t["actioned"] & ~t["violating"]).mean()
    fp_c = (c["actioned"] & ~c["violating"]).mean()
    assert effects["fp"].difference == pytest.approx(fp_t - fp_c)
    assert effects["fp"].low == pytest.approx(effects["fp"].high)  # no sampling error
    fn_t = (~t["actioned"] & t["violating"]).mean()
    fn_c = (~c["actioned"] & c["violating"]).mean()
    assert effects["fn"].difference == pytest.approx(fn_t - fn_c)


def test_sample_interval_covers_the_truth_mostly() -> None:
    tables, truth = _tables(seed=1)
    t, c = truth[truth["treated"]], truth[~truth["treated"]]
    true_fp = (t["actioned"] & ~t["violating"]).mean() - (c["actioned"] & ~c["violating"]).mean()
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(40):
        chosen = rng.choice(N, size=800, replace=False)
        tables["audit_labels"] = _labels(truth, chosen, 800 / N)
        fp = error_rate_effects(
            tables, make_experiment(traffic_share=1.0), entity="listing", policy="fake_discount"
        )["fp"]
        covered += fp.low <= true_fp <= fp.high
        assert fp.n_labels == 800
    assert covered >= 34  # 95% intervals: 38 expected


def test_other_designs_are_ignored() -> None:
    tables, truth = _tables()
    labels = _labels(truth, np.arange(200), 1.0)
    tables["audit_labels"] = labels.assign(sampling="strategy_flagged")
    effects = error_rate_effects(
        tables, make_experiment(), entity="listing", policy="fake_discount"
    )
    assert effects["fp"].n_labels == 0 and np.isnan(effects["fp"].difference)
