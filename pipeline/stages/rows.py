"""Row validation and grouping: source chunks in, one frame of rows per key out.

Each chunk is validated column by column (vectorised). Rows that cannot be
used go to the rejected-rows output with the stage, a reason code, the
offending field and the original row as JSON; nothing is dropped silently.
Valid rows are normalised (period int, date, float target and features) and
cut into one part per key; the parts of a key from every chunk meet once
(GroupByKey), are merged in date order, and a second row for the same (key, date),
whatever its period, is rejected there. That one shuffle is the only one before training:
the sliding windows are cut from each key's rows afterwards (pipeline.stages.windows).
"""

from __future__ import annotations

import json
import logging
import typing

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.metrics import Metrics

from pipeline.utils import packing
from pipeline.params.values import PipelineParams
from pipeline.stages.windows import PeriodRangeFn

REJECTED_COLUMNS = ("stage", "reason", "field", "row_json")
KEY_ROWS, REJECTED, COUNTS, PERIOD_RANGE, UNEXPECTED = "key_rows", "rejected", "counts", "period_range", "unexpected"
_PERIOD_SPANS = "period_spans"


def rejected_frame(rows: pd.DataFrame, stage: str, reason: str, field: str) -> pd.DataFrame:
    records = rows.to_dict(orient="records")
    return pd.DataFrame({
        "stage": stage, "reason": reason, "field": field,
        "row_json": [json.dumps(r, default=str, allow_nan=True) for r in records],
    }, columns=list(REJECTED_COLUMNS))


def _numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def validate_chunk(chunk: pd.DataFrame, params: PipelineParams):
    """Returns (valid normalised rows with a `__key` column, rejected frame, counts)."""
    checks = []  # (field, reason, bad mask), first failing check wins per row
    key = chunk[params.key_column]
    key_text = key.astype("string").str.strip()
    checks.append((params.key_column, "missing_key", key.isna() | (key_text == "")))

    period = _numeric(chunk[params.time_column])
    checks.append((params.time_column, "bad_period",
                   period.isna() | ~np.isfinite(period) | (period != np.floor(period))))
    checks.append((params.time_column, "period_out_of_range",
                   (period < params.min_period) | (period > params.max_period)))

    dates = pd.to_datetime(chunk[params.date_column], errors="coerce", utc=False, format="mixed")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert(None)
    checks.append((params.date_column, "bad_date", dates.isna()))

    target = _numeric(chunk[params.target])
    checks.append((params.target, "bad_target", target.isna() | ~np.isfinite(target)))

    rejected_parts, bad_any = [], pd.Series(False, index=chunk.index)
    for field, reason, mask in checks:
        mask = mask.fillna(True).astype(bool) & ~bad_any
        if mask.any():
            rejected_parts.append(rejected_frame(chunk.loc[mask], "validate", reason, field))
            bad_any |= mask

    good = ~bad_any
    valid = pd.DataFrame({
        "__key": key_text[good].astype(str).to_numpy(),
        params.time_column: period[good].astype("int64").to_numpy(),
        params.date_column: dates[good].astype("datetime64[ns]").to_numpy(),
        params.target: target[good].to_numpy(),
    })
    coerced = missing = 0
    for feature in params.features:
        raw = chunk.loc[good, feature]
        values = _numeric(raw)
        missing += int(raw.isna().sum())
        coerced += int((values.isna() & raw.notna()).sum())
        valid[feature] = np.nan_to_num(values.to_numpy(), nan=0.0, posinf=0.0, neginf=0.0)
    rejected = (pd.concat(rejected_parts, ignore_index=True) if rejected_parts
                else pd.DataFrame(columns=list(REJECTED_COLUMNS)))
    counts = {"rows_read": len(chunk), "rows_rejected_validation": len(rejected),
              "feature_values_coerced": coerced, "feature_values_missing": missing}
    return valid, rejected, counts


class _ValidateChunk(beam.DoFn):
    def __init__(self, params: PipelineParams):
        self._params = params
        self._rows_read = Metrics.counter("rows", "rows_read")
        self._rows_rejected = Metrics.counter("rows", "rows_rejected")
        self._coerced = Metrics.counter("rows", "feature_values_coerced")

    def process(self, chunk: pd.DataFrame):
        valid, rejected, counts = validate_chunk(chunk, self._params)
        time_column = self._params.time_column
        keys, columns = valid["__key"], valid.drop(columns="__key")
        # Row positions per key, then one take each: cheaper than iterating the groupby.
        for key, positions in columns.groupby(keys, sort=False).indices.items():
            yield str(key), packing.pack(columns.take(positions).reset_index(drop=True))
        if len(columns):
            periods = columns[time_column]
            yield beam.pvalue.TaggedOutput(_PERIOD_SPANS, (int(periods.min()), int(periods.max())))
        if len(rejected):
            yield beam.pvalue.TaggedOutput(REJECTED, rejected)
        yield beam.pvalue.TaggedOutput(COUNTS, counts)
        # Counted last: a chunk that fails half-way is counted once, by _RejectWholeChunk.
        self._rows_read.inc(counts["rows_read"])
        self._rows_rejected.inc(counts["rows_rejected_validation"])
        self._coerced.inc(counts["feature_values_coerced"])


class _RejectWholeChunk(beam.DoFn):
    """Beam's dead letters of validation (a chunk that broke the validator itself): every row of the
    chunk is rejected with reason unexpected_error, so no row is lost and the counts still reconcile."""

    def __init__(self):
        self._rows_read = Metrics.counter("rows", "rows_read")
        self._rows_rejected = Metrics.counter("rows", "rows_rejected")

    def process(self, dead_letter):
        chunk, (exc_class, exc_repr, _traceback) = dead_letter
        logging.warning("validation failed on a chunk of %d rows, all rejected: %s", len(chunk), exc_repr)
        self._rows_read.inc(len(chunk))
        self._rows_rejected.inc(len(chunk))
        yield beam.pvalue.TaggedOutput(REJECTED, rejected_frame(chunk, "validate", "unexpected_error", "*"))
        yield beam.pvalue.TaggedOutput(COUNTS, {"rows_read": len(chunk), "rows_rejected_validation": len(chunk)})


def in_date_order(rows: pd.DataFrame, params: PipelineParams) -> tuple[pd.DataFrame, np.ndarray]:
    """(one key's valid rows in date order, mask of the rows to reject as a second row for their date).

    Rows already in strictly increasing date order (the usual case) need no sort and hold no
    duplicate. Otherwise sorting on every column makes "which duplicate is kept" independent of the
    order the rows arrived in."""
    duplicated = np.zeros(len(rows), dtype=bool)
    dates = rows[params.date_column]
    if not (dates.is_monotonic_increasing and dates.is_unique):
        rows = rows.sort_values([params.date_column, params.time_column, params.target, *params.features],
                                kind="mergesort", ignore_index=True)
        duplicated = rows.duplicated([params.date_column], keep="first").to_numpy()
    return rows, duplicated


class _MergeKeyRows(beam.DoFn):
    """Joins the parts of one key in date order and rejects a second row for the same date (whatever
    its period) deterministically: the first by (date, period, target, features) is kept."""

    def __init__(self, params: PipelineParams):
        self._params = params
        self._rows_rejected = Metrics.counter("rows", "rows_rejected")
        self._rows_used = Metrics.counter("rows", "rows_used")

    def process(self, element):
        key, packed = element
        params = self._params
        parts = [packing.unpack(part) for part in packed]
        rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        rows, duplicated = in_date_order(rows, params)
        if duplicated.any():
            dupes = rows.loc[duplicated].assign(**{params.key_column: key})
            self._rows_rejected.inc(int(duplicated.sum()))
            yield beam.pvalue.TaggedOutput(
                REJECTED, rejected_frame(dupes, "merge", "duplicate_key_date", params.date_column))
            rows = rows.loc[~duplicated].reset_index(drop=True)
        self._rows_used.inc(len(rows))
        yield beam.pvalue.TaggedOutput(COUNTS, {"rows_used": len(rows),
                                                "rows_rejected_duplicate": int(duplicated.sum())})
        yield key, rows


class ValidateAndGroupByKey(beam.PTransform):
    """Source chunks -> (key, that key's rows in date order), rejected rows, row counts and the
    (first, last) period of the valid rows as a singleton.

    The period range is taken before the shuffle, so that the stage after it (merge, windows, fits)
    needs nothing else and the runner can split it by key; a range taken after it would make the
    runner store every key's rows once more and split them unevenly."""

    def __init__(self, params: PipelineParams):
        super().__init__()
        self._params = params

    def expand(self, chunks):
        # The side outputs are declared, so that with_exception_handling's wrapper knows them (else
        # Beam warns that the tags are "requested in with_outputs() but not declared in type hints").
        validate = beam.ParDo(_ValidateChunk(self._params)).with_output_types(
            typing.Any, **{tag: typing.Any for tag in (REJECTED, COUNTS, _PERIOD_SPANS)})
        validated = chunks | "Validate" >> validate.with_exception_handling(
            dead_letter_tag=UNEXPECTED).with_outputs(REJECTED, COUNTS, _PERIOD_SPANS, main=KEY_ROWS)
        broken = validated[UNEXPECTED] | "RejectBrokenChunks" >> beam.ParDo(_RejectWholeChunk()).with_outputs(
            REJECTED, COUNTS)
        merged = (validated[KEY_ROWS]
                  | "GroupByKey" >> beam.GroupByKey()
                  | "MergeKeyRows" >> beam.ParDo(_MergeKeyRows(self._params)).with_outputs(
                      REJECTED, COUNTS, main=KEY_ROWS))
        rejected = ((validated[REJECTED], broken[REJECTED], merged[REJECTED])
                    | "AllRejected" >> beam.Flatten())
        counts = (validated[COUNTS], broken[COUNTS], merged[COUNTS]) | "AllCounts" >> beam.Flatten()
        period_range = validated[_PERIOD_SPANS] | "PeriodRange" >> beam.CombineGlobally(PeriodRangeFn())
        return {KEY_ROWS: merged[KEY_ROWS], REJECTED: rejected, COUNTS: counts, PERIOD_RANGE: period_range}
