"""Many models: one model per key and sliding time window, trained and evaluated in one Beam pipeline."""

__version__ = "0.1.0"
