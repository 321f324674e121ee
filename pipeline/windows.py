"""Sliding windows over periods, as in the article: SlidingWindows(size=3, period=1).

Each block is stamped with its period as event time (period p -> timestamp p
seconds) and Beam assigns it to every window [start, start + size) that
contains p. Inside a window the last `test_periods` periods are predicted and
the earlier ones train the model:

    periods       2013 2014 2015 2016 2017 2018
    window 2013   train train test
    window 2014        train train test
    window 2015             train train test
    window 2016                  train train test

A window is *planned* when it lies entirely inside the data's period range
(windows hanging over either end can never be complete, so they are not
groups). A planned key x window with fewer distinct periods than the window
size is skipped with reason `too_few_periods`.
"""

from __future__ import annotations

import dataclasses

from apache_beam.transforms import window as beam_window

MICROS = 1_000_000


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    size: int
    period: int
    test_periods: int

    @classmethod
    def from_params(cls, params) -> "WindowPlan":
        return cls(params.window_size, params.window_period, params.test_periods)

    def window_fn(self) -> beam_window.SlidingWindows:
        return beam_window.SlidingWindows(size=self.size, period=self.period)

    @staticmethod
    def timestamped(period: int, value):
        return beam_window.TimestampedValue(value, period)

    @staticmethod
    def start_of(window: beam_window.IntervalWindow) -> int:
        return int(window.start.micros // MICROS)

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

    def is_planned(self, start: int, first: int, last: int) -> bool:
        return start >= first and self.end_of(start) <= last
