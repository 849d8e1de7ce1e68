"""Contract tables from the simulator's integer-coded arrays (exposure, outcomes, decisions)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from experiments.simulator.exposure import CHANNEL_CODES, ENTITY_CODES, DayTraffic
from experiments.simulator.outcomes import KIND_CODES, Events
from experiments.simulator.world import US_PER_DAY, World

NO_TIME = np.iinfo(np.int64).min


def str_array(values: pa.Array | np.ndarray | Sequence[str]) -> pd.Series:
    """A pandas `str` Series (Arrow-backed) from Arrow or object values."""
    return pd.Series(pd.array(values, dtype="str"))


def numbered_ids(prefix: str, numbers: np.ndarray, width: int) -> pd.Series:
    """Ids like `D0000042` for integer `numbers`, zero-padded to `width` digits."""
    digits = pd.Series(np.asarray(numbers, dtype=np.int64)).astype("str").str.zfill(width)
    return (prefix + digits).astype("str")


def _labels(codes: np.ndarray, labels: Sequence[str]) -> pd.Series:
    """Strings for integer codes (-1 = missing)."""
    valid = codes >= 0
    arr = pa.DictionaryArray.from_arrays(
        pa.array(np.where(valid, codes, 0).astype(np.int32), mask=~valid),
        pa.array(list(labels)),
    ).cast(pa.string())
    return str_array(arr)


def _ts(us: np.ndarray) -> np.ndarray:
    out = us.astype("datetime64[us]")
    out[us == NO_TIME] = np.datetime64("NaT")
    return out


class ItemIds:
    """Item ids of every entity in one Arrow array, addressable by (entity code, index)."""

    def __init__(self, world: World) -> None:
        tables = (
            world.listings.table["listing_id"],
            world.videos.table["video_id"],
            world.lives.table["live_id"],
            world.sellers.table["seller_id"],
        )
        sizes = np.asarray([len(t) for t in tables])
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.ids = pa.concat_arrays(
            [pa.array(t.to_numpy(dtype=object), type=pa.string()) for t in tables]
        )

    def take(self, entity: np.ndarray, item: np.ndarray) -> pd.Series:
        """Item ids as a `str` Series."""
        return str_array(self.ids.take(pa.array(self.offsets[entity] + item)))

    def seller_ids(self, seller: np.ndarray) -> pd.Series:
        """Seller ids as a `str` Series."""
        return self.take(np.full(seller.size, 3, dtype=np.int64), seller)


def exposure_frame(ids: ItemIds, traffic: DayTraffic, day_us: int) -> pd.DataFrame:
    """channel_exposure rows of one day (rows without impressions dropped)."""
    t = traffic.take(traffic.impressions > 0)
    gmv = np.round(t.orders * t.price, 2)
    return pd.DataFrame(
        {
            "entity": _labels(t.entity.astype(np.int64), [e.value for e in ENTITY_CODES]),
            "item_id": ids.take(t.entity.astype(np.int64), t.item),
            "channel": _labels(t.channel.astype(np.int64), [c.value for c in CHANNEL_CODES]),
            "day": np.full(t.n, day_us, dtype=np.int64).astype("datetime64[us]"),
            "impressions": t.impressions.astype(np.int64),
            "clicks": t.clicks.astype(np.int64),
            "orders": t.orders.astype(np.int64),
            "gmv": gmv,
            "likes": t.likes.astype(np.int64),
            "comments": t.comments.astype(np.int64),
            "shares": t.shares.astype(np.int64),
        }
    )


def outcomes_frame(ids: ItemIds, events: Events, outcome_no: np.ndarray) -> pd.DataFrame:
    """outcomes rows; `outcome_no` numbers the events (stable ids)."""
    width = max(8, len(str(int(outcome_no.max()) if outcome_no.size else 0)))
    return pd.DataFrame(
        {
            "outcome_id": numbered_ids("O", outcome_no, width),
            "entity": _labels(events.entity.astype(np.int64), [e.value for e in ENTITY_CODES]),
            "item_id": ids.take(events.entity.astype(np.int64), events.item),
            "seller_id": ids.seller_ids(events.seller),
            "channel": _labels(events.channel.astype(np.int64), [c.value for c in CHANNEL_CODES]),
            "kind": _labels(events.kind.astype(np.int64), [k.value for k in KIND_CODES]),
            "occurred_at": _ts(events.occurred_us),
            "value": events.value,
        }
    )


def decisions_frame(
    ids: ItemIds,
    *,
    entity: np.ndarray,
    item: np.ndarray,
    channel: np.ndarray,
    strategy_ids: np.ndarray,
    strategy_versions: np.ndarray,
    actions: np.ndarray,
    decided_us: np.ndarray,
    lifted_us: np.ndarray,
) -> pd.DataFrame:
    """strategy_decisions rows, numbered in order."""
    n = entity.size
    width = max(7, len(str(n)))
    return pd.DataFrame(
        {
            "decision_id": numbered_ids("D", np.arange(1, n + 1), width),
            "entity": _labels(entity.astype(np.int64), [e.value for e in ENTITY_CODES]),
            "item_id": ids.take(entity.astype(np.int64), item),
            "channel": _labels(channel.astype(np.int64), [c.value for c in CHANNEL_CODES]),
            "strategy_id": str_array(strategy_ids.astype(object)),
            "strategy_version": strategy_versions.astype(np.int64),
            "action": str_array(actions.astype(object)),
            "decided_at": _ts(decided_us),
            "lifted_at": _ts(lifted_us),
        }
    )


def day_start_us(world: World, day_index: int) -> int:
    """Midnight of a simulated day, in microseconds since the epoch."""
    return int(np.datetime64(world.config.start, "us").astype(np.int64)) + day_index * US_PER_DAY
