"""A local Cloud Storage endpoint for tests: gcp-storage-emulator on a free loopback port, offline.

Beam's GCS filesystem (google-cloud-storage underneath) sends every call to
`STORAGE_EMULATOR_HOST` when it is set; `GcsEmulator.environ()` gives that and the
rest of a loopback-only Google environment:

- Beam asks google-auth for credentials before it builds its storage client. With none
  configured, google-auth probes the GCE metadata server (169.254.169.254, off this
  machine) and Beam retries the lookup for about 20 s before going anonymous. So
  `GOOGLE_APPLICATION_CREDENTIALS` names an `authorized_user` file that already holds an
  access token valid for centuries: Beam authenticates as it would on a laptop and never
  needs to refresh it (a refresh would go to Google), and the emulator ignores the token.
- `NO_GCE_CHECK=true` keeps google-auth from probing the metadata server at all.

The variables are inherited by subprocesses (the multi-process local runner's workers,
`python -m pipeline.record.report`, ...). Run as a module (`python -m tests.helpers.gcs_emulator BUCKET`), this file is the emulator process:
it prints its port as one JSON line and serves until stdin closes or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading

from tests.helpers import ROOT
from tests.helpers.emulator_process import EmulatorProcess

PROJECT = "test-project"
HOST = "127.0.0.1"


def serve(bucket: str) -> None:
    import logging

    from gcp_storage_emulator.server import create_server

    logging.getLogger().setLevel(logging.CRITICAL)
    _honour_generation_preconditions()
    server = create_server(HOST, 0, in_memory=True, default_bucket=bucket)
    server.start()
    port = server._api._httpd.server_address[1]  # bound to port 0: the kernel's choice
    print(json.dumps({"port": port}), flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stopped.set()), daemon=True).start()
    stopped.wait()
    server.stop()


def _honour_generation_preconditions() -> None:
    """gcp-storage-emulator ignores `ifGenerationMatch` on uploads; real GCS refuses a mismatch with
    412 atomically. This wraps the emulator's upload handler (one lock: the emulator serves requests
    on several threads) so that pipeline.io.publishing.commit_record's compare-and-swap meets GCS's behaviour."""
    from http import HTTPStatus

    from gcp_storage_emulator import server
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    lock, insert = threading.Lock(), objects.insert

    def checked_insert(request, response, storage, *args, **kwargs):
        wanted = request.query.get("ifGenerationMatch")
        if not wanted:
            return insert(request, response, storage, *args, **kwargs)
        data = request.data if isinstance(request.data, dict) else {}
        name = request.query["name"][0] if "name" in request.query else data.get("meta", {}).get("name")
        with lock:
            try:
                generation = storage.get_file_obj(request.params["bucket_name"], name)["generation"]
            except NotFound:
                generation = "0"
            if str(generation) != wanted[0]:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "conditionNotMet"}})
                return None
            return insert(request, response, storage, *args, **kwargs)

    objects.insert = checked_insert
    for _, handlers in server.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is insert:
                handlers[method] = checked_insert


_WATCHING, _OUTSIDE = threading.Event(), []


def _audit(event: str, args: tuple) -> None:
    if _WATCHING.is_set() and event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            _OUTSIDE.append(address)


sys.addaudithook(_audit)  # once per process; it records only inside loopback_only()


class GcsEmulator(EmulatorProcess):
    """One emulator process with one bucket; `stop()` ends it by its PID."""

    def __init__(self, workdir: str, bucket: str = "test-bucket"):
        self.workdir, self.bucket = workdir, bucket
        self.endpoint = ""
        self.credentials_file = os.path.join(workdir, "application_default_credentials.json")
        self.log_path = os.path.join(workdir, "gcs_emulator.log")

    def start(self, timeout: float = 30.0) -> "GcsEmulator":
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "tests.helpers.gcs_emulator", self.bucket], cwd=ROOT,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        started = _read_line(self.process, timeout)
        if not started:
            self.stop()
            raise RuntimeError(f"gcp-storage-emulator did not start: {self.log_tail()}")
        self.endpoint = f"http://{HOST}:{json.loads(started)['port']}"
        with open(self.credentials_file, "w") as handle:
            json.dump({"type": "authorized_user", "client_id": "loopback", "client_secret": "loopback",
                       "refresh_token": "loopback", "token": "loopback-token",
                       "expiry": "2999-01-01T00:00:00Z"}, handle)
        return self

    def environ(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GOOGLE_APPLICATION_CREDENTIALS": self.credentials_file,
                "NO_GCE_CHECK": "true", "GOOGLE_CLOUD_PROJECT": PROJECT}

    @contextlib.contextmanager
    def loopback_only(self):
        """Fails the test if this process connected anywhere but loopback meanwhile (an audit hook)."""
        _OUTSIDE.clear()
        _WATCHING.set()
        try:
            yield
        finally:
            _WATCHING.clear()
        assert not _OUTSIDE, f"connections off this machine: {sorted(set(_OUTSIDE))}"


def snapshot(root: str) -> dict[str, bytes]:
    """Every file under `root` (local or gs://), through Beam's FileSystems: relative path -> bytes."""
    from apache_beam.io.filesystems import FileSystems

    prefix = root.rstrip("/") + "/"
    files = {}
    for match in FileSystems.match([prefix + "**"])[0].metadata_list:
        with FileSystems.open(match.path, compression_type="uncompressed") as handle:
            files[match.path[len(prefix):]] = handle.read()
    return files


def restore(root: str, files: dict[str, bytes]) -> None:
    """Makes `root` hold exactly `files` (a snapshot), through Beam's FileSystems."""
    from apache_beam.io.filesystems import FileSystems

    prefix = root.rstrip("/") + "/"
    if FileSystems.get_scheme(root) is None:
        shutil.rmtree(root, ignore_errors=True)  # folders too: a local tree is restored exactly
        present = set()
    else:  # only what differs: the objects' CRC32C against the snapshot's
        present = {m.path[len(prefix):] for m in FileSystems.match([prefix + "**"])[0].metadata_list}
        extra = [prefix + relative for relative in present - set(files)]
        if extra:
            FileSystems.delete(extra)
    for relative, data in files.items():
        if relative in present and FileSystems.checksum(prefix + relative) == _crc32c(data):
            continue
        with FileSystems.create(prefix + relative, compression_type="uncompressed") as handle:
            handle.write(data)


def _crc32c(data: bytes) -> str:
    """As GCS reports it: base64 of the big-endian CRC32C."""
    import base64

    import google_crc32c

    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def write_parquet(path: str, frame) -> str:
    """A DataFrame as one Parquet file at `path` (local or gs://)."""
    import io

    from apache_beam.io.filesystems import FileSystems

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    with FileSystems.create(path, compression_type="uncompressed") as handle:
        handle.write(buffer.getvalue())
    return path


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0].decode().strip() if line else ""


if __name__ == "__main__":
    serve(sys.argv[1])
