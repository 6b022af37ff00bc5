"""Benchmarks: each bench_*.py runs as a module and writes JSON under benchmarks/results/."""
