"""The pipeline composed from its stages, and the command line that runs it.

Reads like the data flow:

    ReadSource -> ValidateAndGroupByKey [-> GenerateFeatures] -> CutWindows (the sliding windows)
               -> TrainAndPredict (or, with --param_grid, the search per key x window), fused after the
                  cut, or with few keys for the slots after a Reshuffle of the key x windows (stages/fanout.py)
               -> WriteOutputs + WriteSummary -> WriteManifest -> CheckBeforePublishing -> PublishOutputs
               -> CheckFailureRate
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import json
import logging
import re
import secrets
import sys
from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from pipeline import runner
from pipeline.io import columns
from pipeline.io.outputs import sinks
from pipeline.io.publishing import output_claim, publish, publish_beam
from pipeline.io.publishing.results import read_summary, read_table
from pipeline.io.sources import period_values, source
from pipeline.io.warehouse import bigquery, bigquery_beam, bigquery_swap
from pipeline.models import custom_model, model_fit
from pipeline.params import parse
from pipeline.params.catalog import PARAMS, PARAMS_BY_NAME
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.record import lineage, report, run_summary
from pipeline.stages.prepare import fanout, features, fingerprint, key_size, rows, windows
from pipeline.stages.fit import intervals, search, train
from pipeline.stages.decide import compare, forecast, select
from pipeline.stages.record import plan, summary
from pipeline.utils import beam_memo, fork_server, frozen, packing, progress

SAMPLE_QUERY = PARAMS_BY_NAME["query"].default

# Each module's own parameter checks, in the order a user would fix them; all run before any work.
PARAMETER_CHECKS = (windows.check_params, summary.check_params, columns.check_params, source.check_params,
                    bigquery.check_params, custom_model.check_params, features.check_params, search.check_params,
                    select.check_params, forecast.check_params, intervals.check_params)
# With several models (--model=a,b), these run once per model on that model's own parameters (a combination
# a+b: once per member).
PER_MODEL_CHECKS = (custom_model.check_params, search.check_params)


def parse_args(argv: Sequence[str] | None) -> tuple[PipelineParams, list[str]]:
    """argv -> (validated parameters, Beam's flags): parsing, then every module's own checks."""
    params, beam_args = parse.parse_args(argv, runner.beam_flags())
    params = columns.with_period_column(params)  # --period: the derived period column's name
    compare.check_params(params)
    for check in PARAMETER_CHECKS:
        for each in (compare.per_member(params) if check in PER_MODEL_CHECKS else [params]):
            check(each)
    return params, beam_args


def build(pipeline: beam.Pipeline, params: PipelineParams, source_kind: str) -> dict:
    """Adds every stage to `pipeline`; returns the named output PCollections."""
    run_lineage = lineage.RunLineage.collect(params, pipeline.options)
    slots = runner.parallel_slots(pipeline.options)
    chunks = pipeline | "ReadSource" >> source.ReadSource(params, source_kind, slots)
    fingerprints = chunks | "FingerprintInput" >> fingerprint.FingerprintInput()
    validated = chunks | "ValidateAndGroupByKey" >> rows.ValidateAndGroupByKey(params, fanout.threshold(slots))
    # A local launcher counts the keys when it cheaply can: with enough of them the graph is the straight one.
    keys_known = (source.distinct_keys_at_most(params, source_kind, fanout.threshold(slots))
                  if runner.is_local(pipeline.options) and params.fan_out == "auto" else None)
    fan_out_possible = fanout.may_fan_out(params.fan_out, slots, keys_known)
    fan_out = validated[rows.KEY_COUNT] | "FanOutDecision" >> beam.Map(fanout.decide, params.fan_out, slots,
                                                                        fan_out_possible)
    sized = validated[rows.KEY_ROWS] | "RefuseHotKeys" >> key_size.RefuseHotKeys(params)
    key_rows, generated = sized["key_rows"], {}
    if features.is_enabled(params):
        generated = key_rows | "GenerateFeatures" >> features.GenerateFeatures(params)
        key_rows = generated["rows"]
    # The fan-out path only when the data may choose it; --plan_only: every window straight on (its per-window
    # work is light), plan.json says what a run would do.
    may_fan_out = fan_out_possible and not params.plan_only
    key_windows = key_rows | "CutWindows" >> windows.CutWindows(windows.WindowPlan.from_params(params),
                                                                params.time_column, validated[rows.PERIOD_RANGE],
                                                                fan_out if may_fan_out else None)
    manifest_path = sinks.staging_path(params, sinks.MANIFEST_FILE)  # published with the outputs
    # One per job: a retried publish step reuses it. A dry run only translates: it claimed nothing to read.
    publish_id = (publish.new_publish_id() if pipeline.options.view_as(TestOptions).dry_run
                  else output_claim.claimed_publish_id(params))
    if params.plan_only:
        refused = sized[key_size.REFUSED] | "RefusedCounters" >> beam.Map(key_size.refused_counters)
        counters = (validated[rows.COUNTS], fingerprints, refused) | "PlanInputCounters" >> beam.Flatten()
        planned = key_windows[windows.STRAIGHT] | "PlanWindows" >> plan.PlanWindows(
            params, counters, slots, fan_out, sized[key_size.LARGEST_KEY])
        written = {sinks.PLAN_NAME: planned[sinks.PLAN_NAME]} | "WritePlan" >> sinks.WriteOutputs(
            params, run_lineage.columns())
        manifest = planned["plan_summary"] | "WriteManifest" >> lineage.WriteManifest(
            run_lineage, params, manifest_path, written | "FinalNames" >> publish_beam.FinalNames(publish_id))
        published = planned["plan_summary"] | "PublishPlan" >> publish_beam.PublishOutputs(params, written, publish_id,
                                                                                        manifest)
        return {**planned, "plan_summary": published, "manifest": manifest}
    run_id = params.run_id
    fitted = (train.PREDICTIONS, train.METRICS, train.LEDGER) + ((search.SEARCH,) if search.is_enabled(params) else ())
    # Each fitted output as its parts, one per path (stages/fanout.py): the file sinks and the summary take
    # the parts; what needs one PCollection flattens them (`one`), which the local runner materialises.
    outputs = dict(key_windows | "TrainAndPredict" >> fanout.FitWindows(lambda: fit_transform(params), fitted,
                                                                        may_fan_out))
    outputs[train.LEDGER] = key_size.with_refused(outputs[train.LEDGER], sized[key_size.REFUSED])

    def one(*names: str) -> dict:
        for name in names:
            outputs[name] = fanout.merged(outputs[name], f"Merge_{name}")
        return {name: outputs[name] for name in names}

    comparison = {}
    if intervals.is_enabled(params):  # bands from earlier windows, coverage out of sample
        outputs.update(intervals.add_bands(params, one(train.PREDICTIONS, train.METRICS)))
        comparison["intervals"] = outputs[train.PREDICTIONS] | "IntervalCoverage" >> intervals.Coverage(params)
    if compare.is_enabled(params):
        selected = one(train.PREDICTIONS, train.METRICS) | "SelectModels" >> select.SelectModels(params)
        outputs[select.SELECTION] = selected[select.SELECTION]
        comparison[select.COMPARISON] = selected[select.COMPARISON]
    if forecast.is_enabled(params):
        outputs.update(forecast.add_forecasts(params, {**outputs, **one(train.PREDICTIONS, train.METRICS,
                                                                        train.LEDGER)},
                                              key_rows, validated[rows.FORECAST_ROWS]))
    outputs["rejected_rows"] = validated[rows.REJECTED] | "TagRejected" >> beam.Map(
        lambda frame: frame.assign(run_id=run_id))
    written = outputs | "WriteOutputs" >> sinks.WriteOutputs(params, run_lineage.columns())
    staged_tables, bigquery_staged = bigquery_swap.StagedOutputs.of(params, pipeline.options, publish_id), None
    if staged_tables:  # to this job's staging tables; the publish step swaps them in
        tables = [table.output for table in staged_tables.tables]
        one(*(name for name in tables if name in fitted))
        bigquery_staged = {name: outputs[name] for name in tables} | "WriteBigQuery" >> (
            bigquery_beam.WriteBigQueryOutputs(params, run_lineage.columns(), staged_tables))
    summary_doc = ({**outputs, **comparison, "row_counts": validated[rows.COUNTS], "input_fingerprint": fingerprints,
                    "fan_out": fan_out, **({"frequencies": generated[features.FREQUENCIES]}
                                           if features.FREQUENCIES in generated else {})}
                   | "WriteSummary" >> summary.WriteSummary(params, source_kind, run_lineage))
    manifest = summary_doc | "WriteManifest" >> lineage.WriteManifest(
        run_lineage, params, manifest_path, written | "FinalNames" >> publish_beam.FinalNames(publish_id))
    ready = summary_doc | "CheckBeforePublishing" >> beam.Map(summary.check_before_publishing)
    published = ready | "PublishOutputs" >> publish_beam.PublishOutputs(
        params, written, publish_id, manifest, (staged_tables, bigquery_staged) if staged_tables else None)
    checked = published | "CheckFailureRate" >> beam.Map(summary.check_failure_rate)
    return {**outputs, "summary": checked, "manifest": manifest}


def fit_transform(params: PipelineParams) -> beam.PTransform:
    """The fit of each key x window: one model, the search (--param_grid) or several models.

    Intervals and model selection read each key x window's predictions apart (and so do forecasts, for
    their bands); without them, the fits join many windows' predictions into one frame on the way to the
    sinks."""
    if compare.is_enabled(params):
        return compare.FitModels(params)
    frame_per_window = intervals.is_enabled(params)
    if search.is_enabled(params):
        return search.SearchAndTrain(params, frame_per_window)
    return train.TrainAndPredict(params, frame_per_window)


def check_dataflow_params(params: PipelineParams, kind: str) -> None:
    """What only Dataflow refuses: local paths where workers must write (each Param's
    `dataflow_regex`, the template's regex too), and the embedded sample's query sent to BigQuery."""
    for param in PARAMS:
        value = getattr(params, param.name)
        if param.dataflow_regex and value is not None and not re.fullmatch(param.dataflow_regex, str(value)):
            raise ParameterError(param.name, value, param.dataflow_allowed or f"must match {param.dataflow_regex}")
    if kind == "bigquery" and not params.input_table and params.query.strip() == SAMPLE_QUERY.strip():
        raise ParameterError("query", params.query,
                             "your own BigQuery SQL query, or an input table (input_table=project:dataset.table): "
                             "the default query reads the embedded sample's dataset.table, which only exists "
                             "in local runs")


def new_run_id() -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"run-{stamp}-{secrets.token_hex(3)}"


def prepare(argv: list[str] | None) -> tuple[PipelineParams, PipelineOptions, str]:
    """Everything that can fail on a bad parameter, before any work starts."""
    params, beam_args = parse_args(argv)
    if not params.run_id:
        params = dataclasses.replace(params, run_id=new_run_id())
    options = runner.pipeline_options(beam_args)
    runner.size_thread_pools(options, params.model_threads)
    kind = source.resolve_source(params, options.view_as(StandardOptions).runner)
    if runner.is_dataflow(options):
        check_dataflow_params(params, kind)
    source.check_columns(params, kind)
    period_values.check(params, kind)  # integer periods that read as yyyymm(dd): refused before any work
    # Every check before any change: BigQuery's over every table (changes nothing), then the files'
    # (--if_output_exists) and the run id's lease; only then are the missing tables and this job's
    # staging tables created. Nothing is deleted at launch: the publish step swaps the rows in.
    changes = bigquery.check(params, options, kind)
    if not options.view_as(TestOptions).dry_run:  # a dry run only translates: it must not touch outputs
        output_claim.prepare_output(params)
        changes.apply()
        staged = bigquery_swap.StagedOutputs.of(params, options, output_claim.claimed_publish_id(params))
        if staged:
            staged.create(changes.client, params)
    return params, options, kind


def local_fork_server(argv: list[str], options: PipelineOptions):
    """The fork server of a local run's worker processes (pipeline.utils.fork_server); nothing (a null
    context: Beam starts its workers itself) when they are not local processes, or it cannot run."""
    if not runner.has_worker_processes(options):
        fork_server.stop_early()
        return contextlib.nullcontext()
    return fork_server.claim(argv, __name__) or contextlib.nullcontext()


def import_models_of(argv: list[str]) -> None:
    """Imports what fitting the models of the command line `argv` needs (the fork server calls it before
    the launcher has parsed `argv`); nothing when it does not parse: the launcher says why."""
    try:
        params, _ = parse_args(argv)
    except (ParameterError, SystemExit):
        return
    model_fit.import_models(*model_fit.run_models(params))


def run(argv: list[str] | None = None, draw_report: bool = True) -> dict | None:
    """Runs the pipeline; a local run prints its summary and, unless `draw_report` is False (a caller
    that draws it itself, or not at all: the hostile-input fuzz), writes report.html."""
    beam_memo.install()  # what Beam derives again and again while building and running, derived once
    params, options, kind = prepare(argv)
    frozen.freeze_once()  # the imported modules outlive the run: keep them out of every later collection
    fits_per_window = len(compare.model_names(params)) if compare.is_enabled(params) else 1
    show_progress = (runner.is_local(options) and not params.plan_only and not params.quiet
                     and sys.stderr.isatty())
    keys_expected = (source.distinct_keys_at_most(params, kind, progress.KEYS_COUNTED_UP_TO)
                     if show_progress else None)  # the progress total before the fits end
    if draw_report and runner.is_local(options) and not params.plan_only:
        report.preload()  # the launcher mostly waits on its workers: import the plotting library meanwhile
    with (local_fork_server(sys.argv[1:] if argv is None else list(argv), options) as forks,
          packing.spill_folder(runner.has_worker_processes(options)),
          progress.Display(show_progress, fits_per_window, keys_expected=keys_expected),
          beam.Pipeline(runner=runner.local_runner(options, forks), options=options) as pipeline):
        build(pipeline, params, kind)
    if not runner.is_local(options):
        return None  # Dataflow: the summary is written by the job itself
    if params.plan_only:
        document, table = plan.read_plan(params.output)
        print(plan.format_plan(document, table, params.key_column))
        print(f"\nPlan under {params.output}/: {sinks.PLAN_NAME}/, {sinks.PLAN_SUMMARY_FILE}, {sinks.MANIFEST_FILE}")
        return document
    result = read_summary(params.output)
    if params.json:
        print(json.dumps({k: v for k, v in result.items() if k not in ("parameters", publish.PUBLISHED)}, indent=2))
    else:
        print(run_summary.format_result(result, read_table(params.output, train.METRICS)))
    written = [name for name in sinks.OUTPUT_NAMES if (name != search.SEARCH or search.is_enabled(params))
               and (name != select.SELECTION or compare.is_enabled(params))
               and (name != forecast.FORECASTS or forecast.is_enabled(params))]
    print(f"\nOutputs under {params.output}/: {', '.join(written)}, {sinks.SUMMARY_FILE}, {sinks.MANIFEST_FILE}")
    if not draw_report:
        return result
    try:
        print(f"Report: {report.write_report(params.output)}")
    except Exception as exc:  # the outputs are complete; a plotting problem must not fail the run
        logging.getLogger(__name__).warning("report not written: %s: %s", type(exc).__name__, exc)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The local runner relays a harmless start-up warning from every worker process.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    try:
        run(sys.argv[1:] if argv is None else argv)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        failure = summary.too_many_failures(exc)
        if failure is None:
            raise
        print(f"error: {failure}", file=sys.stderr)
        return 1
    gc.freeze()  # exiting: skip the interpreter's final sweep over every object (about a second)
    return 0
