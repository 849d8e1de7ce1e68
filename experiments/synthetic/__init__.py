"""Fast seeded generators for tests and benchmarks: contract tables and labeled feature frames.

Not the simulated marketplace (`experiments.simulator`, which carries ground truth): these only
need plausible shapes and volumes, fast at a million rows.
"""
