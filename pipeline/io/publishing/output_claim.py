"""The launch's claim on --output, before any work: whose files are there, and who holds the run id.

- Files we did not write are never deleted, and never silently left to mix with ours: when the output
  folders (or the run files: summary.json, plan.json, manifest.json, report.html) hold files and no
  commit record of ours lists an earlier run, the launch is refused, naming the files. With a record,
  --if_output_exists=replace replaces only what it lists (pipeline.io.publishing.publish); files it does not list
  (a user's notes) stay where they are. --if_output_exists=fail refuses any file, and holds under
  concurrency too: the lease's base is "no record", so a commit over another job's record is refused.
- A run id is held by one live job at a time: the launch swaps a lease into
  `<output>/_staging/<run_id>/lease.json` (a compare-and-swap: of two launches, one gets it) naming
  this job (host, process, start, publish id) and its base, the publish id of the record it found.
  A lease is live while its launcher process runs on this host, or, from another host (a Dataflow
  launcher), for LEASE_HOURS after its start, unless released (a publish, or a job that lost its
  commit, releases it). A launch that takes a dead lease over removes what the dead attempt staged and
  the copies it had made under final names that no record lists.
"""

from __future__ import annotations

import datetime
import json
import os
import posixpath
import socket

from apache_beam.io.filesystems import FileSystems

from pipeline.io.publishing import commit_record, publish
from pipeline.io.publishing.commit_record import RecordChanged
from pipeline.io.outputs.sinks import check_output_location, output_path, staging_path, staging_root
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams

LEASE_HOURS = 24  # a lease from another host counts as live this long (no Dataflow job state is read)
NAMED = 10  # files named in a refusal


def prepare_output(params: PipelineParams) -> None:
    """Checks --output, refuses files we did not write and --if_output_exists=fail, then claims the
    run id (refused while another live job holds it). A refused launch changes nothing."""
    check_output_location(params.output)
    records = {marker: publish.read_record(params.output, marker) for marker in publish.COMMIT_MARKERS}
    present = _present(params)
    if present and params.if_output_exists == "fail":
        raise ParameterError("output", params.output,
                             f"an empty location (it holds {len(present)} files: {_named(present)}; "
                             "--if_output_exists=replace replaces an earlier run of this pipeline)")
    if present and not any(records.values()):
        raise ParameterError("output", params.output, "a location without files this pipeline did not write: "
                             f"it holds {len(present)} files and no commit record of an earlier run "
                             f"(summary.json or plan.json with a 'published' block): {_named(present)}; "
                             "move them, or choose another --output")
    base = publish.publish_id_of(records[publish.marker_name(params)])
    _claim(params, base)


def claimed_publish_id(params: PipelineParams) -> str:
    """The publish id this process's launch claimed for the run id, else a new one (a graph built
    without a launch, e.g. a dry run)."""
    lease = publish.read_lease(params) if params.run_id else None
    if lease and lease.get("host") == socket.gethostname() and lease.get("pid") == os.getpid() \
            and not lease.get("released"):
        return lease["publish_id"]
    return publish.new_publish_id()


def _present(params: PipelineParams) -> list[str]:
    """Every file in the output folders (recursively) and every run file, relative to --output."""
    prefix = params.output.rstrip("/") + "/"
    found = []
    for name in publish.FOLDERS:
        found += publish.files_under(output_path(params, name), "**")
    for name in (*publish.COMMIT_MARKERS, *publish.RUN_FILES):
        found += publish.files_under(params.output, name)
    return sorted({path[len(prefix):] if path.startswith(prefix) else path for path in found})


def _named(paths: list[str]) -> str:
    return ", ".join(paths[:NAMED]) + (f" and {len(paths) - NAMED} more" if len(paths) > NAMED else "")


def _claim(params: PipelineParams, base: str | None) -> None:
    path = staging_path(params, publish.LEASE_FILE)
    current = commit_record.read(path)
    held = json.loads(current.data) if current.data else None
    if held and _is_live(held):
        raise ParameterError("run_id", params.run_id,
                             f"a run id no live job holds: a job launched on {held.get('host')} (process "
                             f"{held.get('pid')}) at {held.get('started')} holds it ({path}). Wait for it, "
                             "choose another --run_id, or, if that job has ended, delete that file")
    mine = {"run_id": params.run_id, "publish_id": publish.new_publish_id(), "base": base,
            "host": socket.gethostname(), "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    source = staging_path(params, f"lease-{mine['publish_id']}.json")
    with FileSystems.create(source, compression_type="uncompressed") as handle:
        handle.write(json.dumps(mine, indent=2).encode())
    try:
        commit_record.swap(path, source, current)
    except RecordChanged:
        raise ParameterError("run_id", params.run_id, "a run id no other launch claims at the same moment "
                             f"(another launch took {path} first)") from None
    _clear_dead_attempt(params, path)


def _is_live(lease: dict) -> bool:
    if lease.get("released"):
        return False
    if lease.get("host") == socket.gethostname():
        pid = lease.get("pid")
        if pid == os.getpid():  # an earlier run of this very process: it has returned
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except (PermissionError, TypeError):
            pass
        return True
    started = datetime.datetime.fromisoformat(lease.get("started", "1970-01-01T00:00:00+00:00"))
    return datetime.datetime.now(datetime.timezone.utc) - started < datetime.timedelta(hours=LEASE_HOURS)


def _clear_dead_attempt(params: PipelineParams, lease_path: str) -> None:
    """What an earlier, dead attempt with this run id left: the final-name copies its noted commit
    record lists that no current record lists, then its staged files (all but the new lease)."""
    current = [publish.read_record(params.output, marker) for marker in publish.COMMIT_MARKERS]
    staged = publish.files_under(staging_root(params), "**")
    for note in (p for p in staged if posixpath.basename(p).startswith(publish.PENDING_PREFIX)):
        noted = publish.record_of(commit_record.read(note).data)
        for name, files in ((noted or {}).get(publish.PUBLISHED, {}).get("files") or {}).items():
            listed = set().union(*(publish.published_files(record, name) or [] for record in current))
            publish.delete_listed(params, {name: sorted(set(files) - listed)}, keep=None)
    leftovers = [path for path in staged if path != lease_path]
    if leftovers:
        FileSystems.delete(leftovers)
