"""Explanation speed: our exact TreeSHAP vs LightGBM `pred_contrib` vs `shap.TreeExplainer`.

`python -m experiments.benchmarks.explain [--quick]` trains a representative risk model on
seeded synthetic data (250 trees, 31 leaves, 70 features of which 4 categorical, NaNs and exact
zeros), then measures in one run, one thread each: batch rows/s on 10,000 rows, single-row
p50/p99 latency over a few thousand calls (methods interleaved call by call, so they share the
machine's noise), plain LightGBM `predict` for reference, and the largest |Δ| from `shap`.
Batch throughput is CPU time of the calling thread (per core, robust to other load on the
machine; every method runs in that one thread); single-row latency is wall clock.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


@dataclass(frozen=True)
class _Config:
    train_rows: int
    trees: int
    batch_rows: int
    single_calls: int
    batch_repeats: int


_OURS = "ours: exact TreeSHAP"
_BASELINE = "LightGBM pred_contrib"
_FULL = _Config(
    train_rows=30_000, trees=250, batch_rows=10_000, single_calls=3_000, batch_repeats=3
)
_QUICK = _Config(train_rows=5_000, trees=250, batch_rows=1_000, single_calls=300, batch_repeats=1)


@dataclass
class _Row:
    name: str
    batch_seconds: float | None = None  # thread CPU time
    batch_rows: int = 0
    single: list[float] | None = None  # wall clock per call
    single_cpu: list[float] | None = None  # thread CPU time per call
    max_delta: float | None = None


def make_data(
    n_rows: int, *, seed: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[int]]:
    """66 numeric features (NaNs, exact zeros) and 4 integer-coded categoricals, binary target."""
    rng = np.random.default_rng(seed)
    n_numeric, cardinalities = 66, (5, 12, 30, 60)
    X = rng.normal(size=(n_rows, n_numeric + len(cardinalities)))
    for j in range(0, n_numeric, 4):
        X[rng.random(n_rows) < 0.08, j] = np.nan
    for j in range(1, n_numeric, 9):
        X[rng.random(n_rows) < 0.3, j] = 0.0
    categorical = list(range(n_numeric, n_numeric + len(cardinalities)))
    for j, cardinality in zip(categorical, cardinalities, strict=True):
        X[:, j] = rng.integers(0, cardinality, size=n_rows)
    filled = np.nan_to_num(X)
    weights = rng.normal(scale=0.25, size=40)
    logit = (
        1.2 * filled[:, 0]
        - 0.5 * filled[:, 1] ** 2
        + np.sin(2 * filled[:, 2])
        + filled[:, 3] * filled[:, 4]
        + 0.3 * filled[:, 5:20].sum(axis=1)
        + filled[:, 20:60] @ weights
        + 0.8 * np.isnan(X[:, 8])
        + (X[:, categorical[0]] % 2)
        - 1.5 * (X[:, categorical[2]] > 20)
        + 0.05 * X[:, categorical[3]] * filled[:, 6]
    )
    y = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y, categorical


def main(argv: list[str] | None = None) -> None:
    """Train the model, measure every method, print the table."""
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.explain")
    parser.add_argument("--quick", action="store_true", help="small run (about a minute)")
    args = parser.parse_args([] if argv is None else argv)
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"
    _run(_QUICK if args.quick else _FULL)


def _run(config: _Config) -> None:
    import lightgbm as lgb
    import shap
    from rich.console import Console

    from models.explainer import TreeExplainer

    console = Console(width=None if sys.stdout.isatty() else 125)
    warnings.filterwarnings("ignore", category=UserWarning)
    X_train, y_train, categorical = make_data(config.train_rows, seed=0)
    X, _, _ = make_data(config.batch_rows, seed=1)
    with console.status(f"training {config.trees} trees on {config.train_rows} rows"):
        # One thread: LightGBM keeps the OpenMP thread count of its last training, and shap
        # calls `predict` without num_threads.
        params = {
            "objective": "binary",
            "num_leaves": 31,
            "learning_rate": 0.05,
            "num_threads": 1,
            "verbose": -1,
            "seed": 0,
            "deterministic": True,
        }
        dataset = lgb.Dataset(X_train, y_train, categorical_feature=categorical)
        booster = lgb.train(params, dataset, num_boost_round=config.trees)
    start = time.perf_counter()
    ours = TreeExplainer(n_threads=1).fit(booster)
    fit_seconds = time.perf_counter() - start
    reference = shap.TreeExplainer(booster)

    methods: dict[str, Callable[[NDArray[np.float64]], Any]] = {
        _OURS: ours.shap_values,
        "ours: top-5 reasons": lambda rows: ours.top_k(rows, 5),
        _BASELINE: lambda rows: booster.predict(rows, pred_contrib=True, num_threads=1),
        "shap.TreeExplainer": reference.shap_values,
        "LightGBM predict (score only)": lambda rows: booster.predict(
            rows, raw_score=True, num_threads=1
        ),
    }
    results = {name: _Row(name) for name in methods}
    with console.status("batch"):
        for name, method in methods.items():
            repeats = config.batch_repeats if name.startswith("ours") or "score" in name else 1
            results[name].batch_seconds = _batch_seconds(method, X, repeats)
            results[name].batch_rows = X.shape[0]
    with console.status(f"{config.single_calls} single-row calls per method"):
        single = _single_row_seconds(methods, X, config.single_calls)
    for name, (wall, cpu) in single.items():
        results[name].single, results[name].single_cpu = wall, cpu

    expected = np.asarray(reference.shap_values(X))
    values = ours.shap_values(X)
    contrib = np.asarray(booster.predict(X, pred_contrib=True, num_threads=1))
    results[_OURS].max_delta = float(np.abs(values - expected).max())
    results[_BASELINE].max_delta = float(np.abs(contrib[:, :-1] - expected).max())
    additivity = float(
        np.abs(values.sum(axis=1) + ours.expected_value_ - booster.predict(X, raw_score=True)).max()
    )
    _print_table(console, results, booster, fit_seconds, additivity)
    threaded = TreeExplainer(n_threads=2, warm_up=False).fit(booster)
    elapsed: dict[int, float] = {}
    for n_threads, explainer in ((1, ours), (2, threaded)):
        explainer.shap_values(X[:2])
        start = time.perf_counter()
        explainer.shap_values(X)
        elapsed[n_threads] = time.perf_counter() - start
    console.print(
        f"ours, wall clock on {X.shape[0]:,} rows: 1 thread {elapsed[1]:.3f} s, 2 threads "
        f"{elapsed[2]:.3f} s ({elapsed[1] / elapsed[2]:.2f}× under the machine's current load)"
    )


def _batch_seconds(
    method: Callable[[NDArray[np.float64]], Any], X: NDArray[np.float64], repeats: int
) -> float:
    """Median CPU time of the calling thread for one call on all of X."""
    method(X[:2])  # warm caches and lazy initialisation out of the timing
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        method(X)
        times.append(time.thread_time() - start)
    return statistics.median(times)


def _single_row_seconds(
    methods: dict[str, Callable[[NDArray[np.float64]], Any]], X: NDArray[np.float64], calls: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall-clock and thread CPU seconds of each single-row call, methods interleaved."""
    seconds: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in methods}
    for i in range(calls):
        row = X[i % X.shape[0] : i % X.shape[0] + 1]
        for name, method in methods.items():
            wall, cpu = seconds[name]
            start, start_cpu = time.perf_counter(), time.thread_time()
            method(row)
            cpu.append(time.thread_time() - start_cpu)
            wall.append(time.perf_counter() - start)
    return seconds


def _print_table(
    console: Any, results: dict[str, _Row], booster: Any, fit_seconds: float, additivity: float
) -> None:
    from rich.table import Table

    baseline = results[_BASELINE]
    assert baseline.batch_seconds is not None and baseline.single is not None
    base_batch = baseline.batch_seconds / baseline.batch_rows
    base_p50 = float(np.percentile(baseline.single, 50))
    table = Table(
        title="Exact SHAP explanations, one thread each",
        caption=(
            "batch: rows/s and µs/row in CPU time of the calling thread; 1-row: wall clock per "
            "call; × = speed-up over LightGBM pred_contrib; |Δ| = max abs difference from shap"
        ),
    )
    for column in ("method", "rows/s", "µs/row", "×", "p50 µs", "p99 µs", "× p50", "max |Δ|"):
        table.add_column(column, justify="left" if column == "method" else "right", no_wrap=True)
    for row in results.values():
        per_row = row.batch_seconds / row.batch_rows if row.batch_seconds else None
        p50 = float(np.percentile(row.single, 50)) if row.single else None
        p99 = float(np.percentile(row.single, 99)) if row.single else None
        table.add_row(
            row.name,
            f"{1 / per_row:,.0f}" if per_row else "",
            f"{per_row * 1e6:,.1f}" if per_row else "",
            f"{base_batch / per_row:.1f}×" if per_row else "",
            f"{p50 * 1e6:,.1f}" if p50 else "",
            f"{p99 * 1e6:,.1f}" if p99 else "",
            f"{base_p50 / p50:.1f}×" if p50 else "",
            f"{row.max_delta:.1e}" if row.max_delta is not None else "",
        )
    console.print(table)
    ours = results[_OURS]
    assert ours.single_cpu is not None and baseline.single_cpu is not None
    ours_cpu = float(np.percentile(ours.single_cpu, 50))
    base_cpu = float(np.percentile(baseline.single_cpu, 50))
    console.print(
        f"1-row p50 in thread CPU time: ours {ours_cpu * 1e6:,.1f} µs, pred_contrib "
        f"{base_cpu * 1e6:,.1f} µs ({base_cpu / ours_cpu:.1f}×)"
    )
    console.print(
        f"model: {booster.num_trees()} trees, {booster.num_feature()} features; "
        f"fit + warm-up of ours {fit_seconds:.2f} s (numba cache load or compile); "
        f"additivity max |expected + Σφ - raw| = {additivity:.1e}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
