"""Every gs:// path the README offers, end to end against a Cloud Storage emulator on 127.0.0.1.

The pipeline reads and writes through Beam's own FileSystems / GCS IO (google-cloud-storage),
pointed at gcp-storage-emulator by STORAGE_EMULATOR_HOST (tests/helpers/gcs_emulator.py): --output,
--model_dir and re-prediction from it, --input, `python -m pipeline.record.report`, --if_output_exists.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline.io.outputs import artifacts
from pipeline.io.publishing import results
from pipeline.record import saved_models
from pipeline.params.declare import ParameterError
from tests.helpers.pipeline_runs import make_rows, run_pipeline, sorted_predictions
from tests.helpers.gcs_emulator import snapshot, write_parquet

OUTPUTS = ("predictions", "metrics", "ledger", "rejected_rows")
# Plain keys: gcp-storage-emulator builds download links from unescaped object names, so it cannot
# serve a percent-encoded key folder (`S%2F01`) back (real GCS can; tests/record/test_reproducibility.py covers them).
KEYS = ("A", "B")
ARGS = ("--model=ridge", "--window_size=3", "--min_train_rows=10")


def rows() -> pd.DataFrame:
    data = make_rows({key: [2001, 2002, 2003, 2004] for key in KEYS}, days=12, seed=7)
    return pd.concat([data, data.iloc[[0]].assign(sales=np.nan)], ignore_index=True)  # one rejected row


def gcs_input(prefix: str) -> str:
    """The rows as two Parquet files under gs://; returns the glob that --input takes."""
    data = rows()
    write_parquet(f"{prefix}/input/rows-0.parquet", data[data["shop_id"] == "A"])
    write_parquet(f"{prefix}/input/rows-1.parquet", data[data["shop_id"] != "A"])
    return f"{prefix}/input/*.parquet"


def objects(prefix: str) -> list[str]:
    return sorted(m.path[len(prefix) + 1:] for m in FileSystems.match([f"{prefix}/**"])[0].metadata_list)


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return handle.read()


def by_key_and_date(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(date=pd.to_datetime(frame["date"]))
    return frame.sort_values(["shop_id", "window_start", "date"], ignore_index=True)


@pytest.fixture
def finished(gcs, tmp_path):
    """One run reading gs:// and writing outputs and models to gs://."""
    source = gcs_input(gcs)
    summary = run_pipeline(f"{gcs}/out", f"--input={source}", *ARGS, f"--model_dir={gcs}/models", "--run_id=on-gcs")
    return {"prefix": gcs, "out": f"{gcs}/out", "models": f"{gcs}/models", "input": source, "summary": summary}


def test_outputs_summary_and_manifest_on_gcs_equal_a_local_run(finished, tmp_path):
    out = finished["out"]
    listed = objects(out)
    assert not [name for name in listed if name.startswith("_staging/")]  # published, staging removed
    assert {"summary.json", "manifest.json", "report.html"} <= set(listed)
    summary, manifest = results.read_json(out, "summary.json"), results.read_json(out, "manifest.json")
    assert summary == finished["summary"] and summary["run_id"] == manifest["run_id"] == "on-gcs"
    assert summary["counts_reconcile"] == {"rows": True, "groups": True}
    assert summary["rows_read"] == len(rows()) and summary["rows_rejected"] == 1
    assert summary["groups_trained"] == 2 * len(KEYS) and summary["source"] == "file"
    for name in OUTPUTS:  # each folder holds exactly the files the manifest and the commit record list
        parts = sorted(path.split("/", 1)[1] for path in listed if path.startswith(f"{name}/"))
        assert parts and parts == manifest["outputs"][name] == summary["published"]["files"][name], name
        table = results.read_table(out, name)
        assert len(table) and set(table["run_id"]) == {"on-gcs"}, name
    assert len(results.read_table(out, "rejected_rows")) == 1

    # The same rows read from a local file give the same predictions and ledger.
    local_input = tmp_path / "rows.parquet"
    rows().to_parquet(local_input, index=False)
    run_pipeline(tmp_path / "local", f"--input={local_input}", *ARGS, "--run_id=on-gcs")
    local = sorted_predictions(tmp_path / "local", lineage=False)
    remote = by_key_and_date(results.read_table(out, "predictions").drop(columns=["params_hash"]))
    local = by_key_and_date(local)
    pd.testing.assert_frame_equal(remote[local.columns], local)
    ledger = results.read_table(out, "ledger").sort_values(["shop_id", "window_start"], ignore_index=True)
    assert list(ledger["status"]) == ["trained"] * len(ledger)


def test_models_on_gcs_repredict_the_run_exactly(finished):
    out, models = finished["out"], finished["models"]
    predictions = by_key_and_date(results.read_table(out, "predictions"))
    model_objects = objects(f"{models}/on-gcs")
    assert sorted({path.split("/")[0] for path in model_objects}) == sorted(artifacts.encode_key(k) for k in KEYS)
    for (key, start), expected in predictions.groupby(["shop_id", "window_start"]):
        again = saved_models.predict_window(models, "on-gcs", key, start, rows(), out)
        assert again["predicted"].to_numpy().tobytes() == expected["predicted"].to_numpy().tobytes(), (key, start)

    # The command line: the model from gs://, the rows from the run's own gs:// --input, the CSV to gs://.
    target = f"{finished['prefix']}/repredicted/B.csv"
    done = subprocess.run([sys.executable, "-m", "pipeline.record.saved_models", "predict", f"--model_dir={models}",
                           f"--run_output={out}", "--run_id=on-gcs", "--key=B", "--window=2001", f"--output={target}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    written = pd.read_csv(io.BytesIO(read_bytes(target)), float_precision="round_trip")  # pandas 2: exact floats
    expected = predictions[(predictions["shop_id"] == "B") & (predictions["window_start"] == 2001)]
    assert len(written) == len(expected) > 0
    assert np.array_equal(written["predicted"].to_numpy(), expected["predicted"].to_numpy())


def test_report_command_renders_a_gcs_run(finished):
    out = finished["out"]
    before = read_bytes(f"{out}/report.html")  # written by the local run itself
    FileSystems.delete([f"{out}/report.html"])
    done = subprocess.run([sys.executable, "-m", "pipeline.record.report", out], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{out}/report.html"
    document = read_bytes(f"{out}/report.html").decode()
    assert "on-gcs" in document and document.count("<img") == before.decode().count("<img") >= 3


def test_if_output_exists_on_gcs(gcs):
    source, out = gcs_input(gcs), f"{gcs}/out"
    run_pipeline(out, f"--input={source}", *ARGS, "--run_id=first")
    first = snapshot(out)

    with pytest.raises(ParameterError) as refused:
        run_pipeline(out, f"--input={source}", *ARGS, "--run_id=refused", "--if_output_exists=fail")
    assert refused.value.name == "output" and "--if_output_exists=replace" in str(refused.value)
    assert snapshot(out) == first  # not one object touched

    # replace: the second run's CSV files only, nothing of the first (Parquet) left, no staging.
    run_pipeline(out, f"--input={source}", *ARGS, "--run_id=second", "--output_format=csv")
    listed = objects(out)
    assert not [p for p in listed if p.endswith(".parquet") or p.startswith("_staging/")]
    for name in OUTPUTS:
        assert set(results.read_table(out, name)["run_id"]) == {"second"}, name
    assert results.read_json(out, "manifest.json")["run_id"] == results.read_json(out, "summary.json")["run_id"]

    # A plan-only run replaces a training run: plan/ and plan.json, no predictions and no summary left.
    run_pipeline(out, f"--input={source}", *ARGS, "--run_id=third", "--plan_only")
    listed = objects(out)
    assert "plan.json" in listed and "summary.json" not in listed
    assert not [p for p in listed if p.split("/")[0] in OUTPUTS]
    assert set(results.read_table(out, "plan")["run_id"]) == {"third"}
    assert results.read_json(out, "manifest.json")["run_id"] == "third"


def test_multi_process_workers_reach_the_emulator(gcs):
    """Beam's local runner on 2 worker processes: they inherit STORAGE_EMULATOR_HOST and the credentials."""
    source, out = gcs_input(gcs), f"{gcs}/out"
    summary = run_pipeline(out, f"--input={source}", *ARGS, "--run_id=workers", "--direct_num_workers=2",
                           in_process=False)
    assert summary["groups_trained"] == 2 * len(KEYS) and summary["counts_reconcile"]["rows"]
    assert set(results.read_table(out, "predictions")["run_id"]) == {"workers"}
    assert json.loads(read_bytes(f"{out}/summary.json"))["run_id"] == "workers"
    assert os.environ["STORAGE_EMULATOR_HOST"].startswith("http://127.0.0.1:")
