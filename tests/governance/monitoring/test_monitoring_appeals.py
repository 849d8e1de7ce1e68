from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from governance.monitoring.alerts import overturn_alerts
from governance.monitoring.appeals import (
    OverturnConfig,
    actioned_items,
    overturn_tests,
    strategy_appeals,
)
from governance.monitoring.tables import ALERTS, STRATEGY_APPEALS, check_frame

START = pd.Timestamp("2026-01-05")
AS_OF = date(2026, 3, 2)  # 56 days


def _world(
    *,
    rise_day: int | None,
    seed: int = 0,
    per_day: int = 20,
    clause_day: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two strategies acting on `per_day` new listings a day in two channels; 5% of actioned
    items are overturned on appeal 0.5-4.7 days later, and rule-a's rate is 25% from
    `rise_day`; from `clause_day` a broken clause adds 20 honest items a day to rule-a, 40%
    of them overturned. Overturned items were appealed, and 10% of the others too."""
    rng = np.random.default_rng(seed)
    decisions, labels = [], []
    for sid, policy in (("rule-a", "counterfeit"), ("rule-b", "fake_discount")):
        for d in range(56):
            rate = 0.25 if sid == "rule-a" and rise_day is not None and d >= rise_day else 0.05
            broken = sid == "rule-a" and clause_day is not None and d >= clause_day
            for i in range(per_day + (20 if broken else 0)):
                item = f"{sid}-{d}-{i}"
                decided = START + pd.Timedelta(days=d)
                overturned = rng.random() < (0.4 if i >= per_day else rate)
                delay = pd.Timedelta(days=float(rng.uniform(0.5, 4.7)))
                for channel in ("shop_tab", "affiliate"):
                    decisions.append(
                        (
                            sid,
                            "listing",
                            item,
                            channel,
                            decided,
                            decided + delay if overturned else pd.NaT,
                        )
                    )
                if overturned or rng.random() < 0.1:
                    labels.append(("listing", item, policy, "appeal", decided + delay))
    dec = pd.DataFrame(
        decisions,
        columns=["strategy_id", "entity", "item_id", "channel", "decided_at", "lifted_at"],
    )
    lab = pd.DataFrame(labels, columns=["entity", "item_id", "policy", "sampling", "reviewed_at"])
    return dec, lab


_POLICIES = {"rule-a": "counterfeit", "rule-b": "fake_discount"}


def test_weekly_rates_count_items_once_and_appeals_on_the_strategys_policy() -> None:
    dec, lab = _world(rise_day=None)
    # an appeal on another policy of the same item must not count for rule-b
    other = lab[lab["item_id"].str.startswith("rule-a")].head(3)
    lab = pd.concat([lab, other.assign(item_id=["rule-b-0-0", "rule-b-0-1", "rule-b-0-2"])])
    items = actioned_items(dec, lab, _POLICIES, as_of=AS_OF)
    assert len(items) == 2 * 56 * 20  # one row per strategy and item, channels merged
    table = strategy_appeals(items, as_of=AS_OF)
    assert check_frame(table, STRATEGY_APPEALS) == []
    assert list(table["week_start"].dt.day_name().unique()) == ["Monday"]
    assert (table["items_actioned"] == 140).all()
    assert table["overturn_rate"].between(0.0, 0.15).all()
    assert (table["appeals"] >= table["overturned"]).all()
    assert table["overturned_share_of_appeals"].between(0.2, 0.6).mean() > 0.8
    assert (
        (table["overturn_rate_low"] <= table["overturn_rate"])
        & (table["overturn_rate"] <= table["overturn_rate_high"])
    ).all()
    # the last week's overturns are still arriving
    assert not table.loc[table["week_start"] == table["week_start"].max(), "complete"].any()
    assert table.loc[table["week_start"] == table["week_start"].min(), "complete"].all()
    b0 = items[items["item_id"].isin(["rule-b-0-0", "rule-b-0-1", "rule-b-0-2"])]
    assert b0["appealed_at"].isna().sum() >= 1  # rule-b's own appeals only


def test_a_planted_overturn_rise_alerts_on_that_strategy_within_two_weeks() -> None:
    dec, lab = _world(rise_day=35)
    config = OverturnConfig()
    items = actioned_items(dec, lab, _POLICIES, as_of=AS_OF)
    tests = overturn_tests(items, as_of=AS_OF, config=config)
    alerts = overturn_alerts(tests, {"rule-a": "team-a"}, config, default_owner="ops")
    assert check_frame(alerts, ALERTS) == []
    assert list(alerts["strategy_id"]) == ["rule-a"] and list(alerts["owner"]) == ["team-a"]
    first = alerts["first_day"].iloc[0]
    # the horizon (5 days) must pass before the first risen items count
    assert START + pd.Timedelta(days=35 + 5) < first <= START + pd.Timedelta(days=35 + 14)
    assert alerts["kind"].iloc[0] == "strategy_overturn" and alerts["value"].iloc[0] >= 2


def test_stable_worlds_stay_within_the_false_alarm_budget() -> None:
    config = OverturnConfig()
    firing_days, tested_days = 0, 0
    for seed in range(10):
        dec, lab = _world(rise_day=None, seed=seed)
        tests = overturn_tests(actioned_items(dec, lab, _POLICIES, as_of=AS_OF), as_of=AS_OF)
        firing_days += int(tests["firing"].notna().sum())
        warm_up = config.horizon_days + config.recent_days + config.baseline_days - 1
        tested_days += tests["day"].nunique() - warm_up
    # family-wise 1% per day across the strategies
    assert firing_days <= config.family_alpha * tested_days
    assert check_frame(overturn_alerts(tests, {}, config, default_owner="ops"), ALERTS) == []


def _new_items() -> pd.DataFrame:
    days = pd.date_range(START, periods=57, freq="D")
    return pd.concat(
        [pd.DataFrame({"day": days, "strategy_id": sid, "new_items": 400}) for sid in _POLICIES]
    )


def test_a_broken_clause_alerts_on_overturns_per_new_item() -> None:
    dec, lab = _world(rise_day=None, clause_day=35, per_day=4)
    config = OverturnConfig()
    items = actioned_items(dec, lab, _POLICIES, as_of=AS_OF)
    plain = overturn_tests(items, as_of=AS_OF, config=config)
    tests = overturn_tests(items, as_of=AS_OF, new_items=_new_items(), config=config)
    fired = tests[tests["firing"].notna()].sort_values("day")
    assert set(fired["strategy_id"]) == {"rule-a"} and fired["firing"].iloc[0] == "per_new_item"
    alerts = overturn_alerts(tests, {}, config, default_owner="ops")
    assert check_frame(alerts, ALERTS) == []
    assert list(alerts["strategy_id"]) == ["rule-a"]
    assert alerts["metric"].iloc[0] == "overturns_per_new_item"
    first = alerts["first_day"].iloc[0]
    # as of midnight t a day-35 decision's overturns within 5 days are all known from t = 40
    assert START + pd.Timedelta(days=35 + 5) <= first <= START + pd.Timedelta(days=35 + 8)
    # per decision the rate rose less, and that test had not fired by then
    fired_plain = plain[plain["firing"].notna()]
    assert fired_plain.empty or fired_plain["day"].min() > first


def test_stable_worlds_with_new_items_stay_within_the_budget() -> None:
    config = OverturnConfig()
    firing_days, tested_days = 0, 0
    for seed in range(10):
        dec, lab = _world(rise_day=None, seed=seed)
        items = actioned_items(dec, lab, _POLICIES, as_of=AS_OF)
        tests = overturn_tests(items, as_of=AS_OF, new_items=_new_items(), config=config)
        firing_days += int(tests["firing"].notna().sum())
        warm_up = config.horizon_days + config.recent_days + config.baseline_days - 1
        tested_days += tests["day"].nunique() - warm_up
    assert firing_days <= config.family_alpha * tested_days
