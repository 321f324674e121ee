"""An allowed module that re-exports a dangerous name: the pipeline must refuse it (tests only)."""

from os import system  # noqa: F401
