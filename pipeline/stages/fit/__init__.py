"""Fit: one model per key x window (and its search), scored against the naive baseline, with intervals."""
