"""Tests that start real processes beyond one ``coordinator serve``: replicas side by side,
a Redis that stops or a cluster of them, nginx in front, a Docker engine, the real agent
CLIs, the benchmark. The in-process tests and their shared pieces are one folder up."""
