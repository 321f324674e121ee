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
from pipeline.params.declare import GROUPS, Param

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
    """The regexes a value must match on Dataflow: the Dataflow-only rule, the declared one, or the
    set of choices."""
    if param.dataflow_regex or param.regex:
        regex = param.dataflow_regex or param.regex
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
    return None if param.required_on_dataflow or not param.prefill else as_text(param.default)


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
    if param.param_type == "ENUM" and param.choices:
        entry["enumOptions"] = enum_options(param)
    elif param.param_type == "ENUM":
        raise ValueError(f"--{param.name} is an ENUM without choices")
    default = default_text(param)
    if default is not None:
        entry["defaultValue"] = default
    if param.parent:
        entry["parentName"] = param.parent
        if param.parent_values:
            entry["parentTriggerValues"] = list(param.parent_values)
    if param.hidden:
        entry["hiddenUi"] = True
    return entry


def parent_values(param: Param) -> tuple[str, ...]:
    """The values a parent can take in the form: its choices, true/false, or () for free text."""
    if param.param_type == "BOOLEAN":
        return ("true", "false")
    return param.choices


def check_conditions(params: Iterable[Param]) -> None:
    """The form's conditional structure is sound: each parent is an earlier parameter, each trigger
    value is one of the parent's values (a free-text parent triggers on any value), no cycle."""
    seen: dict[str, Param] = {}
    for param in params:
        if param.parent:
            parent = seen.get(param.parent)
            if parent is None:
                raise ValueError(f"--{param.name}: parent {param.parent!r} is not a parameter declared before it")
            allowed = parent_values(parent)
            if param.parent_values and not allowed:
                raise ValueError(f"--{param.name}: trigger values {list(param.parent_values)} for {parent.name!r}, "
                                 "a free-text parameter (leave them empty: any value shows it)")
            unknown = [value for value in param.parent_values if value not in allowed]
            if unknown:
                raise ValueError(f"--{param.name}: trigger values {unknown} are not values of {parent.name!r} "
                                 f"({', '.join(allowed)})")
        elif param.parent_values:
            raise ValueError(f"--{param.name}: trigger values without a parent")
        seen[param.name] = param


def by_group(params: Iterable[Param]) -> list[Param]:
    """The form's order: group by group (GROUPS), each group's parameters in their declared order."""
    return sorted(params, key=lambda param: GROUPS.index(param.group))


def template_metadata(params: Iterable[Param] = PARAMS) -> dict:
    """The whole metadata.json document (a Dataflow TemplateMetadata)."""
    params = tuple(by_group(params))
    check_conditions(params)
    return {
        "name": TEMPLATE_NAME,
        "description": TEMPLATE_DESCRIPTION,
        "parameters": [parameter_metadata(param) for param in by_group(params)],
    }


def render(params: Iterable[Param] = PARAMS) -> str:
    return json.dumps(template_metadata(params), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
