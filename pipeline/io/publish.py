"""Publishing: outputs become visible under their final names only when the run has written all of them.

Every sink writes under `<output>/_staging/<run_id>/` (Beam's file sinks
themselves write to a temporary folder there and rename at finalize). When
every sink has finalized and the summary is written, the last stage swaps the
staged outputs in:

1. delete the previous run's `summary.json` / `plan.json` (the commit markers) and its other
   run files (manifest, report);
2. per output folder: delete the previous run's files, move this run's in (a plan-only run
   clears the previous predictions too, and a training run the previous plan);
3. move this run's `summary.json` (or `plan.json`) in, last;
4. remove this run's staging folder.

The manifest is written after the swap, listing the published files.

The guarantee: a run that crashes before step 1 leaves the previous run's
outputs untouched under the final names (its own partial files stay under
`_staging/<run_id>/`, for inspection, never mixed in). A `summary.json` under
`--output` means every output folder holds exactly that run's files (each row
also carries its run_id). A crash inside the swap leaves no `summary.json`, so
readers can tell. Nothing is deleted before the run has succeeded.
"""

from __future__ import annotations

import posixpath

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.params.values import PipelineParams
from pipeline.io.sinks import (MANIFEST_FILE, OUTPUT_NAMES, PLAN_NAME, PLAN_SUMMARY_FILE, REPORT_FILE, STAGING,
                            SUMMARY_FILE, output_path, staging_path, staging_root)

COMMIT_MARKERS = (SUMMARY_FILE, PLAN_SUMMARY_FILE)
RUN_FILES = (MANIFEST_FILE, REPORT_FILE)


def files_under(folder: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list)


def _ensure_folder(path: str) -> None:
    if FileSystems.get_scheme(path) is None and not FileSystems.exists(path):  # local paths need the folder
        FileSystems.mkdirs(path)


def _delete(paths: list[str]) -> None:
    if paths:
        FileSystems.delete(paths)


def swap_in(params: PipelineParams) -> None:
    """Replaces the outputs under --output with this run's staged ones, the commit marker last."""
    for name in (*COMMIT_MARKERS, *RUN_FILES):
        final = output_path(params, name)
        if FileSystems.exists(final):
            FileSystems.delete([final])
    marker = PLAN_SUMMARY_FILE if params.plan_only else SUMMARY_FILE
    for name in (*OUTPUT_NAMES, PLAN_NAME):
        final_folder, staged = output_path(params, name), files_under(staging_path(params, name))
        _delete(files_under(final_folder))
        if staged:
            _ensure_folder(final_folder)
            FileSystems.rename(staged, [FileSystems.join(final_folder, posixpath.basename(p)) for p in staged])
    FileSystems.rename([staging_path(params, marker)], [output_path(params, marker)])
    _delete_folder(staging_root(params))
    staging_parent = FileSystems.join(params.output, STAGING)
    if FileSystems.get_scheme(staging_parent) is None and not files_under(staging_parent):
        _delete_folder(staging_parent)


def _delete_folder(path: str) -> None:
    # Object stores delete a "folder" recursively only when the path ends with "/".
    FileSystems.delete([path if FileSystems.get_scheme(path) is None else path.rstrip("/") + "/"])


class PublishOutputs(beam.PTransform):
    """summary (or plan) document -> the same document, once every output is in place under --output."""

    def __init__(self, params: PipelineParams, written: dict):
        super().__init__()
        self._params, self._written = params, written

    def expand(self, summary_doc):
        params = self._params
        # As a side input, the sinks' finalized file names make this stage wait for every sink.
        all_written = tuple(self._written.values()) | "AllWrittenFiles" >> beam.Flatten()
        return summary_doc | "SwapIn" >> beam.Map(
            lambda doc, _files: swap_in(params) or doc, beam.pvalue.AsList(all_written))
