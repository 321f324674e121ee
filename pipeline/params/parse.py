"""Command-line parsing: argv -> validated `PipelineParams` plus the flags left for Beam.

Only checks that concern the values themselves run here; each stage checks its own parameters
(`check_params` in its module), and `pipeline.run.parse_args` runs them all before any work.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import re
from typing import Any, Collection, Sequence

from pipeline.params.catalog import PARAMS, TABLE_PARAMS
from pipeline.params.declare import (GROUPS, MODEL_DESCRIPTIONS, MODEL_NAMES, REGEX_MEANING, Param, ParameterError,
                                      UnknownArgument, json_value, parse_bool)
from pipeline.params.values import PipelineParams


def _default_text(param: Param) -> str:
    if param.default is None or param.default == "":
        return "empty"
    if isinstance(param.default, bool):
        return "true" if param.default else "false"
    return str(param.default)


def models_epilog() -> str:
    """--help's last lines: the registry's models, one line each (the --model help names none)."""
    width = max(len(name) for name in MODEL_NAMES)
    lines = [f"  {name:<{width}}  {description}" for name, description in MODEL_DESCRIPTIONS]
    return ("models (--model=NAME, or several side by side: --model=ridge,gbr):\n" + "\n".join(lines)
            + "\n  package.module:callable  your own model (README, \"Bring your own model\")")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", usage="%(prog)s [--name=value ...] [Beam options]", allow_abbrev=False,  # a Beam flag must never be read as a prefix of ours
        description="Train and evaluate one model per key and sliding time window. Parameters are grouped "
                    "as in the Dataflow form; any other --flag is one of Beam's options (--runner, "
                    "--direct_num_workers, --project, ...).",
        epilog=models_epilog(), formatter_class=_KeepEpilogLines)
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for param in PARAMS:
        flag = {"nargs": "?", "const": "true"} if param.type is parse_bool else {}  # a bare --plan_only means true
        metavar = "|".join(param.choices) if param.choices and not param.open_choices else param.name.upper()
        text = f"{param.help} (default: {_default_text(param)})".replace("%", "%%")
        groups[param.group].add_argument(f"--{param.name}", type=str, default=None, help=text, metavar=metavar,
                                         **flag)
    return parser


class _KeepEpilogLines(argparse.HelpFormatter):
    """Wraps the description and every help text as usual; keeps the epilog's lines (the model list)."""

    def _fill_text(self, text, width, indent):
        if text.startswith("models ("):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def suggestion(param: Param, raw: str) -> str:
    """' (did you mean ridge?)' for a value close to one of the choices (each part of a list), else ''."""
    if not param.choices:
        return ""
    by_lower = {choice.lower(): choice for choice in param.choices}
    close = []
    for part in raw.split(","):
        if part in param.choices or ":" in part:
            continue
        found = difflib.get_close_matches(part.lower(), list(by_lower), n=1, cutoff=0.6)
        if found:
            close.append(by_lower[found[0]])
    if not close:
        return ""
    fixed = ",".join(close) if len(close) == len(raw.split(",")) else ", ".join(close)
    return f" (did you mean {fixed}?)"


# Options the Flex Template launcher passes to main.py besides the template's parameters (Dataflow's
# Flex Template docs and launcher logs; each maps to a Beam option of the same name): never refused.
LAUNCHER_OPTIONS = frozenset({
    "runner", "project", "region", "job_name", "temp_location", "staging_location", "template_location",
    "service_account_email", "machine_type", "worker_machine_type", "num_workers", "max_num_workers",
    "disk_size_gb", "network", "subnetwork", "use_public_ips", "no_use_public_ips", "dataflow_kms_key",
    "labels", "experiments", "experiment", "dataflow_service_options", "worker_region", "worker_zone", "zone",
    "autoscaling_algorithm", "flexrs_goal", "enable_streaming_engine", "sdk_container_image",
    "requirements_file", "setup_file", "extra_package", "save_main_session", "update", "transform_name_mapping",
    "streaming", "sdk_location", "impersonate_service_account", "enable_hot_key_logging"})
CLOSE_ENOUGH = 0.8  # difflib ratio: windw_size / window_size = 0.95, seeds / seed = 0.89


def check_unknown_args(beam_args: Sequence[str], beam_flags: Collection[str]) -> list[str]:
    """Before any work: refuses an argument that is neither ours nor Beam's and is close to one of
    ours (a misspelling that Beam would silently drop); returns a warning for every other unknown one.
    `beam_flags` are Beam's option names (without --); the launcher's options are always known."""
    ours = [param.name for param in PARAMS]
    known = set(ours) | set(beam_flags) | LAUNCHER_OPTIONS
    warnings, previous_takes_value = [], False
    for arg in beam_args:
        if not arg.startswith("-") or arg in ("-", "--"):
            if not previous_takes_value:
                warnings.append(f"unexpected argument {arg!r}: parameters are given as --name=value")
            previous_takes_value = False
            continue
        name = arg.lstrip("-").split("=", 1)[0]
        previous_takes_value = "=" not in arg
        if name in known:
            continue
        candidate = name.replace("-", "_")
        mine = difflib.get_close_matches(candidate, ours, n=1, cutoff=CLOSE_ENOUGH)
        theirs = difflib.get_close_matches(candidate, sorted(known - set(ours)), n=1, cutoff=CLOSE_ENOUGH)
        ratio = lambda other: difflib.SequenceMatcher(None, candidate, other).ratio()  # noqa: E731
        if mine and (not theirs or ratio(mine[0]) >= ratio(theirs[0])):
            raise UnknownArgument(name, mine[0])
        hint = f" (did you mean --{theirs[0]}?)" if theirs else ""
        warnings.append(f"unknown argument --{name}: neither a parameter of this pipeline nor a Beam option; "
                        f"Beam ignores it{hint}")
    return warnings


def _convert(param: Param, raw: str | None) -> Any:
    if raw is None:  # defaults are written as the template shows them; text defaults still convert
        return param.type(param.default) if isinstance(param.default, str) else param.default
    if param.choices and not param.open_choices and raw not in param.choices:
        raise ParameterError(param.name, raw, f"one of {', '.join(param.choices)}{suggestion(param, raw)}")
    if param.regex and not re.fullmatch(param.regex, raw):
        allowed = param.allowed() if callable(param.allowed) else param.allowed
        allowed = allowed or REGEX_MEANING.get(param.regex, f"must match {param.regex}")
        raise ParameterError(param.name, raw, allowed + suggestion(param, raw))
    try:
        return param.type(raw)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ParameterError(param.name, raw, str(exc)) from None


NO_FEATURES = "none"  # --features=none: no feature columns (what an emptied form field cannot say)


def feature_tuple(raw: str) -> tuple[str, ...]:
    if raw.strip() == NO_FEATURES:
        return ()
    return tuple(f for f in raw.split(",") if f)


def _parse_model_params(raw: str) -> dict:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ParameterError("model_params", raw, f"a JSON object ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise ParameterError("model_params", raw, "a JSON object such as {\"max_depth\": 3}")
    return value


def parse_args(argv: Sequence[str] | None,
               beam_flags: Collection[str] | None = None) -> tuple[PipelineParams, list[str]]:
    """Splits argv into our validated parameters and the remaining Beam/Dataflow flags.

    Other flags (--runner, --project, --temp_location, ...) pass through to Beam untouched, as the
    Flex Template launcher sends them. With `beam_flags` (Beam's option names), an unknown flag
    close to one of ours is refused and any other unknown one logged, before any value is checked.
    """
    known, beam_args = build_parser().parse_known_args(argv)
    if beam_flags is not None:
        for warning in check_unknown_args(beam_args, beam_flags):
            logging.getLogger("pipeline").warning("%s", warning)
    raw = vars(known)
    values = {p.name: _convert(p, raw[p.name]) for p in PARAMS}
    values["features"] = feature_tuple(values["features"])
    values["model_params"] = _parse_model_params(values["model_params"])
    try:  # JSON cannot be checked by a regex: parsed here, still before any work
        values["param_grid"] = json_value(values["param_grid"])
    except ValueError as exc:
        raise ParameterError("param_grid", values["param_grid"], str(exc)) from None
    for name in ("input", *TABLE_PARAMS, "bq_temp_location", "bq_temp_dataset"):
        values[name] = values[name] or None
    return PipelineParams(**values), beam_args
