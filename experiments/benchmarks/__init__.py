"""Benchmarks: each module runs side-by-side measurements and prints a table of ratios."""
