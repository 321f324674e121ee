"""Fixtures shared by every test folder; the helpers they use live in tests/helpers/."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture
def write_parquet(tmp_path):
    def _write(frame: pd.DataFrame, name: str = "input.parquet") -> str:
        path = tmp_path / name
        frame.to_parquet(path, index=False)
        return str(path)
    return _write


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory):
    """bqemulator on free loopback ports for the whole session; stopped by its PID at the end."""
    from tests.helpers.bq_emulator import BigQueryEmulator

    emulator = BigQueryEmulator(str(tmp_path_factory.mktemp("bqemulator"))).start()
    try:
        yield emulator
    finally:
        emulator.stop()



@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """gcp-storage-emulator on a free loopback port with one bucket, for the whole session."""
    from tests.helpers.gcs_emulator import GcsEmulator

    emulator = GcsEmulator(str(tmp_path_factory.mktemp("gcs_emulator"))).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def gcs(gcs_emulator, monkeypatch, request):
    """This test's own gs:// prefix on the emulator; the environment (inherited by workers) points there,
    and the test fails if this process connects anywhere but loopback."""
    for name, value in gcs_emulator.environ().items():
        monkeypatch.setenv(name, value)
    with gcs_emulator.loopback_only():
        yield f"gs://{gcs_emulator.bucket}/{request.node.name.replace('[', '-').rstrip(']')}"
