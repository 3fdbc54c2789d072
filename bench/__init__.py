"""Benchmarks of tui_client: each prints absolute figures and ratios to a baseline measured in the same run.

``python -m bench`` runs them all; ``python -m bench.ingest`` (or ``bench.cold_start``) runs one.
See ``bench/README.md``.
"""
