"""Batch scoring of 1,000,000 rows with top-5 reasons: time and peak memory.

`python -m experiments.benchmarks.batch [--quick] [--rows N]` writes a Parquet scoring frame of
the demo model's 70 features (in 100,000-row groups), then runs, each in its own process so
peak memory (max RSS) is measured per run:

- `govrisk score --explain 5` (chunked, resumable) with 100,000- and 25,000-row chunks;
- the naive alternative: read the whole file, score and explain it in one go.

Both use two threads (GOVRISK_THREADS=2, this machine's cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from experiments.benchmarks.scoring import demo_bundle, demo_frame

_PIECE_ROWS = 100_000


@dataclass(frozen=True)
class _Run:
    name: str
    seconds: float
    peak_mb: float
    rows_out: int


def _write_input(path: Path, n_rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    try:
        for piece, start in enumerate(range(0, n_rows, _PIECE_ROWS)):
            frame, _ = demo_frame(min(_PIECE_ROWS, n_rows - start), seed=100 + piece)
            frame["item_id"] = [f"L{start + i:09d}" for i in range(len(frame))]
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=_PIECE_ROWS)
    finally:
        if writer is not None:
            writer.close()


def _measure(name: str, command: list[str], env: dict[str, str], output: Path) -> _Run:
    import pandas as pd

    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    log = process.stdout.read().decode() if process.stdout is not None else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed ({process.returncode}):\n{log[-3000:]}")
    rows = len(pd.read_parquet(output, columns=["item_id"]))
    return _Run(name, seconds, usage.ru_maxrss / 1024, rows)  # ru_maxrss is in KiB on Linux


_NAIVE = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
    from models.bundle import ModelBundle
    bundle = ModelBundle.load(sys.argv[1])
    frame = pd.read_parquet(sys.argv[2])
    X = bundle.encode(frame)
    raw, probability = bundle.predict_matrix(X)
    index, values = bundle.top_reasons(X, 5)
    names = np.array(bundle.feature_names, dtype=object)
    pq.write_table(pa.table({
        "item_id": frame["item_id"].to_numpy(), "raw_score": raw, "probability": probability,
        "reason_features": list(names[index]), "reason_contributions": list(values),
    }), sys.argv[3])
    """
)


def main(argv: list[str] | None = None) -> None:
    """Write the input, run every variant in its own process, print the table."""
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.batch")
    parser.add_argument("--quick", action="store_true", help="200,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, default=None, help="rows to score")
    args = parser.parse_args([] if argv is None else argv)
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    n_rows = args.rows or (200_000 if args.quick else 1_000_000)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "GOVRISK_THREADS": "2", "OMP_NUM_THREADS": "2"}
    with tempfile.TemporaryDirectory(prefix="govrisk-batch-bench-") as tmp:
        root = Path(tmp)
        with console.status("training the demo model"):
            bundle_dir = demo_bundle(train_rows=10_000 if args.quick else 30_000).save(
                root / "bundle"
            )
        with console.status(f"writing {n_rows:,} rows of input"):
            _write_input(root / "input.parquet", n_rows)
        size_mb = (root / "input.parquet").stat().st_size / 1e6
        runs: list[_Run] = []
        for chunk_rows in (100_000, 25_000):
            name = f"govrisk score --explain 5 --chunk-rows {chunk_rows:,}"
            output = root / f"scores-{chunk_rows}"
            with console.status(name):
                runs.append(
                    _measure(
                        name,
                        [
                            str(bin_dir / "govrisk"),
                            "score",
                            "--model",
                            str(bundle_dir),
                            "--input",
                            str(root / "input.parquet"),
                            "--output",
                            str(output),
                            "--explain",
                            "5",
                            "--chunk-rows",
                            str(chunk_rows),
                        ],
                        env,
                        output,
                    )
                )
        with console.status("naive: whole file in memory"):
            output = root / "naive.parquet"
            runs.append(
                _measure(
                    "naive: read all, score, explain, write",
                    [
                        sys.executable,
                        "-c",
                        _NAIVE,
                        str(bundle_dir),
                        str(root / "input.parquet"),
                        str(output),
                    ],
                    env,
                    output,
                )
            )
    table = Table(
        title=f"Batch scoring with top-5 reasons: {n_rows:,} rows "
        f"({size_mb:,.0f} MB Parquet), 2 threads"
    )
    for column in ("run", "seconds", "rows/s", "peak MB", "peak vs naive", "rows out"):
        table.add_column(column, justify="left" if column == "run" else "right")
    naive_peak = runs[-1].peak_mb
    for run in runs:
        table.add_row(
            run.name,
            f"{run.seconds:,.1f}",
            f"{n_rows / run.seconds:,.0f}",
            f"{run.peak_mb:,.0f}",
            f"{run.peak_mb / naive_peak:.2f}×",
            f"{run.rows_out:,}",
        )
    console.print(table)
    console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main(sys.argv[1:])
