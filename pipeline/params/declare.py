"""The vocabulary of parameter declarations: `Param`, `ParameterError`, regexes and value parsers."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any, Callable

# The registry's models (pipeline.models.registry builds them; a test keeps the two in step).
MODEL_DESCRIPTIONS = (
    ("gbr", "scikit-learn GradientBoostingRegressor (the article's model)"),
    ("hist_gbr", "scikit-learn HistGradientBoostingRegressor"),
    ("random_forest", "scikit-learn RandomForestRegressor"),
    ("ridge", "scikit-learn Ridge regression"),
    ("xgboost", "XGBoost XGBRegressor"),
    # statistical models (pipeline.models.statistical): fitted on the key's target history (arimax: and the features)
    ("naive", "statsforecast Naive: the last observed value"),
    ("seasonal_naive", "statsforecast SeasonalNaive: the value one season earlier"),
    ("theta", "statsforecast Theta"),
    ("dynamic_theta", "statsforecast DynamicOptimizedTheta"),
    ("ets", "statsforecast AutoETS (exponential smoothing)"),
    ("arima", "statsforecast AutoARIMA"),
    ("arimax", "statsforecast AutoARIMA with the feature columns as exogenous regressors"),
    ("ces", "statsforecast AutoCES (complex exponential smoothing)"),
)
MODEL_NAMES = tuple(name for name, _ in MODEL_DESCRIPTIONS)
OUTPUT_FORMATS = ("parquet", "csv")
SOURCES = ("auto", "duckdb", "file", "bigquery")
IF_OUTPUT_EXISTS = ("replace", "fail")
FAN_OUT_MODES = ("auto", "always", "never")  # --fan_out (pipeline.stages.prepare.fanout)

COLUMN_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
COLUMN_LIST_RE = r"^[A-Za-z_][A-Za-z0-9_]*(,[A-Za-z_][A-Za-z0-9_]*)*$"
POSITIVE_INT_RE = r"^[1-9][0-9]*$"
NON_NEGATIVE_INT_RE = r"^[0-9]+$"
WINDOW_SIZE_RE = r"^([2-9]|[1-9][0-9]+)$"  # at least one training and one test period
RUN_ID_RE = r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})?$"  # empty: generated
NON_BLANK_RE = r"^\s*\S[\s\S]*$"
JSON_OBJECT_RE = r"^\s*\{[\s\S]*\}\s*$"
_ONE_MODEL_RE = "(" + "|".join(MODEL_NAMES) + r"|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)"
_CANDIDATE_RE = f"{_ONE_MODEL_RE}(\\+{_ONE_MODEL_RE})*"  # a model, or a combination (a+b: their mean)
MODEL_RE = f"^{_CANDIDATE_RE}(,{_CANDIDATE_RE})*$"  # one candidate, or several side by side (comma-separated)
JSON_GRID_RE = r"^(\s*[\[{][\s\S]*[\]}]\s*)?$"  # empty, a JSON object or a JSON list
BOOL_RE = r"^([Tt]rue|TRUE|[Ff]alse|FALSE|1|0|[Yy]es|YES|[Nn]o|NO)$"  # for BOOLEAN params (type=parse_bool)
# Regexes are also Dataflow template regexes (metadata.json), checked by the service and the
# Console: keep them portable (no Python-only syntax) and write "any character" as [\s\S].
INT_RE = r"^-?[0-9]+$"
NON_NEGATIVE_NUMBER_RE = r"^[0-9]+(\.[0-9]+)?$"
# A Cloud Storage location: what Dataflow workers can write to (a local path is on one machine only).
GCS_PATH_RE = r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/[^\s]*)?$"
GCS_PATH_OR_EMPTY_RE = r"^(gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/[^\s]*)?)?$"
GCS_ALLOWED = "a gs:// location (gs://bucket/path): Dataflow workers cannot write to a local path"
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
BQ_QUERY_PRIORITIES = ("BATCH", "INTERACTIVE")
# BigQuery dataset: [project:|project.]dataset; Beam reserves the prefix of the datasets it creates itself.
BQ_DATASET_RE = r"^(([a-z][a-z0-9-]{4,28}[a-z0-9][:.])?(?!beam_temp_dataset_)[A-Za-z0-9_]{1,1024})?$"
BQ_DATASET_ALLOWED = ("empty, or a BigQuery dataset: project:dataset, project.dataset or dataset, not starting "
                      "with beam_temp_dataset_ (Beam's own prefix)")
BQ_WRITE_METHODS = ("FILE_LOADS", "STREAMING_INSERTS")
WRITE_DISPOSITIONS = ("WRITE_APPEND", "WRITE_TRUNCATE", "WRITE_EMPTY")
IF_RUN_EXISTS = ("fail", "replace")


class ParameterError(ValueError):
    """A parameter value the pipeline cannot use. Raised before any work starts."""

    def __init__(self, name: str, value: Any, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"--{name}={value!r} is not valid: {allowed}")


class UnknownArgument(ParameterError):
    """An argument that is no parameter of ours nor a Beam option, close to one of ours."""

    def __init__(self, name: str, closest: str):
        self.closest = closest
        ValueError.__init__(self, f"--{name} is not a parameter of this pipeline; did you mean --{closest}?")
        self.name, self.value, self.allowed = name, None, f"did you mean --{closest}?"


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
    # Description of each choice, for the template's ENUM options: (choice, description) pairs.
    choice_help: tuple[tuple[str, str], ...] = ()
    # The local default is no use on Dataflow (e.g. a local output directory): the template
    # requires a value and does not pre-fill the default.
    required_on_dataflow: bool = False
    # The choices are the template form's options, not the only values the pipeline accepts
    # (e.g. --model also takes an allow-listed module:callable, checked in validate_static).
    open_choices: bool = False
    # A rule that holds on Dataflow only (e.g. gs:// where a local run also takes a local path):
    # the template's regex (metadata.json) and the check `pipeline.run.prepare` makes on Dataflow.
    # It must imply `regex`. Locally only `regex` applies.
    dataflow_regex: str | None = None
    dataflow_allowed: str | None = None
    # The default serves local runs only (e.g. the embedded sample's query): the template does not
    # pre-fill it, so the Console never sends it.
    prefill: bool = True
    # Console form: shown only when the parameter `parent` has one of `parent_values` (any non-empty
    # value when empty); `hidden` parameters are tuning knobs the form keeps folded away.
    parent: str | None = None
    parent_values: tuple[str, ...] = ()
    hidden: bool = False

    @property
    def is_optional(self) -> bool:
        """Optional in the template: a usable default or an alternative exists."""
        return not self.required_on_dataflow


def parse_bool(text: str) -> bool:
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


def int_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def name_tuple(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


def json_value(text: str):
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"JSON ({exc.msg} at char {exc.pos})") from None
