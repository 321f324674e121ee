"""Prepare: rows read and checked, dates parsed, keys sized, windows cut, features built."""
