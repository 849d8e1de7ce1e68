"""Review service under load: concurrent moderators over HTTP against SQLite and PostgreSQL.

`python -m experiments.benchmarks.review_load [--items N] [--moderators M] [--quick]` starts a
real uvicorn server (one worker) on a loopback port for each database, queues N items, and lets M
moderator clients (threads with their own HTTP connection and API token) claim and judge until
the queue is empty. A few extra clients crash while holding a lease, so lease expiry is exercised
too. Every run is checked: no item judged twice, no verdict lost, every lease accounted for.
Prints requests/s and claim / verdict latency percentiles per database, side by side.
`run_load` is also what the concurrency test calls.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import sqlalchemy as sa

_PG_ADMIN_DSN = os.environ.get(
    "GOVRISK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_PASSWORD = "load-test-password"
#: Lease of the benchmark runs: long enough for a slow request, short enough that the crashed
#: clients' items come back before the queue runs dry.
_LEASE_SECONDS = 10.0


@dataclass
class _ClientLog:
    judged: list[int] = field(default_factory=list)
    lease_ids: set[int] = field(default_factory=set)
    claim_ms: list[float] = field(default_factory=list)
    verdict_ms: list[float] = field(default_factory=list)
    replays: int = 0
    lost_leases: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadResult:
    """What one load run did and how fast, after its checks passed."""

    database: str
    n_items: int
    n_moderators: int
    requests: int
    seconds: float
    claim_p50_ms: float
    claim_p99_ms: float
    verdict_p50_ms: float
    verdict_p99_ms: float
    leases: int
    expired_leases: int
    replays: int

    @property
    def requests_per_second(self) -> float:
        """Throughput over the whole run."""
        return self.requests / self.seconds


def make_flags(n_items: int, *, seed: int = 0) -> pd.DataFrame:
    """Seeded flags.parquet-shaped rows for `n_items` listings (one policy, mixed kinds)."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(
        ["random_audit", "likely_false_positive", "likely_false_negative"],
        size=n_items,
        p=[0.3, 0.4, 0.3],
    )
    reasons = json.dumps(
        [
            {
                "feature": "listing_counterfeit_term_count",
                "description": "Counterfeit terms",
                "value": 2,
                "contribution": 0.4,
            }
        ]
    )
    return pd.DataFrame(
        {
            "entity": "listing",
            "item_id": [f"LD{i:06d}" for i in range(n_items)],
            "policy": "counterfeit",
            "channel": rng.choice(["shop_tab", "campaigns"], size=n_items),
            "kind": kinds,
            "priority": rng.gamma(2.0, 5.0, size=n_items),
            "p_error": rng.uniform(0.1, 0.9, size=n_items),
            "inclusion_probability": np.where(kinds == "random_audit", 0.01, 1.0),
            "strategies": "listing-counterfeit-terms@v1",
            "reasons": reasons,
        }
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(database_url: str, *, n_items: int, n_clients: int) -> list[str]:
    """Migrate, create one moderator and token per client, queue the items; returns tokens."""
    from governance.review import queue, users
    from governance.review.db import make_engine, make_session_factory, upgrade
    from governance.review.service import unit_of_work

    engine = make_engine(database_url, pool_size=2)
    try:
        upgrade(engine)
        tokens = []
        with make_session_factory(engine)() as session, unit_of_work(session):
            for i in range(n_clients):
                user = users.create_user(
                    session, username=f"load-mod-{i:03d}", role="moderator", password=_PASSWORD
                )
                tokens.append(users.issue_token(session, user, name="load")[1])
            queue.ingest_flags(session, make_flags(n_items), source="load")
        return tokens
    finally:
        engine.dispose()


@contextmanager
def serve(database_url: str, data_dir: Path, *, lease_seconds: float) -> Iterator[str]:
    """A uvicorn server (one worker) in a subprocess on a free loopback port; yields its URL."""
    port = _free_port()
    env = {
        **os.environ,
        "GOVRISK_DATABASE_URL": database_url,
        "GOVRISK_DATA_DIR": str(data_dir),
        "GOVRISK_SECRET_KEY": uuid.uuid4().hex * 2,
        "GOVRISK_LEASE_SECONDS": str(lease_seconds),
    }
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "serving.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited early:\n{log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not up after 90 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _moderate(url: str, token: str, log: _ClientLog, deadline: float, replay_every: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        n = 0
        while time.monotonic() < deadline:
            start = time.perf_counter()
            claim = client.post("/api/review/queue/claim")
            log.claim_ms.append((time.perf_counter() - start) * 1000)
            if claim.status_code == 204:
                stats = client.get("/api/review/queue/stats").json()
                if stats["open"] == 0:
                    return
                time.sleep(0.1)  # only leased items left: wait for them to be judged or expire
                continue
            if claim.status_code != 200:
                log.errors.append(f"claim {claim.status_code}: {claim.text[:200]}")
                return
            body = claim.json()
            log.lease_ids.add(body["lease_id"])
            item_id = body["item"]["id"]
            verdict = {
                "verdict": "violating" if item_id % 3 == 0 else "not_violating",
                "client_key": uuid.uuid4().hex,
                "confidence": "high",
            }
            path = f"/api/review/queue/items/{item_id}/verdict"
            start = time.perf_counter()
            response = client.post(path, json=verdict)
            log.verdict_ms.append((time.perf_counter() - start) * 1000)
            if response.status_code == 409 and (
                "leased to another" in response.text or "already judged" in response.text
            ):
                log.lost_leases += 1  # ours expired and was reclaimed: the item is not ours now
                continue
            if response.status_code != 201:
                log.errors.append(f"verdict {response.status_code}: {response.text[:200]}")
                return
            n += 1
            if replay_every and n % replay_every == 0:  # a client retrying after a timeout
                again = client.post(path, json=verdict)
                if again.status_code != 200 or again.json()["id"] != response.json()["id"]:
                    log.errors.append(f"replay {again.status_code}: {again.text[:200]}")
                    return
                log.replays += 1
            log.judged.append(item_id)


def _crash(url: str, token: str, log: _ClientLog) -> None:
    """A client that claims one item and disappears without judging it."""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        claim = client.post("/api/review/queue/claim")
        if claim.status_code == 200:
            log.lease_ids.add(claim.json()["lease_id"])


def _check(
    database_url: str, logs: list[_ClientLog], crash_logs: list[_ClientLog], n_items: int
) -> tuple[int, int]:
    """Assert the run's invariants against the database; returns (leases, expired leases)."""
    from governance.review.db import make_engine
    from governance.review.orm import Lease, QueueItem, Verdict
    from governance.review.vocabulary import LeaseOutcome, QueueStatus

    errors = [e for log in logs + crash_logs for e in log.errors]
    if errors:
        raise AssertionError(f"{len(errors)} client errors, first: {errors[0]}")
    judged = [i for log in logs for i in log.judged]
    if len(judged) != len(set(judged)):
        raise AssertionError(f"{len(judged) - len(set(judged))} items judged twice")
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            verdict_items = connection.execute(sa.select(Verdict.queue_item_id)).scalars().all()
            statuses = connection.execute(sa.select(QueueItem.status)).scalars().all()
            leases = connection.execute(sa.select(Lease.id, Lease.outcome)).all()
    finally:
        engine.dispose()
    if sorted(verdict_items) != sorted(judged) or len(verdict_items) != n_items:
        raise AssertionError(
            f"verdicts lost or extra: {len(verdict_items)} stored, {len(judged)} acknowledged, "
            f"{n_items} queued"
        )
    if set(statuses) != {QueueStatus.JUDGED.value}:
        raise AssertionError(f"items left unjudged: {sorted(set(statuses))}")
    granted = set().union(*(log.lease_ids for log in logs + crash_logs))
    stored = {lease_id for lease_id, _ in leases}
    if granted != stored:
        raise AssertionError(f"leases granted {len(granted)} != stored {len(stored)}")
    open_leases = [lease_id for lease_id, outcome in leases if outcome is None]
    if open_leases:
        raise AssertionError(f"{len(open_leases)} leases never ended")
    expired = sum(1 for _, outcome in leases if outcome == LeaseOutcome.EXPIRED.value)
    judged_leases = sum(1 for _, outcome in leases if outcome == LeaseOutcome.JUDGED.value)
    if judged_leases != n_items:
        raise AssertionError(f"{judged_leases} leases ended judged, expected {n_items}")
    return len(leases), expired


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_load(
    database_url: str,
    *,
    n_items: int,
    n_moderators: int,
    n_crashing: int = 2,
    lease_seconds: float = 2.0,
    replay_every: int = 25,
    timeout_seconds: float = 600.0,
    data_dir: Path | None = None,
) -> LoadResult:
    """Seed an empty database, serve it, run the moderators and check every invariant."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = data_dir or Path(scratch)
        tokens = _seed(database_url, n_items=n_items, n_clients=n_moderators + n_crashing)
        logs = [_ClientLog() for _ in range(n_moderators)]
        crash_logs = [_ClientLog() for _ in range(n_crashing)]
        with serve(database_url, directory, lease_seconds=lease_seconds) as url:
            crashers = [
                threading.Thread(target=_crash, args=(url, tokens[n_moderators + i], crash_logs[i]))
                for i in range(n_crashing)
            ]
            for thread in crashers:
                thread.start()
            for thread in crashers:
                thread.join()
            deadline = time.monotonic() + timeout_seconds
            threads = [
                threading.Thread(
                    target=_moderate, args=(url, tokens[i], logs[i], deadline, replay_every)
                )
                for i in range(n_moderators)
            ]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=timeout_seconds + 30)
            seconds = time.perf_counter() - start
            if time.monotonic() > deadline or any(t.is_alive() for t in threads):
                raise TimeoutError(f"load run did not finish within {timeout_seconds} s")
        n_leases, expired = _check(database_url, logs, crash_logs, n_items)
    claims = [ms for log in logs for ms in log.claim_ms]
    verdicts = [ms for log in logs for ms in log.verdict_ms]
    return LoadResult(
        database=sa.make_url(database_url).get_backend_name(),
        n_items=n_items,
        n_moderators=n_moderators,
        requests=len(claims) + len(verdicts) + sum(log.replays for log in logs),
        seconds=seconds,
        claim_p50_ms=_percentile(claims, 50),
        claim_p99_ms=_percentile(claims, 99),
        verdict_p50_ms=_percentile(verdicts, 50),
        verdict_p99_ms=_percentile(verdicts, 99),
        leases=n_leases,
        expired_leases=expired,
        replays=sum(log.replays for log in logs),
    )


@contextmanager
def _postgres_database() -> Iterator[str | None]:
    """A throwaway PostgreSQL database (None when the server is unreachable)."""
    import psycopg

    try:
        admin = psycopg.connect(_PG_ADMIN_DSN, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        yield None
        return
    name = f"govrisk_bench_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = _PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    """Run the load against SQLite and PostgreSQL and print one table."""
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--moderators", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="300 items, 10 moderators")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    n_items, n_moderators = (300, 10) if args.quick else (args.items, args.moderators)
    results: list[LoadResult] = []
    console = Console(width=170)
    with tempfile.TemporaryDirectory() as scratch:
        console.print(f"SQLite: {n_moderators} moderators x {n_items:,} items ...")
        sqlite_url = f"sqlite:///{Path(scratch) / 'load.db'}"
        results.append(
            run_load(
                sqlite_url, n_items=n_items, n_moderators=n_moderators, lease_seconds=_LEASE_SECONDS
            )
        )
    with _postgres_database() as pg_url:
        if pg_url is None:
            console.print("[yellow]PostgreSQL unreachable on 127.0.0.1:5432; skipped[/yellow]")
        else:
            console.print(f"PostgreSQL: {n_moderators} moderators x {n_items:,} items ...")
            results.append(
                run_load(
                    pg_url, n_items=n_items, n_moderators=n_moderators, lease_seconds=_LEASE_SECONDS
                )
            )
    table = Table(
        title=f"Review queue over HTTP: {n_moderators} moderators, {n_items:,} items, "
        "one uvicorn worker, loopback"
    )
    for column in (
        "database",
        "requests",
        "seconds",
        "req/s",
        "vs SQLite",
        "claim p50 ms",
        "claim p99 ms",
        "verdict p50 ms",
        "verdict p99 ms",
        "leases (expired)",
        "replays",
    ):
        table.add_column(column, justify="right")
    base = results[0].requests_per_second
    for r in results:
        table.add_row(
            r.database,
            f"{r.requests:,}",
            f"{r.seconds:.1f}",
            f"{r.requests_per_second:,.0f}",
            f"{r.requests_per_second / base:.2f}x",
            f"{r.claim_p50_ms:.1f}",
            f"{r.claim_p99_ms:.1f}",
            f"{r.verdict_p50_ms:.1f}",
            f"{r.verdict_p99_ms:.1f}",
            f"{r.leases:,} ({r.expired_leases})",
            f"{r.replays}",
        )
    console.print(table)
    console.print(
        "Checked on every run: no item judged twice, every acknowledged verdict "
        "stored, every lease ended (judged or expired)."
    )


if __name__ == "__main__":
    main()
