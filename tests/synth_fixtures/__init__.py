"""Helpers for the synthetic-data generator tests and benchmarks."""
