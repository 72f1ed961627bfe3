"""Benchmarks: ``python -m benchmarks [--quick] [--only NAME] [--strict]`` (see docs/benchmarks.md)."""
