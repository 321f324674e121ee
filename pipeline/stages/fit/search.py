"""Hyperparameter search per key x window: configurations, a validation split, the choice.

`--param_grid` is a JSON grid ({"alpha": [0.1, 1, 10]}: every combination) or a
list of configurations ([{"alpha": 1}, {"alpha": 10, "fit_intercept": false}]).
`--search=grid` tries them all; `--search=random` tries `--n_configs` of them,
drawn without replacement with `--seed`, so the same seed gives the same
configurations. Each configuration is applied on top of `--model_params`.
A grid is never built: configuration i is decoded from i (a mixed-radix number
over the lists, the last name fastest, itertools.product's order), so a random
search over 10^8 combinations costs what its `--n_configs` draws cost. Caps:
a run tries at most MAX_CONFIGS_TRIED configurations per key x window (a grid
search's grid, or --n_configs), and a random search's grid has at most
MAX_GRID_SIZE combinations.

For each key x window, each configuration is fitted on the training periods
before the validation split (the last `--validation_periods` training periods)
and scored (RMSE) on that split. Only training periods reach the scoring step:
the test period's rows are not even sent to it. The configuration with the
lowest validation RMSE (ties: the lowest config_id) is refitted on all training
periods and predicts the test period.

Data flow (fan-out key x window x configuration, then back):

    (key, window start, rows) -> PlanSearch -> batches of configurations
        -> Reshuffle (spreads batches over workers) -> ScoreConfigs
        -> CoGroupByKey (key, window) with the window's data -> ChooseRefitPredict

Small fits are batched (`--search_batch_size` configurations per element) so the
per-element cost of the fan-out stays small next to the fits themselves.

Isolation as in plain training: every scoring fit and the refit run under
--group_timeout_s (a helper process per DoFn instance, pipeline.utils.deadline); a
configuration that raises or overruns is a failed score; a key x window whose every
configuration failed is a failed ledger row (no_valid_config), and a refit-and-predict
that breaks is one too (fit_error, timeout, or unexpected_error), so the failure
budget (--max_failure_rate) counts them.
"""

from __future__ import annotations

import json
import math
import random

import apache_beam as beam
import pandas as pd
from apache_beam.metrics import Metrics

from pipeline.models import custom_model, model_fit
from pipeline.stages.fit import evaluate
from pipeline.models import registry
from pipeline.stages.fit import train
from pipeline.stages.fit.fitting import fit_in_time
from pipeline.stages.fit.results import GroupResult
from pipeline.stages.fit.split import FAILED, TRAINED, split_at, split_window
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.stages.prepare.windows import WindowPlan
from pipeline.utils import threads
from pipeline.utils.deadline import DeadlineCaller
from pipeline.utils.tagged import GROUP_ERRORS, reraise_infrastructure

SEARCH = "search"
GRID, RANDOM = "grid", "random"
_DATA, _TO_SCORE = "data", "to_score"


def is_enabled(params: PipelineParams) -> bool:
    return params.param_grid is not None


MAX_CONFIGS_TRIED = 10_000  # configurations fitted per key x window: a grid search's grid, or --n_configs
MAX_GRID_SIZE = 10 ** 12  # combinations of a random search's grid (drawn by index, never built)


def grid_size(param_grid) -> int:
    """How many configurations a grid (dict of lists) or a list of configurations holds."""
    if isinstance(param_grid, list):
        return len(param_grid)
    return math.prod(len(values) for values in param_grid.values())


def configuration_at(param_grid, index: int) -> dict:
    """Configuration `index` of a grid (itertools.product's order over the sorted names: the last name
    varies fastest), decoded as a mixed-radix number; of a list, its item."""
    if isinstance(param_grid, list):
        return dict(param_grid[index])
    config = {}
    for name in sorted(param_grid, reverse=True):
        index, digit = divmod(index, len(param_grid[name]))
        config[name] = param_grid[name][digit]
    return dict(sorted(config.items()))


def configurations(params: PipelineParams) -> list[dict]:
    """The configurations this run tries, in config_id order; identical on every worker."""
    size = grid_size(params.param_grid)
    indices = range(size)
    if params.search == RANDOM:
        indices = sorted(random.Random(params.seed).sample(indices, min(params.n_configs, size)))
    return [configuration_at(params.param_grid, i) for i in indices]


def _covering_configurations(param_grid) -> list[dict]:
    """Configurations in which every value of the grid appears at least once (each of a list)."""
    if isinstance(param_grid, list):
        return [dict(config) for config in param_grid]
    longest = max(len(values) for values in param_grid.values())
    return [{name: values[i % len(values)] for name, values in sorted(param_grid.items())} for i in range(longest)]


def _check_size(params: PipelineParams) -> None:
    size = grid_size(params.param_grid)
    if params.search == RANDOM and size > MAX_GRID_SIZE:
        raise ParameterError("param_grid", f"a grid of {size:,} configurations",
                             f"at most {MAX_GRID_SIZE:.0e} configurations (the cap of a random search's grid, "
                             "MAX_GRID_SIZE in pipeline/stages/fit/search.py)")
    if params.search == RANDOM and params.n_configs > MAX_CONFIGS_TRIED:
        raise ParameterError("n_configs", params.n_configs,
                             f"at most {MAX_CONFIGS_TRIED} configurations per key x window (MAX_CONFIGS_TRIED)")
    if params.search == GRID and size > MAX_CONFIGS_TRIED:
        raise ParameterError("param_grid", f"a grid of {size:,} configurations",
                             f"at most {MAX_CONFIGS_TRIED} configurations for --search=grid, which fits every "
                             "one per key x window (MAX_CONFIGS_TRIED); or --search=random with --n_configs")


def check_params(params: PipelineParams) -> None:
    """Static checks: the grid's shape, the validation split, and every configuration against the model."""
    if not is_enabled(params):
        return
    grid = params.param_grid
    shape_ok = (isinstance(grid, dict) and grid and all(isinstance(v, list) and v for v in grid.values())) or (
        isinstance(grid, list) and grid and all(isinstance(c, dict) for c in grid))
    if not shape_ok:
        raise ParameterError("param_grid", json.dumps(grid), "a JSON object of non-empty lists "
                             '({"alpha": [0.1, 1]}) or a non-empty list of JSON objects ([{"alpha": 1}])')
    if params.validation_periods >= params.train_periods:
        raise ParameterError("validation_periods", params.validation_periods,
                             f"an integer in 1..{params.train_periods - 1}: the search fits on the training "
                             f"periods before the validation split, and a window has {params.train_periods} "
                             "training periods (--window_size - --test_periods)")
    _check_size(params)
    for config in _covering_configurations(grid):  # every value once, not every combination
        custom_model.check_model(params.model, {**params.model_params, **config})


def validation_start(plan: WindowPlan, window_start: int, validation_periods: int) -> int:
    return plan.test_start(window_start) - validation_periods


def score_configs(key: str, window_start: int, train_data: pd.DataFrame, configs: list[tuple[int, dict]],
                  params: PipelineParams, plan: WindowPlan, deadline=None) -> list[dict]:
    """Validation RMSE of each (config_id, config) on one key x window's training periods.

    With a `deadline` (pipeline.utils.deadline.DeadlineCaller), every fit runs under --group_timeout_s;
    a configuration that overruns is a failed score (CallTimeout), like one that raises."""
    cutoff = validation_start(plan, window_start, params.validation_periods)
    if (train_data[params.time_column] >= plan.test_start(window_start)).any():
        raise ValueError("the scoring step received test-period rows")  # the guarantee, enforced
    split = split_at(train_data, cutoff, params)  # "test" here: the validation periods, recursive
    fit, validation = split.train, split.test
    seed = registry.group_seed(params.seed, key, window_start)
    base = {params.key_column: key, "window_start": window_start, "window_end": plan.end_of(window_start),
            "validation_start": cutoff, "rows_fit": len(fit), "rows_validation": len(validation),
            "model": params.model, "run_id": params.run_id}
    rows = []
    for config_id, config in configs:
        row = {**base, "config_id": config_id, "model_params": json.dumps(config, sort_keys=True),
               "validation_rmse": None, "fit_seconds": 0.0, "error_message": ""}
        try:
            if len(fit) < params.min_train_rows or not len(validation):
                raise ValueError(f"validation split has {len(fit)} fit rows and {len(validation)} validation rows")
            fitted = fit_in_time(params, {**params.model_params, **config}, split, key, seed, deadline)
            score = evaluate.rmse(validation[params.target].to_numpy(dtype=float), fitted.predicted)
            if score is None or not math.isfinite(score):
                raise FloatingPointError("the model predicted NaN or infinite values")
            row.update(validation_rmse=score, fit_seconds=fitted.fit_seconds + fitted.predict_seconds)
        except Exception as exc:  # one configuration's failure is a recorded score, not a crash
            reraise_infrastructure(exc)
            row["error_message"] = f"{getattr(exc, 'class_name', type(exc).__name__)}: {exc}"[:1000]
        rows.append(row)
    return rows


def choose(scores: list[dict]) -> dict | None:
    """The winning score row: lowest validation RMSE, ties to the lowest config_id."""
    valid = [s for s in scores if s["validation_rmse"] is not None]
    return min(valid, key=lambda s: (s["validation_rmse"], s["config_id"])) if valid else None


class _PlanSearchFn(train.TrainAndPredictFn):
    """Per planned key x window: its data (to refit later) and batches of configurations to score."""

    def __init__(self, params: PipelineParams):
        super().__init__(params)
        configs = list(enumerate(configurations(params)))
        size = params.search_batch_size
        self._batches = [configs[i:i + size] for i in range(0, len(configs), size)]

    def handle(self, key, start, window_data):
        params, plan = self._params, self._plan
        yield (key, start), window_data
        _, ledger = split_window(key, start, window_data, params, plan)
        if ledger["status"] == TRAINED:
            # The training rows with their history columns: scoring predicts from its own cutoff on.
            is_train = (window_data[params.time_column] < plan.test_start(start)).to_numpy()
            train_data = window_data.loc[is_train].reset_index(drop=True)
            for batch in self._batches:
                yield beam.pvalue.TaggedOutput(_TO_SCORE, ((key, start), batch, train_data))


class _ScoreConfigsFn(beam.DoFn):
    def __init__(self, params: PipelineParams):
        self._params, self._plan = params, WindowPlan.from_params(params)
        self._scored = Metrics.counter("search", "configs_scored")
        self._deadline = None

    def setup(self):
        # As TrainAndPredictFn.setup: the fits (model_fit.fit_predict) set their own thread's pools.
        threads.set_environment(self._params.model_threads)

    def process(self, element):
        (key, start), batch, train_data = element
        self._scored.inc(len(batch))
        yield (key, start), score_configs(key, start, train_data, batch, self._params, self._plan,
                                          deadline=self._time_limit())

    def _time_limit(self) -> DeadlineCaller | None:
        """The --group_timeout_s helper process, started on first use (as TrainAndPredictFn's)."""
        if self._deadline is None:
            self._deadline = model_fit.time_limited_caller(self._params)
        return self._deadline

    def teardown(self):
        if self._deadline is not None:
            self._deadline.stop()


class _ChooseRefitPredictFn(train.TrainAndPredictFn):
    def process(self, element):
        (key, start), joined = element
        (window_data,) = joined[_DATA]
        scores = sorted((row for batch in joined["scores"] for row in batch), key=lambda s: s["config_id"])
        winner = choose(scores)
        for row in scores:
            row["chosen"] = winner is not None and row["config_id"] == winner["config_id"]
        if scores:
            yield beam.pvalue.TaggedOutput(SEARCH, pd.DataFrame(scores))
        config = json.loads(winner["model_params"]) if winner else {}
        model_params = {**self._params.model_params, **config}
        try:
            if scores and winner is None:
                _, ledger = split_window(key, start, window_data, self._params, self._plan)
                result = GroupResult({**ledger, "status": FAILED, "reason": "no_valid_config",
                                            "error_class": "SearchError", "error_message":
                                            f"every configuration failed: {scores[0]['error_message']}"})
            else:
                result = train.train_and_predict(key, start, window_data, self._params, self._plan,
                                                 model_params=model_params, deadline=self._deadline)
        except GROUP_ERRORS as exc:  # as TrainAndPredict's dead letters: one group's error is a ledger row
            result = GroupResult(train.unexpected_error_ledger(
                self._params, self._plan, key, start, len(window_data), type(exc), repr(exc), model_params))
        if winner is not None:
            chosen = {"config_id": winner["config_id"], "validation_rmse": winner["validation_rmse"]}
            result.ledger.update(chosen)
            if result.metrics is not None:
                result.metrics.update(chosen)
        yield from self.emit(result)


class SearchAndTrain(beam.PTransform):
    """(key, window start, the window's rows) -> predictions, metrics, ledger (as TrainAndPredict)
    and `search`: every configuration's validation score per key x window, the winner flagged.
    `frame_per_window` as TrainAndPredict's."""

    def __init__(self, params: PipelineParams, frame_per_window: bool = True):
        super().__init__()
        self._params, self._frame_per_window = params, frame_per_window

    def expand(self, windows):
        params = self._params
        planned = windows | "PlanSearch" >> beam.ParDo(_PlanSearchFn(params)).with_outputs(_TO_SCORE, main=_DATA)
        scores = (planned[_TO_SCORE]
                  | "SpreadConfigs" >> beam.Reshuffle()
                  | "ScoreConfigs" >> beam.ParDo(_ScoreConfigsFn(params)))
        return ({_DATA: planned[_DATA], "scores": scores}
                | "JoinScores" >> beam.CoGroupByKey()
                | "ChooseRefitPredict" >> beam.ParDo(_ChooseRefitPredictFn(params, self._frame_per_window)).with_outputs(
                    train.PREDICTIONS, train.METRICS, train.LEDGER, SEARCH))
