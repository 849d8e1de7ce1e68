"""Fixtures of the audit tests: a tiny seeded marketplace with known truth."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.governance.audit.audit_world import World, make_world


@pytest.fixture
def world_factory() -> Callable[..., World]:
    """`make_world(n=..., seed=...)`."""
    return make_world


@pytest.fixture(scope="session")
def world() -> World:
    """One shared small world (read-only)."""
    return make_world()
