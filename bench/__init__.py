"""Benchmarks that print ratios against the targets in the issues (not tests)."""
