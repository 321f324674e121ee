"""Test-only estimators for fault injection, registered in registry.REGISTRY by the tests that use them.

Which key x windows misbehave is decided from the per-group seed the pipeline
passes (registry.group_seed), so a test can compute the expected ledger. Seed 0 is
what registry.check_model uses for its pre-flight fit, so it always behaves.
"""

from __future__ import annotations

import dataclasses
import errno
import time

import numpy as np
import pytest

from pipeline.models import registry
from pipeline.params import parse
from pipeline.params.catalog import PARAMS
from tests.helpers.pipeline_runs import make_rows


# The clean input the fault-injection tests share: 8 keys x 5 years, so 3 windows of 3 periods per key.
KEYS = "ABCDEFGH"
YEARS = [2001, 2002, 2003, 2004, 2005]
WINDOWS = (2001, 2002, 2003)  # window_size 3 over 2001..2005


def is_chosen(seed: int, fraction: float) -> bool:
    return bool(seed) and (seed % 1000) < fraction * 1000


def chosen_groups(fraction: float) -> set[tuple[str, int]]:
    """The key x windows of the clean input that misbehave at `fraction` (seed 0, as the tests run)."""
    return {(key, start) for key in KEYS for start in WINDOWS
            if is_chosen(registry.group_seed(0, key, start), fraction)}


@pytest.fixture
def clean_input(tmp_path):
    path = tmp_path / "input.parquet"
    make_rows({key: YEARS for key in KEYS}, days=5).to_parquet(path, index=False)
    return str(path)


class InjectedFault(RuntimeError):
    pass


class SimulatedCrash(BaseException):
    """Not an Exception: nothing in the pipeline catches it, so the job dies mid-way."""


class FaultyRegressor:
    """Mean predictor that raises, hangs, crashes the job or predicts too many values for chosen groups."""

    def __init__(self, random_state=0, fail_fraction=0.0, hang_fraction=0.0, hang_seconds=600.0,
                 crash_fraction=0.0, wrong_length_fraction=0.0, from_rows=0, disk_full_fraction=0.0,
                 out_of_memory_fraction=0.0):
        self.random_state, self.fail_fraction = random_state, fail_fraction
        self.from_rows = from_rows  # faults only in fits on at least this many rows (0: every fit)
        self.hang_fraction, self.hang_seconds, self.crash_fraction = hang_fraction, hang_seconds, crash_fraction
        self.wrong_length_fraction = wrong_length_fraction
        self.disk_full_fraction, self.out_of_memory_fraction = disk_full_fraction, out_of_memory_fraction

    def get_params(self, deep=True):
        return {"random_state": self.random_state, "fail_fraction": self.fail_fraction,
                "hang_fraction": self.hang_fraction, "hang_seconds": self.hang_seconds,
                "crash_fraction": self.crash_fraction, "wrong_length_fraction": self.wrong_length_fraction,
                "from_rows": self.from_rows, "disk_full_fraction": self.disk_full_fraction,
                "out_of_memory_fraction": self.out_of_memory_fraction}

    def _faulty(self, fraction: float) -> bool:
        return self.fit_rows_ >= self.from_rows and is_chosen(self.random_state, fraction)

    def fit(self, features, target):
        self.fit_rows_ = len(target)
        if is_chosen(self.random_state, self.crash_fraction):
            raise SimulatedCrash(f"simulated crash for seed {self.random_state}")
        if self._faulty(self.disk_full_fraction):
            raise OSError(errno.ENOSPC, f"No space left on device (injected for seed {self.random_state})")
        if self._faulty(self.out_of_memory_fraction):
            raise MemoryError(f"injected for seed {self.random_state}")
        if self._faulty(self.fail_fraction):
            raise InjectedFault(f"injected fault for seed {self.random_state} on {len(target)} rows")
        if self._faulty(self.hang_fraction):
            time.sleep(self.hang_seconds)
        self.mean_ = float(np.mean(target))
        return self

    def predict(self, features):
        extra = int(self._faulty(self.wrong_length_fraction))
        return np.full(len(features) + extra, self.mean_)


SPEC = registry.ModelSpec("faulty", "tests.helpers.faulty_models:FaultyRegressor")  # a test-only fault injector


@pytest.fixture
def faulty_model(monkeypatch):
    """Registers the fault injector as --model=faulty for one test (import this fixture to use it)."""
    monkeypatch.setitem(registry.REGISTRY, "faulty", SPEC)
    monkeypatch.setattr(parse, "PARAMS", tuple(  # the parser reads the declarations from here
        dataclasses.replace(p, choices=(*p.choices, "faulty"), regex=None) if p.name == "model" else p
        for p in PARAMS))
