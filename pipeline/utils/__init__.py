"""Helpers below everything else: shuffled DataFrames, time-limited calls, thread pools, declared outputs."""
