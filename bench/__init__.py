"""Benchmarks: run them as modules (``python -m bench.bridge``); see BENCHMARKS.md."""
