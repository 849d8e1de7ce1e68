"""Command-line option parsing shared by the evaluation commands."""

from __future__ import annotations

import typer


def parse_seeds(values: list[str] | None, default: tuple[int, ...]) -> tuple[int, ...]:
    """`--seeds 1,2 --seeds 3` as (1, 2, 3); `default` when none are given."""
    if not values:
        return default
    try:
        return tuple(int(part) for v in values for part in v.replace(" ", ",").split(",") if part)
    except ValueError as err:
        raise typer.BadParameter(
            f"seeds must be integers, got {', '.join(values)}", param_hint="--seeds"
        ) from err
