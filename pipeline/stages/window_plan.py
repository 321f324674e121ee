"""The plan of sliding windows over periods (see `windows`), without Beam: the benchmark's bare loop
and its Spark variant cut the same windows from it in processes that have no Beam."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    size: int
    period: int
    test_periods: int

    @classmethod
    def from_params(cls, params) -> "WindowPlan":
        return cls(params.window_size, params.window_period, params.test_periods)

    def window_fn(self):
        """Beam's SlidingWindows for this plan (Beam is imported here only)."""
        from apache_beam.transforms import window as beam_window

        return beam_window.SlidingWindows(size=self.size, period=self.period)

    def end_of(self, start: int) -> int:
        """Last period of the window (inclusive)."""
        return start + self.size - 1

    def test_start(self, start: int) -> int:
        return start + self.size - self.test_periods

    def train_periods(self, start: int) -> range:
        return range(start, self.test_start(start))

    def test_periods_of(self, start: int) -> range:
        return range(self.test_start(start), start + self.size)

    def starts_within(self, first: int, last: int) -> list[int]:
        """Window starts Beam produces (multiples of `period`) that lie inside [first, last]."""
        begin = first + (-first) % self.period
        return list(range(begin, last - self.size + 2, self.period))

    def cut(self, periods: np.ndarray, first: int, last: int):
        """(window start, row positions: an array, or a slice when `periods` are sorted) of every planned
        window holding at least one of `periods`; the rows keep their order."""
        starts = self.starts_within(first, last)
        if len(periods) and (periods[1:] >= periods[:-1]).all():  # the usual case: rows in date order
            begins = np.searchsorted(periods, starts, side="left")
            ends = np.searchsorted(periods, [self.end_of(start) for start in starts], side="right")
            for start, begin, end in zip(starts, begins.tolist(), ends.tolist()):
                if end > begin:
                    yield start, slice(begin, end)
            return
        for start in starts:
            positions = np.flatnonzero((periods >= start) & (periods <= self.end_of(start)))
            if len(positions):
                yield start, positions
