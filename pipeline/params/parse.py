"""Command-line parsing: argv -> validated `PipelineParams` plus the flags left for Beam.

Only checks that concern the values themselves run here; each stage checks its own parameters
(`check_params` in its module), and `pipeline.run.parse_args` runs them all before any work.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any, Sequence

from pipeline.params.catalog import PARAMS, TABLE_PARAMS
from pipeline.params.declare import REGEX_MEANING, Param, ParameterError, json_value, parse_bool
from pipeline.params.values import PipelineParams


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", allow_abbrev=False,  # a Beam flag must never be read as a prefix of ours
        description="Train and evaluate one model per key and sliding time window.")
    for param in PARAMS:
        flag = {"nargs": "?", "const": "true"} if param.type is parse_bool else {}  # a bare --plan_only means true
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
        values["param_grid"] = json_value(values["param_grid"])
    except ValueError as exc:
        raise ParameterError("param_grid", values["param_grid"], str(exc)) from None
    for name in ("input", *TABLE_PARAMS, "bq_temp_location"):
        values[name] = values[name] or None
    return PipelineParams(**values), beam_args
