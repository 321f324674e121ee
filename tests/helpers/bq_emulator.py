"""A local BigQuery endpoint for tests: bqemulator on free loopback ports, offline.

bqemulator loads DuckDB's `spatial` extension at start-up and would download it;
the `duckdb-extension-spatial` / `-avro` wheels (dev requirements) ship the files,
which are copied into a private HOME so DuckDB finds them installed.

Beam 2.77's BigQuery IO has no endpoint option, so `point_beam_at` re-points Beam's
clients at the emulator with test-only patches (in-process runners only):
Google auth -> anonymous credentials; the apitools BigQuery client's base URL; the
Storage Read API client's channel; and a guard on Beam's temp-dataset cleanup,
which would otherwise delete every dataset (the emulator ignores the label
filter of datasets.list). The official client honours BIGQUERY_EMULATOR_HOST.
Name lookups of anything but loopback are refused and recorded meanwhile.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

from tests.helpers.emulator_process import EmulatorProcess

PROJECT = "test-project"
BEAM_TEMP_DATASET_PREFIX = "beam_temp_dataset_"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _extension_files() -> list[str]:
    files = []
    for package in ("duckdb_extension_spatial", "duckdb_extension_avro"):
        spec = importlib.util.find_spec(package)
        if spec is None:
            raise RuntimeError(f"{package} is not installed (requirements-dev.txt)")
        files += glob.glob(os.path.join(os.path.dirname(spec.origin), "extensions", "*", "*.duckdb_extension"))
    return files


def _private_home(workdir: str) -> str:
    """A HOME whose DuckDB extension directory already holds spatial and avro."""
    import duckdb

    home = os.path.join(workdir, "home")
    platform = duckdb.sql("PRAGMA platform").fetchone()[0]
    target = os.path.join(home, ".duckdb", "extensions", f"v{duckdb.__version__}", platform)
    os.makedirs(target, exist_ok=True)
    for path in _extension_files():
        shutil.copy(path, target)
    return home


class BigQueryEmulator(EmulatorProcess):
    """One bqemulator process; `stop()` ends it by its PID."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.rest_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.log_path = os.path.join(workdir, "bqemulator.log")
        self.process: subprocess.Popen | None = None
        self.refused_deletes: list[str] = []
        self.blocked_hosts: list[str] = []

    def start(self, timeout: float = 60.0) -> "BigQueryEmulator":
        env = {**os.environ, "HOME": _private_home(self.workdir), "BQEMU_ENABLE_FORMAT_EXTENSIONS": "true"}
        command = [os.path.join(os.path.dirname(sys.executable), "bqemulator"), "start",
                   "--rest-port", str(self.rest_port), "--grpc-port", str(self.grpc_port),
                   "--project", PROJECT, "--log-format", "console", "--log-level", "warning"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bqemulator exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"bqemulator not healthy after {timeout}s: {self.log_tail()}")

    def client(self):
        """The official client, pointed at the emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                               client_options={"api_endpoint": self.endpoint})

    @contextlib.contextmanager
    def point_beam_at(self, monkeypatch):
        """Re-points Beam's BigQuery clients (and the pipeline's official client) at the emulator."""
        import google.auth
        import grpc
        from apache_beam.internal.gcp import auth
        from apache_beam.io.gcp import bigquery_tools
        from apache_beam.io.gcp.internal.clients.bigquery import bigquery_v2_client
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery_storage_v1
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport

        real_getaddrinfo, blocked = socket.getaddrinfo, self.blocked_hosts

        def loopback_only(host, *args, **kwargs):
            if host not in LOOPBACK_HOSTS:
                blocked.append(str(host))
                raise socket.gaierror(socket.EAI_NONAME, f"test guard: {host} is not on loopback")
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", loopback_only)  # nothing may leave the machine
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", self.endpoint)  # needs the http:// scheme
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        monkeypatch.setattr(google.auth, "default",
                            lambda *args, **kwargs: (AnonymousCredentials(), PROJECT))
        monkeypatch.setattr(auth._Credentials, "_credentials_init", False)  # Beam caches credentials
        base_url = f"{self.endpoint}/bigquery/v2/"
        monkeypatch.setattr(bigquery_v2_client.BigqueryV2, "BASE_URL", base_url)
        monkeypatch.setattr(bigquery_v2_client.BigqueryV2, "MTLS_BASE_URL", base_url)

        real_read_client, target = bigquery_storage_v1.BigQueryReadClient, self.grpc_target

        def read_client(*args, **kwargs):
            channel = grpc.insecure_channel(target)
            return real_read_client(transport=BigQueryReadGrpcTransport(channel=channel))

        monkeypatch.setattr(bigquery_storage_v1, "BigQueryReadClient", read_client)

        real_delete, refused = bigquery_tools.BigQueryWrapper._delete_dataset, self.refused_deletes

        def delete_only_beam_temp(wrapper, project_id, dataset_id, delete_contents=True):
            if not dataset_id.startswith(BEAM_TEMP_DATASET_PREFIX):
                refused.append(dataset_id)
                return None
            return real_delete(wrapper, project_id, dataset_id, delete_contents)

        monkeypatch.setattr(bigquery_tools.BigQueryWrapper, "_delete_dataset", delete_only_beam_temp)
        yield self
