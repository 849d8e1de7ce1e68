"""Concurrent moderators over HTTP against a real uvicorn server, on SQLite and PostgreSQL.

`run_load` checks the invariants itself (it raises on any breach): no item judged twice, every
acknowledged verdict stored, every lease ended; these tests add what the numbers must show.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.benchmarks.review_load import run_load


def test_ten_moderators_work_through_300_items(review_db_url: str, tmp_path: Path) -> None:
    result = run_load(
        review_db_url,
        n_items=300,
        n_moderators=10,
        n_crashing=2,
        lease_seconds=3.0,
        replay_every=25,
        timeout_seconds=240,
        data_dir=tmp_path,
    )
    assert result.n_items == 300
    assert result.expired_leases >= 2  # the crashed clients' leases ran out and were reclaimed
    assert result.leases == 300 + result.expired_leases
    assert result.replays >= 300 // 25 - 10


@pytest.mark.slow
def test_fifty_moderators_work_through_5000_items(review_db_url: str, tmp_path: Path) -> None:
    result = run_load(
        review_db_url,
        n_items=5_000,
        n_moderators=50,
        n_crashing=3,
        lease_seconds=10.0,
        timeout_seconds=900,
        data_dir=tmp_path,
    )
    assert result.n_items == 5_000 and result.expired_leases >= 3
