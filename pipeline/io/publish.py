"""Publishing: outputs become visible under their final names only when the run has written all of them,
and publishing survives being run again (Dataflow retries a failed step, possibly after a partial publish).

Every sink writes under `<output>/_staging/<run_id>/` (Beam's file sinks themselves write to a
temporary folder there and rename at finalize); the summary (or, with --plan_only, plan.json) and
manifest.json are staged there too. When all of them are written, the last stage publishes:

1. copy (not move) each staged `part-*` file to `<output>/<name>/part-<publish_id>-…`, skipping
   files already there with the same checksum. The publish id is drawn once per job, when the
   pipeline is built, so the new files never share a name with the previous run's: nothing of
   the previous run is touched, overwritten or deleted yet;
2. commit: write the commit record, the staged summary.json (plan.json) plus
   `"published": {"publish_id": …, "files": {output: [file names]}}` (the outputs this kind of run
   writes, an empty list for an empty one), to the staging folder and
   rename it over `<output>/summary.json` (an atomic replace on a local disk; on GCS a copy, which
   replaces the object whole, then a delete);
3. move manifest.json in (its `outputs` list the same final names);
4. delete what is not part of the new set: the other kind's commit record, the previous report,
   then every file in the output folders that the record does not list;
5. remove this run's staging folder, last.

A retry reads `<output>/summary.json` first: when it carries this job's publish id the commit
happened and the retry goes on from step 3 (it needs nothing from the staging folder but the
manifest, moved before the staging folder is removed); otherwise it starts at step 1, where the
staging folder is complete because nothing before the commit removes anything from it. Every step
is idempotent, so a retry after a crash anywhere ends in exactly the state of a clean publish
(tests/io/test_publish_retry.py crashes after every single filesystem operation, locally and on GCS).

What a reader sees: `summary.json` is the commit record. Until step 2 it is the previous run's and
everything it lists is in place and untouched (a run that crashes before its commit, and is never
retried, leaves the previous outputs readable and consistent; its own files are either under
`_staging/<run_id>/` or unlisted `part-<its publish id>-…` files that the next publish removes).
From step 2 on it lists this run's files, all in place. A reader that takes the files the record
lists (pipeline.record.report, through pipeline.io.results, does) never sees two runs mixed; one that lists a folder can see the other
run's files between steps 1 and 4, and every row carries its run_id.
"""

from __future__ import annotations

import json
import posixpath
import secrets

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.params.values import PipelineParams
from pipeline.io.sinks import (MANIFEST_FILE, OUTPUT_NAMES, PLAN_NAME, PLAN_SUMMARY_FILE, REPORT_FILE, STAGING,
                            SUMMARY_FILE, output_path, staging_path, staging_root)

COMMIT_MARKERS = (SUMMARY_FILE, PLAN_SUMMARY_FILE)
RUN_FILES = (MANIFEST_FILE, REPORT_FILE)
PUBLISHED = "published"  # the commit record's block: publish_id and the files of every output
FOLDERS = (*OUTPUT_NAMES, PLAN_NAME)
PENDING_PREFIX = "commit-"  # the commit record's name in the staging folder before it is renamed in


def new_publish_id() -> str:
    """Drawn once when the pipeline is built: the same in every retry of the publish step."""
    return secrets.token_hex(4)


def final_name(path: str, publish_id: str) -> str:
    """A staged file's name under --output: `part-00000-of-00002.parquet` -> `part-<id>-00000-of-00002.parquet`."""
    name = posixpath.basename(path)
    return f"part-{publish_id}-{name[len('part-'):]}" if name.startswith("part-") else f"{publish_id}-{name}"


def files_under(folder: str, pattern: str = "*") -> list[str]:
    return sorted(m.path for m in FileSystems.match([FileSystems.join(folder, pattern)])[0].metadata_list)


def _ensure_folder(path: str) -> None:
    if FileSystems.get_scheme(path) is None and not FileSystems.exists(path):  # local paths need the folder
        FileSystems.mkdirs(path)


def _delete(paths: list[str]) -> None:
    if paths:
        FileSystems.delete(paths)


def _read_json(path: str) -> dict | None:
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        return json.loads(handle.read())


def _encode(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False, default=str).encode()


def _already_copied(source: str, target: str, present: set[str]) -> bool:
    """`target` exists with the staged file's checksum: GCS's CRC32C, a local file's size. Locally
    that suffices here: a final name belongs to one publish id, so its only possible content is the
    staged file's, and a copy cut short is shorter. (On GCS an object appears whole or not at all.)"""
    return target in present and FileSystems.checksum(source) == FileSystems.checksum(target)


def _folder_exists(path: str) -> bool:
    if FileSystems.get_scheme(path) is None:
        return FileSystems.exists(path)
    return bool(files_under(path, "**"))  # object stores have no folders: any object under the prefix


def published_files(record: dict | None, name: str) -> list[str] | None:
    """The file names of output `name` that a commit record lists, or None (no record, an older one,
    or one that does not list this output)."""
    files = (record or {}).get(PUBLISHED, {}).get("files", {})
    return list(files[name]) if name in files else None


def publish(params: PipelineParams, publish_id: str) -> dict:
    """Publishes the staged run under --output (steps 1-5 above); idempotent. Returns the commit record."""
    marker = output_path(params, PLAN_SUMMARY_FILE if params.plan_only else SUMMARY_FILE)
    record = _read_json(marker)
    if (record or {}).get(PUBLISHED, {}).get("publish_id") != publish_id:
        record = _copy_and_commit(params, publish_id, marker)
    _finish(params, record)
    return record


def _copy_and_commit(params: PipelineParams, publish_id: str, marker: str) -> dict:
    """Steps 1-2: the staged files copied in under new names, then the commit record renamed in."""
    files = {}
    for name in (PLAN_NAME,) if params.plan_only else OUTPUT_NAMES:  # what this kind of run writes
        staged, final_folder = files_under(staging_path(params, name), "part-*"), output_path(params, name)
        targets = [FileSystems.join(final_folder, final_name(path, publish_id)) for path in staged]
        present = set(files_under(final_folder)) if targets else set()
        missing = [(source, target) for source, target in zip(staged, targets)
                   if not _already_copied(source, target, present)]
        if missing:
            _ensure_folder(final_folder)
            FileSystems.copy([source for source, _ in missing], [target for _, target in missing])
        files[name] = [posixpath.basename(target) for target in targets]
    with FileSystems.open(staging_path(params, posixpath.basename(marker))) as handle:
        record = {**json.loads(handle.read()), PUBLISHED: {"publish_id": publish_id, "files": files}}
    pending = staging_path(params, PENDING_PREFIX + posixpath.basename(marker))
    with FileSystems.create(pending) as handle:
        handle.write(_encode(record))
    FileSystems.rename([pending], [marker])
    return record


def _finish(params: PipelineParams, record: dict) -> None:
    """Steps 3-5, after the commit: manifest in, what the record does not list out, staging removed."""
    staged_manifest = staging_path(params, MANIFEST_FILE)
    if FileSystems.exists(staged_manifest):
        FileSystems.rename([staged_manifest], [output_path(params, MANIFEST_FILE)])
    other_marker = SUMMARY_FILE if params.plan_only else PLAN_SUMMARY_FILE
    _delete([path for path in (output_path(params, other_marker), output_path(params, REPORT_FILE))
             if FileSystems.exists(path)])
    stale = []
    for name in FOLDERS:
        keep = set(published_files(record, name) or [])
        stale += [path for path in files_under(output_path(params, name)) if posixpath.basename(path) not in keep]
    _delete(stale)
    if _folder_exists(staging_root(params)):
        _delete_folder(staging_root(params))
    staging_parent = FileSystems.join(params.output, STAGING)
    if FileSystems.get_scheme(staging_parent) is None and FileSystems.exists(staging_parent) \
            and not files_under(staging_parent):
        _delete_folder(staging_parent)


def _delete_folder(path: str) -> None:
    # Object stores delete a "folder" recursively only when the path ends with "/".
    FileSystems.delete([path if FileSystems.get_scheme(path) is None else path.rstrip("/") + "/"])


class FinalNames(beam.PTransform):
    """The sinks' finalized (staged) file names -> the names they are published under, per output."""

    def __init__(self, publish_id: str):
        super().__init__()
        self._publish_id = publish_id

    def expand(self, written: dict):
        publish_id = self._publish_id
        return {name: files | f"FinalName_{name}" >> beam.Map(final_name, publish_id)
                for name, files in written.items()}


class PublishOutputs(beam.PTransform):
    """summary (or plan) document -> the same document, once every output is in place under --output.

    `written` (the sinks' finalized file names) and `manifest` (the staged manifest document) are
    side inputs: they make this stage wait until the whole run is staged."""

    def __init__(self, params: PipelineParams, written: dict, publish_id: str, manifest=None):
        super().__init__()
        self._params, self._written, self._publish_id, self._manifest = params, written, publish_id, manifest

    def expand(self, summary_doc):
        params, publish_id = self._params, self._publish_id
        all_written = tuple(self._written.values()) | "AllWrittenFiles" >> beam.Flatten()
        waits = [beam.pvalue.AsList(all_written)]
        if self._manifest is not None:
            waits.append(beam.pvalue.AsList(self._manifest))

        def publish_then_pass_on(doc, *_staged):
            publish(params, publish_id)
            return doc

        return summary_doc | "Publish" >> beam.Map(publish_then_pass_on, *waits)
