"""The Flex Template's metadata.json, generated from the parameters declared in `catalog.PARAMS`.

    python -m pipeline.params.metadata > metadata.json      (or: make metadata)

The file is never edited by hand; a test fails when it drifts from the code.
Each `Param` becomes one Dataflow `ParameterMetadata` (the schema is in Dataflow's
v1b3 discovery document): its label, help text, Console group, `paramType`, the
regexes the service and the Console check, ENUM options, and the default.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Iterable

from pipeline.params.catalog import PARAMS
from pipeline.params.declare import Param

TEMPLATE_NAME = "Many models: one model per key and sliding time window"
TEMPLATE_DESCRIPTION = (
    "Runs a SQL query, cuts each key's rows into sliding time windows, trains one model per key x "
    "window on the window's first periods and predicts its last ones. Writes predictions next to "
    "actuals and a naive baseline, metrics per key x window, a ledger of trained/skipped/failed "
    "groups, rejected rows and a run summary.")

# Python-only regex syntax that Java (the service) or JavaScript (the Console) reads differently.
_NON_PORTABLE = (r"(?P", r"(?<", r"\A", r"\Z", r"(?i", r"(?s", r"(?m", r"(?x", r"(?a")


def choices_regex(choices: Iterable[str]) -> str:
    return "^(" + "|".join(re.escape(choice) for choice in choices) + ")$"


def regexes_for(param: Param) -> list[str]:
    """The regexes a value must match: the declared one, or the set of choices."""
    if param.regex:
        regex = param.regex
    elif param.choices:
        regex = choices_regex(param.choices)
    else:
        return []
    if not (regex.startswith("^") and regex.endswith("$")):
        raise ValueError(f"regex of --{param.name} must be anchored with ^...$: {regex}")
    for syntax in _NON_PORTABLE:
        if syntax in regex:
            raise ValueError(f"regex of --{param.name} uses {syntax!r}, which Dataflow reads differently")
    re.compile(regex)
    return [regex]


def as_text(value) -> str | None:
    """A value as it is typed on the command line; None for "not given"."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def default_text(param: Param) -> str | None:
    """The default the template pre-fills; None when there is nothing to pre-fill."""
    return None if param.required_on_dataflow else as_text(param.default)


def help_text(param: Param) -> str:
    text = param.help
    if param.example and (param.example != param.default or param.required_on_dataflow):
        text += f" Example: {param.example}"
    return text


def enum_options(param: Param) -> list[dict]:
    descriptions = dict(param.choice_help)
    unknown = set(descriptions) - set(param.choices)
    if unknown:
        raise ValueError(f"--{param.name}: descriptions for unknown choices {sorted(unknown)}")
    options = []
    for choice in param.choices:
        option = {"value": choice, "label": choice}
        if choice in descriptions:
            option["description"] = descriptions[choice]
        options.append(option)
    return options


def parameter_metadata(param: Param) -> dict:
    """One Dataflow ParameterMetadata."""
    entry = {
        "name": param.name,
        "label": param.label,
        "helpText": help_text(param),
        "groupName": param.group,
        "isOptional": param.is_optional,
        "paramType": param.param_type,
    }
    regexes = regexes_for(param)
    if regexes:
        entry["regexes"] = regexes
    if param.choices:
        entry["enumOptions"] = enum_options(param)
    elif param.param_type == "ENUM":
        raise ValueError(f"--{param.name} is an ENUM without choices")
    default = default_text(param)
    if default is not None:
        entry["defaultValue"] = default
    return entry


def template_metadata(params: Iterable[Param] = PARAMS) -> dict:
    """The whole metadata.json document (a Dataflow TemplateMetadata)."""
    return {
        "name": TEMPLATE_NAME,
        "description": TEMPLATE_DESCRIPTION,
        "parameters": [parameter_metadata(param) for param in params],
    }


def render(params: Iterable[Param] = PARAMS) -> str:
    return json.dumps(template_metadata(params), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
