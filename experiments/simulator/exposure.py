"""Daily traffic: what every live item would get with no enforcement, then thinned by actions.

The potential traffic of a day depends only on the world and the day (its own random stream),
so runs with different strategies see the same potential traffic; enforcement then keeps a
binomial share of the impressions (`block` keeps none) and hypergeometric shares of the clicks,
orders and engagement that came with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.simulator.world import US_PER_DAY, World
from features.vocabulary import Action, Channel, Entity

#: Share of a channel's impressions an action keeps.
ACTION_KEEP: dict[Action, float] = {
    Action.BLOCK: 0.0,
    Action.DEMOTE: 0.3,
    Action.LIMIT_EXPOSURE: 0.5,
}
#: Integer codes of entities and channels in the simulator's arrays.
ENTITY_CODES: tuple[Entity, ...] = (Entity.LISTING, Entity.VIDEO, Entity.LIVE, Entity.SELLER)
CHANNEL_CODES: tuple[Channel, ...] = tuple(Channel)
_CH = {c: i for i, c in enumerate(CHANNEL_CODES)}

_LISTING_BASE = {
    Channel.SHOP_TAB: 12.0,
    Channel.CAMPAIGNS: 14.0,
    Channel.SHOP_ADS: 10.0,
    Channel.AFFILIATE: 5.0,
}
_LISTING_CTR = {
    Channel.SHOP_TAB: 0.07,
    Channel.CAMPAIGNS: 0.09,
    Channel.SHOP_ADS: 0.05,
    Channel.AFFILIATE: 0.08,
}
_CVR = 0.14
_AFFILIATE_SHARE = 0.3


@dataclass
class DayTraffic:
    """Rows (item x channel) of one day's traffic; counts are potential until thinned."""

    entity: np.ndarray
    item: np.ndarray
    channel: np.ndarray
    start_frac: np.ndarray
    price: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    orders: np.ndarray
    likes: np.ndarray
    comments: np.ndarray
    shares: np.ndarray

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.entity.size)

    def take(self, mask: np.ndarray) -> DayTraffic:
        """The rows where `mask` holds."""
        return DayTraffic(**{k: v[mask] for k, v in self.__dict__.items()})


def _weekday_factor(day_us: int) -> float:
    weekday = int((day_us // US_PER_DAY + 3) % 7)  # 1970-01-01 was a Thursday -> 0 = Monday
    return 1.15 if weekday >= 5 else 1.0


def _campaign_boost(day_index: int) -> float:
    """Mega-sale days every two weeks double campaign traffic."""
    return 2.0 if day_index % 14 in (11, 12) else 1.0


def potential_traffic(
    world: World, day_index: int, rng: np.random.Generator, *, traffic_scale: float
) -> DayTraffic:
    """Every alive item's traffic on day `day_index` as if no strategy acted."""
    start_us = int(np.datetime64(world.config.start, "us").astype(np.int64))
    t0 = start_us + day_index * US_PER_DAY
    t1 = t0 + US_PER_DAY
    parts = [
        _listing_traffic(world, day_index, t0, t1, rng, traffic_scale),
        _promotion_traffic(world, Entity.VIDEO, t0, t1, rng, traffic_scale),
        _promotion_traffic(world, Entity.LIVE, t0, t1, rng, traffic_scale),
    ]
    merged = DayTraffic(
        **{
            k: np.concatenate([getattr(p, k) for p in parts])
            for k in DayTraffic.__dataclass_fields__
        }
    )
    return merged


def _alive(created_us: np.ndarray, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_alive = int(np.searchsorted(created_us, t1, side="left"))
    idx = np.arange(n_alive)
    created = created_us[:n_alive]
    start_frac = np.clip((created - t0) / US_PER_DAY, 0.0, 1.0)
    age = np.maximum((t0 - created) / US_PER_DAY, 0.0)
    return idx, start_frac, age


def _listing_traffic(
    world: World, day_index: int, t0: int, t1: int, rng: np.random.Generator, scale: float
) -> DayTraffic:
    lst = world.listings
    h = lst.hidden
    idx, start_frac, age = _alive(lst.created_us, t0, t1)
    decay = 0.015 + 0.985 * np.exp(-age / 8.0)
    lam0 = scale * h["appeal"][idx] * decay * (1.0 - start_frac) * _weekday_factor(t0)
    member = {
        Channel.SHOP_TAB: np.ones(idx.size, dtype=bool),
        Channel.CAMPAIGNS: h["in_campaigns"][idx],
        Channel.SHOP_ADS: h["in_ads"][idx],
        Channel.AFFILIATE: h["in_affiliate"][idx],
    }
    scheme = h["scheme"][idx]
    cvr = _CVR * np.where(scheme[:, 0], 1.4, 1.0) * np.where(scheme[:, 4], 1.2, 1.0)
    rows_item, rows_ch, rows_lam, rows_ctr, rows_cvr = [], [], [], [], []
    for channel, base in _LISTING_BASE.items():
        m = member[channel]
        boost = _campaign_boost(day_index) if channel is Channel.CAMPAIGNS else 1.0
        ctr = _LISTING_CTR[channel] * np.where(
            scheme[m, 3] & (channel is Channel.CAMPAIGNS), 1.3, 1.0
        )
        rows_item.append(idx[m])
        rows_ch.append(np.full(int(m.sum()), _CH[channel], dtype=np.int8))
        rows_lam.append(lam0[m] * base * boost)
        rows_ctr.append(ctr)
        rows_cvr.append(cvr[m])
    item = np.concatenate(rows_item)
    lam = np.concatenate(rows_lam)
    impressions = rng.poisson(lam)
    clicks = rng.binomial(impressions, np.concatenate(rows_ctr))
    orders = rng.binomial(clicks, np.concatenate(rows_cvr))
    zeros = np.zeros(item.size, dtype=np.int64)
    return DayTraffic(
        entity=np.zeros(item.size, dtype=np.int8),
        item=item,
        channel=np.concatenate(rows_ch),
        start_frac=start_frac[item],
        price=h["price"][item],
        impressions=impressions,
        clicks=clicks,
        orders=orders,
        likes=zeros,
        comments=zeros.copy(),
        shares=zeros.copy(),
    )


def _promotion_traffic(
    world: World, entity: Entity, t0: int, t1: int, rng: np.random.Generator, scale: float
) -> DayTraffic:
    items = world.items(entity)
    h = items.hidden
    live = entity is Entity.LIVE
    idx, start_frac, age = _alive(items.created_us, t0, t1)
    age_day = np.where(items.created_us[idx] >= t0, 0, np.ceil(age)).astype(np.int64)
    if live:
        keep = age_day <= 14
        idx, start_frac, age_day = idx[keep], start_frac[keep], age_day[keep]
    reach = scale * h["followers"][idx] * h["reach"][idx]
    if live:
        session = reach * np.sqrt(h["duration_minutes"][idx] / 75.0)
        replay = 0.15 * np.exp(-(age_day - 1) / 2.0)
        lam_org = np.where(age_day == 0, session, session * replay)
        bots = h["scheme"][idx, 2] & (age_day == 0)
        lam_bot = np.where(bots, session * h["bot_boost"][idx] / 3.0, 0.0)
    else:
        lam_org = reach * (np.exp(-age_day / 2.5) + 0.01) * (1.0 - start_frac)
        viral = h["viral"][idx] & (age_day == h["viral_day"][idx])
        lam_org = np.where(viral, lam_org * h["viral_boost"][idx], lam_org)
        bot_days = (age_day >= h["bot_day"][idx]) & (age_day <= h["bot_day"][idx] + 1)
        lam_bot = np.where(h["scheme"][idx, 2] & bot_days, reach * h["bot_boost"][idx], 0.0)
    own = Channel.LIVE if live else Channel.VIDEO
    aff = h["in_affiliate"][idx]
    item = np.concatenate([idx, idx[aff]])
    channel = np.concatenate(
        [
            np.full(idx.size, _CH[own], dtype=np.int8),
            np.full(int(aff.sum()), _CH[Channel.AFFILIATE], dtype=np.int8),
        ]
    )
    lam_o = np.concatenate([lam_org, _AFFILIATE_SHARE * lam_org[aff]])
    lam_b = np.concatenate([lam_bot, np.zeros(int(aff.sum()))])
    n_org = rng.poisson(lam_o)
    n_bot = rng.poisson(lam_b)
    bought = h["bought_likes"][item]
    like_rate = (0.04 if live else 0.05) * h["like_factor"][item]
    comment_rate = (0.012 if live else 0.005) * h["like_factor"][item]
    share_rate = 0.002 if live else 0.003
    likes = rng.binomial(n_org, like_rate) + rng.binomial(n_bot, np.where(bought, 0.05, 0.002))
    comments = rng.binomial(n_org, comment_rate) + rng.binomial(n_bot, 0.0003)
    shares = rng.binomial(n_org, share_rate) + rng.binomial(n_bot, 0.0001)
    clicks = rng.binomial(n_org, 0.03 if live else 0.015) + rng.binomial(n_bot, 0.0005)
    orders = rng.binomial(clicks, _CVR)
    code = ENTITY_CODES.index(entity)
    return DayTraffic(
        entity=np.full(item.size, code, dtype=np.int8),
        item=item,
        channel=channel,
        start_frac=np.concatenate([start_frac, start_frac[aff]]),
        price=h["price"][item],
        impressions=n_org + n_bot,
        clicks=clicks,
        orders=orders,
        likes=likes,
        comments=comments,
        shares=shares,
    )


def thin(traffic: DayTraffic, keep: np.ndarray, rng: np.random.Generator) -> DayTraffic:
    """Traffic that survives enforcement: each row keeps a `keep` share of its impressions."""
    out = DayTraffic(**{k: v.copy() for k, v in traffic.__dict__.items()})
    blocked = keep <= 0.0
    for name in ("impressions", "clicks", "orders", "likes", "comments", "shares"):
        getattr(out, name)[blocked] = 0
    partial = np.flatnonzero((keep > 0.0) & (keep < 1.0) & (traffic.impressions > 0))
    if partial.size == 0:
        return out
    n = traffic.impressions[partial]
    kept = rng.binomial(n, keep[partial])
    clicks = traffic.clicks[partial]
    kept_clicks = _hyper(rng, clicks, n - clicks, kept)
    orders = traffic.orders[partial]
    out.orders[partial] = _hyper(rng, orders, clicks - orders, kept_clicks)
    out.clicks[partial] = kept_clicks
    for name in ("likes", "comments", "shares"):
        good = getattr(traffic, name)[partial]
        getattr(out, name)[partial] = _hyper(rng, good, np.maximum(n - good, 0), kept)
    out.impressions[partial] = kept
    return out


def _hyper(
    rng: np.random.Generator, good: np.ndarray, bad: np.ndarray, sample: np.ndarray
) -> np.ndarray:
    out = np.zeros(good.size, dtype=np.int64)
    m = (sample > 0) & (good > 0)
    if m.any():
        sample_m = np.minimum(sample[m], good[m] + bad[m])
        out[m] = rng.hypergeometric(good[m], bad[m], sample_m)
    return out
