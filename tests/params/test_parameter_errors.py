"""Every bad parameter fails before any work, naming the parameter, the value and what is allowed."""

from __future__ import annotations

import os

import pytest

from pipeline import run as pipeline_run
from pipeline.params.declare import ParameterError
from tests.helpers.pipeline_runs import IN_PROCESS, make_rows

# (argv, parameter named in the error, fragment of what is allowed). {input} and {file} are filled in.
CASES = [
    (["--window_size=abc"], "window_size", "an integer >= 2"),
    (["--window_size=1"], "window_size", "an integer >= 2"),
    (["--test_periods=3"], "test_periods", "smaller than --window_size"),
    (["--window_period=4"], "window_period", "at most --window_size=3"),
    (["--min_train_rows=0"], "min_train_rows", "a positive integer"),
    (["--min_period=2010", "--max_period=2001"], "max_period", ">= --min_period=2010"),
    (["--min_period=1e3"], "min_period", "an integer"),
    (["--min_period=2001", "--max_period=2002"], "window_size", "the number of periods in --min_period..--max_period"),
    (["--max_failure_rate=1.5"], "max_failure_rate", "a fraction between 0 and 1"),
    (["--max_failure_rate=-0.1"], "max_failure_rate", "a non-negative number"),
    (["--group_timeout_s=soon"], "group_timeout_s", "a non-negative number"),
    (["--seed=-1"], "seed", "a non-negative integer"),
    (["--model=prophet"], "model", "one of gbr, hist_gbr"),
    (['--model_params={"n_estimators": -1}'], "model_params", "n_estimators"),
    (['--model_params={"no_such_knob": 1}'], "model_params", "unknown hyperparameter(s) ['no_such_knob']"),
    (["--model_params={max_depth: 3}"], "model_params", "a JSON object"),
    (["--time_column=1year"], "time_column", "a column name"),
    (["--features=attr1, attr2"], "features", "comma-separated column names"),
    (["--features=attr1,attr1"], "features", "each feature once"),
    (["--features=attr1,sales"], "features", "must not contain the target 'sales'"),
    (["--key_column=year"], "key_column", "four different columns"),
    (["--target=revenue"], "target", "a column of the source; it has year, date, shop_id"),
    (["--features=attr1,colour"], "features", "missing ['colour']"),
    (["--source=file"], "source", "--source=file needs --input"),
    (["--source=spark"], "source", "one of auto, duckdb, file, bigquery"),
    (["--query=SELECT nothing FROM dataset.table"], "query", "a query DuckDB can run locally"),
    (["--input={missing}"], "input", "a path or glob that matches at least one file"),
    (["--input=data.xlsx"], "input", "must match"),
    (["--output=gs://A_Bucket/out"], "output", "gs://<bucket>[/<prefix>] with a valid bucket name"),
    (["--output=gs://"], "output", "gs://<bucket>[/<prefix>]"),
    (["--output=s3://bucket/out"], "output", "a local folder or a gs:// prefix"),
    (["--output={tmp}/out-*"], "output", "without wildcards"),
    (["--output={file}"], "output", "this path is an existing file"),
    (["--output=has space"], "output", "must match"),
    (["--output_format=xlsx"], "output_format", "one of parquet, csv"),
    (["--if_output_exists=merge"], "if_output_exists", "one of replace, fail"),
    (["--run_id=bad id!"], "run_id", "1-63 letters, digits"),
]


@pytest.mark.parametrize("argv, name, allowed", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_parameter_is_named_before_any_work(tmp_path, argv, name, allowed):
    input_path = tmp_path / "input.parquet"
    make_rows({"A": [2001, 2002, 2003]}, days=2).to_parquet(input_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    output = tmp_path / "result"
    fill = {"{missing}": tmp_path / "nothing-*.parquet", "{tmp}": tmp_path, "{file}": a_file}
    for placeholder, value in fill.items():
        argv = [a.replace(placeholder, str(value)) for a in argv]
    if not any(a.startswith(("--query=", "--source=", "--input=")) for a in argv):
        argv.append(f"--input={input_path}")
    if not any(a.startswith("--output=") for a in argv):
        argv.append(f"--output={output}")

    with pytest.raises(ParameterError) as error:
        pipeline_run.prepare([*argv, *IN_PROCESS])
    assert error.value.name == name
    message = str(error.value)
    assert message.startswith(f"--{name}=") and allowed in message, message
    assert not output.exists()  # nothing was written


def test_main_reports_a_bad_parameter_with_exit_code_2(tmp_path, capsys):
    assert pipeline_run.main([f"--output={tmp_path / 'out'}", "--max_failure_rate=2"]) == 2
    assert "--max_failure_rate=2.0 is not valid: a fraction between 0 and 1" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")
