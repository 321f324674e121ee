"""The pipeline's parameters, declared once.

Every user-facing parameter is a `Param` in `PARAMS`. The command-line parser,
the validation that runs before any work, the README's parameter table and the
Flex Template's `metadata.json` are all derived from this list.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from typing import Any, Callable, Mapping, Sequence

MODEL_NAMES = ("gbr", "hist_gbr", "random_forest", "ridge", "xgboost")
OUTPUT_FORMATS = ("parquet", "csv")
SOURCES = ("auto", "duckdb", "file", "bigquery")
IF_OUTPUT_EXISTS = ("replace", "fail")

COLUMN_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
COLUMN_LIST_RE = r"^[A-Za-z_][A-Za-z0-9_]*(,[A-Za-z_][A-Za-z0-9_]*)*$"
POSITIVE_INT_RE = r"^[1-9][0-9]*$"
NON_NEGATIVE_INT_RE = r"^[0-9]+$"
WINDOW_SIZE_RE = r"^([2-9]|[1-9][0-9]+)$"  # at least one training and one test period
RUN_ID_RE = r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})?$"  # empty: generated
NON_BLANK_RE = r"^\s*\S[\s\S]*$"
JSON_OBJECT_RE = r"^\s*\{[\s\S]*\}\s*$"
BOOL_RE = r"^([Tt]rue|TRUE|[Ff]alse|FALSE|1|0|[Yy]es|YES|[Nn]o|NO)$"  # for BOOLEAN params (type=_bool)
# Regexes are also Dataflow template regexes (metadata.json), checked by the service and the
# Console: keep them portable (no Python-only syntax) and write "any character" as [\s\S].


class ParameterError(ValueError):
    """A parameter value the pipeline cannot use. Raised before any work starts."""

    def __init__(self, name: str, value: Any, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"--{name}={value!r} is not valid: {allowed}")


@dataclasses.dataclass(frozen=True)
class Param:
    """One user-facing parameter: its parsing, its default and its template form."""

    name: str
    label: str
    help: str
    group: str
    type: Callable[[str], Any] = str
    default: Any = None
    choices: tuple[str, ...] = ()
    param_type: str = "TEXT"  # Dataflow ParameterMetadata.paramType
    regex: str | None = None  # portable (Java/JavaScript/Python) and anchored; checked locally too
    example: str | None = None
    # Description of each choice, for the template's ENUM options; a function so that the
    # model registry is imported only when the metadata is generated.
    choice_help: Callable[[], Mapping[str, str]] | None = None
    # The local default is no use on Dataflow (e.g. a local output directory): the template
    # requires a value and does not pre-fill the default.
    required_on_dataflow: bool = False

    @property
    def is_optional(self) -> bool:
        """Optional in the template: a usable default or an alternative exists."""
        return not self.required_on_dataflow


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


GROUP_SOURCE, GROUP_WINDOWS, GROUP_MODEL, GROUP_OUTPUTS = "Source", "Windows", "Model", "Outputs"


def _model_descriptions() -> dict[str, str]:
    from pipeline import models

    return {name: spec.description for name, spec in models.REGISTRY.items()}


PARAMS: tuple[Param, ...] = (
    # -- source ---------------------------------------------------------------
    Param("query", "SQL query",
          "SQL returning one row per key and date. Locally it runs in DuckDB over the embedded sample, "
          "registered as dataset.table, so the article's query runs unchanged.",
          GROUP_SOURCE, regex=NON_BLANK_RE,
          default="SELECT year, date, shop_id, sales, attr1, attr2, attr3 FROM dataset.table",
          example="SELECT year, date, shop_id, sales, attr1, attr2, attr3 FROM dataset.table"),
    Param("input", "Input files",
          "Parquet, CSV or JSONL file path or glob (local or gs://). Replaces --query when given.",
          GROUP_SOURCE, param_type="GCS_READ_FILE", regex=r"^[^\r\n]+\.(parquet|csv|jsonl|json)$",
          example="gs://my-bucket/sales/*.parquet"),
    Param("source", "Source",
          "Where --query runs: auto (BigQuery on Dataflow, DuckDB locally), duckdb, file (with --input) or bigquery.",
          GROUP_SOURCE, default="auto", choices=SOURCES, param_type="ENUM"),
    Param("time_column", "Period column",
          "Integer period index of each row (the article's year); it becomes the row's event time.",
          GROUP_SOURCE, default="year", regex=COLUMN_RE),
    Param("date_column", "Date column", "Date of each row; predictions are reported per key and date.",
          GROUP_SOURCE, default="date", regex=COLUMN_RE),
    Param("key_column", "Key column", "One model is trained per value of this column and window.",
          GROUP_SOURCE, default="shop_id", regex=COLUMN_RE),
    Param("target", "Target column", "Numeric column to predict.", GROUP_SOURCE, default="sales",
          regex=COLUMN_RE),
    Param("features", "Feature columns",
          "Comma-separated feature columns. Non-numeric values become missing, and missing values become 0.0 "
          "(the article's rule); both are counted.",
          GROUP_SOURCE, default="attr1,attr2,attr3", regex=COLUMN_LIST_RE),
    # -- windows --------------------------------------------------------------
    Param("window_size", "Window size", "Periods per sliding window (train + test), at least 2.",
          GROUP_WINDOWS, type=int, default=3, param_type="NUMBER", regex=WINDOW_SIZE_RE),
    Param("window_period", "Window period", "Periods between the starts of consecutive windows.",
          GROUP_WINDOWS, type=int, default=1, param_type="NUMBER", regex=POSITIVE_INT_RE),
    Param("test_periods", "Test periods",
          "The last N periods of each window are predicted; the earlier ones train the model.",
          GROUP_WINDOWS, type=int, default=1, param_type="NUMBER", regex=POSITIVE_INT_RE),
    Param("min_train_rows", "Minimum training rows",
          "A key x window with fewer training rows is skipped (reason too_few_rows).",
          GROUP_WINDOWS, type=int, default=2, param_type="NUMBER", regex=POSITIVE_INT_RE),
    # -- model ----------------------------------------------------------------
    Param("model", "Model", "Estimator trained per key x window.", GROUP_MODEL, default="gbr",
          choices=MODEL_NAMES, param_type="ENUM", choice_help=_model_descriptions),
    Param("model_params", "Model hyperparameters",
          'JSON object of estimator parameters, e.g. {"n_estimators": 200, "max_depth": 3}.',
          GROUP_MODEL, default="{}", regex=JSON_OBJECT_RE, example='{"n_estimators": 50}'),
    Param("seed", "Random seed",
          "Run seed; each model's seed derives from (seed, key, window), so results do not depend on "
          "worker count or order.", GROUP_MODEL, type=int, default=0, param_type="NUMBER",
          regex=NON_NEGATIVE_INT_RE),
    Param("model_threads", "Threads per model",
          "Threads each fit may use. 1 avoids oversubscription when every core runs its own fits.",
          GROUP_MODEL, type=int, default=1, param_type="NUMBER", regex=POSITIVE_INT_RE),
    # -- outputs --------------------------------------------------------------
    Param("output", "Output location",
          "Local directory or gs:// prefix; predictions/, metrics/, ledger/, rejected_rows/ and summary.json "
          "are written under it.", GROUP_OUTPUTS, default="output", param_type="GCS_WRITE_FOLDER",
          regex=r"^[^\s]+$", example="gs://my-bucket/many-models/run1", required_on_dataflow=True),
    Param("output_format", "Output format", "File format of the outputs.", GROUP_OUTPUTS,
          default="parquet", choices=OUTPUT_FORMATS, param_type="ENUM"),
    Param("if_output_exists", "If outputs exist",
          "replace: delete a previous run's outputs at --output first; fail: refuse to run.",
          GROUP_OUTPUTS, default="replace", choices=IF_OUTPUT_EXISTS, param_type="ENUM"),
    Param("run_id", "Run id", "Identifier written on every output row; generated when empty.",
          GROUP_OUTPUTS, default="", regex=RUN_ID_RE),
)

PARAMS_BY_NAME = {p.name: p for p in PARAMS}


@dataclasses.dataclass(frozen=True)
class PipelineParams:
    """Parsed, validated parameters (plain values; picklable to workers)."""

    query: str
    input: str | None
    source: str
    time_column: str
    date_column: str
    key_column: str
    target: str
    features: tuple[str, ...]
    window_size: int
    window_period: int
    test_periods: int
    min_train_rows: int
    model: str
    model_params: dict
    seed: int
    model_threads: int
    output: str
    output_format: str
    if_output_exists: str
    run_id: str

    @property
    def train_periods(self) -> int:
        return self.window_size - self.test_periods

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.key_column, self.time_column, self.date_column, self.target, *self.features)

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["features"] = list(self.features)
        return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", allow_abbrev=False,  # a Beam flag must never be read as a prefix of ours
        description="Train and evaluate one model per key and sliding time window.")
    for param in PARAMS:
        parser.add_argument(f"--{param.name}", type=str, default=None, help=param.help)
    return parser


def _convert(param: Param, raw: str | None) -> Any:
    if raw is None:
        return param.default
    if param.choices and raw not in param.choices:
        raise ParameterError(param.name, raw, f"one of {', '.join(param.choices)}")
    if param.regex and not re.fullmatch(param.regex, raw):
        raise ParameterError(param.name, raw, f"must match {param.regex}")
    try:
        return param.type(raw)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ParameterError(param.name, raw, str(exc)) from None


def _parse_model_params(raw: str) -> dict:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ParameterError("model_params", raw, f"a JSON object ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise ParameterError("model_params", raw, "a JSON object such as {\"max_depth\": 3}")
    return value


def parse_args(argv: Sequence[str] | None) -> tuple[PipelineParams, list[str]]:
    """Splits argv into our validated parameters and the remaining Beam/Dataflow flags.

    Unknown flags (--runner, --project, --temp_location, ...) pass through to Beam
    untouched, as the Flex Template launcher sends them.
    """
    known, beam_args = build_parser().parse_known_args(argv)
    raw = vars(known)
    values = {p.name: _convert(p, raw[p.name]) for p in PARAMS}
    values["features"] = tuple(f for f in values["features"].split(",") if f)
    values["model_params"] = _parse_model_params(values["model_params"])
    values["input"] = values["input"] or None
    params = PipelineParams(**values)
    validate_static(params)
    return params, beam_args


def validate_static(params: PipelineParams) -> None:
    """Checks that need no data: window arithmetic, column roles, model and hyperparameters."""
    if params.window_size < 2:
        raise ParameterError("window_size", params.window_size, "an integer >= 2 (at least one training "
                             "period and one test period)")
    if params.test_periods >= params.window_size:
        raise ParameterError("test_periods", params.test_periods,
                             f"an integer in 1..{params.window_size - 1} (smaller than --window_size)")
    if params.window_period > params.window_size:
        raise ParameterError("window_period", params.window_period,
                             f"at most --window_size={params.window_size}, or some periods are never tested")
    if not params.features:
        raise ParameterError("features", "", "at least one feature column")
    roles = [params.key_column, params.time_column, params.date_column, params.target]
    for name, column in zip(("key_column", "time_column", "date_column", "target"), roles):
        if column in params.features:
            raise ParameterError("features", ",".join(params.features), f"must not contain the {name} {column!r}")
    if len(set(roles)) != len(roles):
        raise ParameterError("key_column", params.key_column,
                             "key, time, date and target columns must be four different columns")
    if len(set(params.features)) != len(params.features):
        raise ParameterError("features", ",".join(params.features), "each feature once")
    if params.source == "file" and not params.input:
        raise ParameterError("source", params.source, "--source=file needs --input")
    from pipeline import models  # local import: keeps option parsing light for the template launcher

    models.check_model(params.model, params.model_params)
