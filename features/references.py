"""Feature names referenced by strategy files, checked against the catalogue before a build.

Only the feature references are checked here (the strategy parser in `governance` owns the
rest of the format): a build that would give a strategy a frame without its feature stops
first, naming the file, the strategy and the closest known names.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path

import yaml

from features.catalog import feature_types
from features.vocabulary import Entity, Policy

#: Model-score columns a strategy may gate on (present when a frame carries scores).
SCORE_COLUMNS = frozenset({"p_any", *(f"p_{p.value}" for p in Policy)})


def _features(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("feature"), str):
            yield node["feature"]
        for value in node.values():
            yield from _features(value)
    elif isinstance(node, list):
        for item in node:
            yield from _features(item)


def strategy_problems(strategies_dir: Path) -> list[str]:
    """Unknown entities and features in `strategies_dir/*.yaml` (empty when all resolve)."""
    problems: list[str] = []
    if not strategies_dir.is_dir():
        return problems
    for path in sorted(strategies_dir.glob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            problems.append(f"{path.name}: not valid YAML: {err}")
            continue
        if not isinstance(doc, dict):
            problems.append(f"{path.name}: expected a mapping")
            continue
        name = f"{doc.get('id', '?')}@v{doc.get('version', '?')}"
        try:
            entity = Entity(str(doc.get("entity")))
        except ValueError:
            problems.append(
                f"{path.name} ({name}): entity {doc.get('entity')!r} is not one of "
                f"{[e.value for e in Entity]}"
            )
            continue
        known = feature_types(entity)
        for feature in _features(doc.get("condition")):
            if feature in known or feature in SCORE_COLUMNS:
                continue
            close = difflib.get_close_matches(feature, list(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            problems.append(
                f"{path.name} ({name}): unknown feature {feature!r} for the {entity.value} "
                f"frame{hint} (list them with `govrisk features list --entity {entity.value}`)"
            )
    return problems
