"""Scoring speed: the bundle's onnxruntime path vs native LightGBM `predict`, one thread each.

`python -m experiments.benchmarks.scoring [--quick]` trains a demo-sized risk model on seeded
synthetic data (250 trees, 31 leaves, 70 features of which 4 categorical, with NaNs), wraps it
in a `ModelBundle` and measures in one run:

- single-row latency p50/p99 (calls interleaved, so every method shares the machine's noise):
  onnxruntime vs `Booster.predict`, and the full in-process online path (payload dict ->
  encode -> onnxruntime -> calibration, with and without exact top-5 reasons);
- batch throughput on 10,000 rows, onnxruntime vs `Booster.predict`;
- the largest raw-score gap between the two (parity).

`demo_bundle` and `demo_frame` are shared with the HTTP and batch benchmarks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
N_NUMERIC = 66
CARDINALITIES = (5, 12, 30, 60)


def pin_threads() -> None:
    """One thread for every numeric library, before they start their pools."""
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"
    os.environ["GOVRISK_THREADS"] = "1"
    os.environ["GOVRISK_ONNX_INTRA_OP_THREADS"] = "1"


def demo_frame(n_rows: int, *, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A scoring frame (item_id + 66 numeric + 4 categorical features) and 0/1 labels."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_NUMERIC))
    for j in range(0, N_NUMERIC, 4):
        X[rng.random(n_rows) < 0.08, j] = np.nan
    for j in range(1, N_NUMERIC, 9):
        X[rng.random(n_rows) < 0.3, j] = 0.0
    codes = [rng.integers(0, c, size=n_rows) for c in CARDINALITIES]
    filled = np.nan_to_num(X)
    weights = np.random.default_rng(99).normal(scale=0.25, size=40)
    logit = (
        1.2 * filled[:, 0]
        - 0.5 * filled[:, 1] ** 2
        + np.sin(2 * filled[:, 2])
        + filled[:, 3] * filled[:, 4]
        + 0.3 * filled[:, 5:20].sum(axis=1)
        + filled[:, 20:60] @ weights
        + 0.8 * np.isnan(X[:, 8])
        + (codes[0] % 2)
        - 1.5 * (codes[2] > 20)
        + 0.05 * codes[3] * filled[:, 6]
        - 1.0
    )
    y = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    columns: dict[str, Any] = {
        "item_id": pd.Series([f"L{seed}-{i:08d}" for i in range(n_rows)], dtype="str")
    }
    for k, c in enumerate(codes):
        columns[f"cat_{k}"] = pd.Series([f"v{v:02d}" for v in c], dtype="str")
    for j in range(N_NUMERIC):
        columns[f"num_{j:02d}"] = X[:, j]
    return pd.DataFrame(columns), y


def demo_bundle(*, train_rows: int = 30_000, trees: int = 250, threads: int = 2) -> Any:
    """The demo-sized model as a ModelBundle (trained with `threads` LightGBM threads)."""
    import lightgbm as lgb
    from sklearn.isotonic import IsotonicRegression

    from models.bundle import ModelBundle
    from models.calibration import Calibration
    from models.encoding import FeatureEncoder

    frame, y = demo_frame(train_rows, seed=0)
    categorical = [f"cat_{k}" for k in range(len(CARDINALITIES))]
    numeric = [f"num_{j:02d}" for j in range(N_NUMERIC)]
    encoder = FeatureEncoder(categorical=categorical, numeric=numeric).fit(frame)
    X = encoder.transform(frame)
    booster = lgb.train(
        {
            "objective": "binary",
            "num_leaves": 31,
            "learning_rate": 0.05,
            "num_threads": threads,
            "verbosity": -1,
            "seed": 0,
            "deterministic": True,
        },
        lgb.Dataset(
            X,
            label=y,
            feature_name=encoder.feature_names_,
            categorical_feature=encoder.categorical_indices_,
        ),
        num_boost_round=trees,
    )
    holdout, y_holdout = demo_frame(5_000, seed=1)
    raw = booster.predict(encoder.transform(holdout), raw_score=True, num_threads=threads)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y_holdout)
    descriptions = {name: f"synthetic feature {name}" for name in encoder.feature_names_}
    bundle = ModelBundle.build(
        booster,
        encoder=encoder,
        calibration=Calibration.isotonic(iso.X_thresholds_, iso.y_thresholds_),
        features=descriptions,
        metadata={"run_id": None, "dataset_digest": "synthetic", "entity": "listing"},
    )
    bundle.check_parity(holdout)
    return bundle


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Payload dicts (JSON-ready: NaN as None) of a feature frame, without item_id."""
    features = frame.drop(columns=["item_id"])
    clean = features.astype(object).where(features.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in clean.to_dict("records")]


def _latencies(
    methods: dict[str, Callable[[int], object]], calls: int, rows: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Interleaved single-call timings in microseconds: wall clock and this thread's CPU time.

    On a shared machine the wall-clock tail includes time the thread waited for a core; the
    CPU-time tail does not (every path here computes on the calling thread).
    """
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for method in methods.values():  # warm-up
        for i in range(20):
            method(i % rows)
    for call in range(calls):
        i = call % rows
        for name, method in methods.items():
            started_cpu = time.thread_time_ns()
            started = time.perf_counter_ns()
            method(i)
            wall[name].append((time.perf_counter_ns() - started) / 1_000)
            cpu[name].append((time.thread_time_ns() - started_cpu) / 1_000)
    return wall, cpu


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> None:
    """Train the demo model, time every path, print the table."""
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.scoring")
    parser.add_argument("--quick", action="store_true", help="fewer calls and rows")
    args = parser.parse_args([] if argv is None else argv)
    pin_threads()
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    calls = 500 if args.quick else 3_000
    batch_rows = 2_000 if args.quick else 10_000
    with console.status("training the demo model (250 trees, 70 features)"):
        bundle = demo_bundle(train_rows=10_000 if args.quick else 30_000)
    bundle.threads = 1
    frame, _ = demo_frame(batch_rows, seed=2)
    X = bundle.encoder.transform(frame)
    payloads = records(frame)
    booster = bundle.booster
    encoder = bundle.encoder
    rows = [X[i : i + 1] for i in range(min(len(X), 1_000))]
    bundle.warm_up()

    def onnx_row(i: int) -> object:
        return bundle.raw_score(rows[i])

    def lightgbm_row(i: int) -> object:
        return booster.predict(rows[i], raw_score=True, num_threads=1)

    def online_score(i: int) -> object:
        return bundle.predict_matrix(encoder.encode_records([payloads[i]]))

    def online_explain(i: int) -> object:
        x = encoder.encode_records([payloads[i]])
        return bundle.predict_matrix(x), bundle.explain_matrix(x, 5)

    with console.status(f"single-row latency, {calls} interleaved calls"):
        single, single_cpu = _latencies(
            {
                "onnxruntime (bundle.raw_score)": onnx_row,
                "LightGBM Booster.predict": lightgbm_row,
                "online: dict -> encode -> onnx -> calibrate": online_score,
                "online + exact top-5 reasons": online_explain,
            },
            calls,
            len(rows),
        )
    with console.status(f"batch throughput on {batch_rows} rows"):
        repeats = 3
        onnx_s = min(_timed(lambda: bundle.raw_score(X)) for _ in range(repeats))
        lgb_s = min(
            _timed(lambda: booster.predict(X, raw_score=True, num_threads=1))
            for _ in range(repeats)
        )
        encode_s = min(_timed(lambda: encoder.transform(frame)) for _ in range(repeats))
    gap = float(np.max(np.abs(bundle.raw_score(X) - bundle.native_raw_score(X))))

    table = Table(
        title=f"Single row: one thread each, demo model (250 trees, 70 features), {calls} calls"
    )
    table.add_column("path")
    for column in ("p50 µs", "p99 µs", "CPU p50 µs", "CPU p99 µs", "p50 vs LightGBM"):
        table.add_column(column, justify="right")
    lgb_p50 = _p(single["LightGBM Booster.predict"], 50)
    for name, values in single.items():
        table.add_row(
            name,
            f"{_p(values, 50):,.1f}",
            f"{_p(values, 99):,.1f}",
            f"{_p(single_cpu[name], 50):,.1f}",
            f"{_p(single_cpu[name], 99):,.1f}",
            f"{lgb_p50 / _p(values, 50):.2f}×",
        )
    console.print(table)
    batch = Table(title=f"Batch: {batch_rows:,} rows, one thread each")
    batch.add_column("path")
    batch.add_column("rows/s", justify="right")
    batch.add_column("vs LightGBM", justify="right")
    for name, seconds in (
        ("onnxruntime (bundle.raw_score)", onnx_s),
        ("LightGBM Booster.predict", lgb_s),
        ("encode frame (FeatureEncoder.transform)", encode_s),
    ):
        batch.add_row(name, f"{batch_rows / seconds:,.0f}", f"{lgb_s / seconds:.2f}×")
    console.print(batch)
    console.print(
        f"max |raw onnxruntime - raw LightGBM| over {batch_rows:,} rows: {gap:.3g}; "
        "online score + top-5 reasons p99: "
        f"{_p(single['online + exact top-5 reasons'], 99) / 1000:.3f} ms wall, "
        f"{_p(single_cpu['online + exact top-5 reasons'], 99) / 1000:.3f} ms CPU (goal < 1 ms); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main(sys.argv[1:])
