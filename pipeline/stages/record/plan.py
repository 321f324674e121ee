"""Fold plan dry run (`--plan_only`): what a run would train, before training anything.

Same source, validation and windowing as a real run; instead of TrainAndPredict, `PlanWindows`
applies the same rules (`split.split_window`) to each planned key x window and writes one plan
row per group (train and test periods, row counts, would_train or would_skip with the reason) to
<output>/plan/, plus <output>/plan.json with the totals and a cost estimate.

Cost estimate: a deterministic sample of up to `SAMPLE_FITS` would-train groups (the smallest
hashes of (key, window)) is really fitted and predicted, in memory only (nothing is written or
saved), after one untimed warm-up fit. CPU time is extrapolated by training rows:
    estimated_cpu_seconds = sample seconds / sample training rows x all training rows,
and divided by the parallel slots (local workers, or Dataflow workers x cores per machine).
"""

from __future__ import annotations

import dataclasses
import time

import apache_beam as beam
import pandas as pd

from pipeline.models import registry
from pipeline.stages.prepare import key_size
from pipeline.stages.fit import train
from pipeline.stages.fit.split import SKIPPED, split_window
from pipeline.stages.decide import compare
from pipeline.params.values import PipelineParams
from pipeline.io.outputs.sinks import PLAN_NAME, PLAN_SUMMARY_FILE, staging_path
from pipeline.io.publishing.results import read_json, read_table, write_json
from pipeline.stages.prepare.fingerprint import input_fingerprint
from pipeline.utils.counters import SumCounters
from pipeline.stages.prepare.windows import WindowPlan

WOULD_TRAIN, WOULD_SKIP = "would_train", "would_skip"
CANDIDATES = "candidates"
SAMPLE_FITS = 4


def plan_row(key: str, window_start: int, window_data: pd.DataFrame, params: PipelineParams,
             plan: WindowPlan) -> dict:
    _, ledger = split_window(key, window_start, window_data, params, plan)
    train_periods, test_periods = plan.train_periods(window_start), plan.test_periods_of(window_start)
    periods = window_data[params.time_column]
    train_start = min(int(periods.min()), window_start) if len(periods) else window_start  # expanding: earlier
    return {
        params.key_column: key, "window_start": window_start, "window_end": plan.end_of(window_start),
        "train_start": train_start, "train_end": train_periods[-1],
        "test_start": test_periods[0], "test_end": test_periods[-1],
        "periods_present": int(periods[periods >= window_start].nunique()),
        "rows_train": ledger["rows_train"], "rows_test": ledger["rows_test"],
        "status": WOULD_SKIP if ledger["status"] == SKIPPED else WOULD_TRAIN,
        "reason": ledger["reason"], "model": params.model, "run_id": params.run_id,
    }


def plan_counters(row: dict) -> dict:
    if row["status"] == WOULD_SKIP:
        return {"groups_planned": 1, "would_skip": 1, "would_skip_by_reason": {row["reason"]: 1}}
    return {"groups_planned": 1, "fits": 1, "rows_train": row["rows_train"], "rows_test": row["rows_test"],
            "fits_by_model": {row["model"]: 1}}


class _PlanWindowFn(beam.DoFn):
    def __init__(self, params: PipelineParams):
        self._params, self._plan = params, WindowPlan.from_params(params)

    def process(self, element):
        key, start, window_data = element
        rows = [plan_row(key, start, window_data, each, self._plan) for each in compare.per_model(self._params)]
        yield from rows  # one row per model (the same rules: they differ only in the model column)
        if rows[0]["status"] == WOULD_TRAIN:
            rank = registry.group_seed(0, key, start)
            yield beam.pvalue.TaggedOutput(CANDIDATES, (rank, key, start, window_data))


def time_sample_fits(candidates: list, params: PipelineParams) -> dict:
    """Fits and predicts the sampled groups in memory (nothing saved) and times them."""
    plan = WindowPlan.from_params(params)
    candidates = sorted(candidates, key=lambda c: c[0])
    seconds = rows_train = 0.0
    by_model = {}
    for each in compare.per_model(dataclasses.replace(params, model_dir="")):  # several models: each in turn
        if candidates:  # warm-up: imports and first-call costs are not part of a fit's price
            _, key, start, data = candidates[0]
            train.train_and_predict(key, start, data, each, plan)
        model_seconds = 0.0
        for _, key, start, data in candidates:
            started = time.perf_counter()
            result = train.train_and_predict(key, start, data, each, plan)
            model_seconds += time.perf_counter() - started
            rows_train += result.ledger["rows_train"]
        seconds += model_seconds
        by_model[each.model] = {"sample_seconds": model_seconds,
                                "seconds_per_fit": model_seconds / len(candidates) if candidates else None}
    return {"sample_fits": len(candidates) * len(by_model), "sample_seconds": seconds,
            "sample_rows_train": int(rows_train), "sample_by_model": by_model,
            "sample_groups": [[key, start] for _, key, start, _ in candidates]}


def assemble_plan(params: PipelineParams, totals: dict, timing: dict, slots: int | None) -> dict:
    fits, rows_train = totals.get("fits", 0), totals.get("rows_train", 0)
    estimate = {**timing, "parallel_slots": slots,
                "method": "sample seconds / sample training rows x all training rows; / parallel slots"}
    if timing["sample_rows_train"]:
        cpu = timing["sample_seconds"] / timing["sample_rows_train"] * rows_train
        estimate.update(seconds_per_fit=timing["sample_seconds"] / timing["sample_fits"],
                        estimated_cpu_seconds=cpu,
                        estimated_wall_seconds=cpu / slots if slots else None)
    if len(timing.get("sample_by_model", {})) > 1:  # several models: each one's fits x its timed seconds per fit
        estimate["estimated_cpu_seconds_by_model"] = {
            model: sample["seconds_per_fit"] * totals.get("fits_by_model", {}).get(model, 0)
            for model, sample in timing["sample_by_model"].items() if sample["seconds_per_fit"] is not None}
    return {
        "run_id": params.run_id, "plan_only": True,
        "rows_read": totals.get("rows_read", 0), "rows_used": totals.get("rows_used", 0),
        "rows_rejected": totals.get("rows_rejected_validation", 0) + totals.get("rows_rejected_duplicate", 0),
        "groups_planned": totals.get("groups_planned", 0), "fits": fits, "would_skip": totals.get("would_skip", 0),
        "fits_by_model": totals.get("fits_by_model", {}),
        "would_skip_by_reason": totals.get("would_skip_by_reason", {}),
        "keys_too_large": totals.get("keys_too_large", 0),  # refused before their fits (stages/key_size.py)
        "rows_train": rows_train, "rows_test": totals.get("rows_test", 0),
        "cost_estimate": estimate,
        "input_fingerprint": input_fingerprint(totals),
        "parameters": params.as_dict(),
    }


class PlanWindows(beam.PTransform):
    """(key, window start, the window's rows) -> plan rows, and plan.json with totals and a cost
    estimate. `counters` are the run's row and fingerprint counters; `fan_out`, the fan-out decision
    a run would take (a singleton, pipeline.stages.prepare.fanout), is copied into plan.json (the plan's own
    per-window work is light and is not spread).
    Returns {"plan": plan rows, "plan_summary": the plan document}.
    """

    def __init__(self, params: PipelineParams, counters, slots: int | None, fan_out=None, largest_key=None):
        super().__init__()
        self._params, self._counters, self._slots, self._fan_out = params, counters, slots, fan_out
        self._largest_key = largest_key  # a singleton: the key with the most rows (stages/key_size.py)

    def expand(self, windows):
        params, slots = self._params, self._slots
        planned = windows | "PlanWindow" >> beam.ParDo(_PlanWindowFn(params)).with_outputs(CANDIDATES,
                                                                                          main=PLAN_NAME)
        plan_rows = planned[PLAN_NAME]
        timing = (planned[CANDIDATES]
                  | "PickSample" >> beam.combiners.Top.Of(SAMPLE_FITS, key=lambda c: c[0], reverse=True)
                  | "TimeSampleFits" >> beam.Map(time_sample_fits, params))
        totals = ((plan_rows | "PlanCounters" >> beam.Map(plan_counters), self._counters)
                  | "AllPlanCounters" >> beam.Flatten()
                  | "SumPlan" >> beam.CombineGlobally(SumCounters()))
        path = staging_path(params, PLAN_SUMMARY_FILE)
        document = totals | "AssemblePlan" >> beam.Map(
            lambda t, timing_doc: assemble_plan(params, t, timing_doc, slots),
            beam.pvalue.AsSingleton(timing))
        if self._fan_out is not None:  # whether a run would spread the fits by key x window (stages/fanout.py)
            document = document | "AddFanOut" >> beam.Map(lambda doc, fan_out: {**doc, "fan_out": fan_out},
                                                          beam.pvalue.AsSingleton(self._fan_out))
        if self._largest_key is not None:
            document = document | "AddLargestKey" >> beam.Map(
                lambda doc, largest: {**doc, "largest_key": key_size.plan_facts(largest, params)},
                beam.pvalue.AsSingleton(self._largest_key))
        written = document | "WritePlanJson" >> beam.Map(lambda doc: write_json(path, doc) or doc)
        return {PLAN_NAME: plan_rows, "plan_summary": written}


# -- reading and printing a written plan ---------------------------------------------------------------

def read_plan(output: str) -> tuple[dict, pd.DataFrame]:
    return read_json(output, PLAN_SUMMARY_FILE), read_table(output, PLAN_NAME)


def _span(first: pd.Series, last: pd.Series) -> pd.Series:
    return first.astype(str).where(first == last, first.astype(str) + "-" + last.astype(str))


def format_plan(document: dict, table: pd.DataFrame, key_column: str, max_skips: int = 15) -> str:
    """A compact text view: one line per window, the skipped groups, then the totals and estimate."""
    lines = ["Fold plan (one line per window; every key x window is a row in plan/):", ""]
    if len(table):
        labelled = "train_label" in table  # written plans carry readable periods (pipeline.io.outputs.labels)
        train_span = table["train_label"] if labelled else _span(table["train_start"], table["train_end"])
        test_span = table["test_label"] if labelled else _span(table["test_start"], table["test_end"])
        window = table["window_label"] if labelled else table["window_start"]
        table = table.assign(window=window, train=train_span, test=test_span,
                             trains=table["status"].eq(WOULD_TRAIN),
                             train_rows=table["rows_train"].where(table["status"].eq(WOULD_TRAIN), 0),
                             test_rows=table["rows_test"].where(table["status"].eq(WOULD_TRAIN), 0))
        per_window = (table.groupby(["window_start", "window", "train", "test"])
                      .agg(keys=(key_column, "size"), fits=("trains", "sum"),
                           rows_train=("train_rows", "sum"), rows_test=("test_rows", "sum"))
                      .reset_index())
        per_window["skips"] = per_window["keys"] - per_window["fits"]
        lines.append(per_window[["window", "train", "test", "keys", "fits", "skips", "rows_train",
                                 "rows_test"]].to_string(index=False))
        skipped = table[~table["trains"]].sort_values([key_column, "window_start"])
        if len(skipped):
            lines += ["", f"Would skip ({len(skipped)}):"]
            shown = skipped.head(max_skips)[[key_column, "window", "periods_present", "rows_train", "reason"]]
            lines.append(shown.to_string(index=False))
            if len(skipped) > max_skips:
                lines.append(f"... and {len(skipped) - max_skips} more in plan/")
    estimate = document["cost_estimate"]
    lines += ["", f"Groups planned: {document['groups_planned']}   fits: {document['fits']}   "
              f"would skip: {document['would_skip']} {document['would_skip_by_reason']}",
              f"Training rows: {document['rows_train']}   test rows: {document['rows_test']}   "
              f"rows read: {document['rows_read']}"]
    largest = document.get("largest_key")
    if largest and largest["key"] is not None:
        lines.append(f"Largest key: {largest['key']!r}, {largest['rows']} rows, {largest['bytes']} bytes "
                     f"(--max_key_rows={largest['max_key_rows']}, --max_key_bytes={largest['max_key_bytes']}); "
                     f"keys too large: {document.get('keys_too_large', 0)}")
    if len(document.get("fits_by_model", {})) > 1:
        lines.append("Fits by model: " + ", ".join(f"{m}: {n}" for m, n in document["fits_by_model"].items()))
    if "estimated_cpu_seconds" in estimate:
        wall = estimate.get("estimated_wall_seconds")
        lines.append(
            f"Estimated fitting cost: {estimate['estimated_cpu_seconds']:.1f} CPU-seconds"
            + (f", about {wall:.1f} s on {estimate['parallel_slots']} parallel slot(s)" if wall is not None else "")
            + f" (timed {estimate['sample_fits']} sample fits: {estimate['sample_seconds']:.3f} s for "
            f"{estimate['sample_rows_train']} training rows; excludes reading and writing)")
    return "\n".join(lines)
