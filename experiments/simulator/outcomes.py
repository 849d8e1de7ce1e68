"""Trust signals after exposure: complaints, returns, refunds, reviews and NPS answers.

Each potential order (and each potential survey answer) draws its events from the day's
event stream whether or not enforcement later removes it; an event is kept only when its
order survived thinning. Violating items draw far more complaints and returns and worse
ratings; blocked items draw none, which is the selection problem audits have to live with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.simulator.exposure import CHANNEL_CODES, DayTraffic
from experiments.simulator.policies import POLICY_INDEX
from experiments.simulator.world import US_PER_DAY, World
from features.vocabulary import Channel, OutcomeKind, Policy

#: Integer codes of outcome kinds in the simulator's arrays.
KIND_CODES: tuple[OutcomeKind, ...] = tuple(OutcomeKind)
_K = {k: i for i, k in enumerate(KIND_CODES)}
_NPS_RESPONSE_RATE = 0.02
_NPS_CHANNEL_OFFSET = {
    Channel.SHOP_TAB: 0.0,
    Channel.CAMPAIGNS: -0.3,
    Channel.SHOP_ADS: -0.5,
    Channel.AFFILIATE: -0.2,
    Channel.VIDEO: 0.1,
    Channel.LIVE: -0.3,
}
_RATING_HONEST = np.cumsum([0.03, 0.03, 0.08, 0.26, 0.60])
_RATING_BAD = np.cumsum([0.22, 0.18, 0.22, 0.20, 0.18])


@dataclass
class Events:
    """Outcome rows as arrays (channel -1 = unknown, value NaN = empty)."""

    entity: np.ndarray
    item: np.ndarray
    seller: np.ndarray
    channel: np.ndarray
    kind: np.ndarray
    occurred_us: np.ndarray
    value: np.ndarray

    @classmethod
    def concat(cls, parts: list[Events]) -> Events:
        """All rows of `parts`, in order."""
        return cls(
            **{k: np.concatenate([getattr(p, k) for p in parts]) for k in cls.__dataclass_fields__}
        )

    def take(self, mask: np.ndarray) -> Events:
        """The rows where `mask` holds."""
        return Events(**{k: v[mask] for k, v in self.__dict__.items()})


def _product_truth(world: World, traffic: DayTraffic) -> np.ndarray:
    """(n_rows, 6) truth relevant to a buyer: the listing's product plus the item's own claims."""
    truth = np.zeros((traffic.n, len(Policy)), dtype=bool)
    lst = traffic.entity == 0
    truth[lst] = world.listings.violates[traffic.item[lst]]
    for code, items in ((1, world.videos), (2, world.lives)):
        m = traffic.entity == code
        linked = items.hidden["listing_idx"][traffic.item[m]]
        t = world.listings.violates[linked].copy()
        mc = POLICY_INDEX[Policy.MISLEADING_CLAIM]
        t[:, mc] |= items.violates[traffic.item[m], mc]
        truth[m] = t
    return truth


def _seller(world: World, traffic: DayTraffic) -> np.ndarray:
    out = np.empty(traffic.n, dtype=np.int64)
    for code, items in ((0, world.listings), (1, world.videos), (2, world.lives)):
        m = traffic.entity == code
        out[m] = items.seller_idx[traffic.item[m]]
    return out


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index, position within row) for `counts[r]` copies of each row r."""
    rows = np.repeat(np.arange(counts.size), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return rows, np.arange(rows.size) - starts


#: One kind of outcome event per potential order: (happened, day offset, kind code, value).
_EventPart = tuple[np.ndarray, np.ndarray, int, np.ndarray]


def day_events(
    world: World,
    full: DayTraffic,
    kept: DayTraffic,
    *,
    day_start_us: int,
    end_us: int,
    rng_events: np.random.Generator,
    rng_thin: np.random.Generator,
    boost: tuple[np.ndarray, np.ndarray] | None = None,
) -> Events:
    """Outcome events caused by one day's surviving orders and clicks; `boost` multiplies
    each traffic row's complaint and return probabilities (planted incidents)."""
    seller = _seller(world, full)
    bad, p_complaint, p_return = _event_probabilities(_product_truth(world, full), boost)
    # orders before NPS answers: both draw from rng_events, in this order
    rows, parts = _order_events(full, kept, bad, p_complaint, p_return, rng_events)
    nps_rows, t_nps, score, nps_alive = _nps_answers(full, kept, bad, rng_events, rng_thin)

    out: list[Events] = []
    for mask, t_days, kind, value in parts:
        r = rows[mask]
        out.append(_events(full, seller, r, t_days[mask], kind, value[mask], day_start_us))
    r = nps_rows[nps_alive]
    out.append(
        _events(
            full, seller, r, t_nps[nps_alive], _K[OutcomeKind.NPS], score[nps_alive], day_start_us
        )
    )
    events = Events.concat(out)
    return events.take(events.occurred_us < end_us)


def _event_probabilities(
    truth: np.ndarray, boost: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bad product, complaint probability, return probability) per traffic row."""
    ix = {p: truth[:, POLICY_INDEX[p]] for p in Policy}
    bad = ix[Policy.COUNTERFEIT] | ix[Policy.LOW_QUALITY] | ix[Policy.MISLEADING_CLAIM]
    bad |= ix[Policy.FAKE_DISCOUNT] | ix[Policy.PROHIBITED_ITEM]
    p_complaint = np.minimum(
        0.012
        + 0.10 * ix[Policy.COUNTERFEIT]
        + 0.06 * ix[Policy.PROHIBITED_ITEM]
        + 0.09 * ix[Policy.MISLEADING_CLAIM]
        + 0.07 * ix[Policy.FAKE_DISCOUNT]
        + 0.12 * ix[Policy.LOW_QUALITY],
        0.6,
    )
    p_return = (
        0.035
        + 0.22 * ix[Policy.LOW_QUALITY]
        + 0.10 * ix[Policy.COUNTERFEIT]
        + 0.05 * ix[Policy.MISLEADING_CLAIM]
        + 0.03 * ix[Policy.FAKE_DISCOUNT]
    )

    if boost is not None:
        p_complaint = np.minimum(p_complaint * boost[0], 0.95)
        p_return = np.minimum(p_return * boost[1], 0.95)
    return bad, p_complaint, p_return


def _order_events(
    full: DayTraffic,
    kept: DayTraffic,
    bad: np.ndarray,
    p_complaint: np.ndarray,
    p_return: np.ndarray,
    rng_events: np.random.Generator,
) -> tuple[np.ndarray, list[_EventPart]]:
    """(traffic row of each potential order, its events by kind): every potential order
    draws its events; they are kept if its position is below the kept orders."""
    rows, pos = _expand(full.orders)
    n = rows.size
    t_order = full.start_frac[rows] + rng_events.random(n) * (1.0 - full.start_frac[rows])
    u = rng_events.random((n, 6))
    d_complaint = 0.3 + rng_events.exponential(2.5, n)
    d_return = 2.0 + rng_events.exponential(5.0, n)
    d_refund = rng_events.uniform(1.0, 4.0, n)
    d_review = 1.5 + rng_events.exponential(4.0, n)
    refund_share = rng_events.uniform(0.3, 1.0, n)
    alive = pos < kept.orders[rows]
    complaint = alive & (u[:, 0] < p_complaint[rows])
    returned = alive & (u[:, 1] < p_return[rows])
    refund_r = returned & (u[:, 2] < 0.85)
    refund_c = complaint & ~returned & (u[:, 2] < 0.25)
    review = alive & (u[:, 3] < 0.12)
    cum = np.where(bad[rows, None], _RATING_BAD, _RATING_HONEST)
    rating = 1.0 + (u[:, 4:5] > cum).sum(axis=1)
    price = full.price[rows]
    t0 = t_order
    parts: list[_EventPart] = [
        (complaint, t0 + d_complaint, _K[OutcomeKind.COMPLAINT], np.full(n, np.nan)),
        (returned, t0 + d_return, _K[OutcomeKind.RETURN], np.full(n, np.nan)),
        (refund_r, t0 + d_return + d_refund, _K[OutcomeKind.REFUND], np.round(price, 2)),
        (
            refund_c,
            t0 + d_complaint + d_refund / 2,
            _K[OutcomeKind.REFUND],
            np.round(price * refund_share, 2),
        ),
        (review, t0 + d_review, _K[OutcomeKind.REVIEW], rating),
    ]
    return rows, parts


def _nps_answers(
    full: DayTraffic,
    kept: DayTraffic,
    bad: np.ndarray,
    rng_events: np.random.Generator,
    rng_thin: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(traffic row, day offset, score, kept) of each potential NPS answer among clicks."""
    nps_full = rng_events.binomial(full.clicks, _NPS_RESPONSE_RATE)
    nps_kept = nps_full.copy()
    partial = (kept.clicks < full.clicks) & (nps_full > 0)
    if partial.any():
        nps_kept[partial] = rng_thin.hypergeometric(
            nps_full[partial], full.clicks[partial] - nps_full[partial], kept.clicks[partial]
        )
    nps_rows, nps_pos = _expand(nps_full)
    m = nps_rows.size
    offset = np.asarray([_NPS_CHANNEL_OFFSET[CHANNEL_CODES[c]] for c in range(len(CHANNEL_CODES))])
    mean = 8.4 + offset[full.channel[nps_rows]] - 2.8 * bad[nps_rows]
    score = np.clip(np.round(rng_events.normal(mean, 1.6)), 0, 10)
    t_nps = (
        full.start_frac[nps_rows]
        + rng_events.random(m) * (1.0 - full.start_frac[nps_rows])
        + rng_events.uniform(0.0, 2.0, m)
    )
    return nps_rows, t_nps, score, nps_pos < nps_kept[nps_rows]


def _events(
    full: DayTraffic,
    seller: np.ndarray,
    rows: np.ndarray,
    t_days: np.ndarray,
    kind: int,
    value: np.ndarray,
    day_start_us: int,
) -> Events:
    return Events(
        entity=full.entity[rows],
        item=full.item[rows],
        seller=seller[rows],
        channel=full.channel[rows].astype(np.int8),
        kind=np.full(rows.size, kind, dtype=np.int8),
        occurred_us=day_start_us + np.round(t_days * US_PER_DAY).astype(np.int64),
        value=value.astype(np.float64),
    )
