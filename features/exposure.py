"""Item activity: exposure per channel, strategy hits per channel and trust outcomes of an item.

Daily exposure rows count only once their day is complete (`day + 1 day <= as_of`), so a
mid-day cutoff never sees traffic from after it. Strategy hits are inputs, not labels: a hit is
a decision taken before the cutoff and not lifted by then.
"""

from __future__ import annotations

from features.schema import Feature, FeatureSet
from features.snapshot import TableInfo
from features.tables import ITEM_TABLES
from features.vocabulary import ENTITY_CHANNELS, Channel, Entity

#: Version of every activity feature set; bump when a definition below changes.
ACTIVITY_VERSION = 1

#: Raw totals the activity tables carry for item features (engagement ratios, spikes).
TOTALS = (
    "impressions_total",
    "clicks_total",
    "orders_total",
    "likes_total",
    "comments_total",
    "shares_total",
    "max_daily_impressions",
    "active_days",
)


def activity_table(entity: Entity) -> str:
    """Snapshot table holding the activity of `entity` items."""
    return f"{entity.value}_activity"


def _has_outcomes(entity: Entity) -> bool:
    return entity is not Entity.SELLER


def _features(entity: Entity) -> tuple[Feature, ...]:
    what = "the seller's items" if entity is Entity.SELLER else "the item"
    channels = ENTITY_CHANNELS[entity]
    out = [*_exposure_features(what, channels), *_strategy_features(channels)]
    if _has_outcomes(entity):
        out += _outcome_features()
    return tuple(out)


def _exposure_features(what: str, channels: tuple[Channel, ...]) -> list[Feature]:
    """Impressions (overall and per channel), clicks, orders, GMV and their ratios."""
    return [
        Feature(
            "exposure_impressions_7d",
            "numeric",
            f"Impressions of {what} over the 7 complete days before the cutoff, all channels.",
            "views",
        ),
        *(
            Feature(
                f"exposure_impressions_7d_{c.value}",
                "numeric",
                f"Impressions of {what} in the {c.value} channel over the last 7 days.",
                "views",
            )
            for c in channels
        ),
        Feature(
            "exposure_clicks_7d",
            "numeric",
            f"Clicks on {what} over the 7 days before the cutoff.",
            "clicks",
        ),
        Feature(
            "exposure_ctr_7d",
            "numeric",
            "Click-through rate over the 7 days before the cutoff (empty without impressions).",
            "clicks/view",
        ),
        Feature(
            "exposure_orders_30d",
            "numeric",
            f"Orders attributed to {what} over the 30 days before the cutoff.",
            "orders",
        ),
        Feature(
            "exposure_gmv_30d",
            "numeric",
            f"Gross merchandise value of {what} over the 30 days before the cutoff.",
            "USD",
        ),
        Feature(
            "exposure_conversion_rate_30d",
            "numeric",
            "Orders per click over the 30 days before the cutoff (empty without clicks).",
            "orders/click",
        ),
    ]


def _strategy_features(channels: tuple[Channel, ...]) -> list[Feature]:
    """Active strategy decisions (overall and per channel) and lifted ones."""
    return [
        Feature(
            "strategy_hit_count",
            "numeric",
            "Strategy decisions on the item taken before the cutoff and not lifted by then.",
            "decisions",
        ),
        *(
            Feature(
                f"strategy_hit_count_{c.value}",
                "numeric",
                f"Active strategy decisions on the item in the {c.value} channel at the cutoff.",
                "decisions",
            )
            for c in channels
        ),
        Feature(
            "strategy_hit_strategies",
            "numeric",
            "Distinct strategies with an active decision on the item at the cutoff.",
            "strategies",
        ),
        Feature(
            "strategy_lifted_count_90d",
            "numeric",
            "Decisions on the item taken in the 90 days before the cutoff and lifted on appeal.",
            "decisions",
        ),
    ]


def _outcome_features() -> list[Feature]:
    """Trust outcomes of the item itself (not of a seller)."""
    return [
        Feature(
            "outcome_complaint_count_30d",
            "numeric",
            "Buyer complaints about the item in the 30 days before the cutoff.",
            "complaints",
        ),
        Feature(
            "outcome_complaint_rate_30d",
            "numeric",
            "Complaints per order of the item over the last 30 days (0 without orders).",
            "complaints/order",
        ),
        Feature(
            "outcome_return_count_30d",
            "numeric",
            "Returns of the item in the 30 days before the cutoff.",
            "returns",
        ),
        Feature(
            "outcome_refund_count_30d",
            "numeric",
            "Refunds for the item in the 30 days before the cutoff.",
            "refunds",
        ),
        Feature(
            "outcome_appeal_count_90d",
            "numeric",
            "Seller appeals about the item in the 90 days before the cutoff.",
            "appeals",
        ),
        Feature(
            "outcome_rating_mean_90d",
            "numeric",
            "Mean review rating of the item over the last 90 days (empty without reviews).",
            "stars (1-5)",
        ),
    ]


def activity_set(entity: Entity) -> FeatureSet:
    """The activity feature set of one target entity (its channels decide the columns)."""
    return FeatureSet(
        name=f"{entity.value}_activity",
        entity=entity.value,
        join_key=ITEM_TABLES[entity].key[0],
        version=ACTIVITY_VERSION,
        description=(
            "Exposure per channel, strategy hits per channel and trust outcomes"
            + (" of the seller's listings, videos and lives." if entity is Entity.SELLER else ".")
        ),
        features=_features(entity),
    )


LISTING_ACTIVITY = activity_set(Entity.LISTING)
VIDEO_ACTIVITY = activity_set(Entity.VIDEO)
LIVE_ACTIVITY = activity_set(Entity.LIVE)
SELLER_ACTIVITY = activity_set(Entity.SELLER)

_RATES_EMPTY_WHEN_UNDEFINED = frozenset(
    {"exposure_ctr_7d", "exposure_conversion_rate_30d", "outcome_rating_mean_90d"}
)


def activity_info(entity: Entity) -> TableInfo:
    """Key and zero-filled columns of an activity snapshot table."""
    names = [f.name for f in activity_set(entity).features] + list(TOTALS)
    return TableInfo(
        key=(ITEM_TABLES[entity].key[0],),
        zero_fill=frozenset(n for n in names if n not in _RATES_EMPTY_WHEN_UNDEFINED),
    )


def _window(column: str, days: int, as_of: str) -> str:
    return f"{column} >= {as_of} - INTERVAL {days} DAY"


def _sum(expr: str, where: str | None = None) -> str:
    flt = f" FILTER (WHERE {where})" if where else ""
    return f"CAST(coalesce(sum({expr}){flt}, 0) AS DOUBLE)"


def _count(where: str) -> str:
    return f"CAST(count(*) FILTER (WHERE {where}) AS DOUBLE)"


def item_aggregates_sql(as_of: str) -> dict[str, str]:
    """Name -> SELECT of the per-item aggregates `exp_item`, `exp_daily`, `dec_item` and
    `out_item`, from the cut views."""
    d7, d30, d90 = (_window("day", n, as_of) for n in (7, 30, 90))
    per_channel = ",\n  ".join(
        _sum("impressions", d7 + f" AND channel = '{c.value}'") + f" AS impressions_7d_{c.value}"
        for c in Channel
    )
    exp_item = f"""
SELECT entity, item_id,
  {_sum("impressions", d7)} AS impressions_7d,
  {per_channel},
  {_sum("clicks", d7)} AS clicks_7d,
  {_sum("impressions", d30)} AS impressions_30d,
  {_sum("likes", d30)} AS likes_30d,
  {_sum("clicks", d30)} AS clicks_30d,
  {_sum("orders", d7)} AS orders_7d,
  {_sum("orders", d30)} AS orders_30d,
  {_sum("orders", d90)} AS orders_90d,
  {_sum("CAST(round(gmv * 100) AS BIGINT)", d30)} AS gmv_cents_30d,
  {_sum("CAST(round(gmv * 100) AS BIGINT)", d90)} AS gmv_cents_90d,
  {_sum("impressions")} AS impressions_total,
  {_sum("clicks")} AS clicks_total,
  {_sum("orders")} AS orders_total,
  {_sum("likes")} AS likes_total,
  {_sum("comments")} AS comments_total,
  {_sum("shares")} AS shares_total
FROM exposure
GROUP BY entity, item_id"""
    exp_daily = """
SELECT entity, item_id,
  CAST(max(daily) AS DOUBLE) AS max_daily_impressions,
  CAST(count(*) AS DOUBLE) AS active_days
FROM (
  SELECT entity, item_id, day, sum(impressions) AS daily
  FROM exposure WHERE entity IN ('video', 'live')
  GROUP BY entity, item_id, day
)
GROUP BY entity, item_id"""
    active = f"(lifted_at IS NULL OR lifted_at >= {as_of})"
    hits_per_channel = ",\n  ".join(
        _count(active + f" AND channel = '{c.value}'") + f" AS hits_{c.value}" for c in Channel
    )
    lifted = _count(_window("decided_at", 90, as_of) + f" AND lifted_at < {as_of}")
    dec_item = f"""
SELECT entity, item_id,
  {_count(active)} AS hits,
  {hits_per_channel},
  CAST(count(DISTINCT strategy_id) FILTER (WHERE {active}) AS DOUBLE) AS strategies,
  {lifted} AS lifted_90d
FROM decisions
GROUP BY entity, item_id"""
    o30, o90 = (_window("occurred_at", n, as_of) for n in (30, 90))
    review = f"kind = 'review' AND value IS NOT NULL AND {o90}"
    out_item = f"""
SELECT entity, item_id,
  {_count("kind = 'complaint' AND " + o30)} AS complaints_30d,
  {_count("kind = 'return' AND " + o30)} AS returns_30d,
  {_count("kind = 'refund' AND " + o30)} AS refunds_30d,
  {_count("kind = 'appeal' AND " + o90)} AS appeals_90d,
  {_sum("CAST(round(value * 1000) AS BIGINT)", review)} AS rating_milli_sum_90d,
  {_count(review)} AS ratings_90d
FROM outcomes
GROUP BY entity, item_id"""
    return {
        "exp_item": exp_item,
        "exp_daily": exp_daily,
        "dec_item": dec_item,
        "out_item": out_item,
    }


def _rate(numerator: str, denominator: str, *, when_zero: str) -> str:
    return f"CASE WHEN {denominator} > 0 THEN {numerator} / {denominator} ELSE {when_zero} END"


def activity_sql(entity: Entity) -> str:
    """SELECT of an entity's activity table (reads the tables of `item_aggregates_sql` and,
    for sellers, `item_seller`)."""
    key = ITEM_TABLES[entity].key[0]
    channels = ENTITY_CHANNELS[entity]
    exposure_cols = [
        "impressions_7d",
        *(f"impressions_7d_{c.value}" for c in channels),
        "clicks_7d",
        "impressions_30d",
        "clicks_30d",
        "orders_30d",
        "gmv_cents_30d",
        *TOTALS[:6],
    ]
    if entity is Entity.SELLER:
        summed = ", ".join(f"sum(e.{c}) AS {c}" for c in exposure_cols)
        exposure_source = f"""(
    SELECT s.seller_id AS item_id, {summed}
    FROM item_seller s JOIN exp_item e ON e.entity = s.entity AND e.item_id = s.item_id
    GROUP BY s.seller_id)"""
    else:
        exposure_source = f"(SELECT * FROM exp_item WHERE entity = '{entity.value}')"

    def e(col: str) -> str:
        return f"coalesce(e.{col}, 0)"

    exposure = [
        f"{e('impressions_7d')} AS exposure_impressions_7d",
        *(
            f"{e(f'impressions_7d_{c.value}')} AS exposure_impressions_7d_{c.value}"
            for c in channels
        ),
        f"{e('clicks_7d')} AS exposure_clicks_7d",
        f"{_rate(e('clicks_7d'), e('impressions_7d'), when_zero='NULL')} AS exposure_ctr_7d",
        f"{e('orders_30d')} AS exposure_orders_30d",
        f"{e('gmv_cents_30d')} / 100.0 AS exposure_gmv_30d",
        f"{_rate(e('orders_30d'), e('clicks_30d'), when_zero='NULL')} "
        "AS exposure_conversion_rate_30d",
    ]
    hits = [
        "coalesce(d.hits, 0) AS strategy_hit_count",
        *(f"coalesce(d.hits_{c.value}, 0) AS strategy_hit_count_{c.value}" for c in channels),
        "coalesce(d.strategies, 0) AS strategy_hit_strategies",
        "coalesce(d.lifted_90d, 0) AS strategy_lifted_count_90d",
    ]
    outcomes: list[str] = []
    outcome_join = ""
    if _has_outcomes(entity):
        outcomes = [
            "coalesce(o.complaints_30d, 0) AS outcome_complaint_count_30d",
            f"{_rate('coalesce(o.complaints_30d, 0)', e('orders_30d'), when_zero='0.0')} "
            "AS outcome_complaint_rate_30d",
            "coalesce(o.returns_30d, 0) AS outcome_return_count_30d",
            "coalesce(o.refunds_30d, 0) AS outcome_refund_count_30d",
            "coalesce(o.appeals_90d, 0) AS outcome_appeal_count_90d",
            f"{_rate('o.rating_milli_sum_90d', 'o.ratings_90d', when_zero='NULL')} / 1000.0 "
            "AS outcome_rating_mean_90d",
        ]
        outcome_join = (
            f"LEFT JOIN out_item o ON o.entity = '{entity.value}' AND o.item_id = i.{key}"
        )
    totals = [f"{e(c)} AS {c}" for c in TOTALS[:6]]
    if entity in (Entity.VIDEO, Entity.LIVE):
        totals += [
            "coalesce(x.max_daily_impressions, 0) AS max_daily_impressions",
            "coalesce(x.active_days, 0) AS active_days",
        ]
        daily_join = f"LEFT JOIN exp_daily x ON x.entity = '{entity.value}' AND x.item_id = i.{key}"
    else:
        totals += ["CAST(0 AS DOUBLE) AS max_daily_impressions", "CAST(0 AS DOUBLE) AS active_days"]
        daily_join = ""
    select = ",\n  ".join([f"i.{key}", *exposure, *hits, *outcomes, *totals])
    return f"""
SELECT
  {select}
FROM {ITEM_TABLES[entity].name} i
LEFT JOIN {exposure_source} e ON e.item_id = i.{key}
LEFT JOIN dec_item d ON d.entity = '{entity.value}' AND d.item_id = i.{key}
{outcome_join}
{daily_join}"""
