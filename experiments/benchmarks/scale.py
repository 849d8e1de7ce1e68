"""Scale curve: the feature build, scoring with top-5 reasons and the audit at 1M, 3M and 10M
listings on a Dask LocalCluster of this machine.

`python -m experiments.benchmarks.scale [--sizes 1000000 3000000 10000000]
[--partition-rows 500000] [--workers 2] [--worker-memory 4GB] [--dir DIR] [--json FILE]`

The world is written once as seller-closed partitions of `--partition-rows` listings each
(`experiments.synthetic.tables.make_tables` per partition, ids prefixed by the partition, one
Dask task per partition; listing decisions are taken by four starter strategies); a size uses
its first partitions. Each size then runs in its own child process, each stage on a fresh
LocalCluster (`--workers` one-thread workers, `--worker-memory` each):

- **features**: `features.partitioned.build_partitioned` (every frame, snapshot and manifest of
  every partition);
- **scoring + reasons**: `serving.batch.score_file(..., engine="dask", explain_k=5)` of each
  partition's listing frame with one listing model (LightGBM on partition 0's labels);
- **audit**: `governance.audit.partitioned.audit_partitioned` (populations, estimates, flags)
  of the four strategies, the one model's probability standing in for each policy's.

Reported per size and stage: wall seconds, seconds per million listings, the ratio to the
smallest size's cost per listing, the peak resident memory of any worker, and the peak of the
driver process (the audit joins every unit there). The last table extrapolates the linear fit
of each stage to 100M listings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.benchmarks._memory import PeakRss

_MODULE = "experiments.benchmarks.scale"
#: Starter strategies the synthetic listing decisions are given to (two policies).
_STRATEGIES = (
    ("listing-counterfeit-terms", 3),
    ("listing-counterfeit-shared-image", 1),
    ("listing-new-seller-luxury", 1),
    ("listing-fake-discount", 2),
)
_ID_COLUMNS = (
    "seller_id",
    "creator_id",
    "listing_id",
    "video_id",
    "live_id",
    "item_id",
    "outcome_id",
    "label_id",
)
_STAGES = ("features", "scoring + top-5 reasons", "audit")
_STAGES_FILE = "stages.jsonl"
_WIDTH = 160


# -- the world ---------------------------------------------------------------------------------


def _prefixed(df: pd.DataFrame, prefix: str) -> pd.DataFrame:
    for column in _ID_COLUMNS:
        if column in df.columns:
            df[column] = (prefix + df[column].astype(str)).astype(df[column].dtype)
    return df


def _starter_decisions(decisions: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Listing decisions only, each taken by one of the benchmark's starter strategies."""
    listing = decisions[decisions["entity"].astype(str) == "listing"].copy()
    pick = np.random.default_rng(seed).integers(0, len(_STRATEGIES), len(listing))
    listing["strategy_id"] = pd.Series(
        np.array([s for s, _ in _STRATEGIES], dtype=object)[pick], dtype="str"
    ).to_numpy()
    listing["strategy_version"] = np.array([v for _, v in _STRATEGIES], dtype=np.int64)[pick]
    return listing.reset_index(drop=True)


def make_partition(index: int, rows: int, folder: str) -> int:
    """A Dask task: write partition `index` (its own sellers) unless it is already there."""
    from experiments.synthetic.tables import make_tables
    from features.loader import write_tables

    target = Path(folder)
    if (target / "tables" / "audit_labels.parquet").is_file():
        return index
    tables = make_tables(rows, seed=1000 + index)
    prefix = f"p{index:04d}"
    tables = {name: _prefixed(df, prefix) for name, df in tables.items()}
    tables["strategy_decisions"] = _starter_decisions(tables["strategy_decisions"], index)
    staging = target.with_name(f".{target.name}-tmp")
    write_tables(staging, tables)
    staging.rename(target)
    return index


def generate(root: Path, n_parts: int, rows: int, workers: int) -> float:
    """Write `n_parts` partitions of `rows` listings under `root/parts`; seconds taken."""
    from features.cluster import dask_client

    parts = root / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with dask_client(n_workers=workers, memory_limit="6GB") as client:
        futures = [
            client.submit(make_partition, k, rows, str(parts / f"part-{k:05d}"), pure=False)
            for k in range(n_parts)
        ]
        client.gather(futures)
    return time.perf_counter() - start


def world_of(root: Path, n_parts: int) -> Path:
    """A data directory of the first `n_parts` partitions (links to them)."""
    world = root / f"world-{n_parts:04d}"
    world.mkdir(exist_ok=True)
    for k in range(n_parts):
        link = world / f"part-{k:05d}"
        if not link.exists():
            link.symlink_to(root / "parts" / link.name, target_is_directory=True)
    return world


# -- the model ---------------------------------------------------------------------------------


def train_bundle(features_dir: Path, data_dir: Path, out: Path) -> Path:
    """A calibrated listing model on one partition's labels, saved as a bundle at `out`."""
    import lightgbm as lgb
    from sklearn.isotonic import IsotonicRegression

    from features.catalog import frame_features
    from features.loader import read_table
    from features.vocabulary import Entity
    from models.bundle import ModelBundle
    from models.calibration import Calibration
    from models.encoding import FeatureEncoder

    feats = frame_features(Entity.LISTING)
    frame = pd.read_parquet(
        features_dir / "listing.parquet", columns=["item_id", *(f.name for f in feats)]
    )
    labels = read_table(data_dir, "audit_labels")
    labels = labels[labels["entity"].astype(str) == "listing"]
    y = labels.groupby("item_id")["verdict"].agg(lambda v: float((v == "violating").mean() >= 0.5))
    rows = frame.set_index("item_id").loc[y.index].reset_index()
    encoder = FeatureEncoder(
        categorical=[f.name for f in feats if f.kind == "categorical"],
        numeric=[f.name for f in feats if f.kind != "categorical"],
    ).fit(rows)
    X = encoder.transform(rows)
    half = len(rows) // 2
    booster = lgb.train(
        {
            "objective": "binary",
            "num_leaves": 31,
            "learning_rate": 0.1,
            "verbosity": -1,
            "num_threads": 2,
            "seed": 0,
            "deterministic": True,
        },
        lgb.Dataset(
            X[:half],
            label=y.to_numpy()[:half],
            feature_name=encoder.feature_names_,
            categorical_feature=encoder.categorical_indices_,
        ),
        num_boost_round=150,
    )
    raw = booster.predict(X[half:], raw_score=True)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
        raw, y.to_numpy()[half:]
    )
    bundle = ModelBundle.build(
        booster,
        encoder=encoder,
        calibration=Calibration.isotonic(iso.X_thresholds_, iso.y_thresholds_),
        features={f.name: f.description for f in feats},
        metadata={"run_id": None, "dataset_digest": "scale-benchmark", "entity": "listing"},
    )
    bundle.save(out)
    return out


# -- one size (child process) ------------------------------------------------------------------


@contextmanager
def _stage(results: list[dict[str, Any]], name: str, args: argparse.Namespace) -> Iterator[Any]:
    from features.cluster import dask_client, worker_peaks

    with dask_client(n_workers=args.workers, memory_limit=args.worker_memory) as client:
        with PeakRss(0.05) as rss:
            start = time.perf_counter()
            yield client
            seconds = time.perf_counter() - start
        peaks = worker_peaks(client)
    results.append(
        {
            "stage": name,
            "seconds": seconds,
            "worker_peak_gb": max(peaks.values()) / 1e9,
            "driver_peak_gb": rss.peak_bytes / 1e9,
        }
    )
    # Each stage on disk as it finishes: a size killed later still reports the stages it ran.
    with (Path(args.work) / _STAGES_FILE).open("a") as f:
        f.write(json.dumps(results[-1]) + "\n")
    sys.stderr.write(f"  {name}: {seconds:.0f} s\n")


def _score(
    client: Any, bundle_dir: Path, features: Path, scores: Path, parts: Sequence[Path]
) -> None:
    from models.bundle import ModelBundle
    from serving.batch import score_file

    bundle = ModelBundle.load(bundle_dir)
    address = client.scheduler.address
    for part in parts:
        score_file(
            bundle,
            features / part.name / "listing.parquet",
            scores / part.name,
            explain_k=5,
            engine="dask",
            scheduler=address,
            overwrite=True,
        )


def run_size(args: argparse.Namespace) -> dict[str, Any]:
    """Features, scoring and the audit of one world (`args.world`), each stage timed."""
    from experiments.simulator.strategy_set import starter_strategies
    from features.partitioned import build_partitioned, partitions
    from features.vocabulary import Entity, Policy
    from governance.audit.partitioned import audit_partitioned

    world = Path(args.world)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    parts = partitions(world)
    results: list[dict[str, Any]] = []
    with _stage(results, _STAGES[0], args) as client:
        build_partitioned(world, work / "features", client=client)
    bundle_dir = Path(args.bundle)
    if not bundle_dir.exists():
        train_bundle(work / "features" / parts[0].name, parts[0], bundle_dir)
    with _stage(results, _STAGES[1], args) as client:
        _score(client, bundle_dir, work / "features", work / "scores", parts)
    wanted = {f"{s}@v{v}" for s, v in _STRATEGIES}
    strategies = [s for s in starter_strategies() if s.ref in wanted]
    scores = {
        (Entity.LISTING, p): work / "scores" for p in (Policy.COUNTERFEIT, Policy.FAKE_DISCOUNT)
    }
    with _stage(results, _STAGES[2], args) as client:
        audit = audit_partitioned(parts, strategies, scores, client=client)
    n_units = sum(len(p) for p in audit.populations.values())
    return {"listings": args.size, "stages": results, "audit_units": n_units}


# -- the driver --------------------------------------------------------------------------------


def _child(
    args: argparse.Namespace, size: int, world: Path, work: Path, bundle: Path
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        _MODULE,
        "--child",
        "--size",
        str(size),
        "--world",
        str(world),
        "--work",
        str(work),
        "--bundle",
        str(bundle),
        "--workers",
        str(args.workers),
        "--worker-memory",
        args.worker_memory,
    ]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode == 0:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    # Killed (e.g. out of memory): the stages that finished, and which one did not.
    path = work / _STAGES_FILE
    stages = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    failed = _STAGES[len(stages)] if len(stages) < len(_STAGES) else "after the audit"
    sys.stderr.write(f"the {size:,}-listing run failed in {failed} (exit {done.returncode})\n")
    return {
        "listings": size,
        "stages": stages,
        "failed": {"stage": failed, "exit": done.returncode},
    }


def _rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    base = {s["stage"]: s["seconds"] / runs[0]["listings"] for s in runs[0]["stages"]}
    rows = []
    for run in runs:
        for s in run["stages"]:
            per = s["seconds"] / run["listings"]
            rows.append(
                {
                    "listings": run["listings"],
                    "stage": s["stage"],
                    "seconds": s["seconds"],
                    "s_per_1M": per * 1e6,
                    "cost_ratio": per / base[s["stage"]],
                    "worker_peak_gb": s["worker_peak_gb"],
                    "driver_peak_gb": s["driver_peak_gb"],
                }
            )
    return rows


def projection(rows: Sequence[dict[str, Any]], target: int = 100_000_000) -> list[dict[str, Any]]:
    """Per stage: the least-squares line through (listings, seconds) and (listings, driver
    memory), evaluated at `target` listings; worker memory as the largest seen."""
    out = []
    frame = pd.DataFrame(rows)
    for stage, g in frame.groupby("stage", sort=False):
        n = g["listings"].to_numpy(float)
        fit = (
            np.polyfit(n, g["seconds"].to_numpy(float), 1)
            if len(g) > 1
            else [g["seconds"].iloc[0] / n[0], 0.0]
        )
        mem = (
            np.polyfit(n, g["driver_peak_gb"].to_numpy(float), 1)
            if len(g) > 1
            else [0.0, g["driver_peak_gb"].iloc[0]]
        )
        out.append(
            {
                "stage": stage,
                "seconds": float(np.polyval(fit, target)),
                "worker_peak_gb": float(g["worker_peak_gb"].max()),
                "driver_peak_gb": float(np.polyval(mem, target)),
            }
        )
    return out


def _print(
    runs: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    generate_s: float,
    target: list[dict[str, Any]],
    args: argparse.Namespace,
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=_WIDTH)
    table = Table(
        title=f"Scale curve: LocalCluster of {args.workers} one-thread workers "
        f"({args.worker_memory} each), partitions of {args.partition_rows:,} listings"
    )
    for column in (
        "listings",
        "stage",
        "wall s",
        "s per 1M listings",
        "cost per listing vs smallest",
        "peak per worker GB",
        "driver peak GB",
    ):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for r in rows:
        table.add_row(
            f"{r['listings']:,}",
            r["stage"],
            f"{r['seconds']:,.0f}",
            f"{r['s_per_1M']:,.0f}",
            f"{r['cost_ratio']:.2f}x",
            f"{r['worker_peak_gb']:.2f}",
            f"{r['driver_peak_gb']:.2f}",
        )
    console.print(table)
    for run in runs:
        if "failed" in run:
            console.print(
                f"{run['listings']:,} listings: {run['failed']['stage']} did not finish "
                f"(exit {run['failed']['exit']}; -9 is the kernel's out-of-memory kill)"
            )
    console.print(f"world generation (not timed by the goal): {generate_s:,.0f} s")
    proj = Table(title="Linear fit extrapolated to 100,000,000 listings (same cluster)")
    for column in ("stage", "wall s", "wall h", "peak per worker GB", "driver peak GB"):
        proj.add_column(column, justify="left" if column == "stage" else "right")
    for p in target:
        proj.add_row(
            p["stage"],
            f"{p['seconds']:,.0f}",
            f"{p['seconds'] / 3600:.1f}",
            f"{p['worker_peak_gb']:.2f}",
            f"{p['driver_peak_gb']:.1f}",
        )
    console.print(proj)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the scale curve (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {_MODULE}", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--partition-rows", type=int, default=500_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="4GB")
    parser.add_argument(
        "--dir", type=Path, default=None, help="keep the world here (default: a temporary folder)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--world", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--bundle", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("GOVRISK_THREADS", "1")
    if args.child:
        sys.stdout.write(json.dumps(run_size(args)) + "\n")
        return
    sizes = sorted(args.sizes)
    bad = [s for s in sizes if s % args.partition_rows]
    if bad:
        raise SystemExit(f"sizes {bad} are not multiples of --partition-rows {args.partition_rows}")
    with tempfile.TemporaryDirectory(prefix="govrisk-scale-") as tmp:
        root = args.dir or Path(tmp)
        generate_s = generate(
            root, sizes[-1] // args.partition_rows, args.partition_rows, args.workers
        )
        runs = []
        for size in sizes:
            sys.stderr.write(f"{size:,} listings\n")
            work = Path(tmp) / f"run-{size}"
            world = world_of(root, size // args.partition_rows)
            runs.append(_child(args, size, world, work, root / "bundle"))
        rows = _rows(runs)
        target = projection(rows)
        _print(runs, rows, generate_s, target, args)
        if args.json is not None:
            args.json.write_text(
                json.dumps(
                    {"runs": runs, "rows": rows, "projection": target, "generate_s": generate_s},
                    indent=2,
                )
            )


if __name__ == "__main__":
    main()
