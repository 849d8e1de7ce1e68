"""Point in time: rows dated at or after the cutoff never change a feature; labels are never read.

Every table is mutated after the cutoff (rows deleted, edited, added; decisions lifted and
sessions ended at other later times; exposure of the cutoff's incomplete day rewritten) and
every frame must stay the same bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from functools import cache

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features.build import build_frames
from features.tables import TABLES
from features.vocabulary import Entity
from tests.factories import START, make_tables

_TIME = {name: spec.time_column for name, spec in TABLES.items()}
_DAY_US = np.timedelta64(86_400_000_000, "us")


@cache
def _world() -> dict[str, pd.DataFrame]:
    return make_tables(150, seed=11)


def assert_frames_identical(
    a: Mapping[Entity, pd.DataFrame], b: Mapping[Entity, pd.DataFrame]
) -> None:
    """Same entities, columns, dtypes and values; floats compared by their bits."""
    assert list(a) == list(b)
    for entity in a:
        left, right = a[entity], b[entity]
        assert list(left.columns) == list(right.columns), entity
        assert left.dtypes.equals(right.dtypes), entity
        assert left.shape == right.shape, entity
        for column in left.columns:
            x, y = left[column].to_numpy(), right[column].to_numpy()
            if x.dtype == np.float64:
                assert (x.view(np.uint64) == y.view(np.uint64)).all(), (entity, column)
            else:
                assert pd.Series(x).equals(pd.Series(y)), (entity, column)


def _later(rng: np.random.Generator, cutoff: np.datetime64, n: int) -> np.ndarray:
    offsets = rng.integers(0, 20 * 86_400_000_000, n).astype("timedelta64[us]")
    return (cutoff + offsets).astype("datetime64[us]")


def _edit(df: pd.DataFrame, rows: np.ndarray, rng: np.random.Generator, keep: set[str]) -> None:
    for column in df.columns:
        if column in keep or not rows.any():
            continue
        series = df[column]
        n = int(rows.sum())
        if pd.api.types.is_bool_dtype(series):
            df.loc[rows, column] = rng.random(n) < 0.5
        elif pd.api.types.is_integer_dtype(series):
            df.loc[rows, column] = rng.integers(0, 1000, n)
        elif pd.api.types.is_float_dtype(series):
            df.loc[rows, column] = rng.uniform(0, 1000, n).round(2)
        elif pd.api.types.is_string_dtype(series):
            df.loc[rows, column] = [f"mutated {rng.integers(0, 5)} replica cure" for _ in range(n)]


def _mutate(
    tables: Mapping[str, pd.DataFrame], cutoff: datetime, seed: int
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cut = np.datetime64(cutoff, "us")
    out: dict[str, pd.DataFrame] = {}
    for name, df in tables.items():
        df = df.copy()
        time = _TIME[name]
        assert time is not None
        stamps = df[time].to_numpy()
        late = stamps + _DAY_US > cut if name == "channel_exposure" else stamps >= cut
        key = set(TABLES[name].key)
        # Edit a third of the late rows (times stay late), delete another third, add copies.
        choice = rng.integers(0, 3, len(df))
        edit = late & (choice == 0)
        _edit(df, edit, rng, keep=key | {time})
        if name != "channel_exposure":
            df.loc[edit, time] = _later(rng, cut, int(edit.sum()))
        df = df.loc[~(late & (choice == 1))]
        extra = df.sample(n=min(len(df), 5), random_state=seed, replace=False).copy()
        if len(extra):
            if name == "channel_exposure":
                extra["day"] = (cut.astype("datetime64[D]") + 70).astype("datetime64[us]")
            else:
                extra[time] = _later(rng, cut, len(extra))
                for k in key:
                    extra[k] = [f"new-{k}-{i}" for i in range(len(extra))]
            df = pd.concat([df, extra], ignore_index=True)
        out[name] = df.reset_index(drop=True)
    # What is still unknown at the cutoff may change too: later lifts and later session ends.
    decisions = out["strategy_decisions"]
    pending = (decisions["decided_at"] < cut) & ~(decisions["lifted_at"] < cut)
    lifted = np.where(
        rng.random(len(decisions)) < 0.5, np.datetime64("NaT"), _later(rng, cut, len(decisions))
    )
    decisions.loc[pending, "lifted_at"] = lifted[pending.to_numpy()].astype("datetime64[us]")
    lives = out["live_sessions"]
    running = (lives["started_at"] < cut) & (lives["ended_at"] >= cut)
    lives.loc[running, "ended_at"] = _later(rng, cut, int(running.sum()))
    return out


class _NoLabels(Mapping[str, pd.DataFrame]):
    """Tables whose audit labels raise when anything reads them."""

    def __init__(self, tables: Mapping[str, pd.DataFrame]) -> None:
        self._tables = tables

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name == "audit_labels":
            raise AssertionError("the feature build read audit_labels")
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    day=st.integers(min_value=8, max_value=55),
    hour=st.sampled_from([0, 0, 13]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_changes_at_or_after_the_cutoff_leave_every_feature_unchanged(
    day: int, hour: int, seed: int
) -> None:
    cutoff = START + timedelta(days=day, hours=hour)
    world = _world()
    before = build_frames(world, as_of=cutoff, threads=1)
    after = build_frames(_NoLabels(_mutate(world, cutoff, seed)), as_of=cutoff, threads=1)
    assert_frames_identical(before, after)
    assert len(before[Entity.LISTING]) > 0


def test_rows_before_the_cutoff_do_change_features() -> None:
    """The check above could pass vacuously; an edit before the cutoff must show up."""
    cutoff = START + timedelta(days=40)
    world = _world()
    tables = dict(world)
    listings = tables["listings"].copy()
    first = listings["created_at"] < np.datetime64(cutoff, "us")
    listings.loc[first.idxmax(), "title"] = "replica replica replica"
    tables["listings"] = listings
    before = build_frames(world, as_of=cutoff, threads=1, entities=[Entity.LISTING])
    after = build_frames(tables, as_of=cutoff, threads=1, entities=[Entity.LISTING])
    changed = (
        before[Entity.LISTING]["listing_counterfeit_term_count"].to_numpy()
        != after[Entity.LISTING]["listing_counterfeit_term_count"].to_numpy()
    )
    assert changed.sum() == 1


def test_audit_labels_are_not_needed() -> None:
    world = _world()
    cutoff = START + timedelta(days=30)
    with_labels = build_frames(world, as_of=cutoff, threads=1)
    without = build_frames(
        {k: v for k, v in world.items() if k != "audit_labels"}, as_of=cutoff, threads=1
    )
    assert_frames_identical(with_labels, without)
