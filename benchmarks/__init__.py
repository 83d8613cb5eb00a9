"""Benchmarks that run Periscope side by side with its peers in one process and print ratios.

Each ``bench_*.py`` module exposes ``run(quick: bool) -> str`` returning a markdown section with
its figures and ratios. ``python -m benchmarks [NAME ...] [--quick]`` runs them (all by default),
prints the sections and, for a full run of all of them, rewrites ``benchmarks/RESULTS.md``.
"""
