"""The plan of windows over periods (see `windows`), without Beam: the benchmark's bare loop
and its Spark variant cut the same windows from it in processes that have no Beam.

A window is named by its start: it spans [start, start + size - 1], its last `test_periods` periods
are tested and the earlier ones train (`sliding`); `expanding` trains on every earlier period of the
key as well, so `size` is then the minimum length. Windows are placed either on the global grid
(`global`: starts on multiples of `period` inside the data's period range, Beam's SlidingWindows) or
at each key's own end (`key`: the last window ends at the key's last observed period, the earlier
ones step back by `period`). Either way they are derived from the key's own distinct periods, never
by enumerating every start of the global range (one stray period far away costs one window, not
millions of empty starts).
"""

from __future__ import annotations

import dataclasses

import numpy as np

SLIDING, EXPANDING = "sliding", "expanding"
GLOBAL, KEY = "global", "key"


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    size: int
    period: int
    test_periods: int
    mode: str = SLIDING
    anchor: str = GLOBAL
    n_windows: int = 0  # 0: every window that fits; else the last n (global: of the grid; key: of the key)

    @classmethod
    def from_params(cls, params) -> "WindowPlan":
        return cls(params.window_size, params.window_period, params.test_periods,
                   getattr(params, "window_mode", SLIDING), getattr(params, "window_anchor", GLOBAL),
                   getattr(params, "n_windows", 0))

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
        """The training periods of a sliding window (an expanding one also trains on every earlier period)."""
        return range(start, self.test_start(start))

    def test_periods_of(self, start: int) -> range:
        return range(self.test_start(start), start + self.size)

    def starts_within(self, first: int, last: int) -> list[int]:
        """Window starts Beam produces (multiples of `period`) that lie inside [first, last]."""
        begin = first + (-first) % self.period
        return list(range(begin, last - self.size + 2, self.period))

    def global_starts(self, distinct: np.ndarray, first: int, last: int) -> list[int]:
        """The starts of `starts_within(first, last)` whose window holds one of the key's sorted
        `distinct` periods, from the runs of starts each period reaches (output-sized work)."""
        lowest = first + (-first) % self.period
        highest = last - self.size + 1
        if self.n_windows:
            highest -= (highest - lowest) % self.period if highest >= lowest else 0
            lowest = max(lowest, highest - (self.n_windows - 1) * self.period)
        if not len(distinct) or highest < lowest:
            return []
        # Period p lies in the windows starting in [p - size + 1, p]; consecutive ranges overlap or touch
        # unless two periods are more than `size` apart.
        breaks = np.flatnonzero(np.diff(distinct) > self.size)
        begins = distinct[np.r_[0, breaks + 1]] - self.size + 1
        ends = distinct[np.r_[breaks, len(distinct) - 1]]
        starts = []
        for begin, end in zip(begins.tolist(), ends.tolist()):
            begin, end = max(begin, lowest), min(end, highest)
            starts.extend(range(begin + (-begin) % self.period, end + 1, self.period))
        return starts

    def key_starts(self, distinct: np.ndarray) -> tuple[list[int], list[int]]:
        """(starts of the windows that fit the key's history, starts of those it is too short for),
        ascending. The last window ends at the key's last period; with n_windows=0 every window that
        fits, and one missing window when none does (so that the key is not silently absent)."""
        if not len(distinct):
            return [], []
        first, last_start = int(distinct[0]), int(distinct[-1]) - self.size + 1
        fitting = (last_start - first) // self.period + 1 if last_start >= first else 0
        count = self.n_windows or max(fitting, 1)
        starts = [last_start - k * self.period for k in range(count - 1, -1, -1)]
        return [s for s in starts if s >= first], [s for s in starts if s < first]

    def key_windows(self, distinct: np.ndarray, first: int, last: int) -> tuple[list[int], list[int]]:
        """(planned window starts, starts of the windows the key's history is too short for) of a key
        with sorted `distinct` periods, in a data set whose periods span [first, last]."""
        if self.anchor == KEY:
            return self.key_starts(distinct)
        return self.global_starts(distinct, first, last), []

    def cut(self, periods: np.ndarray, first: int, last: int):
        """(window start, row positions: an array, or a slice when `periods` are sorted) of every planned
        window holding at least one of `periods`, then of every window the key's history is too short
        for (key anchoring, no row: an empty slice); the rows keep their order."""
        periods = np.asarray(periods)
        starts, missing = self.key_windows(np.unique(periods), first, last)
        for start in missing:
            yield start, slice(0, 0)
        ends = [self.end_of(start) for start in starts]
        begins = [-np.inf] * len(starts) if self.mode == EXPANDING else starts
        if len(periods) and (periods[1:] >= periods[:-1]).all():  # the usual case: rows in date order
            first_rows = np.searchsorted(periods, begins, side="left")
            last_rows = np.searchsorted(periods, ends, side="right")
            for start, begin, end in zip(starts, first_rows.tolist(), last_rows.tolist()):
                if end > begin:
                    yield start, slice(begin, end)
            return
        for start, begin, end in zip(starts, begins, ends):
            positions = np.flatnonzero((periods >= begin) & (periods <= end))
            if len(positions):
                yield start, positions
