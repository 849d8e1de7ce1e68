"""Simulator, evaluations, benchmarks and the specs they share."""

from pathlib import Path

#: Training specs and strategy files shipped with the package (the demo's, the fraud data's).
SPECS_DIR = Path(__file__).parent / "specs"
