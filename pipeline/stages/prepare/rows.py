"""Row validation and grouping: source chunks in, one frame of rows per key out.

Each chunk is validated column by column (vectorised). Rows that cannot be
used go to the rejected-rows output with the stage, a reason code, the
offending field and the original row as JSON; nothing is dropped silently.
Valid rows are normalised (period int, date, float target and features) and
cut into one part per key; the parts of a key from every chunk meet once
(GroupByKey), are merged in date order, and a second row for the same (key, date),
whatever its period, is rejected there. That one shuffle is the only one before training:
the sliding windows are cut from each key's rows afterwards (pipeline.stages.prepare.windows).
"""

from __future__ import annotations

import itertools
import json
import logging

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.metrics import Metrics

from pipeline.models import model_fit
from pipeline.utils import frames, packing, periods
from pipeline.params.values import PipelineParams
from pipeline.stages.prepare import fanout
from pipeline.stages.prepare import dates as date_values
from pipeline.stages.prepare.dates import parse_dates
from pipeline.stages.prepare.windows import DISTINCT_PERIODS_CHECKED, PeriodRangeFn
from pipeline.utils.tagged import DATA_ERRORS, declare_outputs

REJECTED_COLUMNS = ("stage", "reason", "field", "row_json")
KEY_ROWS, REJECTED, COUNTS, PERIOD_RANGE, UNEXPECTED = "key_rows", "rejected", "counts", "period_range", "unexpected"
FORECAST_ROWS = "forecast_rows"  # --forecast: (key, the key's rows to forecast)
KEY_COUNT = "key_count"  # distinct keys of the valid rows, counted up to a cap (pipeline.stages.prepare.fanout)
_PERIOD_SPANS, _CHUNK_KEYS, _DATE_FORMATS = "period_spans", "chunk_keys", "date_formats"
_ROW_JSON = "__row_json"  # --forecast: a row with a null target keeps its original row until the merge


def rejected_frame(rows: pd.DataFrame, stage: str, reason: str, field: str) -> pd.DataFrame:
    return pd.DataFrame({"stage": stage, "reason": reason, "field": field, "row_json": _row_jsons(rows)},
                        columns=list(REJECTED_COLUMNS))


def _row_jsons(rows: pd.DataFrame) -> list[str]:
    return [json.dumps(r, default=str, allow_nan=True) for r in rows.to_dict(orient="records")]


def _numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def validate_chunk(chunk: pd.DataFrame, params: PipelineParams, date_format: str | None = None):
    """Returns (valid normalised rows with a `__key` column, rejected frame, counts). Text dates are read
    in `date_format`, else --date_format, else the chunk's own (stages.prepare.dates)."""
    checks = []  # (field, reason, bad mask), first failing check wins per row
    key = chunk[params.key_column]
    key_text = key.astype("string")  # as written: "K1 " and "K1" are two keys; stripped only to test for blank
    checks.append((params.key_column, "missing_key", key.isna() | (key_text.str.strip() == "")))

    if not params.period:  # --period: derived from the date below, no period column is read
        period = _numeric(chunk[params.time_column])
        checks.append((params.time_column, "bad_period",
                       period.isna() | ~np.isfinite(period) | (period != np.floor(period))))
        checks.append((params.time_column, "period_out_of_range",
                       (period < params.min_period) | (period > params.max_period)))

    dates, bad_date = parse_dates(chunk[params.date_column], date_format or params.date_format)
    checks.append((params.date_column, "bad_date", pd.Series(bad_date, index=chunk.index)))

    target = _numeric(chunk[params.target])
    bad_target = target.isna() | ~np.isfinite(target)
    # --forecast: a null target (not an unparsable or infinite one) may be a row to forecast; whether it
    # comes after the key's last period with a target is known only once the key's rows meet (merge).
    future = chunk[params.target].isna() if params.forecast else pd.Series(False, index=chunk.index)
    checks.append((params.target, "bad_target", bad_target & ~future))

    rejected_parts, bad_any = [], pd.Series(False, index=chunk.index)
    for field, reason, mask in checks:
        mask = mask.fillna(True).astype(bool) & ~bad_any
        if mask.any():
            rejected_parts.append(rejected_frame(chunk.loc[mask], "validate", reason, field))
            bad_any |= mask

    good = ~bad_any
    good_dates = np.asarray(dates)[good.to_numpy()]
    valid = pd.DataFrame({
        "__key": key_text[good].astype(str).to_numpy(),
        params.time_column: (periods.ordinals(good_dates, params.period) if params.period
                             else period[good].astype("int64").to_numpy()),
        params.date_column: good_dates,
        params.target: target[good].to_numpy(),
    })
    if params.forecast and (future & good).any():
        to_forecast = future[good].to_numpy()
        row_jsons = np.full(len(to_forecast), None, dtype=object)  # only the rows to forecast are written out
        row_jsons[to_forecast] = _row_jsons(chunk.loc[good & future])
        valid[_ROW_JSON] = row_jsons.tolist()  # the column type the list of texts and None always had
    coerced = missing = 0
    for feature in params.features:
        raw = chunk.loc[good, feature]
        values = _numeric(raw)
        missing += int(raw.isna().sum())
        coerced += int((values.isna() & raw.notna()).sum() + np.isinf(values).sum())  # text, and +-inf
        valid[feature] = np.nan_to_num(values.to_numpy(), nan=0.0, posinf=0.0, neginf=0.0)
    rejected = (pd.concat(rejected_parts, ignore_index=True) if rejected_parts
                else pd.DataFrame(columns=list(REJECTED_COLUMNS)))
    counts = {"rows_read": len(chunk), "rows_rejected_validation": len(rejected),
              "feature_values_coerced": coerced, "feature_values_missing": missing}
    return valid, rejected, counts


def refuses_calendar_integers(params: PipelineParams) -> bool:
    """Whether integer periods that read as yyyymm(dd) fail the run: read from a period column, gaps not meant."""
    return not params.period and not params.period_gaps_ok


class _ValidateChunk(beam.DoFn):
    def __init__(self, params: PipelineParams, key_cap: int):
        self._params, self._key_cap = params, key_cap
        self._refuse_calendar_integers = refuses_calendar_integers(params)
        self._rows_read = Metrics.counter("rows", "rows_read")
        self._rows_rejected = Metrics.counter("rows", "rows_rejected")
        self._coerced = Metrics.counter("rows", "feature_values_coerced")

    def setup(self):
        # The first stage of every worker: the model libraries load meanwhile (seconds for statsforecast).
        model_fit.import_in_background(self._params)

    def process(self, chunk: pd.DataFrame):
        # The chunk's date format, and how many of its values each candidate reads: the run checks that
        # every chunk chose the same (dates.AgreedFormatFn).
        votes = {} if self._params.date_format else date_values.format_votes(chunk[self._params.date_column])
        chosen = date_values.choose_format(votes)
        valid, rejected, counts = validate_chunk(chunk, self._params, chosen)
        if votes:
            yield beam.pvalue.TaggedOutput(_DATE_FORMATS, (chosen, votes))
        time_column = self._params.time_column
        keys, columns = valid["__key"], valid.drop(columns="__key")
        # Row positions per key, then one take each: cheaper than iterating the groupby.
        parts = columns.groupby(keys, sort=False).indices
        packed = packing.pack_all([columns.take(positions).reset_index(drop=True) for positions in parts.values()])
        for key, part in zip(parts, packed):
            yield str(key), part
        if parts:  # the chunk's distinct keys, as many as the count needs (fanout.CountKeysFn)
            yield beam.pvalue.TaggedOutput(_CHUNK_KEYS, [str(key) for key in itertools.islice(parts, self._key_cap)])
        observed = columns[columns[self._params.target].notna()] if self._params.forecast else columns
        if len(observed):  # the windows are planned over the periods with a target only
            distinct = np.unique(observed[time_column].to_numpy())
            span = (int(distinct[0]), int(distinct[-1]))
            if self._refuse_calendar_integers:  # and checked for yyyymm(dd) integers (windows.PeriodRangeFn)
                span += (distinct[:DISTINCT_PERIODS_CHECKED + 1].tolist(),)
            yield beam.pvalue.TaggedOutput(_PERIOD_SPANS, span)
        if len(rejected):
            yield beam.pvalue.TaggedOutput(REJECTED, rejected)
        yield beam.pvalue.TaggedOutput(COUNTS, counts)
        # Counted last: a chunk that fails half-way is counted once, by _RejectWholeChunk.
        self._rows_read.inc(counts["rows_read"])
        self._rows_rejected.inc(counts["rows_rejected_validation"])
        self._coerced.inc(counts["feature_values_coerced"])


class _RejectWholeChunk(beam.DoFn):
    """Beam's dead letters of validation (a chunk whose data broke the validator itself, a bug: each check
    rejects its own rows): every row of the chunk is rejected with reason unexpected_error, so no row is
    lost and the counts still reconcile. Infrastructure errors are not caught (utils.tagged.DATA_ERRORS)."""

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
        future = None
        if params.forecast:
            rows, future = split_future(rows, params)
            if not len(rows):
                yield from self._future(key, rows, future)
                return
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
        if future is not None:
            yield from self._future(key, rows, future)

    def _future(self, key, rows: pd.DataFrame, future: pd.DataFrame):
        """--forecast: the key's rows with a null target -> rows to forecast, or rejected rows."""
        future, in_span, duplicate = future_rows(rows, future, self._params)
        for reason, stage, field, rejected in (("bad_target", "validate", self._params.target, in_span),
                                               ("duplicate_key_date", "merge", self._params.date_column, duplicate)):
            if len(rejected):
                self._rows_rejected.inc(len(rejected))
                yield beam.pvalue.TaggedOutput(REJECTED, pd.DataFrame({
                    "stage": stage, "reason": reason, "field": field, "row_json": rejected[_ROW_JSON].to_numpy()},
                    columns=list(REJECTED_COLUMNS)))
        yield beam.pvalue.TaggedOutput(COUNTS, {"rows_to_forecast": len(future),
                                                "rows_rejected_validation": len(in_span),
                                                "rows_rejected_duplicate": len(duplicate)})
        if len(future):
            yield beam.pvalue.TaggedOutput(FORECAST_ROWS, (key, future))


def split_future(rows: pd.DataFrame, params: PipelineParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows with a target, rows with a null target) of one key (--forecast)."""
    if _ROW_JSON not in rows:
        return rows, rows.iloc[:0].assign(**{_ROW_JSON: pd.Series(dtype=object)})
    null = rows[params.target].isna().to_numpy()
    observed = [name for name in rows.columns if name != _ROW_JSON]
    return frames.take_rows(rows, ~null, observed), frames.take_rows(rows, null)


def future_rows(observed: pd.DataFrame, future: pd.DataFrame, params: PipelineParams):
    """(rows to forecast, without their original rows' texts; rows inside the observed span; second rows
    for a date) of one key's rows with a null target. A row is to forecast when its period comes after the
    key's last period with a target (every one when the key has none); one at or before it is rejected as bad_target, as without
    --forecast. A row to forecast on a date that already has a row is rejected as duplicate_key_date
    (the first by (date, period, features) is kept, whatever the order the rows arrived in)."""
    last = int(observed[params.time_column].max()) if len(observed) else None
    after = future[params.time_column].to_numpy() > last if last is not None else np.ones(len(future), bool)
    in_span, future = (future.iloc[:0], future) if after.all() else (future.loc[~after], future.loc[after])
    dates = future[params.date_column]
    if dates.is_monotonic_increasing and dates.is_unique:  # the usual case: the sort below keeps the order
        repeated = np.zeros(len(future), bool)
    else:
        future = future.sort_values([params.date_column, params.time_column, *params.features], kind="mergesort")
        repeated = future.duplicated([params.date_column], keep="first").to_numpy()
    duplicate = repeated | future[params.date_column].isin(observed[params.date_column]).to_numpy()
    to_forecast = frames.take_rows(future, ~duplicate, [name for name in future.columns if name != _ROW_JSON])
    return to_forecast, in_span, future.loc[duplicate] if duplicate.any() else future.iloc[:0]


class ValidateAndGroupByKey(beam.PTransform):
    """Source chunks -> (key, that key's rows in date order), rejected rows, row counts, and two
    singletons: the (first, last) period of the valid rows and the number of distinct keys, counted up
    to `key_cap` (a count equal to it means at least that many: pipeline.stages.prepare.fanout).

    Both singletons are taken before the shuffle, so that the stage after it (merge, windows, fits)
    needs nothing else and the runner can split it by key; taken after it, they would make the
    runner store every key's rows once more and split them unevenly."""

    def __init__(self, params: PipelineParams, key_cap: int = fanout.threshold(None)):
        super().__init__()
        self._params, self._key_cap = params, key_cap

    def expand(self, chunks):
        side_outputs = (REJECTED, COUNTS, _PERIOD_SPANS, _CHUNK_KEYS, _DATE_FORMATS)
        validate = declare_outputs(beam.ParDo(_ValidateChunk(self._params, self._key_cap)), *side_outputs)
        validated = chunks | "Validate" >> validate.with_exception_handling(
            dead_letter_tag=UNEXPECTED, exc_class=DATA_ERRORS).with_outputs(*side_outputs, main=KEY_ROWS)
        broken = validated[UNEXPECTED] | "RejectBrokenChunks" >> beam.ParDo(_RejectWholeChunk()).with_outputs(
            REJECTED, COUNTS)
        merged = (validated[KEY_ROWS]
                  | "GroupByKey" >> beam.GroupByKey()
                  | "MergeKeyRows" >> beam.ParDo(_MergeKeyRows(self._params)).with_outputs(
                      REJECTED, COUNTS, FORECAST_ROWS, main=KEY_ROWS))
        rejected = ((validated[REJECTED], broken[REJECTED], merged[REJECTED])
                    | "AllRejected" >> beam.Flatten())
        counts = (validated[COUNTS], broken[COUNTS], merged[COUNTS]) | "AllCounts" >> beam.Flatten()
        date_format = validated[_DATE_FORMATS] | "DateFormat" >> beam.CombineGlobally(
            date_values.AgreedFormatFn(self._params.date_column))
        # Every window waits on the period range: passed on once the chunks' date formats agree, no fit
        # starts before a disagreement fails the run.
        period_range = (validated[_PERIOD_SPANS]
                        | "PeriodRange" >> beam.CombineGlobally(
                            PeriodRangeFn(refuses_calendar_integers(self._params), self._params.time_column))
                        | "OnceDateFormatAgreed" >> beam.Map(lambda span, _format: span,
                                                             beam.pvalue.AsSingleton(date_format)))
        key_count = validated[_CHUNK_KEYS] | "CountKeys" >> beam.CombineGlobally(fanout.CountKeysFn(self._key_cap))
        return {KEY_ROWS: merged[KEY_ROWS], REJECTED: rejected, COUNTS: counts, PERIOD_RANGE: period_range,
                KEY_COUNT: key_count, FORECAST_ROWS: merged[FORECAST_ROWS]}
