"""The pipeline: source -> rows -> sliding windows per key -> train/predict -> sinks + summary.

Reads like the article's data flow:

    ReadSource -> ValidateAndGroupByKey [-> GenerateFeatures] -> CutWindows (the article's sliding windows)
               -> TrainAndPredict (or, with --param_grid, the search per key x window)
               -> WriteOutputs + WriteSummary -> PublishOutputs -> WriteManifest -> CheckFailureRate
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime
import gc
import json
import logging
import os
import secrets
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import (DebugOptions, DirectOptions, PipelineOptions, StandardOptions,
                                                  TestOptions, WorkerOptions)

from pipeline import bigquery, features, lineage, plan, publish, rows, search, sinks, source, summary, threads, train
from pipeline.options import ParameterError, PipelineParams, parse_args
from pipeline.windows import CutWindows, WindowPlan

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
LOCAL_RUNNER_ALIASES = (None, "", "DirectRunner", "FnApiRunner", LOCAL_RUNNER)
# Set in the template image at build time (Dockerfile): the image's own URI and source commit.
IMAGE_ENV, GIT_COMMIT_ENV = "PIPELINE_IMAGE", "PIPELINE_GIT_COMMIT"
MALLOC_ARENA_ENV, M_ARENA_MAX = "MALLOC_ARENA_MAX", -8  # glibc's mallopt parameter number


def build(pipeline: beam.Pipeline, params: PipelineParams, source_kind: str) -> dict:
    """Adds every stage to `pipeline`; returns the named output PCollections."""
    run_lineage = lineage.RunLineage.collect(params, pipeline.options)
    chunks = pipeline | "ReadSource" >> source.ReadSource(params, source_kind)
    fingerprints = chunks | "FingerprintInput" >> lineage.FingerprintInput()
    validated = chunks | "ValidateAndGroupByKey" >> rows.ValidateAndGroupByKey(params)
    key_rows = validated[rows.KEY_ROWS]
    if features.is_enabled(params):
        key_rows = key_rows | "GenerateFeatures" >> features.GenerateFeatures(params)
    windows = key_rows | "CutWindows" >> CutWindows(WindowPlan.from_params(params), params.time_column,
                                                    validated[rows.PERIOD_RANGE])
    manifest_path = sinks.output_path(params, sinks.MANIFEST_FILE)
    if params.plan_only:
        counters = (validated[rows.COUNTS], fingerprints) | "PlanInputCounters" >> beam.Flatten()
        planned = windows | "PlanWindows" >> plan.PlanWindows(params, counters, plan.parallel_slots(pipeline.options))
        written = {sinks.PLAN_NAME: planned[sinks.PLAN_NAME]} | "WritePlan" >> sinks.WriteOutputs(
            params, run_lineage)
        published = planned["plan_summary"] | "PublishPlan" >> publish.PublishOutputs(params, written)
        manifest = published | "WriteManifest" >> lineage.WriteManifest(run_lineage, params, manifest_path, written)
        return {**planned, "manifest": manifest}
    fit = search.SearchAndTrain(params) if search.is_enabled(params) else train.TrainAndPredict(params)
    results = windows | "TrainAndPredict" >> fit
    run_id = params.run_id
    fitted = (train.PREDICTIONS, train.METRICS, train.LEDGER) + ((search.SEARCH,) if search.is_enabled(params) else ())
    outputs = {name: results[name] for name in fitted}
    outputs["rejected_rows"] = validated[rows.REJECTED] | "TagRejected" >> beam.Map(
        lambda frame: frame.assign(run_id=run_id))
    written = outputs | "WriteOutputs" >> sinks.WriteOutputs(params, run_lineage)
    if bigquery.output_tables(params):
        outputs | "WriteBigQuery" >> bigquery.WriteBigQueryOutputs(params, run_lineage)
    summary_doc = ({**outputs, "row_counts": validated[rows.COUNTS], "input_fingerprint": fingerprints}
                   | "WriteSummary" >> summary.WriteSummary(params, source_kind, run_lineage)
                   | "PublishOutputs" >> publish.PublishOutputs(params, written))
    manifest = summary_doc | "WriteManifest" >> lineage.WriteManifest(run_lineage, params, manifest_path, written)
    checked = manifest | "CheckFailureRate" >> beam.Map(lambda _manifest, doc: summary.check_failure_rate(doc),
                                                        beam.pvalue.AsSingleton(summary_doc))
    return {**outputs, "summary": checked, "manifest": manifest}


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options with local defaults: Beam's in-process runner on every core.

    DirectRunner is mapped to the FnApiRunner it uses for batch, so no run waits on
    the Prism runner's binary download.
    """
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if standard.runner in LOCAL_RUNNER_ALIASES:
        limit_malloc_arenas()
        standard.runner = LOCAL_RUNNER
        direct = options.view_as(DirectOptions)
        given = " ".join(beam_args)
        if "--direct_running_mode" not in given:
            direct.direct_running_mode = "multi_processing"
        if "--direct_num_workers" not in given:
            direct.direct_num_workers = os.cpu_count() or 1
    elif is_dataflow(options):
        use_template_image(options)
    return options


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Two glibc malloc arenas for this process and the local workers it starts (unless
    MALLOC_ARENA_MAX is already set). glibc gives each allocating thread an arena of its own
    and keeps freed memory in it; with gRPC's thread pools that held a fifth of a local run's peak
    memory, and fewer arenas also cost less CPU (bench/NOTE.md). The image sets the same."""
    arenas = int(os.environ.setdefault(MALLOC_ARENA_ENV, str(arenas)))  # inherited by the workers
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)  # this process has already started
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def is_dataflow(options: PipelineOptions) -> bool:
    return "dataflow" in (options.view_as(StandardOptions).runner or "").lower()


def use_template_image(options: PipelineOptions) -> None:
    """Dataflow workers run the template's own image (pipeline package, xgboost, the whole lock)
    unless --sdk_container_image names another one; a stock Beam worker image would lack them."""
    worker = options.view_as(WorkerOptions)
    if worker.sdk_container_image or worker.worker_harness_container_image:
        return
    image = os.environ.get(IMAGE_ENV, "").strip()
    if not image:
        raise ParameterError("sdk_container_image", None,
                             f"the pipeline's container image URI; set ${IMAGE_ENV} (the template image "
                             "does) or pass --sdk_container_image")
    worker.sdk_container_image = image


def is_local(options: PipelineOptions) -> bool:
    return options.view_as(StandardOptions).runner == LOCAL_RUNNER


def new_run_id() -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"run-{stamp}-{secrets.token_hex(3)}"


def prepare(argv: list[str] | None) -> tuple[PipelineParams, PipelineOptions, str]:
    """Everything that can fail on a bad parameter, before any work starts."""
    params, beam_args = parse_args(argv)
    if not params.run_id:
        params = dataclasses.replace(params, run_id=new_run_id())
    options = pipeline_options(beam_args)
    if is_local(options):
        # The local worker processes inherit it: numpy's BLAS, loaded at their start, gets --model_threads.
        threads.set_environment(params.model_threads)
    elif is_dataflow(options) and params.model_threads > 1:
        # Dataflow runs one bundle per vCPU of a batch worker: fewer bundles when each fit takes more.
        debug = options.view_as(DebugOptions)
        if not debug.number_of_worker_harness_threads:
            debug.number_of_worker_harness_threads = threads.harness_threads(
                options.view_as(WorkerOptions).machine_type, params.model_threads)
    if is_dataflow(options) and not params.output.startswith("gs://"):
        raise ParameterError("output", params.output, "a gs:// prefix: Dataflow workers cannot write locally")
    kind = source.resolve_source(params, options.view_as(StandardOptions).runner)
    source.check_columns(params, kind)
    bigquery.prepare(params, options, kind)  # before prepare_output: a refusal must not delete files
    if not options.view_as(TestOptions).dry_run:  # a dry run only translates: it must not touch outputs
        sinks.prepare_output(params)
    return params, options, kind


def run(argv: list[str] | None = None) -> dict | None:
    params, options, kind = prepare(argv)
    gc.collect()  # garbage first: what gc.freeze() keeps is never collected again
    gc.freeze()  # the imported modules outlive the run: keep them out of every later collection
    with beam.Pipeline(options=options) as pipeline:
        build(pipeline, params, kind)
    if not is_local(options):
        return None  # Dataflow: the summary is written by the job itself
    if params.plan_only:
        document, table = plan.read_plan(params.output)
        print(plan.format_plan(document, table, params.key_column))
        print(f"\nPlan under {params.output}/: {sinks.PLAN_NAME}/, {sinks.PLAN_SUMMARY_FILE}, {sinks.MANIFEST_FILE}")
        return document
    result = summary.read_summary(params)
    print(json.dumps({k: v for k, v in result.items() if k != "parameters"}, indent=2))
    written = [name for name in sinks.OUTPUT_NAMES if name != search.SEARCH or search.is_enabled(params)]
    print(f"\nOutputs under {params.output}/: {', '.join(written)}, {sinks.SUMMARY_FILE}, {sinks.MANIFEST_FILE}")
    from pipeline import report

    try:
        print(f"Report: {report.write_report(params.output)}")
    except Exception as exc:  # the outputs are complete; a plotting problem must not fail the run
        logging.getLogger(__name__).warning("report not written: %s: %s", type(exc).__name__, exc)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The local runner relays a harmless start-up warning from every worker process.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    from pipeline.options import ParameterError

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
