from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.monitoring.alerts import drift_alerts
from governance.monitoring.drift import DriftConfig, feature_drift
from governance.monitoring.tables import ALERTS, FEATURE_DRIFT, check_frame


def _frame(n: int, *, shift: float, new_category_share: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    published = pd.Timestamp("2026-01-05") + pd.to_timedelta(np.sort(rng.uniform(0, 42, n)), "D")
    late = np.asarray(published >= pd.Timestamp("2026-02-02"))
    x = rng.normal(size=n) + shift * late
    cat = np.where(late & (rng.random(n) < new_category_share), "cards", rng.choice(["a", "b"], n))
    y = rng.normal(size=n)
    y[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"published_at": published, "x": x, "y": y, "cat": cat})


def _drift(df: pd.DataFrame) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("frame", df)
    return feature_drift(
        con,
        "frame",
        entity="listing",
        kinds={"x": "numeric", "y": "numeric", "cat": "categorical"},
        config=DriftConfig(min_items=50),
    )


def test_shift_and_new_category_show_and_stable_features_do_not() -> None:
    d = _drift(_frame(6000, shift=1.0, new_category_share=0.3))
    assert check_frame(d, FEATURE_DRIFT) == []
    late = d[d["week_start"] >= pd.Timestamp("2026-02-02")]
    early = d[d["week_start"] < pd.Timestamp("2026-02-02")]
    assert (late.loc[late["feature"] == "x", "psi"] > 0.25).all()
    assert (early.loc[early["feature"] == "x", "psi"] < 0.1).all()
    assert (d.loc[d["feature"] == "y", "psi"] < 0.1).all()
    cat = late[late["feature"] == "cat"]
    assert (cat["top_bin"] == "cards").all() and (cat["psi"] > 0.25).all()
    assert d.loc[d["feature"] == "y", "missing_week"].between(0.05, 0.15).all()
    alerts = drift_alerts(d, DriftConfig(), owner="ml")
    assert check_frame(alerts, ALERTS) == []
    assert set(alerts["metric"]) == {"x", "cat"}
    assert set(alerts.loc[alerts["metric"] == "x", "severity"]) == {"medium"}


def test_missing_column_is_named() -> None:
    con = duckdb.connect()
    con.register("frame", _frame(100, shift=0, new_category_share=0))
    try:
        feature_drift(con, "frame", entity="listing", kinds={"nope": "numeric"})
    except KeyError as err:
        assert "nope" in str(err)
    else:  # pragma: no cover
        raise AssertionError("expected KeyError")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-2, 2))
def test_psi_is_never_negative(seed: int, shift: float) -> None:
    d = _drift(_frame(800, shift=shift, new_category_share=0.0, seed=seed))
    assert (d["psi"] >= -1e-12).all()


def _predictions(n: int, *, shift_from: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Listing scores of two models over six weeks; the counterfeit model's log-odds rise by
    1.5 for items published from `shift_from`, the other model's stay put."""
    rng = np.random.default_rng(seed)
    ids = [f"L{i}" for i in range(n)]
    published = pd.Timestamp("2026-01-05") + pd.to_timedelta(np.sort(rng.uniform(0, 42, n)), "D")
    late = np.asarray(published >= pd.Timestamp(shift_from))
    logit = rng.normal(-2.0, 1.0, n) + 1.5 * late
    preds = pd.concat(
        [
            pd.DataFrame({"entity": "listing", "item_id": ids, "policy": "counterfeit"}).assign(
                p=1 / (1 + np.exp(-logit))
            ),
            pd.DataFrame({"entity": "listing", "item_id": ids, "policy": "low_quality"}).assign(
                p=1 / (1 + np.exp(-rng.normal(-1.0, 1.0, n)))
            ),
        ],
        ignore_index=True,
    )
    return preds, pd.DataFrame({"entity": "listing", "item_id": ids, "published_at": published})


def test_a_planted_score_shift_shows_as_prediction_drift_and_alerts() -> None:
    from governance.monitoring.alerts import prediction_drift_alerts
    from governance.monitoring.drift import prediction_drift
    from governance.monitoring.tables import PREDICTION_DRIFT

    preds, published = _predictions(6000, shift_from="2026-02-02")
    d = prediction_drift(duckdb.connect(), preds, published, config=DriftConfig(min_items=50))
    assert check_frame(d, PREDICTION_DRIFT) == []
    assert set(d["policy"]) == {"counterfeit", "low_quality"}
    late = d["week_start"] >= pd.Timestamp("2026-02-02")
    shifted = d[late & (d["policy"] == "counterfeit")]
    assert len(shifted) == 2 and (shifted["psi"] > 0.25).all()
    assert (shifted["mean_week"] > shifted["mean_reference"] + 0.1).all()
    assert (d.loc[~late | (d["policy"] != "counterfeit"), "psi"] < 0.1).all()
    alerts = prediction_drift_alerts(d, DriftConfig(), owner="ml")
    assert check_frame(alerts, ALERTS) == []
    assert list(alerts["metric"]) == ["p_counterfeit"] and list(alerts["kind"]) == [
        "prediction_drift"
    ]
    assert alerts["first_day"].iloc[0] == pd.Timestamp("2026-02-02")
    assert alerts["severity"].iloc[0] == "medium"
    # The table records the threshold its run alerted above; a stricter run alerts on none.
    assert (d["alert_threshold"] >= 0.1).all()
    level = float(d["psi"].max()) + 0.1
    strict = prediction_drift(
        duckdb.connect(), preds, published, config=DriftConfig(min_items=50, psi_medium=level)
    )
    assert (strict["alert_threshold"] >= level).all()
    assert prediction_drift_alerts(strict, DriftConfig(), owner="ml").empty


def test_prediction_drift_names_missing_columns() -> None:
    from governance.monitoring.drift import prediction_drift

    preds, published = _predictions(100, shift_from="2026-02-02")
    try:
        prediction_drift(duckdb.connect(), preds.drop(columns="p"), published)
    except KeyError as err:
        assert "'p'" in str(err) and "predictions" in str(err)
    else:  # pragma: no cover
        raise AssertionError("expected KeyError")


def test_a_missing_share_rise_below_the_psi_threshold_alerts_on_its_own() -> None:
    rng = np.random.default_rng(3)
    df = _frame(12_000, shift=0.0, new_category_share=0.0, seed=3)
    late = np.asarray(df["published_at"] >= pd.Timestamp("2026-02-02"))
    z = rng.normal(size=len(df))
    z[rng.random(len(df)) < np.where(late, 0.16, 0.10)] = np.nan
    con = duckdb.connect()
    con.register("frame", df.assign(z=z))
    d = feature_drift(con, "frame", entity="listing", kinds={"y": "numeric", "z": "numeric"})
    z_late = d[(d["feature"] == "z") & (d["week_start"] >= pd.Timestamp("2026-02-02"))]
    assert (z_late["psi"] < 0.1).all()  # PSI alone would not see it
    alerts = drift_alerts(d, DriftConfig(), owner="ml")
    assert check_frame(alerts, ALERTS) == []
    assert list(alerts["metric"]) == ["z:missing"]
    assert alerts["first_day"].iloc[0] == pd.Timestamp("2026-02-02")
    assert 0.04 < alerts["value"].iloc[0] < 0.09  # the share moved by about 6 points


def _aging_log(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A model whose score rises with an item's age (log-odds +0.1 per day), the same for
    every week's items: a weekly scoring log (each item scored at the end of its week) plus
    every item's score at the end of the period, when last week's items are the youngest."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"L{i}" for i in range(n)])
    published = pd.Timestamp("2026-01-05") + pd.to_timedelta(np.sort(rng.uniform(0, 42, n)), "D")
    base = rng.normal(-2.0, 1.0, n)
    end = pd.Timestamp("2026-02-16")
    week_end = published.to_period("W-SUN").start_time + pd.Timedelta(days=7)

    def scored(at: pd.DatetimeIndex) -> pd.DataFrame:
        age = (at - published) / pd.Timedelta(days=1)
        p = 1 / (1 + np.exp(-(base + 0.1 * np.asarray(age))))
        return pd.DataFrame(
            {"entity": "listing", "item_id": ids, "policy": "counterfeit", "p": p, "scored_at": at}
        )

    log = pd.concat([scored(pd.DatetimeIndex(week_end)), scored(pd.DatetimeIndex([end] * n))])
    return log, pd.DataFrame({"entity": "listing", "item_id": ids, "published_at": published})


def test_a_scoring_log_compares_every_weeks_items_at_the_same_age() -> None:
    from governance.monitoring.drift import prediction_drift, scores_when_new

    log, published = _aging_log(6000)
    first = scores_when_new(log, published, days=7)
    assert len(first) == 6000 and first["item_id"].is_unique  # each item once, when new
    con, config = duckdb.connect(), DriftConfig(min_items=50)
    fair = prediction_drift(con, log, published, config=config)
    assert len(fair) == 4 and (fair["psi"] < 0.1).all()
    # one run at the end of the period: the latest weeks' young items look like drift
    at_end = log[log["scored_at"] == log["scored_at"].max()].drop(columns="scored_at")
    confounded = prediction_drift(con, at_end, published, config=config)
    assert confounded["psi"].max() > 0.25
    # a score taken more than new_item_days after publication is not compared
    late_only = log[log["scored_at"] == log["scored_at"].max()]
    assert len(scores_when_new(late_only, published, days=7)) < 1600


def test_prediction_drift_takes_its_reference_after_the_datas_warm_up() -> None:
    """Items of the first two weeks of data score narrower (their windowed features are cut
    short by the data's start): with a 14-day warm-up the reference is weeks 3-4 and the
    steady weeks after it show no drift; without, every later week drifts."""
    from governance.monitoring.drift import prediction_drift

    rng = np.random.default_rng(5)
    n = 6000
    ids = [f"L{i}" for i in range(n)]
    start = pd.Timestamp("2026-01-05")
    published = start + pd.to_timedelta(np.sort(rng.uniform(0, 42, n)), "D")
    early = np.asarray(published < start + pd.Timedelta(days=14))
    logit = rng.normal(-1.0, np.where(early, 0.4, 1.2))
    preds = pd.DataFrame(
        {"entity": "listing", "item_id": ids, "policy": "any", "p": 1 / (1 + np.exp(-logit))}
    )
    pub = pd.DataFrame({"entity": "listing", "item_id": ids, "published_at": published})
    con = duckdb.connect()
    naive = prediction_drift(con, preds, pub, config=DriftConfig(min_items=50))
    assert (naive["psi"] > 0.25).all() and len(naive) == 4
    warm = DriftConfig(min_items=50, prediction_warmup_days=14)
    fair = prediction_drift(con, preds, pub, config=warm, data_start=start)
    assert len(fair) == 2 and (fair["psi"] < 0.1).all()
    assert (fair["week_start"] >= start + pd.Timedelta(weeks=4)).all()
