"""Infrastructure errors (OSError, MemoryError) are never recorded as a data error (issue 23 §1): not by the
deadline helper that runs a fit (--group_timeout_s), not by the launch's model or query checks. They reach
the caller as themselves, so that the bundle fails, the runner retries it and the run fails loudly."""

from __future__ import annotations

import errno

import pytest

from pipeline.io.sources import local_query
from pipeline.models import registry
from pipeline.params.declare import ParameterError
from pipeline.utils.deadline import DeadlineCaller, RemoteError


def disk_full(_path):
    raise OSError(errno.ENOSPC, "No space left on device", _path)


def out_of_memory(_size):
    raise MemoryError("cannot allocate")


def bad_value(_value):
    raise ValueError("a data error")


def test_the_deadline_helper_passes_infrastructure_errors_on_as_themselves():
    caller = DeadlineCaller(60.0)  # a real helper process (spawn), as --group_timeout_s runs a fit
    try:
        with pytest.raises(OSError, match="No space left on device"):
            caller.call(disk_full, "/spill/part")
        with pytest.raises(MemoryError, match="cannot allocate"):
            caller.call(out_of_memory, 10**12)
        with pytest.raises(RemoteError) as raised:  # a data error stays the group's own
            caller.call(bad_value, 1)
        assert raised.value.class_name == "ValueError" and not isinstance(raised.value, OSError)
    finally:
        caller.stop()


class _FullDiskEstimator:
    """Injected: an estimator whose fit meets a full disk (nothing real fills a disk on demand)."""

    def fit(self, features, target):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_the_launch_check_of_a_model_does_not_call_a_full_disk_a_bad_parameter(monkeypatch):
    monkeypatch.setattr(registry, "make_estimator", lambda *args, **kwargs: _FullDiskEstimator())
    with pytest.raises(OSError, match="No space left") as raised:
        registry.check_model("ridge", {"alpha": 1.0})
    assert not isinstance(raised.value, ParameterError)


def test_the_launch_check_of_a_query_does_not_call_a_full_disk_a_bad_query(monkeypatch):
    def full_disk(connection, query):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local_query, "single_statement", full_disk)
    with pytest.raises(OSError, match="No space left") as raised:
        local_query.duckdb_columns("SELECT 1 AS a")
    assert not isinstance(raised.value, ParameterError)
    monkeypatch.undo()
    with pytest.raises(ParameterError):  # a query DuckDB cannot run is still the query's
        local_query.duckdb_columns("SELECT no_such_column FROM dataset.table")
