"""Every fit runs with --model_threads threads in every thread pool it uses (OpenMP, BLAS, XGBoost's
own), whatever the runner, the process, the thread that runs the bundle and the import order.

The fits themselves report what they see: tests/helpers/user_models/threads.py fits each registry model
through the pipeline and writes threadpoolctl's view from inside fit and predict.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline.models import custom_model, registry
from pipeline.utils import threads
from tests.helpers import ROOT
from tests.helpers.pipeline_runs import make_rows, run_pipeline
from tests.helpers.user_models.threads import REPORTS_ENV

PROBE = "tests.helpers.user_models.threads:RegistryModel"
ALL_MODELS = json.dumps({"model": sorted(registry.REGISTRY)})
OPENMP_MODELS = {"hist_gbr", "xgboost"}  # OpenMP-parallel fits: the pools that oversubscribed the cores


@pytest.fixture
def reports(tmp_path, monkeypatch):
    """The directory the probe reports to; the thread variables of this process restored afterwards."""
    directory = tmp_path / "reports"
    directory.mkdir()
    monkeypatch.setenv(custom_model.ALLOW_LIST_ENV, "tests.helpers.user_models")
    monkeypatch.setenv(REPORTS_ENV, str(directory))
    for name in threads.ENV_VARS:  # the pipeline sets them; monkeypatch puts back what was there
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)

    def read() -> list[dict]:
        return [json.load(open(path)) for path in sorted(glob.glob(str(directory / "*.json")))]
    return read


@pytest.fixture
def restore_thread_pools():
    """The in-process runner fits in this process: put its pools back for the tests that follow."""
    from threadpoolctl import ThreadpoolController

    before = ThreadpoolController().info()
    yield
    controller = ThreadpoolController()
    for info in before:
        controller.select(filepath=info["filepath"]).limit(limits=info["num_threads"])


def input_path(tmp_path) -> str:
    path = tmp_path / "input.parquet"
    make_rows({f"K{i}": [2001, 2002, 2003, 2004] for i in range(3)}, days=25, seed=3).to_parquet(path)
    return str(path)


def assert_every_pool_at(records: list[dict], expected: int, models_seen: set[str]) -> None:
    assert {r["model"] for r in records} == models_seen
    assert {r["stage"] for r in records} == {"fit", "predict"}
    for record in records:
        where = f"{record['model']} {record['stage']} in pid {record['pid']} thread {record['thread']}"
        pools = {pool["internal_api"]: pool["num_threads"] for pool in record["pools"]}
        assert any(pool["user_api"] == "blas" for pool in record["pools"]), where
        if record["model"] in OPENMP_MODELS:
            assert "openmp" in pools, where
        assert all(pool["num_threads"] == expected for pool in record["pools"]), (where, record["pools"])
        if registry.REGISTRY[record["model"]].threads_param:  # random_forest's joblib, XGBoost's nthread
            assert record["estimator_threads"] == expected, where
        if "xgboost_nthread" in record:
            assert record["xgboost_nthread"] == expected, where
    if "xgboost" in models_seen:
        assert any("xgboost_nthread" in r for r in records)


def test_worker_processes_fit_every_registry_library_with_model_threads(tmp_path, reports):
    # The multi-process local runner: fits run in worker processes, on Beam's bundle threads, and
    # scikit-learn/XGBoost are first imported inside a fit, long after the DoFn's setup. The search
    # fits every registry model (ScoreConfigs) and refits the winner (ChooseRefitPredict).
    summary = run_pipeline(tmp_path / "out", f"--input={input_path(tmp_path)}", f"--model={PROBE}",
                           f"--param_grid={ALL_MODELS}", "--model_threads=1",
                           "--direct_running_mode=multi_processing", "--direct_num_workers=2", in_process=False)
    assert summary["groups_trained"] == 6 and summary["groups_failed"] == 0
    records = reports()
    assert all(r["pid"] != os.getpid() for r in records)  # really in the worker processes
    assert not any(r["main_thread"] for r in records)  # on a bundle thread, not the one that imported Beam
    assert_every_pool_at(records, 1, set(registry.REGISTRY))


def test_deadline_helper_process_fits_with_model_threads(tmp_path, reports):
    summary = run_pipeline(tmp_path / "out", f"--input={input_path(tmp_path)}", f"--model={PROBE}",
                           '--model_params={"model": "hist_gbr"}', "--model_threads=1", "--group_timeout_s=300",
                           "--direct_running_mode=multi_processing", "--direct_num_workers=2", in_process=False)
    assert summary["groups_trained"] == 6 and summary["groups_failed"] == 0
    records = reports()
    assert all(r["pid"] != os.getpid() and r["main_thread"] for r in records)  # the helper's own loop
    assert_every_pool_at(records, 1, {"hist_gbr"})


def test_in_process_runner_fits_with_model_threads_above_the_core_count(tmp_path, reports, restore_thread_pools):
    # In the launcher's process the libraries may be loaded before the run (its parameter checks
    # import scikit-learn) with counts of their own: only a limit set on the fitting thread, once
    # per fit, makes them 3. (A library first loaded in the middle of a fit gets its count from the
    # environment, which OpenBLAS caps at the core count: hence loaded here first.)
    import sklearn.ensemble  # noqa: F401
    import xgboost  # noqa: F401
    from threadpoolctl import threadpool_info

    assert any(pool["num_threads"] != 3 for pool in threadpool_info())
    summary = run_pipeline(tmp_path / "out", f"--input={input_path(tmp_path)}", f"--model={PROBE}",
                           f"--param_grid={ALL_MODELS}", "--model_threads=3")
    assert summary["groups_trained"] == 6 and summary["groups_failed"] == 0
    records = reports()
    assert all(r["pid"] == os.getpid() for r in records)
    assert_every_pool_at(records, 3, set(registry.REGISTRY))


def test_limit_reaches_late_libraries_and_other_threads():
    # A fresh interpreter: the limit is asked for before scikit-learn and XGBoost are imported, then
    # again from a new thread after the import, as a Beam bundle thread does before its fit.
    script = textwrap.dedent("""
        import json, threading
        from pipeline.utils import threads
        threads.limit(1)
        import sklearn.ensemble, xgboost
        from threadpoolctl import threadpool_info
        seen = {}
        def fit_thread():
            threads.limit(1)
            seen["pools"] = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
        worker = threading.Thread(target=fit_thread)
        worker.start(); worker.join()
        print(json.dumps(seen["pools"]))
    """)
    environ = {k: v for k, v in os.environ.items() if k not in threads.ENV_VARS}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr[-3000:]
    pools = json.loads(done.stdout)
    assert {api for api, _ in pools} >= {"openmp", "openblas"}
    assert all(count == 1 for _, count in pools), pools


def test_set_environment_overrides_every_variable():
    environ = {"OMP_NUM_THREADS": "8", "PATH": "/bin"}
    threads.set_environment(2, environ)
    assert environ == {"PATH": "/bin", **{name: "2" for name in threads.ENV_VARS}}


@pytest.mark.parametrize("machine_type, model_threads, expected", [
    ("n2-standard-4", 1, 4), ("n2-standard-4", 2, 2), ("n2-highcpu-8", 3, 2), ("c3-standard-4-lssd", 2, 2),
    ("n1-standard-1", 2, 1), ("custom-6-23040", 2, 3), ("n2-custom-4-16384-ext", 4, 1),
    ("e2-medium", 2, None), (None, 2, None), ("", 1, None),
])
def test_harness_threads_fill_the_vcpus(machine_type, model_threads, expected):
    assert threads.harness_threads(machine_type, model_threads) == expected


def test_dataflow_launch_runs_fewer_bundles_when_each_fit_takes_more_threads(monkeypatch, tmp_path):
    from pipeline import runner
    from tests.template.test_launch import LAUNCHER_FLAGS, TEMPLATE_IMAGE, launch_main_py

    monkeypatch.setenv(runner.IMAGE_ENV, TEMPLATE_IMAGE)
    template_params = ["--source=duckdb", "--output=gs://my-bucket/runs/r1", "--model=hist_gbr"]
    final = launch_main_py(monkeypatch, template_params + LAUNCHER_FLAGS + ["--model_threads=2"]).job.options
    assert final.get_all_options()["number_of_worker_harness_threads"] == 2  # n2-standard-4: 4 vCPUs / 2
    default = launch_main_py(monkeypatch, template_params + LAUNCHER_FLAGS).job.options
    assert default.get_all_options()["number_of_worker_harness_threads"] is None  # Dataflow's: one per vCPU


def test_image_starts_every_process_with_the_default_model_threads():
    from pipeline.params.catalog import PARAMS
    from tests.template.test_image import env_vars

    (param,) = [p for p in PARAMS if p.name == "model_threads"]
    found = env_vars()
    assert {name: found.get(name) for name in threads.ENV_VARS[:3]} == {
        name: str(param.default) for name in threads.ENV_VARS[:3]}
