"""Benchmarks of mmc-sweep against baselines measured in the same run (see BENCHMARKS.md)."""
