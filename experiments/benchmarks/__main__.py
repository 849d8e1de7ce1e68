"""Run every benchmark module in turn: `python -m experiments.benchmarks [NAME ...]`."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import experiments.benchmarks as _pkg


def main(names: list[str]) -> None:
    """Run the named benchmarks (all when none are named)."""
    modules = pkgutil.iter_modules(_pkg.__path__)
    available = sorted(m.name for m in modules if not m.name.startswith("_"))
    for name in names or available:
        if name not in available:
            raise SystemExit(f"unknown benchmark {name!r}; available: {', '.join(available)}")
        importlib.import_module(f"experiments.benchmarks.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
