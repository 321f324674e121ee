"""Compare-and-swap of one small file (a commit record, a lease), locally and on Cloud Storage.

`read(path)` returns the file's content with a version token; `swap(path, source, expected)` puts
the staged file `source` at `path` only if `path` still holds `expected` (or, for an absent one,
still does not exist), else raises `RecordChanged`. So of two jobs that read the same version and
swap, exactly one wins, and the other learns it instead of overwriting.

- Cloud Storage: the token is the object's generation; the upload carries `ifGenerationMatch`
  (0 for "must not exist"), which GCS checks atomically. Beam's FileSystems has no conditional
  write, so this uses the google-cloud-storage client Beam itself builds (its GcsIO's).
- Local filesystem: the token is the content's SHA-256. The check and the `os.replace` run under an
  exclusive `flock` on the folder holding `path` (no lock file is left behind, and the kernel
  releases the lock of a process that dies). It is atomic among processes of one machine on a
  local disk; a network filesystem without flock support is not covered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os

from apache_beam.io.filesystems import FileSystems


class RecordChanged(Exception):
    """Another writer changed the file between its read and this swap."""


@dataclasses.dataclass(frozen=True)
class Version:
    """A file's content (None when absent) and the token a swap compares."""

    data: bytes | None
    token: str | None  # GCS generation or local SHA-256; None: the file does not exist


def read(path: str) -> Version:
    if FileSystems.get_scheme(path) == "gs":
        blob = _bucket(path).get_blob(_object_name(path))
        if blob is None:
            return Version(None, None)
        generation = blob.generation  # taken first: a download may refresh it from response headers
        return Version(blob.download_as_bytes(if_generation_match=generation), str(generation))
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return Version(None, None)
    return Version(data, _digest(data))


def swap(path: str, source: str, expected: Version) -> None:
    """`source` (a file the caller wrote) replaces `path` if `path` is still at version `expected`."""
    if FileSystems.get_scheme(path) == "gs":
        from google.api_core import exceptions

        with FileSystems.open(source, compression_type="uncompressed") as handle:
            data = handle.read()
        blob = _bucket(path).blob(_object_name(path))
        try:
            blob.upload_from_string(data, content_type="application/json",
                                    if_generation_match=int(expected.token) if expected.token else 0)
        except exceptions.PreconditionFailed as exc:
            raise RecordChanged(f"{path} changed since it was read") from exc
        return
    with _folder_lock(os.path.dirname(path) or "."):
        if read(path).token != expected.token:
            raise RecordChanged(f"{path} changed since it was read")
        os.replace(source, path)


@contextlib.contextmanager
def _folder_lock(folder: str):
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _object_name(path: str) -> str:
    return path[len("gs://"):].split("/", 1)[1]


_CLIENTS: dict = {}


def _bucket(path: str):
    from apache_beam.io.gcp.gcsio import GcsIO

    endpoint = os.environ.get("STORAGE_EMULATOR_HOST")  # tests point the process at an emulator
    if endpoint not in _CLIENTS:  # one client per process and endpoint, as Beam's GCS filesystem keeps
        _CLIENTS[endpoint] = GcsIO().client
    return _CLIENTS[endpoint].bucket(path[len("gs://"):].split("/", 1)[0])
