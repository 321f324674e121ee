"""ParDos whose side outputs Beam's exception handling knows about."""

from __future__ import annotations

import typing


def declare_outputs(pardo, *tags: str):
    """`pardo` with its main and side outputs declared: the wrapper `with_exception_handling` adds
    knows only declared tags, and Beam warns that the others are "requested in with_outputs() but
    not declared in type hints"."""
    return pardo.with_output_types(typing.Any, **{tag: typing.Any for tag in tags})
