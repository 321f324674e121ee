"""Every user-facing parameter, declared once: the parser, the checks before any work, the README's
parameter table and the Flex Template's `metadata.json` are all derived from `PARAMS`."""

from __future__ import annotations

import os

from pipeline.params.declare import (BOOL_RE, BQ_READ_METHODS, BQ_TABLE_ALLOWED, BQ_TABLE_RE, BQ_WRITE_METHODS,
                                      COLUMN_LIST_RE, COLUMN_RE, GROUP_BIGQUERY, GROUP_FEATURES, GROUP_MODEL,
                                      GROUP_OUTPUTS, GROUP_SEARCH, GROUP_SOURCE, GROUP_WINDOWS, IF_OUTPUT_EXISTS,
                                      IF_RUN_EXISTS, INT_RE, JSON_GRID_RE, JSON_OBJECT_RE, MODEL_DESCRIPTIONS,
                                      MODEL_NAMES, MODEL_RE, NON_BLANK_RE, NON_NEGATIVE_INT_RE,
                                      NON_NEGATIVE_NUMBER_RE, OUTPUT_FORMATS, POSITIVE_INT_RE, Param, RUN_ID_RE,
                                      SOURCES, WINDOW_SIZE_RE, WRITE_DISPOSITIONS, int_tuple, name_tuple,
                                      parse_bool)


def _model_allowed() -> str:
    modules = os.environ.get("PIPELINE_MODEL_MODULES", "") or "empty"
    return (f"one of {', '.join(MODEL_NAMES)}, or package.module:callable from a module in the "
            f"PIPELINE_MODEL_MODULES allow-list (now: {modules}); this is neither a registry name nor of that form")


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
          "own function or estimator class) from a module listed in the PIPELINE_MODEL_MODULES allow-list. "
          "A comma-separated list fits each model side by side (--model_params and --param_grid then keyed by "
          "model name).",
          GROUP_MODEL, default="gbr", choices=MODEL_NAMES, param_type="ENUM", choice_help=MODEL_DESCRIPTIONS,
          open_choices=True, regex=MODEL_RE,
          allowed=_model_allowed),
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
    # -- reproducibility and evaluation: fold plan dry run, saved models --------
    Param("plan_only", "Plan only",
          "Dry run: write and print the fold plan (key x window x train/test periods x row counts, would "
          "train or would skip and why), the number of fits and a cost estimate timed on a few sample fits; "
          "write no predictions and save no models.", GROUP_OUTPUTS, type=parse_bool, default=False,
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
          GROUP_FEATURES, type=name_tuple, default="", regex=r"^([a-z_]+(,[a-z_]+)*)?$", example="day_of_week,holiday",
          allowed="comma-separated names among day_of_week, day_of_year, month, holiday"),
    Param("holiday_calendar", "Holiday calendar", "Bundled calendar of the holiday feature: fr or us.",
          GROUP_FEATURES, default="fr", choices=("fr", "us"), param_type="ENUM"),
    Param("lag_days", "Target lags (days)",
          "Comma-separated lags in days: feature lag_<k> is the key's target k days before the row's date. "
          "Test rows never see target values from the test period on (unknown values become 0.0).",
          GROUP_FEATURES, type=int_tuple, default="", regex=r"^([1-9][0-9]*(,[1-9][0-9]*)*)?$", example="7,364",
          allowed="comma-separated positive integers (days)"),
    Param("rolling_mean_days", "Target rolling means (days)",
          "Comma-separated spans in days: feature rolling_mean_<w> is the key's mean target over the w days "
          "before the row's date, with the same rule for test rows.",
          GROUP_FEATURES, type=int_tuple, default="", regex=r"^([1-9][0-9]*(,[1-9][0-9]*)*)?$", example="7,28",
          allowed="comma-separated positive integers (days)"),
    Param("check_leakage", "Check feature leakage",
          "Verify on every window that no generated feature of a test row uses a target value at or after "
          "the window's test start; the run fails if one does.",
          GROUP_FEATURES, type=parse_bool, default=False, param_type="BOOLEAN", regex=BOOL_RE),
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
    # -- several models: the best one per key (issue 15) ---------------------------
    Param("select_metric", "Selection metric",
          "With several models: each key keeps the model with the lowest mean of this metric over the backtest "
          "windows where every model trained (ties: the first in --model); written to selection/.",
          GROUP_MODEL, default="rmse", choices=("rmse", "mae", "mape"), param_type="ENUM"),
    Param("selection_table", "Selection table",
          "BigQuery table for selection/ (several models: the score of each model per key and the choice).",
          GROUP_BIGQUERY, param_type="BIGQUERY_TABLE", regex=BQ_TABLE_RE, allowed=BQ_TABLE_ALLOWED,
          example="my-project:dataset.selection"),
)

PARAMS_BY_NAME = {p.name: p for p in PARAMS}
TABLE_PARAMS = tuple(p.name for p in PARAMS if p.param_type == "BIGQUERY_TABLE")
