"""The README's parameter table, generated from `catalog.PARAMS`.

    python -m pipeline.params.docs               prints the table
    python -m pipeline.params.docs README.md     rewrites the table in place (or: make docs)

The table sits between BEGIN and END below; a test fails when it drifts from the code.
"""

from __future__ import annotations

import sys
from typing import Iterable

from pipeline.params.metadata import as_text, regexes_for
from pipeline.params.catalog import PARAMS
from pipeline.params.declare import Param

BEGIN = "<!-- generated from pipeline/params/catalog.py: python -m pipeline.params.docs -->"
END = "<!-- end of generated parameter table -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def allowed(param: Param) -> str:
    if param.choices:
        return ", ".join(f"`{choice}`" for choice in param.choices)
    if param.dataflow_regex:
        local = f"`{_cell(param.regex)}`" if param.regex else "any text"
        return f"on Dataflow `{_cell(param.dataflow_regex)}`; locally {local}"
    regexes = regexes_for(param)
    return f"`{_cell(regexes[0])}`" if regexes else "any text"


def form_note(param: Param) -> str:
    """Where the Console form shows the parameter, when not always."""
    if param.parent:
        values = " or ".join(f"`{value}`" for value in param.parent_values) or "set"
        return f" *Form: shown when `{param.parent}` is {values}.*"
    if param.hidden:
        return " *Form: folded away (a tuning knob).*"
    return ""


def table(params: Iterable[Param] = PARAMS) -> str:
    lines = ["| parameter | group | default | allowed | what it does |", "|---|---|---|---|---|"]
    for param in params:
        default = as_text(param.default)
        default = f"`{_cell(default)}`" if default else "—"
        if param.required_on_dataflow:
            default += " (locally; required on Dataflow)"
        elif not param.prefill and default != "—":
            default += " (locally; not pre-filled on Dataflow)"
        lines.append(f"| `{param.name}` | {param.group} | {default} | "
                     f"{allowed(param)} | {_cell(param.help)}{form_note(param)} |")
    return "\n".join(lines)


def block() -> str:
    return f"{BEGIN}\n{table()}\n{END}"


def rewrite(text: str) -> str:
    """`text` with its generated block replaced (a bare BEGIN line grows into a full block)."""
    start = text.index(BEGIN)
    end = text.index(END, start) + len(END) if END in text[start:] else start + len(BEGIN)
    return text[:start] + block() + text[end:]


def main(argv: list[str]) -> int:
    if not argv:
        print(table())
        return 0
    with open(argv[0]) as handle:
        text = handle.read()
    with open(argv[0], "w") as handle:
        handle.write(rewrite(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
