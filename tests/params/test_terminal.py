"""The command line for a local user: a misspelled parameter is refused before any work (Beam would
drop it silently), other unknown arguments are warned about, Beam's and the Flex Template
launcher's options always pass, --help is grouped with defaults, and graph construction is quiet."""

from __future__ import annotations

import logging
import subprocess
import sys

import apache_beam as beam
import pytest

from pipeline import run as pipeline_run
from pipeline import runner
from pipeline.params import declare, parse
from pipeline.params.catalog import PARAMS
from pipeline.params.declare import UnknownArgument
from tests.helpers import ROOT

# What the launcher passes besides the template's parameters (tests/template/test_launch.py uses the same).
LAUNCHER_ARGS = [
    "--runner=DataflowRunner", "--project=my-project", "--region=europe-west1",
    "--job_name=many-models-20261127", "--temp_location=gs://my-bucket/tmp",
    "--staging_location=gs://my-bucket/staging",
    "--template_location=gs://my-bucket/staging/template_launches/2026-11-27_01/job_object",
    "--service_account_email=runner@my-project.iam.gserviceaccount.com", "--machine_type=n2-standard-4",
    "--max_num_workers=8", "--num_workers=2", "--labels=run=r1", "--experiments=use_runner_v2",
    "--dataflow_service_options=enable_prime", "--sdk_container_image=europe-west1-docker.pkg.dev/p/r/i:t",
    "--worker_region=europe-west1", "--network=default", "--subnetwork=regions/europe-west1/subnetworks/default",
    "--no_use_public_ips", "--disk_size_gb=50", "--autoscaling_algorithm=THROUGHPUT_BASED",
]


@pytest.mark.parametrize("argv,name,closest", [
    (["--windw_size", "4"], "windw_size", "window_size"),
    (["--windw_size=4"], "windw_size", "window_size"),
    (["--window-size=4"], "window-size", "window_size"),
    (["--seeds=1"], "seeds", "seed"),
    (["--input_tabel=p:d.t"], "input_tabel", "input_table"),
    (["--modl=ridge", "--runner=DirectRunner"], "modl", "model"),
])
def test_a_misspelled_parameter_is_refused_naming_the_closest(argv, name, closest):
    with pytest.raises(UnknownArgument) as refused:
        pipeline_run.parse_args(argv)
    assert refused.value.name == name and refused.value.closest == closest
    assert str(refused.value) == f"--{name} is not a parameter of this pipeline; did you mean --{closest}?"


def test_the_refusal_comes_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    assert pipeline_run.main([f"--output={out}", "--windw_size", "4"]) == 2
    assert "did you mean --window_size?" in capsys.readouterr().err
    assert not out.exists()


def test_launcher_and_beam_options_pass_silently(caplog):
    caplog.set_level(logging.WARNING)
    params, beam_args = pipeline_run.parse_args(["--window_size=4", "--output=gs://b/o", *LAUNCHER_ARGS,
                                                 "--direct_num_workers", "2", "--project", "my-project"])
    assert params.window_size == 4 and "--runner=DataflowRunner" in beam_args
    assert not [r for r in caplog.records if r.name == "pipeline"], caplog.text
    # Every option the launcher may pass is one of Beam's (so Beam reads it) and is never refused.
    flags = runner.beam_flags()
    assert parse.LAUNCHER_OPTIONS <= flags
    assert parse.check_unknown_args([f"--{name}=x" for name in parse.LAUNCHER_OPTIONS], flags) == []


def test_other_unknown_arguments_are_warned_about(caplog):
    caplog.set_level(logging.WARNING)
    pipeline_run.parse_args(["--frobnicate=1", "--temp_locaton=gs://b/t", "stray"])
    warned = [r.getMessage() for r in caplog.records if r.name == "pipeline"]
    assert any("--frobnicate" in w and "Beam ignores it" in w for w in warned)
    # Closer to Beam's --temp_location than to our --bq_temp_location: a warning naming Beam's.
    assert any("--temp_locaton" in w and "did you mean --temp_location?" in w for w in warned)
    assert any("'stray'" in w for w in warned)


def test_help_is_grouped_with_defaults():
    shown = subprocess.run([sys.executable, "-m", "pipeline", "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0
    text = shown.stdout
    positions = [text.index(f"\n{group}:\n") for group in declare.GROUPS]
    assert positions == sorted(positions)
    for param in PARAMS:
        assert f"--{param.name}" in text
    flat = " ".join(text.split())
    assert "(default: 3)" in flat and "(default: gbr)" in flat and "--source auto|duckdb|file|bigquery" in flat


@pytest.mark.parametrize("extra", [[], ["--param_grid={\"alpha\": [0.1, 1]}", "--model=ridge"],
                                   ["--model=ridge,gbr", "--forecast", "--interval_levels=80"]])
def test_building_the_whole_graph_logs_no_beam_warning(caplog, extra):
    params, _ = pipeline_run.parse_args(["--run_id=r", *extra])
    caplog.set_level(logging.WARNING)
    pipeline_run.build(beam.Pipeline(), params, "duckdb")  # built, not run
    assert "requested in with_outputs()" not in caplog.text


def test_help_lists_every_model_with_one_line():
    text = parse.build_parser().format_help()
    listed = text[text.index("\nmodels (--model=NAME"):].splitlines()
    for name, description in declare.MODEL_DESCRIPTIONS:
        assert any(line.split() == [name, *description.split()] for line in listed), (name, listed)


@pytest.mark.parametrize("value, suggested", [("Ridge", "ridge"), ("Ridge,GBR", "ridge,gbr"), ("xgbost", "xgboost")])
def test_a_misspelled_model_suggests_the_registry_name(value, suggested):
    with pytest.raises(declare.ParameterError) as refused:
        pipeline_run.parse_args([f"--model={value}"])
    assert refused.value.name == "model" and str(refused.value).endswith(f"(did you mean {suggested}?)")


def test_an_unknown_table_in_a_local_query_names_the_visible_tables(tmp_path):
    with pytest.raises(declare.ParameterError) as refused:
        pipeline_run.prepare([f"--output={tmp_path / 'out'}", "--query=SELECT * FROM nope"])
    message = str(refused.value)
    assert refused.value.name == "query" and "dataset.table" in message and "input_files" in message
    assert "pg_enum" not in message and not (tmp_path / "out").exists()
