"""The fit of one key x window (or forecast) with its fallback: a model, or a combination's members, fitted
in this process or under --group_timeout_s, non-finite predictions an error, and --fallback_model for a
candidate that failed or was skipped for too little history."""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.models import combination, model_fit
from pipeline.params.values import PipelineParams
from pipeline.stages.fit.split import FAILED, TRAINED, WindowSplit
from pipeline.stages.prepare import features
from pipeline.utils.deadline import CallTimeout, DeadlineCaller, HelperCrashed
from pipeline.utils.tagged import reraise_infrastructure


def fit_in_time(params: PipelineParams, model_params: dict, split: WindowSplit, key: str, seed: int,
                deadline: DeadlineCaller | None) -> model_fit.Fitted:
    """Fits and predicts, in this process or in the deadline's helper process (which receives the
    model itself, registry entry or user spec, so it needs no state of this process).

    A combination (`a+b`, pipeline.models.combination) fits each member here as it would be fitted
    alone (same split and seed, its own hyperparameters) and predicts their mean."""
    if combination.is_combination(params.model):
        names = combination.members(params.model)
        fits = [fit_in_time(dataclasses.replace(params, model=name), combination.member_params(model_params, name),
                            split, key, seed, deadline) for name in names]
        estimators = [fit.estimator for fit in fits]
        return model_fit.Fitted(
            combination.mean_of([fit.predicted for fit in fits]), sum(fit.fit_seconds for fit in fits),
            sum(fit.predict_seconds for fit in fits),
            combination.MeanOfModels(names, estimators) if all(e is not None for e in estimators) else None)
    call = deadline.call if deadline is not None else _call_here
    return call(model_fit.fit_predict, params, model_fit.resolve(params.model), model_params,
                features.model_columns(params), split, key, seed)


def _call_here(function, *args):
    """DeadlineCaller.call's signature, in this process and without a time limit."""
    return function(*args)


def failure_reason(exc: Exception) -> str:
    if isinstance(exc, CallTimeout):
        return "timeout"
    if isinstance(exc, HelperCrashed):
        return "fit_crashed"
    if getattr(exc, "ledger_reason", None):  # an error that names its own reason (statistical.IrregularSeries)
        return exc.ledger_reason
    return "fit_error"


# Why a candidate's key x window (or forecast) is fitted with --fallback_model instead: it failed, or it was
# skipped for too little history. A constant target is not among them (every model would echo it).
FALLBACK_REASONS = ("fit_error", "timeout", "fit_crashed", "too_few_periods", "too_few_rows")


def may_fall_back(params: PipelineParams, reason: str, split: WindowSplit) -> bool:
    return bool(params.fallback_model) and reason in FALLBACK_REASONS and split.rows_train > 0 and \
        split.rows_test > 0 and params.fallback_model != params.model


def fit_checked(params: PipelineParams, model_params: dict, split: WindowSplit, key: str, seed: int,
                deadline) -> model_fit.Fitted:
    """`fit_in_time`, with predictions that are not all finite an error."""
    fitted = fit_in_time(params, model_params, split, key, seed, deadline)
    if not np.isfinite(fitted.predicted).all():
        raise FloatingPointError("the model predicted NaN or infinite values")
    return fitted


def fit_fallback(params: PipelineParams, split: WindowSplit, key: str, seed: int, deadline, ledger: dict
                 ) -> tuple[model_fit.Fitted | None, dict]:
    """(the fallback's fit or None, the ledger row): trained with reason `fallback: <why>` and the
    candidate's error kept; failed (the original reason, both errors in the message) if the fallback fails."""
    why = ledger["reason"]
    try:
        fitted = fit_checked(dataclasses.replace(params, model=params.fallback_model), {}, split, key, seed,
                             deadline)
    except Exception as exc:  # recorded, as the candidate's own failure is
        reraise_infrastructure(exc)
        return None, {**ledger, "status": FAILED if ledger["status"] == FAILED else ledger["status"],
                      "error_message": f"{ledger['error_message'][:480]}; fallback {params.fallback_model} "
                                       f"failed too: {type(exc).__name__}: {str(exc)[:480]}"}
    return fitted, {**ledger, "status": TRAINED, "reason": f"fallback: {why}",
                    "fitted_model": params.fallback_model, "fallback": why}


