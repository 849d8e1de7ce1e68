"""HTTP scoring: `govrisk serve` /v1/score (with and without reasons) vs `mlflow models serve`.

`python -m experiments.benchmarks.http [--quick]` builds the demo model of
`experiments.benchmarks.scoring`, starts both servers on loopback at random ports, one worker
and one compute thread each (`govrisk serve --model BUNDLE`, `mlflow models serve -m PYFUNC
--env-manager local -w 1` on the same bundle logged as a pyfunc model), and drives each with a
bounded loop of single-item requests from an httpx client at concurrency 1, 4 and 16. It prints
requests/s, p50 and p99 latency and the ratio to MLflow. The client shares the machine with the
server, so absolute numbers understate a dedicated box; the ratios are measured side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.benchmarks.scoring import demo_bundle, demo_frame, pin_threads, records

if TYPE_CHECKING:
    from rich.console import Console

CONCURRENCY = (1, 4, 16)
_WARM_UP = 10


@dataclass(frozen=True)
class _Target:
    name: str
    url: str
    body: bytes


@dataclass(frozen=True)
class _Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float = 0.0  # server CPU time per request (all its processes)


def _group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds of every live process in process group `group` (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After "pid (comm)": state ppid pgrp ... utime is field 14, stime 15 (1-based).
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after 180 s:\n{log_path.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


async def _drive(target: _Target, concurrency: int, total: int) -> _Result:
    import httpx

    latencies: list[float] = []
    errors = 0
    remaining = total
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(_WARM_UP):  # also opens the connections
            await client.post(target.url, content=target.body, headers=headers)

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.post(target.url, content=target.body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    values = np.asarray(latencies) * 1000
    return _Result(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=float(np.percentile(values, 50)),
        p99_ms=float(np.percentile(values, 99)),
        errors=errors,
    )


def main(argv: list[str] | None = None) -> None:
    """Start both servers, drive them, print the table."""
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.http")
    parser.add_argument("--quick", action="store_true", help="fewer requests and training rows")
    args = parser.parse_args([] if argv is None else argv)
    pin_threads()
    from rich.console import Console

    from models.pyfunc import save_pyfunc

    console = Console(width=None if sys.stdout.isatty() else 140)
    per_level = 400 if args.quick else 2_000
    env = {
        **os.environ,
        "GOVRISK_THREADS": "1",
        "GOVRISK_ONNX_INTRA_OP_THREADS": "1",
        "GOVRISK_MODEL_POLL_SECONDS": "0",
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": "",
    }
    with tempfile.TemporaryDirectory(prefix="govrisk-http-bench-") as tmp:
        root = Path(tmp)
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        with console.status("training the demo model and writing the bundle"):
            bundle = demo_bundle(train_rows=10_000 if args.quick else 30_000)
            bundle_dir = bundle.save(root / "bundle")
            pyfunc_dir = save_pyfunc(bundle, root / "pyfunc")
        frame, _ = demo_frame(1, seed=5)
        features = records(frame)[0]
        ours_port, mlflow_port = _free_port(), _free_port()
        (root / "service").mkdir()
        bin_dir = Path(sys.executable).parent
        # `mlflow models serve` execs `uvicorn` by name.
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        ours_command, mlflow_command = _commands(
            bin_dir, root, bundle_dir, pyfunc_dir, ours_port, mlflow_port
        )
        ours = _start(ours_command, env, root / "ours.log")
        theirs = _start(mlflow_command, env, root / "mlflow.log")
        try:
            with console.status("starting both servers"):
                _wait_ready(f"http://127.0.0.1:{ours_port}/readyz", ours, root / "ours.log")
                _wait_ready(f"http://127.0.0.1:{mlflow_port}/ping", theirs, root / "mlflow.log")
            ours_url = f"http://127.0.0.1:{ours_port}/v1/score"
            targets = _targets(features, ours_url, f"http://127.0.0.1:{mlflow_port}/invocations")
            agree = _agreement(targets)
            results = _measure(console, targets, ours_url, ours, theirs, per_level)
        finally:
            _stop(ours)
            _stop(theirs)
    _print_results(console, targets, results, per_level, agree)


def _commands(
    bin_dir: Path,
    root: Path,
    bundle_dir: Path,
    pyfunc_dir: Path,
    ours_port: int,
    mlflow_port: int,
) -> tuple[list[str], list[str]]:
    """(`govrisk serve`, `mlflow models serve`) command lines on the same bundle."""
    ours = [
        str(bin_dir / "govrisk"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(ours_port),
        "--data-dir",
        str(root / "service"),
        "--model",
        str(bundle_dir),
        "--log-level",
        "warning",
    ]
    theirs = [
        str(bin_dir / "mlflow"),
        "models",
        "serve",
        "-m",
        str(pyfunc_dir),
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(mlflow_port),
        "-w",
        "1",
    ]
    return ours, theirs


def _targets(features: dict[str, Any], ours_url: str, mlflow_url: str) -> list[_Target]:
    """govrisk without and with reasons, then MLflow, each scoring the same item."""
    return [
        _Target(
            "govrisk, no reasons",
            ours_url,
            json.dumps({"items": [{"item_id": "x", "features": features}], "explain": 0}).encode(),
        ),
        _Target(
            "govrisk, top-5 reasons",
            ours_url,
            json.dumps({"items": [{"item_id": "x", "features": features}], "explain": 5}).encode(),
        ),
        _Target(
            "mlflow models serve",
            mlflow_url,
            json.dumps(
                {
                    "dataframe_split": {
                        "columns": list(features),
                        "data": [list(features.values())],
                    }
                }
            ).encode(),
        ),
    ]


def _agreement(targets: list[_Target]) -> float:
    """|p govrisk - p mlflow| on the benchmarked item."""
    import httpx

    p_ours = httpx.post(
        targets[0].url, content=targets[0].body, headers={"content-type": "application/json"}
    ).json()
    p_mlflow = httpx.post(
        targets[2].url,
        content=targets[2].body,
        headers={"content-type": "application/json"},
    ).json()
    return float(abs(p_ours["items"][0]["probability"] - p_mlflow["predictions"][0]["probability"]))


def _measure(
    console: Console,
    targets: list[_Target],
    ours_url: str,
    ours: subprocess.Popen[bytes],
    theirs: subprocess.Popen[bytes],
    per_level: int,
) -> dict[tuple[str, int], _Result]:
    """Drive every target at every concurrency, with its server's CPU time per request."""
    results: dict[tuple[str, int], _Result] = {}
    for concurrency in CONCURRENCY:
        for target in targets:
            group = (ours if target.url == ours_url else theirs).pid
            with console.status(f"{target.name} at concurrency {concurrency}"):
                cpu_before = _group_cpu_seconds(group)
                result = asyncio.run(_drive(target, concurrency, per_level))
                cpu_ms = (_group_cpu_seconds(group) - cpu_before) * 1000
            results[target.name, concurrency] = replace(
                result, server_cpu_ms=cpu_ms / (per_level + _WARM_UP)
            )
    return results


def _print_results(
    console: Console,
    targets: list[_Target],
    results: dict[tuple[str, int], _Result],
    per_level: int,
    agree: float,
) -> None:
    from rich.table import Table

    table = Table(title=f"HTTP on loopback, one worker each, {per_level} requests per cell")
    columns = (
        "server",
        "conc.",
        "req/s",
        "p50 ms",
        "p99 ms",
        "req/s vs MLflow",
        "server CPU ms/req",
        "MLflow CPU / ours",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "server" else "right")
    for concurrency in CONCURRENCY:
        baseline = results["mlflow models serve", concurrency]
        for target in targets:
            r = results[target.name, concurrency]
            table.add_row(
                target.name,
                str(concurrency),
                f"{r.requests_per_second:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.requests_per_second / baseline.requests_per_second:.2f}×"
                + (f" ({r.errors} errors)" if r.errors else ""),
                f"{r.server_cpu_ms:.2f}",
                f"{baseline.server_cpu_ms / r.server_cpu_ms:.2f}×" if r.server_cpu_ms > 0 else "–",
            )
    console.print(table)
    console.print(
        f"same item, |p govrisk - p mlflow| = {agree:.3g}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
