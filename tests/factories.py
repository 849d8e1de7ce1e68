"""Seeded synthetic factories shared by tests: small, contract-valid marketplace tables."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from experiments.synthetic.tables import make_tables as _make_tables

#: Start of the factory world; `days` later it ends.
START = datetime(2025, 1, 1)


def make_tables(n_listings: int = 200, seed: int = 0, *, days: int = 60) -> dict[str, pd.DataFrame]:
    """Every contract table (exposure, decisions, outcomes and audit labels included)."""
    return _make_tables(n_listings, seed=seed, start=START, days=days)
