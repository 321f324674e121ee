"""Outputs: each output's schema and sink, readable period labels, saved models."""
