"""Bounded work per key: a key too large for one worker is refused before any of its fits.

After the key shuffle a key's rows are one element, held whole by one worker: its feature
generation, every window cut from it and every fit of those windows happen there. A hot key (a key
with far more rows than the others) can exhaust that worker's memory and fail the job for everyone.
So each key's rows are measured right after the shuffle: a key over --max_key_rows rows or over
--max_key_bytes bytes (in memory, as pandas holds them) goes no further; it becomes one failed ledger
row (reason key_too_large, no window, with its rows and bytes), so the failure budget counts it and
every other key is fitted. 0 turns a limit off.

`--plan_only` reports the largest key (rows and bytes) and the keys a run would refuse, in plan.json.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.metrics import Metrics

from pipeline.params.values import PipelineParams

KEY_TOO_LARGE = "key_too_large"
REFUSED = "refused"  # the ledger rows of the refused keys
LARGEST_KEY = "largest_key"


def frame_bytes(frame: pd.DataFrame) -> int:
    """Bytes pandas holds for the frame (strings counted whole): `frame.memory_usage(index=True,
    deep=True).sum()`, read from the numpy columns' sizes without building that Series (once per key)."""
    total = frame.index.memory_usage(deep=True)
    for _, values in frame.items():
        plain = isinstance(values.dtype, np.dtype) and values.dtype != object
        total += values.array.nbytes if plain else values.memory_usage(index=False, deep=True)
    return int(total)


def refusal(rows: int, size: int, params: PipelineParams) -> str | None:
    """Why a key of `rows` rows and `size` bytes is too large for one worker; None when it is not."""
    over = [f"{rows} rows > --max_key_rows={params.max_key_rows}"] if 0 < params.max_key_rows < rows else []
    over += [f"{size} bytes > --max_key_bytes={params.max_key_bytes}"] if 0 < params.max_key_bytes < size else []
    return "; ".join(over) or None


def refused_ledger(params: PipelineParams, key: str, rows: int, size: int, why: str) -> dict:
    """The one failed ledger row of a refused key (no window: none was cut)."""
    return {params.key_column: key, "window_start": None, "window_end": None, "status": "failed",
            "reason": KEY_TOO_LARGE, "rows_train": None, "rows_test": None, "fit_seconds": 0.0,
            "predict_seconds": 0.0, "error_class": "KeyTooLarge",
            "error_message": f"key of {rows} rows, {size} bytes: {why}; refused before its fits (raise the "
                             "limit for bigger workers, or split the key)",
            "model": params.model, "model_params": None, "run_id": params.run_id}


class _RefuseHotKeysFn(beam.DoFn):
    def __init__(self, params: PipelineParams):
        self._params = params
        self._refused = Metrics.counter("groups", "keys_too_large")

    def process(self, element):
        key, rows = element
        size = frame_bytes(rows)
        yield beam.pvalue.TaggedOutput(LARGEST_KEY, (len(rows), size, key))
        why = refusal(len(rows), size, self._params)
        if why is None:
            yield element
            return
        self._refused.inc()
        yield beam.pvalue.TaggedOutput(REFUSED, refused_ledger(self._params, key, len(rows), size, why))


def _largest(measures: list) -> dict | None:
    if not measures:
        return None
    rows, size, key = max(measures)
    return {"key": key, "rows": rows, "bytes": size}


class RefuseHotKeys(beam.PTransform):
    """(key, the key's rows) -> {"key_rows": the keys within the limits, REFUSED: ledger rows of the others,
    LARGEST_KEY: a singleton {"key", "rows", "bytes"} of the key with the most rows (None without rows)}."""

    def __init__(self, params: PipelineParams):
        super().__init__()
        self._params = params

    def expand(self, key_rows):
        measured = key_rows | "Measure" >> beam.ParDo(_RefuseHotKeysFn(self._params)).with_outputs(
            REFUSED, LARGEST_KEY, main="key_rows")
        largest = (measured[LARGEST_KEY]
                   | "Largest" >> beam.combiners.Top.Of(1)
                   | "Describe" >> beam.Map(_largest))
        return {"key_rows": measured["key_rows"], REFUSED: measured[REFUSED], LARGEST_KEY: largest}


def with_refused(ledger_parts, refused):
    """The ledger's parts (a PCollection or a tuple of them: pipeline.stages.prepare.fanout) and the refused keys' rows."""
    return (*(ledger_parts if isinstance(ledger_parts, tuple) else (ledger_parts,)), refused)


def refused_counters(_ledger_row: dict) -> dict:
    return {"keys_too_large": 1}


def plan_facts(largest: dict | None, params: PipelineParams) -> dict:
    """plan.json's view: the largest key and the limits a run applies."""
    return {**(largest or {"key": None, "rows": 0, "bytes": 0}), "max_key_rows": params.max_key_rows,
            "max_key_bytes": params.max_key_bytes}

