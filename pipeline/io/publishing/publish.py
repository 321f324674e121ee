"""Publishing: outputs become visible under their final names only when the run has written all of
them; publishing survives being run again (Dataflow retries a failed step, possibly after a partial
publish) and two jobs publishing to one --output (two launches, or a relaunch of a whole job).

Every sink writes under `<output>/_staging/<run_id>/` (Beam's file sinks themselves write to a
temporary folder there and rename at finalize); the summary (or, with --plan_only, plan.json) and
manifest.json are staged there too. The launch (pipeline.io.publishing.output_claim) leaves a lease there:
this job's publish id and the base, the publish id of the commit record it found at launch. When
every output is written, the last stage publishes:

1. check: the staged `part-*` files of every output are exactly the files the sinks finalised (the
   names they returned), or the commit is refused; the record lists those names, never a listing.
   Then the BigQuery outputs, when there are any, are swapped in (pipeline.io.warehouse.bigquery_swap);
2. write the commit record, the staged summary.json (plan.json) plus `"published": {"publish_id",
   "files": {output: [final names]}, "replaced": {"publish_id", "files"}}` (the outputs this kind of
   run writes, an empty list for an empty one; `replaced`: the files of the record it replaces), to
   the staging folder: it is also this attempt's note of which final names it is about to create;
3. copy (not move) each staged file to `<output>/<name>/part-<publish_id>-…`, skipping files already
   there with the same checksum. Names carry the publish id: nothing of another run is touched;
4. commit: a compare-and-swap of `<output>/summary.json` (plan.json) from the base to this record
   (pipeline.io.publishing.commit_record: `ifGenerationMatch` on GCS, an flock'd check and rename locally).
   When another job committed since this one was launched, this job has lost: it deletes its own
   copies and fails, and the other job's outputs stay published, whole;
5. move manifest.json in (while the record is still this job's), then delete what the record
   replaced: the files the replaced record listed (and those it had replaced itself, in case its
   job died before deleting them), its report.html, and the other kind's commit record. Nothing
   else: a file no record of ours lists (a user's notes, another job's uncommitted copies) stays;
6. drop this job's BigQuery staging tables; remove this run's staging folder: its files, listed
   recursively, then its empty folders (and `_staging` itself only when empty), the lease last.

A retry reads the record first: when it carries this job's publish id the commit happened and the
retry goes on from step 5; otherwise it starts at step 1, where the staging folder is complete
because nothing before the commit removes anything from it. Every step is idempotent, so a retry
after a crash anywhere ends in exactly the state of a clean publish (tests/io/test_publish_retry.py
crashes after every single filesystem operation, locally and on GCS; tests/io/test_two_jobs.py
interleaves two jobs at every step).

What a reader sees: the commit record lists one run's files, all in place. A reader that takes the
files the record lists (pipeline.io.publishing.results does) never sees two runs mixed; one that lists a folder
can see another run's files, and every row carries its run_id.
"""

from __future__ import annotations

import json
import os
import posixpath
import secrets

from apache_beam.io.filesystems import FileSystems

from pipeline.io.publishing import commit_record
from pipeline.io.publishing.commit_record import RecordChanged
from pipeline.params.values import PipelineParams
from pipeline.io.outputs.sinks import (MANIFEST_FILE, OUTPUT_NAMES, PLAN_NAME, PLAN_SUMMARY_FILE, REPORT_FILE, STAGING,
                               SUMMARY_FILE, output_path, staging_path, staging_root)

COMMIT_MARKERS = (SUMMARY_FILE, PLAN_SUMMARY_FILE)
RUN_FILES = (MANIFEST_FILE, REPORT_FILE)
PUBLISHED = "published"  # the commit record's block: publish_id and the files of every output
FOLDERS = (*OUTPUT_NAMES, PLAN_NAME)
PENDING_PREFIX = "commit-"  # the commit record's name in the staging folder before it is swapped in
LEASE_FILE = "lease.json"  # in the staging folder: which job holds the run id (pipeline.io.publishing.output_claim)


class PublishRefused(RuntimeError):
    """The commit would publish something other than this job's complete outputs over its base."""


def new_publish_id() -> str:
    """Drawn once per launch: the same in every retry of the publish step."""
    return secrets.token_hex(4)


def final_name(path: str, publish_id: str) -> str:
    """A staged file's name under --output: `part-00000-of-00002.parquet` -> `part-<id>-00000-of-00002.parquet`."""
    name = posixpath.basename(path)
    return f"part-{publish_id}-{name[len('part-'):]}" if name.startswith("part-") else f"{publish_id}-{name}"


def files_under(folder: str, pattern: str = "*") -> list[str]:
    return sorted(m.path for m in FileSystems.match([FileSystems.join(folder, pattern)])[0].metadata_list)


def marker_name(params: PipelineParams) -> str:
    return PLAN_SUMMARY_FILE if params.plan_only else SUMMARY_FILE


def record_of(data: bytes | None) -> dict | None:
    """A commit record of ours (a document with a `published` block), or None."""
    try:
        document = json.loads(data) if data else None
    except ValueError:
        return None
    return document if isinstance(document, dict) and isinstance(document.get(PUBLISHED), dict) else None


def read_record(output: str, marker: str) -> dict | None:
    return record_of(commit_record.read(FileSystems.join(output, marker)).data)


def publish_id_of(record: dict | None) -> str | None:
    return (record or {}).get(PUBLISHED, {}).get("publish_id")


def published_files(record: dict | None, name: str) -> list[str] | None:
    """The file names of output `name` that a commit record lists, or None (no record, an older one,
    or one that does not list this output)."""
    files = (record or {}).get(PUBLISHED, {}).get("files", {})
    return list(files[name]) if name in files else None


def read_lease(params: PipelineParams) -> dict | None:
    data = commit_record.read(staging_path(params, LEASE_FILE)).data
    return json.loads(data) if data else None


def release(params: PipelineParams, reason: str) -> None:
    """Marks this job's lease released (its run id free for a new launch) without publishing."""
    lease = read_lease(params)
    if lease is not None:
        _write(staging_path(params, LEASE_FILE), {**lease, "released": reason})


def publish(params: PipelineParams, publish_id: str, written: dict[str, list[str]], tables=None) -> dict:
    """Publishes the staged run under --output (steps 1-6 above); idempotent. `written`: the file names
    each sink finalised; `tables`: the BigQuery staging tables (bigquery_swap.StagedOutputs), if any.
    Returns the commit record; raises PublishRefused when it may not commit."""
    marker = output_path(params, marker_name(params))
    current = commit_record.read(marker)
    record = record_of(current.data)
    if publish_id_of(record) != publish_id:
        record = _copy_and_commit(params, publish_id, written, marker, current, tables)
    _finish(params, record)
    if tables is not None:
        tables.drop()
    _remove_staging(params)
    return record


def _copy_and_commit(params: PipelineParams, publish_id: str, written: dict, marker: str,
                     current: commit_record.Version, tables) -> dict:
    """Steps 1-4: check, note, copy, compare-and-swap."""
    names = (PLAN_NAME,) if params.plan_only else OUTPUT_NAMES  # what this kind of run writes
    staged = {name: sorted(posixpath.basename(path) for path in written.get(name, [])) for name in names}
    files = {name: [final_name(path, publish_id) for path in staged[name]] for name in names}
    lease = read_lease(params)
    if lease is not None and (lease.get("publish_id") != publish_id or lease.get("released")):
        raise PublishRefused(f"run id {params.run_id} under {params.output} is no longer this job's "
                             f"(its lease: {lease}); nothing of this job was published")
    base = lease["base"] if lease is not None else publish_id_of(record_of(current.data))
    if publish_id_of(record_of(current.data)) != base:
        _lose(params, files, record_of(current.data))
    _check_staged(params, staged)
    if tables is not None:
        tables.swap_in()
    record = {**_read_json(staging_path(params, posixpath.basename(marker))),
              PUBLISHED: {"publish_id": publish_id, "files": files, "replaced": _replaced(params, current)}}
    pending = staging_path(params, PENDING_PREFIX + posixpath.basename(marker))
    _write(pending, record)
    for name in names:
        sources = [staging_path(params, f"{name}/{file}") for file in staged[name]]
        targets = [FileSystems.join(output_path(params, name), file) for file in files[name]]
        present = set(files_under(output_path(params, name))) if targets else set()
        missing = [(s, t) for s, t in zip(sources, targets) if not _already_copied(s, t, present)]
        if missing:
            _ensure_folder(output_path(params, name))
            FileSystems.copy([s for s, _ in missing], [t for _, t in missing])
    try:
        commit_record.swap(marker, pending, current)
    except RecordChanged:
        now = record_of(commit_record.read(marker).data)
        if publish_id_of(now) == publish_id:  # another attempt of this very step committed meanwhile
            return now
        _lose(params, files, now)
    return record


def _check_staged(params: PipelineParams, staged: dict[str, list[str]]) -> None:
    for name, wanted in staged.items():
        found = [posixpath.basename(path) for path in files_under(staging_path(params, name), "part-*")]
        if sorted(found) != wanted:
            raise PublishRefused(
                f"the staged files of {name} are not what this job's sinks wrote (not written by it: "
                f"{sorted(set(found) - set(wanted))}, missing: {sorted(set(wanted) - set(found))}); "
                "another launch with the same --run_id may be writing there; nothing was published")


def _replaced(params: PipelineParams, current: commit_record.Version) -> dict:
    """What the new record replaces: the current record's files, the files it replaced itself, and the
    files of the other kind's record (a plan replaced by a run, or the reverse)."""
    other = read_record(params.output, SUMMARY_FILE if params.plan_only else PLAN_SUMMARY_FILE)
    files: dict[str, list[str]] = {}
    for record in (record_of(current.data), other):
        block = (record or {}).get(PUBLISHED, {})
        for listing in (block.get("files", {}), (block.get("replaced") or {}).get("files", {})):
            for name, names in listing.items():
                files[name] = sorted(set(files.get(name, [])) | set(names))
    return {"publish_id": publish_id_of(record_of(current.data)), "files": files}


def _lose(params: PipelineParams, files: dict, winner: dict | None):
    """Another job committed over this job's base: this job's copies go, the winner's record stays."""
    delete_listed(params, files, keep=winner)
    release(params, f"lost to publish id {publish_id_of(winner)}")
    raise PublishRefused(
        f"another job published to {params.output} while this one ran (publish id {publish_id_of(winner)}, "
        f"run id {(winner or {}).get('run_id')}); its outputs stay published and this job's copies were "
        "removed. Launch again to replace them")


def _finish(params: PipelineParams, record: dict) -> None:
    """Step 5, after the commit: manifest in, what the record replaced out."""
    marker = output_path(params, marker_name(params))
    staged_manifest = staging_path(params, MANIFEST_FILE)
    if FileSystems.exists(staged_manifest) and \
            publish_id_of(record_of(commit_record.read(marker).data)) == publish_id_of(record):
        FileSystems.rename([staged_manifest], [output_path(params, MANIFEST_FILE)])
    replaced = record[PUBLISHED].get("replaced") or {}
    run_files = [output_path(params, SUMMARY_FILE if params.plan_only else PLAN_SUMMARY_FILE)]
    if replaced.get("publish_id"):  # an earlier record of ours: its report is ours too
        run_files.append(output_path(params, REPORT_FILE))
    _delete([path for path in run_files if FileSystems.exists(path)
             and (path.endswith(REPORT_FILE) or record_of(commit_record.read(path).data))])
    delete_listed(params, replaced.get("files", {}), keep=record)


def delete_listed(params: PipelineParams, files: dict, keep: dict | None) -> None:
    """Deletes the listed final names that exist, except those the record `keep` lists."""
    doomed = []
    for name, names in files.items():
        listed = set(names) - set(published_files(keep, name) or [])
        present = files_under(output_path(params, name)) if listed else []
        doomed += [path for path in present if posixpath.basename(path) in listed]
    _delete(doomed)


def _remove_staging(params: PipelineParams) -> None:
    """This run's staging folder, file by file (listed recursively), its lease last; never another's."""
    root, lease = staging_root(params), staging_path(params, LEASE_FILE)
    paths = files_under(root, "**")
    _delete([path for path in paths if path != lease] + [path for path in paths if path == lease])
    if FileSystems.get_scheme(root) is None and os.path.isdir(root):
        for folder, _, _ in os.walk(root, topdown=False):
            os.rmdir(folder)  # empty now; fails loudly if a file appeared meanwhile
        try:
            os.rmdir(FileSystems.join(params.output, STAGING))
        except OSError:  # another run's staging folder is there: it stays
            pass


def _ensure_folder(path: str) -> None:
    if FileSystems.get_scheme(path) is None and not FileSystems.exists(path):  # local paths need the folder
        FileSystems.mkdirs(path)


def _delete(paths: list[str]) -> None:
    if paths:
        FileSystems.delete(paths)


def _read_json(path: str) -> dict:
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return json.loads(handle.read())


def _write(path: str, document: dict) -> None:
    with FileSystems.create(path, compression_type="uncompressed") as handle:
        handle.write(json.dumps(document, indent=2, sort_keys=False, default=str).encode())


def _already_copied(source: str, target: str, present: set[str]) -> bool:
    """`target` exists with the staged file's checksum: GCS's CRC32C, a local file's size. Locally
    that suffices here: a final name belongs to one publish id, so its only possible content is the
    staged file's, and a copy cut short is shorter. (On GCS an object appears whole or not at all.)"""
    return target in present and FileSystems.checksum(source) == FileSystems.checksum(target)
