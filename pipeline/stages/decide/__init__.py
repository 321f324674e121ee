"""Decide: candidates compared, one chosen per key (or globally), and the future forecast with it."""
