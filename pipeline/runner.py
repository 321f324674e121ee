"""Beam runner options: local defaults (Beam's in-process runner on every core) and the Dataflow image."""

from __future__ import annotations

import os
import re
import sys

from apache_beam.options.pipeline_options import (DebugOptions, DirectOptions, PipelineOptions, StandardOptions,
                                                  WorkerOptions)

from apache_beam.portability import python_urns
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipeline.params.declare import ParameterError
from pipeline.record.lineage import IMAGE_ENV
from pipeline.utils import threads

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
LOCAL_RUNNER_ALIASES = (None, "", "DirectRunner", "FnApiRunner", LOCAL_RUNNER)


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options with local defaults: Beam's in-process runner on every core.

    DirectRunner is mapped to the FnApiRunner it uses for batch, so no run waits on
    the Prism runner's binary download.
    """
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if standard.runner in LOCAL_RUNNER_ALIASES:
        threads.limit_malloc_arenas()
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


def beam_flags() -> frozenset[str]:
    """The names (without --) of every option Beam's PipelineOptions classes define, aliases included,
    as Beam's own parser reads them."""
    import argparse

    import apache_beam.runners.dataflow.dataflow_runner  # noqa: F401  (defines Dataflow's options)

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, conflict_handler="resolve")
    for cls in {str(cls): cls for cls in PipelineOptions.__subclasses__()}.values():  # as get_all_options
        cls._add_argparse_args(parser)  # noqa: SLF001
    return frozenset(option.lstrip("-") for action in parser._actions for option in action.option_strings)


class ForkedWorkersRunner(FnApiRunner):
    """Beam's local runner, its worker processes forked from a warm process (pipeline.utils.fork_server)
    rather than each started as a new interpreter: the same workers, the same protocol, seconds sooner."""

    def __init__(self, worker_command: str):
        super().__init__()
        self._worker_command = worker_command

    def run_via_runner_api(self, pipeline_proto, options):
        beams_own = f"{sys.executable} -m apache_beam.runners.worker.sdk_worker_main".encode()
        for environment in pipeline_proto.components.environments.values():
            if environment.urn == python_urns.SUBPROCESS_SDK and environment.payload == beams_own:
                environment.payload = self._worker_command.encode()
        return super().run_via_runner_api(pipeline_proto, options)


def local_runner(options: PipelineOptions, fork_server) -> FnApiRunner | None:
    """The runner to give beam.Pipeline: one whose workers `fork_server` forks, for a local run with
    worker processes; else None (Beam's own, from the options)."""
    if fork_server is None or not has_worker_processes(options):
        return None
    return ForkedWorkersRunner(fork_server.worker_command)


def is_dataflow(options: PipelineOptions) -> bool:
    return "dataflow" in (options.view_as(StandardOptions).runner or "").lower()


def is_local(options: PipelineOptions) -> bool:
    return options.view_as(StandardOptions).runner == LOCAL_RUNNER


def has_worker_processes(options: PipelineOptions) -> bool:
    """A local run whose workers are processes of this machine (they share its disk)."""
    return is_local(options) and options.view_as(DirectOptions).direct_running_mode == "multi_processing"


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


def size_thread_pools(options: PipelineOptions, model_threads: int) -> None:
    """Every fit gets --model_threads threads, and the fits of a worker fill its cores, not more.

    Locally the worker processes inherit the environment, so numpy's BLAS, loaded at their start,
    gets --model_threads. Dataflow runs one bundle thread per vCPU of a batch worker: with fits of
    several threads each, fewer bundles at once (unless --number_of_worker_harness_threads says)."""
    if is_local(options):
        threads.set_environment(model_threads)
    elif is_dataflow(options) and model_threads > 1:
        debug = options.view_as(DebugOptions)
        if not debug.number_of_worker_harness_threads:
            debug.number_of_worker_harness_threads = threads.harness_threads(
                options.view_as(WorkerOptions).machine_type, model_threads)


def parallel_slots(options: PipelineOptions | None) -> int | None:
    """Fits that can run at once: local worker processes, or Dataflow workers x cores per machine."""
    if options is None:
        return None
    if is_local(options):
        direct = options.view_as(DirectOptions)
        return 1 if direct.direct_running_mode == "in_memory" else int(direct.direct_num_workers or 1)
    workers = options.view_as(WorkerOptions)
    count = workers.max_num_workers or workers.num_workers
    cores = re.search(r"-(\d+)$", workers.machine_type or "")
    return int(count) * int(cores.group(1)) if count and cores else None
