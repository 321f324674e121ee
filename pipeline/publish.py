"""Publishing: outputs become visible under their final names only when the run has written all of them.

Every sink writes under `<output>/_staging/<run_id>/` (Beam's file sinks
themselves write to a temporary folder there and rename at finalize). When
every sink has finalized and the summary is written, the last stage swaps the
staged outputs in:

1. delete the previous run's `summary.json`, the commit marker;
2. per output folder: delete the previous run's files, move this run's in;
3. move this run's `summary.json` in, last;
4. remove this run's staging folder.

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

from pipeline.options import PipelineParams
from pipeline.sinks import OUTPUT_NAMES, STAGING, SUMMARY_FILE, output_path, staging_path, staging_root


def files_under(folder: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list)


def _ensure_folder(path: str) -> None:
    if FileSystems.get_scheme(path) is None and not FileSystems.exists(path):  # local paths need the folder
        FileSystems.mkdirs(path)


def _delete(paths: list[str]) -> None:
    if paths:
        FileSystems.delete(paths)


def swap_in(params: PipelineParams) -> None:
    """Replaces the outputs under --output with this run's staged ones, summary.json last."""
    final_summary = output_path(params, SUMMARY_FILE)
    if FileSystems.exists(final_summary):
        FileSystems.delete([final_summary])
    for name in OUTPUT_NAMES:
        final_folder, staged = output_path(params, name), files_under(staging_path(params, name))
        _delete(files_under(final_folder))
        _ensure_folder(final_folder)
        FileSystems.rename(staged, [FileSystems.join(final_folder, posixpath.basename(p)) for p in staged])
    FileSystems.rename([staging_path(params, SUMMARY_FILE)], [final_summary])
    _delete_folder(staging_root(params))
    staging_parent = FileSystems.join(params.output, STAGING)
    if FileSystems.get_scheme(staging_parent) is None and not files_under(staging_parent):
        _delete_folder(staging_parent)


def _delete_folder(path: str) -> None:
    # Object stores delete a "folder" recursively only when the path ends with "/".
    FileSystems.delete([path if FileSystems.get_scheme(path) is None else path.rstrip("/") + "/"])


class PublishOutputs(beam.PTransform):
    """summary document -> the same document, once every output is in place under --output."""

    def __init__(self, params: PipelineParams, written: dict):
        super().__init__()
        self._params, self._written = params, written

    def expand(self, summary_doc):
        params = self._params
        # As a side input, the sinks' finalized file names make this stage wait for every sink.
        all_written = tuple(self._written.values()) | "AllWrittenFiles" >> beam.Flatten()
        return summary_doc | "SwapIn" >> beam.Map(
            lambda doc, _files: swap_in(params) or doc, beam.pvalue.AsList(all_written))
