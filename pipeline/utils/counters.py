"""Counters summed across a pipeline: the summary's, the plan's, the selection's evidence."""

from __future__ import annotations

import apache_beam as beam


class SumCounters(beam.CombineFn):
    """Sums dicts of counters; values may be nested dicts of counters."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, counters):
        for name, value in counters.items():
            if isinstance(value, dict):
                acc[name] = self.add_input(acc.get(name, {}), value)
            else:
                acc[name] = acc.get(name, 0) + value
        return acc

    def merge_accumulators(self, accumulators):
        merged = {}
        for acc in accumulators:
            self.add_input(merged, acc)
        return merged

    def extract_output(self, acc):
        return acc
