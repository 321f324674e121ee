"""Helpers shared by the tests: pipeline runs, emulators, schemas, test-only models."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
