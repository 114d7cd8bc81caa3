"""Benchmarks: scripts that write measured results to benchmarks/results/."""
