"""Feature build benchmark: build time, peak memory and online latency per world size.

`python -m experiments.benchmarks.features_build [--sizes 100000 1000000] [--threads 2]`

For each size a seeded synthetic world (`experiments.synthetic.tables`) is written as Parquet by one
child process; a second child loads it, builds every frame and the snapshot, and measures
online feature vectors against that snapshot. Peak memory is the build child's maximum
resident set size (loading the tables included), so the generator never inflates it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

_MODULE = "experiments.benchmarks.features_build"


def _child_generate(size: int, directory: Path) -> dict[str, object]:
    from experiments.synthetic.tables import make_tables
    from features.loader import table_path

    start = time.perf_counter()
    tables = make_tables(size, seed=0)
    seconds = time.perf_counter() - start
    for name, df in tables.items():
        path = table_path(directory, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path, index=False)
    return {"generate_s": seconds, "rows": {name: len(df) for name, df in tables.items()}}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _online_latency(tables: dict[str, object], build: object, n_items: int) -> dict[str, float]:
    import pandas as pd

    from features.build import FeatureBuild
    from features.online import build_online_vector, payloads_from_table
    from features.tables import ITEM_TABLES
    from features.vocabulary import Entity

    assert isinstance(build, FeatureBuild)
    out: dict[str, float] = {}
    for entity in (Entity.LISTING, Entity.VIDEO):
        df = tables[ITEM_TABLES[entity].name]
        assert isinstance(df, pd.DataFrame)
        sample = df.sample(n=min(n_items, len(df)), random_state=0)
        payloads = payloads_from_table(entity, sample)
        start = time.perf_counter()
        build_online_vector(entity, payloads[0], build.snapshot)  # builds the lookup indexes
        out[f"{entity.value}_warmup_s"] = time.perf_counter() - start
        timings = []
        for payload in payloads:
            start = time.perf_counter()
            build_online_vector(entity, payload, build.snapshot)
            timings.append(time.perf_counter() - start)
        out[f"{entity.value}_p50_ms"] = _percentile(timings, 0.5) * 1e3
        out[f"{entity.value}_p99_ms"] = _percentile(timings, 0.99) * 1e3
    return out


def _child_build(directory: Path, threads: int, n_online: int) -> dict[str, object]:
    import pandas as pd

    from features.build import INPUT_TABLES, build_features
    from features.loader import table_path
    from features.store import default_as_of

    start = time.perf_counter()
    tables = {name: pd.read_parquet(table_path(directory, name)) for name in INPUT_TABLES}
    load_s = time.perf_counter() - start
    rss_loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    as_of = default_as_of(tables)
    start, cpu = time.perf_counter(), time.process_time()
    build = build_features(tables, as_of=as_of, threads=threads)
    build_s = time.perf_counter() - start
    build_cpu_s = time.process_time() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result: dict[str, object] = {
        "load_s": load_s,
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "rss_loaded_gb": rss_loaded_kb / 2**20,
        "peak_rss_gb": peak_kb / 2**20,
        "frames": {e.value: len(f) for e, f in build.frames.items()},
    }
    if n_online:
        result.update(_online_latency(dict(tables), build, n_online))
    return result


def _run_child(*args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", _MODULE, "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    parsed: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return parsed


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark for each size and print the results."""
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--online-items", type=int, default=2000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    if args.child:
        kind, *rest = args.child
        if kind == "generate":
            out = _child_generate(int(rest[0]), Path(rest[1]))
        else:
            out = _child_build(Path(rest[0]), int(rest[1]), int(rest[2]))
        sys.stdout.write(json.dumps(out) + "\n")
        return

    console = Console()
    if not console.is_terminal:
        console = Console(width=180)
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="govrisk-bench-") as tmp:
            with console.status(f"generating a world of {size:,} listings"):
                gen = _run_child("generate", str(size), tmp)
            with console.status(f"building features for {size:,} listings"):
                res = _run_child("build", tmp, str(args.threads), str(args.online_items))
        results.append((size, gen, res))

    table = Table(title=f"Feature build, {args.threads} DuckDB threads")
    for column in (
        "listings",
        "videos/lives/sellers",
        "exposure rows",
        "load s",
        "build s",
        "build vs first",
        "build CPU s",
        "peak RSS GB",
        "online listing ms p50/p99",
        "online video ms p50/p99",
    ):
        table.add_column(column, justify="right")
    first_build = float(results[0][2]["build_s"])  # type: ignore[arg-type]
    for size, gen, res in results:
        rows = gen["rows"]
        assert isinstance(rows, dict)
        build_s = float(res["build_s"])  # type: ignore[arg-type]
        online = (
            (
                f"{res['listing_p50_ms']:.2f}/{res['listing_p99_ms']:.2f}",
                f"{res['video_p50_ms']:.2f}/{res['video_p99_ms']:.2f}",
            )
            if "listing_p50_ms" in res
            else ("-", "-")
        )
        table.add_row(
            f"{size:,}",
            f"{rows['videos']:,}/{rows['live_sessions']:,}/{rows['sellers']:,}",
            f"{rows['channel_exposure']:,}",
            f"{float(res['load_s']):.1f}",  # type: ignore[arg-type]
            f"{build_s:.1f}",
            f"{build_s / first_build:.1f}x",
            f"{float(res['build_cpu_s']):.1f}",  # type: ignore[arg-type]
            f"{float(res['peak_rss_gb']):.2f}",  # type: ignore[arg-type]
            *online,
        )
    console.print(table)
    console.print(
        "Goal at 1M listings on 2 cores: build under 120 s and peak memory under 6 GB; online "
        "vector under 1 ms. Build CPU counts every thread; on a busy machine wall time exceeds it."
    )


if __name__ == "__main__":
    main(sys.argv[1:])
