"""The pipeline's parameters, declared once.

Every user-facing parameter is a `Param` in `PARAMS`. The command-line parser,
the validation that runs before any work, the README's parameter table and the
Flex Template's `metadata.json` are all derived from this list.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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
MODEL_RE = "^(" + "|".join(MODEL_NAMES) + r"|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)$"
JSON_GRID_RE = r"^(\s*[\[{][\s\S]*[\]}]\s*)?$"  # empty, a JSON object or a JSON list
BOOL_RE = r"^([Tt]rue|TRUE|[Ff]alse|FALSE|1|0|[Yy]es|YES|[Nn]o|NO)$"  # for BOOLEAN params (type=_bool)
# Regexes are also Dataflow template regexes (metadata.json), checked by the service and the
# Console: keep them portable (no Python-only syntax) and write "any character" as [\s\S].
INT_RE = r"^-?[0-9]+$"
NON_NEGATIVE_NUMBER_RE = r"^[0-9]+(\.[0-9]+)?$"
# What each regex allows, in words, for error messages.
REGEX_MEANING = {
    COLUMN_RE: "a column name (letters, digits and _, not starting with a digit)",
    COLUMN_LIST_RE: "comma-separated column names (letters, digits and _), no spaces",
    POSITIVE_INT_RE: "a positive integer (1, 2, ...)",
    NON_NEGATIVE_INT_RE: "a non-negative integer (0, 1, ...)",
    RUN_ID_RE: "empty, or 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit",
    WINDOW_SIZE_RE: "an integer >= 2 (at least one training and one test period)",
    NON_BLANK_RE: "not blank",
    JSON_OBJECT_RE: 'a JSON object such as {"n_estimators": 50}',
    BOOL_RE: "true or false",
    JSON_GRID_RE: 'empty, a JSON grid {"alpha": [0.1, 1]} or a JSON list of configurations',
    INT_RE: "an integer",
    NON_NEGATIVE_NUMBER_RE: "a non-negative number such as 0, 30 or 2.5",
}
# BigQuery table spec: [project:|project.]dataset.table (project ids: 6-30 chars, lowercase, digits, hyphens).
BQ_TABLE_RE = r"^([a-z][a-z0-9-]{4,28}[a-z0-9][:.])?[A-Za-z0-9_]{1,1024}[.][A-Za-z0-9_-]{1,1024}$"
BQ_TABLE_ALLOWED = "a BigQuery table: project:dataset.table, project.dataset.table or dataset.table"
BQ_READ_METHODS = ("DIRECT_READ", "EXPORT")
BQ_WRITE_METHODS = ("FILE_LOADS", "STREAMING_INSERTS")
WRITE_DISPOSITIONS = ("WRITE_APPEND", "WRITE_TRUNCATE", "WRITE_EMPTY")
IF_RUN_EXISTS = ("fail", "replace")


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
    # What a valid value looks like, in words, for error messages (a callable when it depends on the
    # environment, e.g. the model allow-list).
    allowed: str | Callable[[], str] | None = None
    # Description of each choice, for the template's ENUM options; a function so that the
    # model registry is imported only when the metadata is generated.
    choice_help: Callable[[], Mapping[str, str]] | None = None
    # The local default is no use on Dataflow (e.g. a local output directory): the template
    # requires a value and does not pre-fill the default.
    required_on_dataflow: bool = False
    # The choices are the template form's options, not the only values the pipeline accepts
    # (e.g. --model also takes an allow-listed module:callable, checked in validate_static).
    open_choices: bool = False

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
GROUP_BIGQUERY = "BigQuery"
GROUP_FEATURES, GROUP_SEARCH = "Features", "Search"
GROUPS = (GROUP_SOURCE, GROUP_WINDOWS, GROUP_MODEL, GROUP_FEATURES, GROUP_SEARCH, GROUP_OUTPUTS, GROUP_BIGQUERY)


def _int_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def _name_tuple(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


def _json_value(text: str):
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"JSON ({exc.msg} at char {exc.pos})") from None


def _model_allowed() -> str:
    modules = os.environ.get("PIPELINE_MODEL_MODULES", "") or "empty"
    return (f"one of {', '.join(MODEL_NAMES)}, or package.module:callable from a module in the "
            f"PIPELINE_MODEL_MODULES allow-list (now: {modules}); this is neither a registry name nor of that form")


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
    Param("model", "Model",
          f"Estimator trained per key x window: {', '.join(MODEL_NAMES)}, or package.module:callable (your "
          "own function or estimator class) from a module listed in the PIPELINE_MODEL_MODULES allow-list.",
          GROUP_MODEL, default="gbr", choices=MODEL_NAMES, param_type="ENUM", choice_help=_model_descriptions,
          open_choices=True, regex=MODEL_RE,
          allowed=lambda: _model_allowed()),
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
          "replace: a previous run's outputs at --output stay until this run's are all in place, then are "
          "removed; fail: refuse to run.",
          GROUP_OUTPUTS, default="replace", choices=IF_OUTPUT_EXISTS, param_type="ENUM"),
    Param("run_id", "Run id", "Identifier written on every output row; generated when empty.",
          GROUP_OUTPUTS, default="", regex=RUN_ID_RE),
    # -- reproducibility and evaluation: fold plan dry run, saved models --------
    Param("plan_only", "Plan only",
          "Dry run: write and print the fold plan (key x window x train/test periods x row counts, would "
          "train or would skip and why), the number of fits and a cost estimate timed on a few sample fits; "
          "write no predictions and save no models.", GROUP_OUTPUTS, type=_bool, default=False,
          param_type="BOOLEAN", regex=BOOL_RE),
    Param("model_dir", "Model directory",
          "Local directory or gs:// prefix; when set, each trained model is saved as "
          "<model_dir>/<run_id>/<key>/<window_start>/model.joblib (XGBoost: model.json) with meta.json.",
          GROUP_OUTPUTS, default="", param_type="GCS_WRITE_FOLDER", regex=r"^[^\s]*$",
          example="gs://my-bucket/many-models/models"),
    # -- robustness: plausible periods, per-group time limit, failure budget (issue 5) -------------
    Param("min_period", "First plausible period",
          "Rows whose period is below this are rejected (reason period_out_of_range).",
          GROUP_SOURCE, type=int, default=0, param_type="NUMBER", regex=INT_RE),
    Param("max_period", "Last plausible period",
          "Rows whose period is above this are rejected (reason period_out_of_range). The default admits "
          "period indices, years, yyyymm and yyyymmdd.",
          GROUP_SOURCE, type=int, default=99_999_999, param_type="NUMBER", regex=INT_RE),
    Param("group_timeout_s", "Time limit per key x window",
          "Seconds one key x window may spend fitting and predicting; beyond it the fit is stopped and the "
          "group is recorded as failed (reason timeout). 0 = no limit. With a limit, fits run in a helper "
          "process per worker thread.",
          GROUP_MODEL, type=float, default=0.0, param_type="NUMBER", regex=NON_NEGATIVE_NUMBER_RE),
    Param("max_failure_rate", "Maximum failure rate",
          "The job fails, after writing every output, when more than this fraction of the key x windows it "
          "tried to fit failed (failed / (trained + failed)). 1 = never.",
          GROUP_MODEL, type=float, default=0.05, param_type="NUMBER", regex=NON_NEGATIVE_NUMBER_RE),
    # -- BigQuery source and sinks (pipeline/bigquery.py) -----------------------
    Param("input_table", "BigQuery input table",
          "Reads this whole table from BigQuery instead of running --query (only the needed columns).",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.table"),
    Param("bq_read_method", "BigQuery read method",
          "DIRECT_READ: the Storage Read API, no export files. EXPORT: an export job to Avro files under "
          "--temp_location (or --bq_temp_location).",
          GROUP_BIGQUERY, default="DIRECT_READ", choices=BQ_READ_METHODS, param_type="ENUM"),
    Param("output_table", "Predictions table",
          "BigQuery table for the predictions, partitioned by the date column (DAY) and clustered by the key.",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.predictions"),
    Param("metrics_table", "Metrics table", "BigQuery table for the metrics per key x window.",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.metrics"),
    Param("ledger_table", "Ledger table", "BigQuery table for the ledger (trained/skipped/failed per key x window).",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.ledger"),
    Param("rejected_table", "Rejected rows table", "BigQuery table for the rejected input rows.",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.rejected_rows"),
    Param("write_disposition", "BigQuery write disposition",
          "WRITE_APPEND adds this run's rows (the article's choice); WRITE_TRUNCATE replaces the tables' "
          "contents; WRITE_EMPTY refuses non-empty tables. Tables are created if needed.",
          GROUP_BIGQUERY, default="WRITE_APPEND", choices=WRITE_DISPOSITIONS, param_type="ENUM"),
    Param("bq_write_method", "BigQuery write method",
          "FILE_LOADS: batch load jobs (free, atomic per table). STREAMING_INSERTS: insertAll, appends only.",
          GROUP_BIGQUERY, default="FILE_LOADS", choices=BQ_WRITE_METHODS, param_type="ENUM"),
    Param("if_run_exists", "If the run id has rows",
          "With WRITE_APPEND, when a target table already holds rows of this --run_id: fail (refuse to run) "
          "or replace (delete that run's rows first).",
          GROUP_BIGQUERY, default="fail", choices=IF_RUN_EXISTS, param_type="ENUM"),
    Param("bq_temp_location", "BigQuery temporary files",
          "gs:// prefix for FILE_LOADS and EXPORT files; --temp_location when empty.",
          GROUP_BIGQUERY, default="", regex=r"^[^\s]+$", allowed="a gs:// prefix without spaces",
          example="gs://my-bucket/tmp/bq"),
    # -- feature generation (in the same pass; leakage-safe) ---------------------
    Param("calendar_features", "Calendar features",
          "Comma-separated features generated from the date: day_of_week, day_of_year, month, holiday.",
          GROUP_FEATURES, type=_name_tuple, default="", regex=r"^([a-z_]+(,[a-z_]+)*)?$", example="day_of_week,holiday",
          allowed="comma-separated names among day_of_week, day_of_year, month, holiday"),
    Param("holiday_calendar", "Holiday calendar", "Bundled calendar of the holiday feature: fr or us.",
          GROUP_FEATURES, default="fr", choices=("fr", "us"), param_type="ENUM"),
    Param("lag_days", "Target lags (days)",
          "Comma-separated lags in days: feature lag_<k> is the key's target k days before the row's date. "
          "Test rows never see target values from the test period on (unknown values become 0.0).",
          GROUP_FEATURES, type=_int_tuple, default="", regex=r"^([1-9][0-9]*(,[1-9][0-9]*)*)?$", example="7,364",
          allowed="comma-separated positive integers (days)"),
    Param("rolling_mean_days", "Target rolling means (days)",
          "Comma-separated spans in days: feature rolling_mean_<w> is the key's mean target over the w days "
          "before the row's date, with the same rule for test rows.",
          GROUP_FEATURES, type=_int_tuple, default="", regex=r"^([1-9][0-9]*(,[1-9][0-9]*)*)?$", example="7,28",
          allowed="comma-separated positive integers (days)"),
    Param("check_leakage", "Check feature leakage",
          "Verify on every window that no generated feature of a test row uses a target value at or after "
          "the window's test start; the run fails if one does.",
          GROUP_FEATURES, type=_bool, default=False, param_type="BOOLEAN", regex=BOOL_RE),
    # -- hyperparameter search per key x window -----------------------------------
    Param("param_grid", "Hyperparameter grid",
          'JSON grid {"alpha": [0.1, 1, 10]} or list of configurations [{"alpha": 1}, ...]. When given, each '
          "key x window chooses its configuration on a validation split of its training periods.",
          GROUP_SEARCH, default="", regex=JSON_GRID_RE, example='{"max_depth": [2, 3], "n_estimators": [50, 100]}'),
    Param("search", "Search strategy", "grid: every configuration; random: --n_configs of them, drawn with --seed.",
          GROUP_SEARCH, default="grid", choices=("grid", "random"), param_type="ENUM"),
    Param("n_configs", "Random configurations", "How many configurations --search=random tries.",
          GROUP_SEARCH, type=int, default=10, param_type="NUMBER", regex=POSITIVE_INT_RE, allowed="a positive integer"),
    Param("validation_periods", "Validation periods",
          "The last N training periods of each window score the configurations (the test period never does).",
          GROUP_SEARCH, type=int, default=1, param_type="NUMBER", regex=POSITIVE_INT_RE, allowed="a positive integer"),
    Param("search_batch_size", "Configurations per work item",
          "Configurations scored together in one work element: amortises per-element overhead for small fits.",
          GROUP_SEARCH, type=int, default=16, param_type="NUMBER", regex=POSITIVE_INT_RE, allowed="a positive integer"),
)

PARAMS_BY_NAME = {p.name: p for p in PARAMS}
TABLE_PARAMS = tuple(p.name for p in PARAMS if p.param_type == "BIGQUERY_TABLE")


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
    plan_only: bool = False
    model_dir: str = ""
    # robustness (issue 5)
    min_period: int = 0
    max_period: int = 99_999_999
    group_timeout_s: float = 0.0
    max_failure_rate: float = 0.05
    input_table: str | None = None
    bq_read_method: str = "DIRECT_READ"
    output_table: str | None = None
    metrics_table: str | None = None
    ledger_table: str | None = None
    rejected_table: str | None = None
    write_disposition: str = "WRITE_APPEND"
    bq_write_method: str = "FILE_LOADS"
    if_run_exists: str = "fail"
    bq_temp_location: str | None = None
    # feature generation
    calendar_features: tuple[str, ...] = ()
    holiday_calendar: str = "fr"
    lag_days: tuple[int, ...] = ()
    rolling_mean_days: tuple[int, ...] = ()
    check_leakage: bool = False
    # hyperparameter search
    param_grid: Any = None
    search: str = "grid"
    n_configs: int = 10
    validation_periods: int = 1
    search_batch_size: int = 16

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
        flag = {"nargs": "?", "const": "true"} if param.type is _bool else {}  # a bare --plan_only means true
        parser.add_argument(f"--{param.name}", type=str, default=None, help=param.help, **flag)
    return parser


def _convert(param: Param, raw: str | None) -> Any:
    if raw is None:  # defaults are written as the template shows them; text defaults still convert
        return param.type(param.default) if isinstance(param.default, str) else param.default
    if param.choices and not param.open_choices and raw not in param.choices:
        raise ParameterError(param.name, raw, f"one of {', '.join(param.choices)}")
    if param.regex and not re.fullmatch(param.regex, raw):
        allowed = param.allowed() if callable(param.allowed) else param.allowed
        allowed = allowed or REGEX_MEANING.get(param.regex, f"must match {param.regex}")
        raise ParameterError(param.name, raw, allowed)
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
    try:  # JSON cannot be checked by a regex: parsed here, still before any work
        values["param_grid"] = _json_value(values["param_grid"])
    except ValueError as exc:
        raise ParameterError("param_grid", values["param_grid"], str(exc)) from None
    for name in ("input", *TABLE_PARAMS, "bq_temp_location"):
        values[name] = values[name] or None
    params = PipelineParams(**values)
    validate_static(params)
    return params, beam_args


def _validate_bigquery(params: PipelineParams) -> None:
    if params.input_table and params.input:
        raise ParameterError("input_table", params.input_table, "either --input_table or --input, not both")
    if params.input_table and params.source not in ("auto", "bigquery"):
        raise ParameterError("source", params.source, "auto or bigquery with --input_table")
    if params.bq_write_method == "STREAMING_INSERTS" and params.write_disposition != "WRITE_APPEND":
        raise ParameterError("write_disposition", params.write_disposition,
                             "WRITE_APPEND with --bq_write_method=STREAMING_INSERTS (streaming inserts only "
                             "append; use FILE_LOADS to truncate or to require empty tables)")
    tables = [getattr(params, name) for name in TABLE_PARAMS if name != "input_table"]
    named = [t for t in tables if t]
    if len(set(named)) != len(named):
        raise ParameterError("output_table", params.output_table, "a different table for each output")


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
    if params.min_period > params.max_period:
        raise ParameterError("max_period", params.max_period,
                             f"an integer >= --min_period={params.min_period}")
    if params.window_size > params.max_period - params.min_period + 1:
        raise ParameterError("window_size", params.window_size,
                             f"at most {params.max_period - params.min_period + 1}, the number of periods "
                             f"in --min_period..--max_period")
    if params.max_failure_rate > 1:
        raise ParameterError("max_failure_rate", params.max_failure_rate, "a fraction between 0 and 1")
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
    _validate_bigquery(params)
    # local imports: keep option parsing light for the template launcher
    from pipeline import custom_model, features, models, search

    if params.model in models.REGISTRY:
        models.check_model(params.model, params.model_params)
    else:
        custom_model.check(params.model, params.model_params)  # allow-list first, before any import
    features.check(params)
    search.check(params)
