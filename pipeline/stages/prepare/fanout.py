"""Fan-out of the key x window fits when there are few keys for the job's parallel slots.

The windows of a key are cut right after the key's shuffle, in the stage that fits them
(pipeline.stages.prepare.windows), so the fits of one key run on one worker: the runner spreads the keys,
not the key x windows. With thousands of keys that is the cheapest graph. With few keys it leaves
slots idle: Beam's local runner deals a GroupByKey's output to its workers round-robin by key, and
Dataflow does not split a key either, so k keys of equal cost on s slots take ceil(k / s) rounds
for k / s rounds of work, an efficiency of (k / s) / ceil(k / s): 3 keys on 2 workers, 75%; 20 keys
on 32 slots, 62%; and keys of unequal cost (histories of different lengths) do worse.

So the graph has two paths after the cut, and the data chooses between them at run time. The
number of distinct keys is counted before the key shuffle, like the period range (`CountKeysFn`
over each chunk's keys, counted up to the threshold only: below it is all that matters, so the
count stays small with millions of keys), and `decide` turns it into the decision, a singleton
side input of the cut step. The cut step then sends every window straight on to the fit, fused
with it (the common case: no extra shuffle), or, with fewer keys than the threshold, to a
Reshuffle (the windows cross it as bytes) that deals the key x windows to every slot before the fit.
`FitWindows` applies the fit on each path. When the decision is known before any data is read
(--fan_out=never, or a single slot), the graph has the straight path alone (`may_fan_out`).

The threshold: fan out with fewer than KEYS_PER_SLOT x slots keys. At or above 4 keys per slot,
round-robin wastes at most 1/5 of the fitting time with keys of equal cost (the worst case is one
key more than a multiple of the slots: 4s + 1 keys take 5 rounds for 4 + 1/s rounds of work), and
keys of unequal cost even out over several keys per slot; that is about what spreading costs by
itself, one more shuffle of the windows (every row moved window_size / window_period times). Below
it the loss grows fast: 1/3 at 2s + 1 keys, 1/2 at s + 1 keys, 1 - k/s with fewer keys than slots.
A count that divides evenly (2 keys on 2 slots) loses nothing when the keys cost the same, and then
the shuffle is paid for nothing (bench/NOTE.md, "Few keys: fan-out"); it is kept for keys of unequal
cost, which the count cannot see. One slot: nothing to spread, never fanned out. Slots unknown
(Dataflow without --max_num_workers or --num_workers, or without a machine type of known size):
DEFAULT_SLOTS are assumed, a middling autoscaled job (8 workers of 4 cores), so jobs of fewer than
128 keys fan out.

The predictions do not depend on the path: each fit sees the same window rows and derives its
seed from (seed, key, window start) (pipeline.models.registry.group_seed).
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import apache_beam as beam

from pipeline.stages.prepare import windows
from pipeline.utils import packing

KEYS_PER_SLOT = 4
DEFAULT_SLOTS = 32  # slots unknown: 8 workers x 4 cores


def threshold(slots: int | None) -> int:
    """Fewer distinct keys than this fan out (with --fan_out=auto and more than one slot)."""
    return KEYS_PER_SLOT * (slots or DEFAULT_SLOTS)


def may_fan_out(mode: str, slots: int | None, keys_known: int | None = None) -> bool:
    """Whether the graph needs the fan-out path: not when the decision is known before any data is
    read (--fan_out=never, one slot, or a local run whose launcher counted at least `threshold(slots)`
    keys: io.source.distinct_keys_at_most), so that such a run's graph is the straight one alone.
    Its extra stages cost about half a second of a local run even when nothing takes that path
    (3.7% of a 50-shop gbr run, bench/NOTE.md)."""
    if mode == "always":
        return True
    return mode == "auto" and slots != 1 and not (keys_known is not None and keys_known >= threshold(slots))


def decide(keys: int, mode: str, slots: int | None, possible: bool = True) -> dict:
    """The decision, from the distinct keys counted up to `threshold(slots)` (a count equal to the
    threshold means at least that many); also the summary's `fan_out`. `possible`: whether the graph
    has the fan-out path (may_fan_out); without it nothing is fanned out, whatever the count."""
    limit = threshold(slots)
    if mode == "always":
        fanned_out = True
    elif mode == "never" or not possible:
        fanned_out = False
    else:
        fanned_out = slots != 1 and 0 < keys < limit
    return {"mode": mode, "keys": min(keys, limit), "threshold_keys": limit, "slots": slots,
            "fanned_out": fanned_out}


class CountKeysFn(beam.CombineFn):
    """Distinct keys over lists of keys, counted up to `cap`: the accumulator never holds more than
    `cap` keys. Exact below `cap`; `cap` means at least `cap` (no accumulator drops a key while it
    holds fewer than `cap`, so one that dropped some still holds `cap`)."""

    def __init__(self, cap: int):
        self._cap = cap

    def create_accumulator(self):
        return set()

    def add_input(self, acc, keys):
        if len(acc) < self._cap:
            acc.update(keys)
            if len(acc) > self._cap:
                acc = set(itertools.islice(acc, self._cap))
        return acc

    def merge_accumulators(self, accumulators):
        merged = set()
        for acc in accumulators:
            merged = self.add_input(merged, acc)
        return merged

    def extract_output(self, acc):
        return len(acc)


class FitWindows(beam.PTransform):
    """The cut windows (`windows.CutWindows`' two paths) -> {name: the output's parts}: each output
    `names` of the fit that `make_fit()` builds as a tuple of PCollections, (straight, fanned out), or
    with `fan_out` false (the fan-out path is then empty: `may_fan_out`) the straight one alone.

    The straight path is the fit fused after the cut; the fan-out path spreads the windows with
    a Reshuffle first (as bytes: ReshuffleFrames), so the fit stage receives the same elements,
    (key, window start, the window's rows), on either path.

    The paths are not flattened here. Beam's local runner materialises every flatten (each input
    written to a buffer in the runner process, read back by the next stage): a flatten before the
    fits would move every window through the runner (window_size / window_period copies of each row)
    and make the fit stage read a list buffer, which the runner splits between workers by data block,
    not by key (bench/NOTE.md); a flatten right after them would move a DataFrame per key x window,
    8% of a 400-shop ridge run on 2 workers. So the consumers take the parts: the file sinks batch and
    convert each part before the one write (io.sinks.WriteFrames), the summary counts each
    (stages.summary), and only those that need one PCollection flatten them (`merged`). Dataflow fuses
    a flatten into its inputs' stages and moves nothing."""

    def __init__(self, make_fit: Callable[[], beam.PTransform], names: Sequence[str], fan_out: bool = True):
        super().__init__()
        self._make_fit, self._names, self._fan_out = make_fit, tuple(names), fan_out

    def expand(self, cut):
        straight = cut[windows.STRAIGHT] | "Straight" >> self._make_fit()
        if not self._fan_out:
            return {name: (straight[name],) for name in self._names}
        spread = (cut[windows.FANNED_OUT]
                  | "Spread" >> packing.ReshuffleFrames()
                  | "FannedOut" >> self._make_fit())
        return {name: (straight[name], spread[name]) for name in self._names}


def merged(parts, label: str):
    """One PCollection of an output's parts (a PCollection is returned as it is)."""
    if not isinstance(parts, tuple):
        return parts
    return parts[0] if len(parts) == 1 else parts | label >> beam.Flatten()
