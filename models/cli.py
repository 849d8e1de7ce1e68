"""`govrisk` subcommands owned by the `models` package."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's subcommands to the root app."""
    del app
