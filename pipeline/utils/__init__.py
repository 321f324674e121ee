"""Helpers below everything else: DataFrames through a shuffle, calls with a hard time limit."""
