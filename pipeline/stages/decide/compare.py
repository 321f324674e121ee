"""Several models side by side: `--model=gbr,ridge,package.module:Class`.

Every planned key x window is fitted by each model, in the order given. Each model runs the
one-model stage it would run alone (`train.TrainAndPredict`, or `search.SearchAndTrain` when it has
a grid) with its own parameters (`params_for`), so predictions, metrics, ledger, search rows and
saved models are exactly those of a one-model run of that model, with the `model` column saying
which; a failure of one model in a key x window is that model's ledger row and the others go on.
A run with one model takes the one-model path unchanged (same graph, same outputs).

With several models, `--model_params` and `--param_grid` are JSON objects keyed by model name
(`{"gbr": {"max_depth": [2, 3]}, "ridge": {"alpha": [0.1, 1]}}`); a model missing from the object
gets `{}` (no search). Saved models of model M go to `<model_dir>/<M>/` (M percent-encoded), in the
usual layout below that, so `pipeline.record.saved_models` reads them from there.

A candidate may be a combination, `ridge+gbr` (pipeline.models.combination): one candidate like any
other, whose prediction is the mean of its members' (its `--model_params` keyed by member name; no grid).
"""

from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.io.outputs import artifacts
from pipeline.models import combination, registry
from pipeline.params.declare import ParameterError
from pipeline.params.values import PipelineParams
from pipeline.stages.fit import search, train


def model_names(params: PipelineParams) -> list[str]:
    """The models of this run, in --model's order."""
    return combination.candidates(params.model)


def is_enabled(params: PipelineParams) -> bool:
    """Several models side by side."""
    return len(model_names(params)) > 1


def per_member(params: PipelineParams) -> list[PipelineParams]:
    """Each single model of the run with its own parameters: the candidates, a combination's members apart
    (what the per-model checks run on)."""
    out = []
    for each in per_model(params):
        names = combination.members(each.model)
        out += [each] if len(names) == 1 else [
            dataclasses.replace(each, model=name, model_params=combination.member_params(each.model_params, name))
            for name in names]
    return out


def _keyed_by_model(value, models: list[str]) -> bool:
    return (isinstance(value, dict) and bool(value) and set(value) <= set(models)
            and all(isinstance(v, (dict, list)) for v in value.values()))


def check_params(params: PipelineParams) -> None:
    """The model list and the per-model shape of --model_params / --param_grid; each model's own
    checks then run on `params_for` (pipeline.run.parse_args)."""
    models = model_names(params)
    if params.fallback_model and (params.fallback_model not in registry.REGISTRY
                                  or combination.is_combination(params.fallback_model)):
        raise ParameterError("fallback_model", params.fallback_model,
                             f"empty, or one of the registry's models: {', '.join(registry.REGISTRY)}")
    if len(models) != len(set(models)):
        raise ParameterError("model", params.model, "distinct models (a model is listed twice)")
    for model in models:
        names = combination.members(model)
        if len(names) != len(set(names)) or not all(names):
            raise ParameterError("model", params.model, f"distinct members in a combination ({model})")
        grid = params.param_grid if len(models) == 1 or not isinstance(params.param_grid, dict) \
            else params.param_grid.get(model)
        if len(names) > 1 and grid is not None:
            raise ParameterError("param_grid", json.dumps(params.param_grid),
                                 f"empty with a combination ({model}): a combination's members take "
                                 "--model_params, not a search")
    if len(models) < 2:
        return
    example = ", ".join(f'"{m}": {{...}}' for m in models[:2])
    if params.model_params and not _keyed_by_model(params.model_params, models):
        raise ParameterError("model_params", json.dumps(params.model_params),
                             f"with several models (--model={params.model}), {{}} or a JSON object keyed by "
                             f"model name ({{{example}}}); keys must be among {', '.join(models)}")
    if params.param_grid is not None and not _keyed_by_model(params.param_grid, models):
        raise ParameterError("param_grid", json.dumps(params.param_grid),
                             f"with several models (--model={params.model}), a JSON object keyed by model "
                             f"name ({{{example}}}), each value a grid or a list of configurations; keys "
                             f"must be among {', '.join(models)}")


def params_for(params: PipelineParams, model: str) -> PipelineParams:
    """One model's parameters in a several-model run: what a one-model run of it would get."""
    if not is_enabled(params):
        return params
    grid = params.param_grid.get(model) if params.param_grid is not None else None
    model_dir = FileSystems.join(params.model_dir, artifacts.encode_key(model)) if params.model_dir else ""
    return dataclasses.replace(params, model=model, model_params=dict(params.model_params.get(model, {})),
                               param_grid=grid, model_dir=model_dir)


def per_model(params: PipelineParams) -> list[PipelineParams]:
    """Each model's parameters, in --model's order ([params] for a one-model run)."""
    return [params_for(params, model) for model in model_names(params)] if is_enabled(params) else [params]


class FitModels(beam.PTransform):
    """(key, window start, the window's rows) -> predictions, metrics, ledger (and search rows with
    --param_grid) of every model, flattened: one row per model where a one-model run has one."""

    def __init__(self, params: PipelineParams):
        super().__init__()
        self._params = params

    def expand(self, windows):
        names = [train.PREDICTIONS, train.METRICS, train.LEDGER]
        outputs = {name: [] for name in (*names, search.SEARCH)}
        for each in per_model(self._params):
            searched = search.is_enabled(each)
            fit = search.SearchAndTrain(each) if searched else train.TrainAndPredict(each)
            results = windows | f"Fit[{each.model}]" >> fit
            for name in names + ([search.SEARCH] if searched else []):
                outputs[name].append(results[name])
        return {name: parts | f"AllModels_{name}" >> beam.Flatten() for name, parts in outputs.items() if parts}
