"""The Flex Template launcher's call, reproduced offline.

The launcher runs `python main.py --<param>=<value> ... --runner=DataflowRunner --project=...`.
Here main.py runs with those arguments plus Beam's `--dry_run=True`: DataflowRunner translates the
real graph (Runner API proto, environments, windowing) and stops before any credential, staging or
API call. A launch request built with google-api-python-client is checked against Dataflow's
published LaunchFlexTemplateParameter schema and sent to a recording server on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import os
import runpy
import subprocess
import sys
import threading

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import common_urns
from apache_beam.internal import pickler
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner

from pipeline.run import parse_args
from pipeline import run as pipeline_run
from pipeline.params.catalog import PARAMS
from pipeline.params.declare import ParameterError
from pipeline.stages.prepare.windows import WindowPlan
from pipeline import runner
from tests.helpers.google_schemas import document, validate
from tests.helpers import ROOT

MAIN_PY = os.path.join(ROOT, "main.py")
TEMPLATE_IMAGE = "europe-west1-docker.pkg.dev/my-project/dataflow/many-models:0a1b2c3"

# What the launcher adds to every template parameter (python-docs-samples#4891 launcher logs), with
# a syntactically valid gs:// temp location so Beam's validation never looks for a default bucket.
LAUNCHER_FLAGS = [
    "--runner=DataflowRunner", "--project=my-project", "--region=europe-west1",
    "--job_name=many-models-20261127", "--temp_location=gs://my-bucket/tmp",
    "--staging_location=gs://my-bucket/staging",
    "--template_location=gs://my-bucket/staging/template_launches/2026-11-27_01/job_object",
    "--service_account_email=runner@my-project.iam.gserviceaccount.com", "--machine_type=n2-standard-4",
    "--max_num_workers=8",
]


def launch_main_py(monkeypatch, argv: list[str]):
    """Runs main.py as the launcher would, with --dry_run=True; returns DataflowRunner's result.

    The runner's own run_pipeline is wrapped (not replaced) to keep hold of its result, which
    main.py's `with beam.Pipeline()` does not return.
    """
    results = []
    translate = DataflowRunner.run_pipeline

    def keep_result(self, pipeline, options, pipeline_proto=None):
        results.append(translate(self, pipeline, options, pipeline_proto))
        return results[-1]

    monkeypatch.setattr(DataflowRunner, "run_pipeline", keep_result)
    monkeypatch.setattr(sys, "argv", [MAIN_PY, *argv, "--dry_run=True"])
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(MAIN_PY, run_name="__main__")
    assert exit_status.value.code == 0
    assert len(results) == 1
    return results[0]


def container_images(proto) -> set[str]:
    images = set()
    for environment in proto.components.environments.values():
        assert environment.urn == common_urns.environments.DOCKER.urn, environment.urn
        images.add(beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image)
    return images


def transforms_named(proto, suffix: str) -> list:
    return [t for t in proto.components.transforms.values() if t.unique_name.endswith(suffix)]


def assert_sliding_grouping(proto, size: int, period: int, test_periods: int) -> None:
    """One GroupByKey on the key, then the article's sliding windows cut per key by the
    translated graph's own DoFn, with the template's window parameters."""
    (group,) = transforms_named(proto, "ValidateAndGroupByKey/GroupByKey")
    assert group.spec.urn == common_urns.primitives.GROUP_BY_KEY.urn
    (cut,) = transforms_named(proto, "CutWindows/Cut/ParDo(_CutWindowsFn)")
    assert cut.spec.urn == common_urns.primitives.PAR_DO.urn
    do_fn = pickler.loads(beam_runner_api_pb2.ParDoPayload.FromString(cut.spec.payload).do_fn.payload)[0]
    assert do_fn._plan == WindowPlan(size=size, period=period, test_periods=test_periods)


def assert_io_steps(proto, source_kind: str) -> None:
    """The read and write steps of the translated graph, for the sources and sinks this branch has.

    Extend here when BigQuery lands (--source=bigquery, BigQuery outputs): assert a
    ReadFromBigQuery under ReadSource and WriteToBigQuery steps for the outputs.
    """
    names = [t.unique_name for t in proto.components.transforms.values()]
    reads = {"duckdb": "ReadSource/RunInDuckDB", "file": "ReadSource/ReadChunks"}
    assert any(name.endswith(reads[source_kind]) for name in names), source_kind
    for output in ("predictions", "metrics", "ledger", "rejected_rows"):
        assert any(name.startswith(f"WriteOutputs/Write_{output}/Write") for name in names), output
    assert transforms_named(proto, "WriteSummary/WriteJson")


def test_launcher_call_translates_with_the_template_image(monkeypatch, tmp_path):
    monkeypatch.setenv(runner.IMAGE_ENV, TEMPLATE_IMAGE)
    template_params = ["--source=duckdb", "--output=gs://my-bucket/runs/r1", "--model=xgboost",
                       "--window_size=4", "--window_period=2", "--test_periods=2"]
    result = launch_main_py(monkeypatch, template_params + LAUNCHER_FLAGS)

    proto = result.job.proto_pipeline
    assert container_images(proto) == {TEMPLATE_IMAGE}
    assert_sliding_grouping(proto, size=4, period=2, test_periods=2)
    assert_io_steps(proto, "duckdb")
    final = result.job.options.get_all_options()
    assert final["sdk_container_image"] == TEMPLATE_IMAGE
    assert final["max_num_workers"] == 8 and final["machine_type"] == "n2-standard-4"  # passed through to Beam


def test_explicit_sdk_container_image_wins(monkeypatch, tmp_path, write_parquet):
    from tests.helpers.pipeline_runs import make_rows

    monkeypatch.setenv(runner.IMAGE_ENV, TEMPLATE_IMAGE)
    other = "us-docker.pkg.dev/other-project/images/many-models:debug"
    data = write_parquet(make_rows({"A": [2001, 2002, 2003]}, days=3))
    result = launch_main_py(monkeypatch, [f"--input={data}", "--output=gs://my-bucket/runs/r2",
                                          f"--sdk_container_image={other}", *LAUNCHER_FLAGS])
    proto = result.job.proto_pipeline
    assert container_images(proto) == {other}
    assert_sliding_grouping(proto, size=3, period=1, test_periods=1)
    assert_io_steps(proto, "file")


def test_dataflow_run_without_any_image_fails_before_work(monkeypatch):
    monkeypatch.delenv(runner.IMAGE_ENV, raising=False)
    with pytest.raises(ParameterError) as failure:
        pipeline_run.prepare(["--source=duckdb", "--output=gs://my-bucket/runs/r3", *LAUNCHER_FLAGS])
    assert failure.value.name == "sdk_container_image"


def test_dataflow_run_with_a_local_output_fails_before_work(monkeypatch, tmp_path):
    monkeypatch.setenv(runner.IMAGE_ENV, TEMPLATE_IMAGE)
    (tmp_path / "summary.json").write_text("{}")  # a previous local run: must stay untouched
    with pytest.raises(ParameterError) as failure:
        pipeline_run.prepare(["--source=duckdb", f"--output={tmp_path}", *LAUNCHER_FLAGS])
    assert failure.value.name == "output" and "gs://" in str(failure.value)
    assert os.listdir(tmp_path) == ["summary.json"]


@pytest.mark.parametrize("name,value", [("model_dir", "models"), ("model_dir", "/tmp/models"),
                                        ("bq_temp_location", "tmp/bq"), ("output", "gs://B/upper")])
def test_dataflow_run_with_a_local_path_fails_before_work(monkeypatch, name, value):
    monkeypatch.setenv(runner.IMAGE_ENV, TEMPLATE_IMAGE)
    argv = ["--source=duckdb", "--output=gs://my-bucket/runs/r3", f"--{name}={value}"]
    with pytest.raises(ParameterError) as failure:
        pipeline_run.prepare(argv + LAUNCHER_FLAGS)
    assert failure.value.name == name and "gs://" in str(failure.value)
    parse_args(argv)  # a local run takes a local path


@pytest.mark.parametrize("extra", [[], ["--source=bigquery"], ["--query=SELECT year, date, shop_id, sales, attr1, "
                                                                 "attr2, attr3 FROM dataset.table "]])
def test_dataflow_refuses_the_embedded_samples_query(monkeypatch, extra):
    """The form does not pre-fill the query; a launch without one must not send the sample's to BigQuery."""
    monkeypatch.setenv(runner.IMAGE_ENV, TEMPLATE_IMAGE)
    with pytest.raises(ParameterError) as failure:
        pipeline_run.prepare(["--output=gs://my-bucket/runs/r4", *extra, *LAUNCHER_FLAGS])
    assert failure.value.name == "query"
    assert "input_table" in str(failure.value) and "your own BigQuery SQL query" in str(failure.value)


def test_bad_template_parameter_fails_at_launch_naming_it(tmp_path):
    launched = subprocess.run(
        [sys.executable, MAIN_PY, "--window_size=1", "--model=xgboost", f"--output={tmp_path}", *LAUNCHER_FLAGS],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, runner.IMAGE_ENV: TEMPLATE_IMAGE})
    assert launched.returncode == 2
    assert "--window_size='1' is not valid" in launched.stderr
    assert not os.listdir(tmp_path)


def test_no_parameter_name_is_also_a_beam_option():
    """A template parameter that Beam also defines would be taken by one and hidden from the other."""
    import apache_beam.runners.dataflow.dataflow_runner  # noqa: F401  (registers Dataflow's options)

    beam_options = set(PipelineOptions([]).get_all_options())
    assert {"runner", "project", "sdk_container_image", "temp_location"} <= beam_options
    assert beam_options.isdisjoint(p.name for p in PARAMS)


# -- flexTemplates.launch, built with Google's client ---------------------------------------------

class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append((self.path, json.loads(body)))
        reply = json.dumps({"job": {"id": "2026-11-27_00_00_00-1", "projectId": "my-project"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def recording_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), _RecordingHandler)
    _RecordingHandler.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", _RecordingHandler.requests
    server.shutdown()
    server.server_close()


def test_launch_request_matches_dataflow_schema_and_parses_as_launcher_args(recording_server, tmp_path):
    import httplib2
    from googleapiclient.discovery import build_from_document

    endpoint, recorded = recording_server
    query = "SELECT year, date, shop_id, sales, attr1, attr2, attr3 FROM `my-project.sales.daily` WHERE year > 2012"
    parameters = {"query": query, "model": "xgboost", "window_size": "4", "output": "gs://my-bucket/runs/r1",
                  "sdk_container_image": TEMPLATE_IMAGE}
    body = {"launchParameter": {
        "jobName": "many-models-r1",
        "containerSpecGcsPath": "gs://my-bucket/templates/many-models.json",
        "parameters": parameters,
        "environment": {"maxWorkers": 8, "machineType": "n2-highcpu-8", "tempLocation": "gs://my-bucket/tmp",
                        "additionalUserLabels": {"run": "r1"}},
    }}
    assert validate(body, "LaunchFlexTemplateRequest") == []

    dataflow = build_from_document(document("dataflow"), http=httplib2.Http(),
                                   client_options={"api_endpoint": endpoint})
    reply = dataflow.projects().locations().flexTemplates().launch(
        projectId="my-project", location="europe-west1", body=body).execute()
    assert reply["job"]["id"]
    ((path, sent),) = recorded
    assert path.split("?")[0] == "/v1b3/projects/my-project/locations/europe-west1/flexTemplates:launch"
    assert sent == body and validate(sent, "LaunchFlexTemplateRequest") == []

    # The launcher turns each parameter into --name=value: commas in the SQL survive, Beam's
    # options go to Beam, ours are validated.
    argv = [f"--{name}={value}" for name, value in sent["launchParameter"]["parameters"].items()]
    params, beam_args = parse_args(argv + LAUNCHER_FLAGS)
    assert params.query == query and params.model == "xgboost" and params.window_size == 4
    assert f"--sdk_container_image={TEMPLATE_IMAGE}" in beam_args and "--runner=DataflowRunner" in beam_args


def test_schema_check_rejects_a_malformed_launch_request():
    body = {"launchParameter": {"containerSpecGcsPath": "gs://b/t.json", "parameters": {"window_size": 4},
                                "environment": {"maxWorkers": "many", "sdkImage": "x"}}}
    errors = validate(body, "LaunchFlexTemplateRequest")
    assert any("jobName: required field" in e for e in errors)
    assert any("parameters.window_size: expected string" in e for e in errors)
    assert any("maxWorkers: expected integer" in e for e in errors)
    assert any("sdkImage: unknown field" in e for e in errors)


def test_the_fan_out_path_is_in_the_dataflow_graph(monkeypatch):
    """Both paths after the cut in the graph Dataflow receives: the fit fused after the cut, and a
    Reshuffle of the key x windows before a second fit; the decision is a side input of the cut,
    from the keys counted before the key shuffle up to 4 per slot (8 n2-standard-4 workers: 128)."""
    monkeypatch.setenv(runner.IMAGE_ENV, TEMPLATE_IMAGE)
    result = launch_main_py(monkeypatch, ["--source=duckdb", "--output=gs://my-bucket/runs/r3", *LAUNCHER_FLAGS])
    proto = result.job.proto_pipeline
    names = {t.unique_name: t for t in proto.components.transforms.values()}

    def produced(name: str) -> set[str]:
        return set(names[name].outputs.values())

    (spread,) = transforms_named(proto, "TrainAndPredict/Spread/Reshuffle")
    assert spread.spec.urn == common_urns.composites.RESHUFFLE.urn
    assert any(names[sub].spec.urn == common_urns.primitives.GROUP_BY_KEY.urn
               for sub in names if sub.startswith("TrainAndPredict/Spread/Reshuffle/"))
    (cut,) = transforms_named(proto, "CutWindows/Cut/ParDo(_CutWindowsFn)")
    cut_outputs = set(cut.outputs.values())
    straight_fit = names["TrainAndPredict/Straight/Fit/ParDo(TrainAndPredictFn)/ParDo(TrainAndPredictFn)"]
    assert set(straight_fit.inputs.values()) <= cut_outputs  # fused after the cut: no shuffle between
    assert set(names["TrainAndPredict/Spread/Pack"].inputs.values()) <= cut_outputs
    fanned_fit = names["TrainAndPredict/FannedOut/Fit/ParDo(TrainAndPredictFn)/ParDo(TrainAndPredictFn)"]
    assert set(fanned_fit.inputs.values()) <= produced("TrainAndPredict/Spread/Unpack")
    payload = beam_runner_api_pb2.ParDoPayload.FromString(cut.spec.payload)
    assert len(payload.side_inputs) == 2  # the period range and the fan-out decision
    decision_inputs = set(names["FanOutDecision"].inputs.values())
    assert decision_inputs <= produced("ValidateAndGroupByKey/CountKeys")
    (validate,) = [t for name, t in names.items()
                   if name.startswith("ValidateAndGroupByKey/Validate/") and name.endswith("ParDo(_ValidateChunk)")
                   and t.spec.urn == common_urns.primitives.PAR_DO.urn]
    do_fn = pickler.loads(beam_runner_api_pb2.ParDoPayload.FromString(validate.spec.payload).do_fn.payload)[0]
    assert do_fn._key_cap == 4 * 8 * 4
