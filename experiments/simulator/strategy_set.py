"""The starter strategy set shipped with the simulator (`starter_strategies/*.yaml`)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from governance.strategy import Strategy


def starter_strategies() -> list[Strategy]:
    """Every starter strategy version (active, shadow and retired), sorted by ref."""
    from governance.strategy import parse_strategy

    folder = resources.files("experiments.simulator") / "starter_strategies"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            out.append(parse_strategy(entry.read_text(encoding="utf-8"), source=entry.name))
    return out


def active(strategies: Sequence[Strategy]) -> list[Strategy]:
    """The versions that act on traffic, checking that no id has two active versions."""
    from features.vocabulary import StrategyStatus

    acting = [s for s in strategies if s.status == StrategyStatus.ACTIVE]
    ids = [s.id for s in acting]
    doubled = sorted({i for i in ids if ids.count(i) > 1})
    if doubled:
        raise ValueError(
            f"strategies {doubled} have more than one active version; retire all but one"
        )
    refs = [s.ref for s in strategies]
    dup_refs = sorted({r for r in refs if refs.count(r) > 1})
    if dup_refs:
        raise ValueError(f"duplicate strategy versions {dup_refs}; each id@version once")
    return acting
