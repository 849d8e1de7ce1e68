"""The daily loop: nightly enforcement, appeals and lifts, traffic and its outcomes.

Day `d` starts at midnight `T_d`. First, upheld appeals reviewed before `T_d` lift their
decisions. Then (from day 1) the nightly run builds feature frames from every table row
strictly before `T_d` and applies the active strategies; each match becomes one decision per
channel of the strategy, effective at `T_d`. A strategy never actions the same item and
channel twice, and an item whose appeal on a policy was upheld is exempt from that policy
afterwards. Then the day's traffic is drawn and thinned by the decisions active at `T_d`, and
its outcomes are drawn. Items therefore get their first (partial) day of traffic unconstrained.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from experiments.simulator import assembly
from experiments.simulator.assembly import NO_TIME, ItemIds
from experiments.simulator.exposure import (
    ACTION_KEEP,
    CHANNEL_CODES,
    ENTITY_CODES,
    DayTraffic,
    potential_traffic,
    thin,
)
from experiments.simulator.outcomes import KIND_CODES, Events, day_events
from experiments.simulator.policies import POLICY_INDEX
from experiments.simulator.streams import Streams, day_rng, keyed_uniform, stream_key
from experiments.simulator.world import US_PER_DAY, World
from features.vocabulary import Action, Channel, Entity, OutcomeKind, Policy

if TYPE_CHECKING:
    from experiments.simulator.arms import ExperimentArms
    from governance.strategy import Strategy


class BuildFramesFn(Protocol):
    """`features.build.build_frames`: one feature frame per entity from tables before as_of."""

    def __call__(
        self,
        tables: Mapping[str, pd.DataFrame],
        *,
        as_of: datetime,
        entities: Sequence[Entity],
    ) -> Mapping[Entity, pd.DataFrame]: ...


#: `governance.evaluator.strategy_masks`: a row mask per strategy ref on one entity's frame.
EvaluateFn = Callable[[Sequence[Any], pd.DataFrame], Mapping[str, np.ndarray]]

_PURPOSE_APPEAL = 11
_PURPOSE_APPEAL_DELAY = 12
_PURPOSE_REVIEW_DELAY = 13
_PURPOSE_REVIEWER = 14
_PURPOSE_FLIP = 15
_PURPOSE_OVERMATCH = 16
_N_CHANNELS = len(CHANNEL_CODES)
_ITEM_KEY = np.int64(2**36)


@dataclass
class RunLog:
    """One nightly enforcement run."""

    as_of: datetime
    full: bool
    n_evaluated: dict[str, int]
    n_new_decisions: int
    seconds_frames: float
    seconds_evaluate: float


@dataclass
class DecisionLog:
    """Every decision so far as parallel arrays (lifted_us NO_TIME = never lifted)."""

    entity: list[np.ndarray] = field(default_factory=list)
    item: list[np.ndarray] = field(default_factory=list)
    channel: list[np.ndarray] = field(default_factory=list)
    strategy: list[np.ndarray] = field(default_factory=list)
    decided_us: list[np.ndarray] = field(default_factory=list)
    lifted_us: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(
        self, entity: int, item: np.ndarray, channels: Sequence[int], strategy: int, at_us: int
    ) -> None:
        """Record one decision per (item, channel)."""
        n = item.size * len(channels)
        if n == 0:
            return
        self.entity.append(np.full(n, entity, dtype=np.int8))
        self.item.append(np.repeat(item, len(channels)))
        self.channel.append(np.tile(np.asarray(channels, dtype=np.int8), item.size))
        self.strategy.append(np.full(n, strategy, dtype=np.int16))
        self.decided_us.append(np.full(n, at_us, dtype=np.int64))
        self.lifted_us = np.concatenate([self.lifted_us, np.full(n, NO_TIME, dtype=np.int64)])

    def arrays(self) -> dict[str, np.ndarray]:
        """All columns concatenated."""
        cols: dict[str, np.ndarray] = {}
        for name, dtype in (
            ("entity", np.int8),
            ("item", np.int64),
            ("channel", np.int8),
            ("strategy", np.int16),
            ("decided_us", np.int64),
        ):
            parts = getattr(self, name)
            cols[name] = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        cols["lifted_us"] = self.lifted_us
        return cols

    @property
    def n(self) -> int:
        """Number of decisions."""
        return int(self.lifted_us.size)


@dataclass
class AppealLog:
    """Appeals filed against first actions on (item, policy), with their review."""

    entity: list[np.ndarray] = field(default_factory=list)
    item: list[np.ndarray] = field(default_factory=list)
    policy: list[np.ndarray] = field(default_factory=list)
    appeal_us: list[np.ndarray] = field(default_factory=list)
    review_us: list[np.ndarray] = field(default_factory=list)
    reviewer: list[np.ndarray] = field(default_factory=list)
    truth: list[np.ndarray] = field(default_factory=list)
    verdict: list[np.ndarray] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        """All columns concatenated."""
        out: dict[str, np.ndarray] = {}
        for name in self.__dataclass_fields__:
            parts = getattr(self, name)
            out[name] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return out


@dataclass
class History:
    """What happened over the period: traffic, outcomes, decisions, appeals, runs."""

    exposure: list[pd.DataFrame]
    events: Events
    decisions: DecisionLog
    appeals: AppealLog
    runs: list[RunLog]


@dataclass(frozen=True)
class _Strat:
    index: int
    strategy: Any
    entity: Entity
    entity_code: int
    policy: int
    channels: tuple[int, ...]
    keep: float


class Marketplace:
    """Runs the daily loop over a world with a fixed set of active strategies."""

    def __init__(
        self,
        world: World,
        strategies: Sequence[Strategy],
        *,
        streams: Streams,
        reviewer_noise: np.ndarray,
        build_frames_fn: BuildFramesFn | None,
        evaluate_fn: EvaluateFn | None,
        progress: Callable[[int, int], None] | None = None,
        arms: ExperimentArms | None = None,
    ) -> None:
        self.world = world
        self.arms = arms
        self._experiment_started = False
        self.config = world.config
        self.streams = streams
        self.reviewer_noise = reviewer_noise
        self.build_frames_fn = build_frames_fn
        self.evaluate_fn = evaluate_fn
        self.progress = progress
        self.ids = ItemIds(world)
        self.strats = [
            _Strat(
                index=i,
                strategy=s,
                entity=Entity(s.entity),
                entity_code=ENTITY_CODES.index(Entity(s.entity)),
                policy=POLICY_INDEX[Policy(s.policy)],
                channels=tuple(CHANNEL_CODES.index(c) for c in s.channels),
                keep=ACTION_KEEP[Action(s.action)],
            )
            for i, s in enumerate(strategies)
        ]
        if self.strats and (build_frames_fn is None or evaluate_fn is None):
            raise ValueError(
                "strategies need build_frames_fn and evaluate_fn (features.build.build_frames "
                "and governance.evaluator.strategy_masks)"
            )
        self._key = stream_key(streams.dynamics)
        n = {e: world.items(e).n for e in ENTITY_CODES}
        self._decided = [np.zeros(n[s.entity], dtype=bool) for s in self.strats]
        self._actioned = {
            c: np.zeros((n[e], len(Policy)), dtype=bool) for c, e in enumerate(ENTITY_CODES)
        }
        self._exempt = {
            c: np.zeros((n[e], len(Policy)), dtype=bool) for c, e in enumerate(ENTITY_CODES)
        }
        self._id_index = {
            e: pd.Index(world.items(e).table.iloc[:, 0].to_numpy(dtype=object))
            for e in ENTITY_CODES
        }
        self.decisions = DecisionLog()
        self.appeals = AppealLog()
        self._pending: list[dict[str, np.ndarray]] = []
        self._events: list[Events] = []
        self._exposure: list[pd.DataFrame] = []
        self.runs: list[RunLog] = []
        self._start_us = assembly.day_start_us(world, 0)
        self.end_us = assembly.day_start_us(world, self.config.days)

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> History:
        """Simulate every day of the period."""
        days = self.config.days
        for d in range(days):
            t0 = self._start_us + d * US_PER_DAY
            self._apply_lifts(t0)
            if d >= 1 and self.strats:
                self._enforce(d, t0)
            full = potential_traffic(
                self.world,
                d,
                day_rng(self.streams.dynamics, d, 0),
                traffic_scale=self.config.traffic_scale,
            )
            keep = self._keep(full.entity, full.item, full.channel, t0)
            kept = thin(full, keep, day_rng(self.streams.dynamics, d, 1))
            self._exposure.append(assembly.exposure_frame(self.ids, kept, t0))
            self._events.append(
                day_events(
                    self.world,
                    full,
                    kept,
                    day_start_us=t0,
                    end_us=self.end_us,
                    rng_events=day_rng(self.streams.dynamics, d, 2),
                    rng_thin=day_rng(self.streams.dynamics, d, 3),
                    boost=self._incident_boost(d, full),
                )
            )
            if self.progress is not None:
                self.progress(d + 1, days)
        self._apply_lifts(self.end_us)
        return History(
            exposure=self._exposure,
            events=Events.concat(self._events) if self._events else _no_events(),
            decisions=self.decisions,
            appeals=self.appeals,
            runs=self.runs,
        )

    def _incident_boost(
        self, day_index: int, full: DayTraffic
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Complaint and return multipliers per traffic row from the planted incidents."""
        surges = [
            i
            for i in self.config.incidents
            if i.kind in ("complaint_surge", "return_surge") and day_index >= i.start_day
        ]
        if not surges:
            return None
        complaint = np.ones(full.n)
        returns = np.ones(full.n)
        category: np.ndarray | None = None
        for inc in surges:
            hit = np.ones(full.n, dtype=bool)
            if inc.channel is not None:
                hit &= full.channel == CHANNEL_CODES.index(Channel(inc.channel))
            if inc.category is not None:
                if category is None:
                    category = self._row_category(full)
                hit &= category == inc.category
            target = complaint if inc.kind == "complaint_surge" else returns
            target[hit] *= inc.factor
        return complaint, returns

    def _row_category(self, full: DayTraffic) -> np.ndarray:
        codes = self.world.listings.table["category"].to_numpy(dtype=object)
        listing = full.item.copy()
        for code, items in ((1, self.world.videos), (2, self.world.lives)):
            m = full.entity == code
            listing[m] = items.hidden["listing_idx"][full.item[m]]
        out = np.full(full.n, "", dtype=object)
        own = full.entity <= 2
        out[own] = codes[listing[own]]
        return out

    def _out_of_order(self, strategy_id: str, day_index: int) -> bool:
        """Whether a planted outage stops `strategy_id` from matching on this night."""
        return any(
            i.kind == "strategy_outage"
            and i.strategy_id == strategy_id
            and day_index >= i.start_day
            for i in self.config.incidents
        )

    def _overmatch(
        self, s: _Strat, mask: np.ndarray, items: np.ndarray, day_index: int
    ) -> np.ndarray:
        """A planted broken clause: the strategy also matches a share of the honest items
        (the same items each night: one uniform per item and policy)."""
        share = max(
            (
                i.share
                for i in self.config.incidents
                if i.kind == "strategy_overmatch"
                and i.strategy_id == s.strategy.id
                and day_index >= i.start_day
            ),
            default=0.0,
        )
        if share == 0.0:
            return mask
        honest = ~self.world.items(s.entity).violates[items, s.policy]
        u = keyed_uniform(self._key, _PURPOSE_OVERMATCH, s.entity_code, items, s.policy)
        return np.asarray(mask | (honest & (u < share)), dtype=bool)

    # -- tables as of a time ------------------------------------------------------------------

    def tables_at(self, as_of_us: int) -> dict[str, pd.DataFrame]:
        """Every contract table (but audit_labels) restricted to rows strictly before as_of."""
        w = self.world

        def head(df: pd.DataFrame, created_us: np.ndarray) -> pd.DataFrame:
            return df.iloc[: int(np.searchsorted(created_us, as_of_us, side="left"))]

        creators_us = w.creator_hidden["registered_us"]
        tables = {
            "sellers": head(w.sellers.table, w.sellers.created_us),
            "creators": head(w.creators, creators_us),
            "listings": head(w.listings.table, w.listings.created_us),
            "videos": head(w.videos.table, w.videos.created_us),
            "live_sessions": head(w.lives.table, w.lives.created_us),
        }
        exposure = pd.concat(self._exposure, ignore_index=True) if self._exposure else None
        tables["channel_exposure"] = exposure if exposure is not None else _empty_exposure(self.ids)
        events = Events.concat(self._events) if self._events else _no_events()
        numbers = np.arange(1, events.entity.size + 1)
        before = events.occurred_us < as_of_us
        tables["outcomes"] = assembly.outcomes_frame(self.ids, events.take(before), numbers[before])
        tables["strategy_decisions"] = self.decisions_frame(as_of_us=as_of_us)
        return tables

    def decisions_frame(self, *, as_of_us: int | None = None) -> pd.DataFrame:
        """strategy_decisions so far; lifts at or after `as_of_us` are not yet known."""
        d = self.decisions.arrays()
        lifted = d["lifted_us"].copy()
        if as_of_us is not None:
            lifted[lifted >= as_of_us] = NO_TIME
        refs = [s.strategy for s in self.strats]
        sid = np.asarray([s.id for s in refs] or [""], dtype=object)
        ver = np.asarray([s.version for s in refs] or [1], dtype=np.int64)
        act = np.asarray([Action(s.action).value for s in refs] or [""], dtype=object)
        idx = d["strategy"].astype(np.int64)
        return assembly.decisions_frame(
            self.ids,
            entity=d["entity"],
            item=d["item"],
            channel=d["channel"],
            strategy_ids=sid[idx],
            strategy_versions=ver[idx],
            actions=act[idx],
            decided_us=d["decided_us"],
            lifted_us=lifted,
        )

    # -- enforcement ------------------------------------------------------------------------

    def _enforce(self, day_index: int, t0: int) -> None:
        assert self.build_frames_fn is not None and self.evaluate_fn is not None
        as_of = pd.Timestamp(t0, unit="us").to_pydatetime()
        every = self.config.full_evaluation_every_days
        full = every <= 1 or (day_index - 1) % every == 0
        entities = sorted({s.entity for s in self.strats}, key=ENTITY_CODES.index)
        tick = time.perf_counter()
        tables = self.tables_at(t0)
        frames = self.build_frames_fn(tables, as_of=as_of, entities=tuple(entities))
        seconds_frames = time.perf_counter() - tick
        tick = time.perf_counter()
        experiment_on = self.arms is not None and self.arms.active(t0)
        if experiment_on and not self._experiment_started:
            self._start_experiment(t0)
        n_new = 0
        n_evaluated: dict[str, int] = {}
        for entity in entities:
            strats = [s for s in self.strats if s.entity is entity]
            frame = frames[entity]
            items = self._id_index[entity].get_indexer(frame["item_id"].to_numpy(dtype=object))
            if (items < 0).any():
                raise ValueError(
                    f"the {entity.value} frame has item_ids that are not in the simulated tables"
                )
            if not full and entity is not Entity.SELLER:
                created = self.world.items(entity).created_us[items]
                fresh = created >= t0 - self.config.fresh_item_days * US_PER_DAY
                frame, items = frame.iloc[np.flatnonzero(fresh)], items[fresh]
            n_evaluated[entity.value] = len(frame)
            if len(frame) == 0:
                continue
            masks = self.evaluate_fn([s.strategy for s in strats], frame.reset_index(drop=True))
            for s in strats:
                if self._out_of_order(s.strategy.id, day_index):
                    continue
                mask = np.asarray(masks[s.strategy.ref], dtype=bool)
                mask = self._overmatch(s, mask, items, day_index)
                mask = self._arm_mask(s, mask, items, experiment_on=experiment_on)
                hit = items[mask]
                new = hit[
                    ~self._decided[s.index][hit] & ~self._exempt[s.entity_code][hit, s.policy]
                ]
                if new.size == 0:
                    continue
                self._decided[s.index][new] = True
                self.decisions.add(s.entity_code, new, s.channels, s.index, t0)
                n_new += new.size * len(s.channels)
                first = new[~self._actioned[s.entity_code][new, s.policy]]
                self._actioned[s.entity_code][first, s.policy] = True
                self._file_appeals(s, first, t0)
        self.runs.append(
            RunLog(
                as_of=as_of,
                full=full,
                n_evaluated=n_evaluated,
                n_new_decisions=n_new,
                seconds_frames=seconds_frames,
                seconds_evaluate=time.perf_counter() - tick,
            )
        )

    def _arm_mask(
        self, s: _Strat, mask: np.ndarray, items: np.ndarray, *, experiment_on: bool
    ) -> np.ndarray:
        """Restrict the experiment's versions to their arm (treatment acts only while on)."""
        if self.arms is None:
            return mask
        ref = s.strategy.ref
        if ref == self.arms.treatment:
            if not experiment_on:
                return np.zeros_like(mask)
            return np.asarray(mask & self.arms.treated[s.entity_code][items], dtype=bool)
        if ref == self.arms.control and experiment_on:
            return np.asarray(mask & ~self.arms.treated[s.entity_code][items], dtype=bool)
        return mask

    def _start_experiment(self, t0: int) -> None:
        """Lift the control version's standing decisions on treatment-arm items."""
        assert self.arms is not None
        self._experiment_started = True
        if self.decisions.n == 0:
            return
        d = self.decisions.arrays()
        control = [s.index for s in self.strats if s.strategy.ref == self.arms.control]
        lift = np.isin(d["strategy"], control) & (self.decisions.lifted_us == NO_TIME)
        for code, treated in self.arms.treated.items():
            sel = lift & (d["entity"] == code)
            lift[sel] = treated[d["item"][sel]]
        self.decisions.lifted_us[lift] = t0

    def _file_appeals(self, s: _Strat, items: np.ndarray, t0: int) -> None:
        if items.size == 0:
            return
        e, p = s.entity_code, s.policy
        truth = self.world.items(s.entity).violates[items, p]
        rate = np.where(
            truth,
            self.config.appeal_rate_violating,
            self.config.appeal_rate_honest * (1.0 if s.keep == 0.0 else 0.4),
        )
        k = self._key
        appeals = keyed_uniform(k, _PURPOSE_APPEAL, e, items, p) < rate
        items, truth = items[appeals], truth[appeals]
        if items.size == 0:
            return
        appeal_us = t0 + np.round(
            (0.2 + 2.5 * keyed_uniform(k, _PURPOSE_APPEAL_DELAY, e, items, p)) * US_PER_DAY
        ).astype(np.int64)
        review_us = appeal_us + np.round(
            (0.3 + 1.7 * keyed_uniform(k, _PURPOSE_REVIEW_DELAY, e, items, p)) * US_PER_DAY
        ).astype(np.int64)
        n_rev = self.reviewer_noise.size
        reviewer = np.minimum(
            (keyed_uniform(k, _PURPOSE_REVIEWER, e, items, p) * n_rev).astype(np.int64), n_rev - 1
        )
        flip = keyed_uniform(k, _PURPOSE_FLIP, e, items, p) < self.reviewer_noise[reviewer]
        verdict = truth ^ flip
        record = {
            "entity": np.full(items.size, e, dtype=np.int8),
            "item": items,
            "policy": np.full(items.size, p, dtype=np.int8),
            "appeal_us": appeal_us,
            "review_us": review_us,
            "reviewer": reviewer,
            "truth": truth,
            "verdict": verdict,
        }
        for name, values in record.items():
            getattr(self.appeals, name).append(values)
        self._pending.append(record)
        seller = self.world.items(s.entity).seller_idx[items]
        in_period = appeal_us < self.end_us
        self._events.append(
            Events(
                entity=record["entity"][in_period],
                item=items[in_period],
                seller=seller[in_period],
                channel=np.full(int(in_period.sum()), -1, dtype=np.int8),
                kind=np.full(
                    int(in_period.sum()), KIND_CODES.index(OutcomeKind.APPEAL), dtype=np.int8
                ),
                occurred_us=appeal_us[in_period],
                value=np.full(int(in_period.sum()), np.nan),
            )
        )

    def _apply_lifts(self, t0: int) -> None:
        """Upheld appeals reviewed by t0 lift the (item, policy) decisions made before review."""
        if not self._pending or self.decisions.n == 0:
            return
        pending = {k: np.concatenate([r[k] for r in self._pending]) for k in self._pending[0]}
        due = pending["review_us"] <= t0
        if not due.any():
            return
        self._pending = [{k: v[~due] for k, v in pending.items()}]
        upheld = due & ~pending["verdict"]
        if not upheld.any():
            return
        e, item, p = pending["entity"][upheld], pending["item"][upheld], pending["policy"][upheld]
        review = pending["review_us"][upheld]
        for code in np.unique(e):
            m = e == code
            self._exempt[int(code)][item[m], p[m]] = True
        d = self.decisions.arrays()
        dpol = np.asarray([s.policy for s in self.strats], dtype=np.int64)[d["strategy"]]
        dkey = self._pair_key(d["entity"], d["item"], dpol)
        akey = self._pair_key(e, item, p)
        order = np.argsort(akey)
        pos = np.searchsorted(akey[order], dkey)
        pos = np.minimum(pos, akey.size - 1)
        match = akey[order][pos] == dkey
        review_for = review[order][pos]
        lift = match & (d["decided_us"] <= review_for) & (self.decisions.lifted_us == NO_TIME)
        self.decisions.lifted_us[lift] = review_for[lift]

    @staticmethod
    def _pair_key(entity: np.ndarray, item: np.ndarray, policy: np.ndarray) -> np.ndarray:
        key = (entity.astype(np.int64) * _ITEM_KEY + item.astype(np.int64)) * 8 + policy
        return np.asarray(key, dtype=np.int64)

    # -- exposure multipliers ------------------------------------------------------------------

    def _keep(
        self, entity: np.ndarray, item: np.ndarray, channel: np.ndarray, t0: int
    ) -> np.ndarray:
        """Share of each traffic row's impressions the decisions active at t0 let through."""
        keep = np.ones(entity.size)
        if self.decisions.n == 0:
            return keep
        d = self.decisions.arrays()
        active = (d["decided_us"] <= t0) & ((d["lifted_us"] == NO_TIME) | (d["lifted_us"] > t0))
        if not active.any():
            return keep
        s_keep = np.asarray([s.keep for s in self.strats])[d["strategy"][active]]
        de, di, dc = d["entity"][active], d["item"][active], d["channel"][active]
        seller_code = ENTITY_CODES.index(Entity.SELLER)
        on_item = de != seller_code
        row_key = (entity.astype(np.int64) * _ITEM_KEY + item) * _N_CHANNELS + channel
        keep = np.minimum(
            keep,
            _lookup_min(
                (de[on_item].astype(np.int64) * _ITEM_KEY + di[on_item]) * _N_CHANNELS
                + dc[on_item],
                s_keep[on_item],
                row_key,
            ),
        )
        if (~on_item).any():
            seller = np.empty(entity.size, dtype=np.int64)
            for code in range(3):
                m = entity == code
                seller[m] = self.world.items(ENTITY_CODES[code]).seller_idx[item[m]]
            keep = np.minimum(
                keep,
                _lookup_min(
                    di[~on_item].astype(np.int64) * _N_CHANNELS + dc[~on_item],
                    s_keep[~on_item],
                    seller * _N_CHANNELS + channel,
                ),
            )
        return np.asarray(keep, dtype=np.float64)


def _lookup_min(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each query key, the minimum value among equal keys (1.0 where none)."""
    out = np.ones(query.size)
    if keys.size == 0:
        return out
    order = np.lexsort((values, keys))
    keys, values = keys[order], values[order]
    first = np.concatenate([[True], keys[1:] != keys[:-1]])
    ukeys, uvals = keys[first], values[first]
    pos = np.minimum(np.searchsorted(ukeys, query), ukeys.size - 1)
    hit = ukeys[pos] == query
    out[hit] = uvals[pos[hit]]
    return out


def _no_events() -> Events:
    z = np.zeros(0, dtype=np.int64)
    return Events(z.astype(np.int8), z, z, z.astype(np.int8), z.astype(np.int8), z, z.astype(float))


def _empty_exposure(ids: ItemIds) -> pd.DataFrame:
    z = np.zeros(0, dtype=np.int64)
    empty = DayTraffic(
        entity=z.astype(np.int8),
        item=z,
        channel=z.astype(np.int8),
        start_frac=z.astype(float),
        price=z.astype(float),
        impressions=z,
        clicks=z,
        orders=z,
        likes=z,
        comments=z,
        shares=z,
    )
    return assembly.exposure_frame(ids, empty, 0)
