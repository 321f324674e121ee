"""metadata.json: generated from catalog.PARAMS, valid against Dataflow's published schema, and
its regexes reject exactly what the pipeline rejects value by value."""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.params import metadata
from pipeline.models import registry
from pipeline.params import declare, parse
from pipeline.params.catalog import PARAMS
from pipeline.params.declare import Param, ParameterError
from tests.helpers.google_schemas import schema, validate
from tests.helpers import ROOT

METADATA_FILE = os.path.join(ROOT, "metadata.json")
CONSOLE_GROUPS = set(declare.GROUPS)

# Values a user might type into the Console form or a --parameters list, good and bad.
PROBES = ("", " ", "0", "1", "2", "3", "-1", "1.5", "1e3", "007", "ten", "true", "x", "a b", "1st", "shop id",
          "attr1,", ",attr1", "attr1,,attr2", "attr1, attr2", "a;DROP TABLE t", "{", "{}", "[]", '{"a": 1}',
          '{\n  "max_depth": 3\n}\n', "SELECT 1", "SELECT a,\n b FROM t", "\n", "gs://bucket/x.parquet",
          "gs://bucket/x.txt", "gs://b/dir/*.csv", "x.parquet\n", "run-1", "-run", "r" * 64, "r" * 63,
          "gbr", "GBR", "xgboost ", "parquet", "csv", "replace", "fail", "auto", "bigquery")


@pytest.fixture(scope="module")
def document() -> dict:
    with open(METADATA_FILE) as handle:
        return json.load(handle)


def test_metadata_json_is_generated_from_the_code():
    with open(METADATA_FILE) as handle:
        on_disk = handle.read()
    assert on_disk == metadata.render(), "metadata.json drifted from pipeline/params/catalog.py: run `make metadata`"


def test_metadata_conforms_to_dataflow_template_metadata_schema(document):
    assert validate(document, "TemplateMetadata") == []


def test_schema_check_rejects_what_dataflow_would(document):
    broken = json.loads(json.dumps(document))
    first = broken["parameters"][0]
    first["paramType"], first["placeholder"] = "STRING", "x"
    del first["helpText"]
    broken["parameters"][1]["enumOptions"] = [{"label": "no value"}]
    errors = validate(broken, "TemplateMetadata")
    assert any("paramType" in e and "'STRING'" in e for e in errors)
    assert any("placeholder: unknown field" in e for e in errors)
    assert any("helpText: required field" in e for e in errors)
    assert any("enumOptions[0].value: required field" in e for e in errors)


def test_every_parameter_is_described(document):
    by_name = {entry["name"]: entry for entry in document["parameters"]}
    assert sorted(by_name) == sorted(p.name for p in PARAMS)
    param_types = schema("dataflow", "ParameterMetadata")["properties"]["paramType"]["enum"]
    for param in PARAMS:
        entry = by_name[param.name]
        assert entry["label"] and entry["helpText"], param.name
        assert entry["isOptional"] is param.is_optional
        assert entry["paramType"] == param.param_type and param.param_type in param_types
        assert entry["groupName"] in CONSOLE_GROUPS, param.name
        if param.param_type == "NUMBER":
            assert param.type in (int, float), param.name
        if param.param_type.startswith("GCS_") and param.example:
            assert param.example.startswith("gs://"), param.name
    assert {entry["groupName"] for entry in document["parameters"]} == CONSOLE_GROUPS


def test_enum_parameters_list_their_options(document):
    by_name = {entry["name"]: entry for entry in document["parameters"]}
    enums = [p for p in PARAMS if p.choices and p.name != "model"]
    assert {p.name for p in enums} >= {"source", "output_format", "if_output_exists"}
    for param in enums:
        assert by_name[param.name]["paramType"] == "ENUM"
        assert [o["value"] for o in by_name[param.name]["enumOptions"]] == list(param.choices)
    assert declare.MODEL_NAMES == tuple(registry.REGISTRY)


def test_several_models_can_be_chosen_from_the_form(document):
    """The Console's ENUM takes one value: the model is a text field whose regex takes one name or a
    comma-separated list, and whose help names every model with its description."""
    entry = next(e for e in document["parameters"] if e["name"] == "model")
    assert entry["paramType"] == "TEXT" and "enumOptions" not in entry and entry["defaultValue"] == "gbr"
    for value in ("ridge", "ridge,gbr", "gbr,xgboost,hist_gbr", "my_pkg.models:build"):
        assert _regex_accepts(entry, value), value
    for value in ("ridge, gbr", "Ridge", "ridge,", "prophet"):
        assert not _regex_accepts(entry, value), value
    for name, description in declare.MODEL_DESCRIPTIONS:
        assert f"{name} ({description.split(' (')[0]})" in entry["helpText"]


def test_the_form_is_ordered_by_group(document):
    groups = [entry["groupName"] for entry in document["parameters"]]
    assert groups == sorted(groups, key=declare.GROUPS.index)
    order = [entry["name"] for entry in document["parameters"]]
    for group in declare.GROUPS:  # within a group, the declared order
        declared = [p.name for p in PARAMS if p.group == group]
        assert [name for name in order if name in declared] == declared


def test_the_samples_column_names_are_not_the_forms_defaults(document):
    by_name = {entry["name"]: entry for entry in document["parameters"]}
    for name in ("key_column", "date_column", "target", "features"):
        assert by_name[name]["isOptional"] is False and "defaultValue" not in by_name[name], name
    assert "defaultValue" not in by_name["time_column"]  # not needed with the period from the date
    local = parse.parse_args([])[0]  # a local run keeps the sample's names (make run)
    assert (local.key_column, local.date_column, local.target, local.time_column, local.features) == (
        "shop_id", "date", "sales", "year", ("attr1", "attr2", "attr3"))
    assert parse.parse_args(["--features=none"])[0].features == ()  # "no features", said from the form
    assert "none" in by_name["features"]["helpText"] and _regex_accepts(by_name["features"], "none")


def _regex_accepts(entry: dict, value: str) -> bool:
    # Java's String.matches / a JavaScript ^...$ test: the whole value, '.' not matching newlines.
    return all(re.fullmatch(regex, value) for regex in entry.get("regexes", []))


def _parser_accepts(param: Param, value: str) -> bool:
    """What the parser accepts (a local run)."""
    try:
        parse._convert(param, value)
    except ParameterError as error:
        assert error.name == param.name
        return False
    return True


def _pipeline_accepts(param: Param, value: str) -> bool:
    """What a Dataflow launch accepts: the parser, then the Dataflow-only rule (pipeline.run.prepare)."""
    return _parser_accepts(param, value) and (
        param.dataflow_regex is None or re.fullmatch(param.dataflow_regex, value) is not None)


def _documented_values(param: Param) -> list[str]:
    values = [v for v in (metadata.default_text(param), param.example) if v is not None]
    return values + list(param.choices)


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: p.name)
def test_regexes_accept_documented_values_and_reject_what_the_pipeline_rejects(param, document):
    entry = next(e for e in document["parameters"] if e["name"] == param.name)
    for value in _documented_values(param):
        assert _regex_accepts(entry, value), (param.name, value)
        assert _pipeline_accepts(param, value), (param.name, value)
    for value in PROBES + tuple(_documented_values(param)):
        assert _regex_accepts(entry, value) == _pipeline_accepts(param, value), (param.name, repr(value))
    if entry.get("regexes"):
        assert any(not _regex_accepts(entry, value) for value in PROBES), f"{param.name}: regex rejects nothing"


@pytest.mark.parametrize("name,value", [
    ("window_size", "1"), ("window_period", "0"), ("test_periods", "-1"), ("seed", "1.5"),
    ("model", "GBR"), ("features", "attr1,"), ("key_column", "shop id"), ("model_params", "[1]"),
    ("output_format", "json"), ("run_id", "-x"), ("input", "gs://bucket/data.txt"), ("query", "  "),
])
def test_representative_bad_values_fail_at_launch_naming_the_parameter(name, value, document):
    entry = next(e for e in document["parameters"] if e["name"] == name)
    assert not _regex_accepts(entry, value)
    with pytest.raises(ParameterError) as failure:
        parse.parse_args([f"--{name}={value}"])
    assert failure.value.name == name and f"--{name}=" in str(failure.value)


@pytest.mark.parametrize("param", [p for p in PARAMS if p.regex], ids=lambda p: p.name)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_value_the_regex_allows_converts(param, data):
    value = data.draw(st.from_regex(param.regex, fullmatch=True).filter(lambda v: re.fullmatch(param.regex, v)))
    assert _parser_accepts(param, value), repr(value)


def test_generator_covers_every_parameter_type_generically():
    """New Params (other features add some) appear with the right shape without touching the generator."""
    extra = (
        Param("output_table", "Output table", "BigQuery table for predictions.", declare.GROUP_OUTPUTS,
              param_type="BIGQUERY_TABLE", regex=r"^([a-z0-9-]+[:.])?[A-Za-z0-9_]+\.[A-Za-z0-9_$-]+$",
              example="my-project:dataset.predictions"),
        Param("dry_check", "Check only", "Validate and stop.", declare.GROUP_SOURCE, type=declare.parse_bool,
              default=False, param_type="BOOLEAN", regex=declare.BOOL_RE),
        Param("shard", "Shard", "Which shard.", declare.GROUP_SOURCE, default="a", choices=("a", "b"),
              param_type="ENUM", choice_help=(("a", "first"),)),
    )
    generated = metadata.template_metadata(PARAMS + extra)
    assert validate(generated, "TemplateMetadata") == []
    by_name = {entry["name"]: entry for entry in generated["parameters"]}
    table, flag, shard = by_name["output_table"], by_name["dry_check"], by_name["shard"]
    assert table["paramType"] == "BIGQUERY_TABLE" and "Example: my-project:dataset.predictions" in table["helpText"]
    assert flag["paramType"] == "BOOLEAN" and flag["defaultValue"] == "false"
    assert shard["enumOptions"] == [{"value": "a", "label": "a", "description": "first"}, {"value": "b", "label": "b"}]
    assert shard["regexes"] == ["^(a|b)$"]
    for value in PROBES + ("True", "FALSE", "yes", "No"):
        assert _regex_accepts(flag, value) == _pipeline_accepts(extra[1], value), repr(value)


@pytest.mark.parametrize("regex", [r"^(?P<n>[0-9]+)$", r"[0-9]+", r"^(?i)true$", r"\A[0-9]+\Z"])
def test_generator_refuses_regexes_dataflow_reads_differently(regex):
    with pytest.raises(ValueError, match="regex of --n"):
        metadata.regexes_for(Param("n", "N", "n.", declare.GROUP_WINDOWS, regex=regex))


def test_readme_parameter_table_is_generated_from_the_code():
    from pipeline.params import docs

    with open(os.path.join(ROOT, "README.md")) as handle:
        readme = handle.read()
    assert docs.block() in readme, "README's parameter table drifted from pipeline/params/catalog.py: run `make docs`"
    assert docs.rewrite(readme) == readme
    assert all(f"| `{param.name}` |" in docs.table() for param in PARAMS)


def test_console_form_uses_typed_pickers(document):
    by_name = {entry["name"]: entry for entry in document["parameters"]}
    types = {name: entry["paramType"] for name, entry in by_name.items()}
    assert {types[n] for n in ("output", "model_dir", "bq_temp_location")} == {"GCS_WRITE_FOLDER"}
    assert types["input"] == "GCS_READ_FILE"
    assert {types[n] for n in ("input_table", "output_table", "metrics_table", "ledger_table",
                               "rejected_table")} == {"BIGQUERY_TABLE"}
    assert {p.name for p in PARAMS if p.param_type == "ENUM"} == {p.name for p in PARAMS if p.choices} - {"model"}
    assert {p.name for p in PARAMS if p.type is declare.parse_bool} == {
        p.name for p in PARAMS if p.param_type == "BOOLEAN"} == {"plan_only", "check_leakage", "forecast", "quiet",
                                                                   "period_gaps_ok", "json"}
    for param in PARAMS:  # a text field for a number or a yes/no would be a missed picker
        if param.type in (int, float):
            assert types[param.name] == "NUMBER", param.name


@pytest.mark.parametrize("name,local", [("output", "output/run1"), ("model_dir", "/tmp/models"),
                                        ("bq_temp_location", "tmp/bq")])
def test_template_refuses_local_paths_where_dataflow_needs_cloud_storage(name, local, document):
    entry = next(e for e in document["parameters"] if e["name"] == name)
    assert not _regex_accepts(entry, local) and not _regex_accepts(entry, "gs://B/x")
    assert _regex_accepts(entry, "gs://my-bucket/a/b")
    parse.parse_args([f"--{name}={local}"])  # locally, a local path is fine


def test_conditional_parameters_are_sound(document):
    by_name = {entry["name"]: entry for entry in document["parameters"]}
    order = list(by_name)
    for name, entry in by_name.items():
        if "parentName" not in entry:
            assert "parentTriggerValues" not in entry, name
            continue
        parent = by_name[entry["parentName"]]  # exists
        assert order.index(parent["name"]) < order.index(name), name
        values = [o["value"] for o in parent.get("enumOptions", [])]
        if parent["paramType"] == "BOOLEAN":
            values = ["true", "false"]
        for trigger in entry.get("parentTriggerValues", []):
            assert trigger in values, (name, trigger)
    expected = {"input": ("source", ["file"]), "n_configs": ("search", ["random"]),
                "search": ("param_grid", None), "holiday_calendar": ("calendar_features", None),
                "write_disposition": ("output_table", None), "bq_write_method": ("output_table", None),
                "if_run_exists": ("output_table", None), "metrics_table": ("output_table", None)}
    for name, (parent, triggers) in expected.items():
        assert by_name[name]["parentName"] == parent
        assert by_name[name].get("parentTriggerValues") == triggers, name
    hidden = {name for name, entry in by_name.items() if entry.get("hiddenUi")}
    assert {"search_batch_size", "model_threads", "min_period", "max_period", "fan_out"} <= hidden
    first_screen = {"query", "input_table", "key_column", "target", "features", "window_size", "model", "output"}
    for name in first_screen:
        assert "parentName" not in by_name[name] and not by_name[name].get("hiddenUi"), name


@pytest.mark.parametrize("change,message", [
    ({"parent": "nope"}, "not a parameter declared before it"),
    ({"parent": "source", "parent_values": ("files",)}, "not values of 'source'"),
    ({"parent": "query", "parent_values": ("x",)}, "free-text parameter"),
    ({"parent_values": ("x",)}, "without a parent"),
])
def test_generator_refuses_an_unsound_condition(change, message):
    import dataclasses

    extra = dataclasses.replace(PARAMS[-1], name="extra", **{"parent": None, "parent_values": (), **change})
    with pytest.raises(ValueError, match=message):
        metadata.template_metadata(PARAMS + (extra,))


def test_help_texts_are_written_for_the_console(document):
    for entry in document["parameters"]:
        text = entry["helpText"]
        assert not re.search(r"--[a-z]", text), (entry["name"], "command-line flag syntax in the form")
        assert "article" not in text.lower(), entry["name"]
    by_name = {entry["name"]: entry for entry in document["parameters"]}
    assert "delete" not in by_name["if_output_exists"]["helpText"].split("fail:")[0].replace(
        "a failed run deletes nothing", "")
    assert "defaultValue" not in by_name["query"], "the form must not send the embedded sample's query"
