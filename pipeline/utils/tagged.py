"""ParDos whose side outputs Beam's exception handling knows about."""

from __future__ import annotations

import typing



def declare_outputs(pardo, *tags: str):
    """`pardo` with its main and side outputs declared: the wrapper `with_exception_handling` adds
    knows only declared tags, and Beam warns that the others are "requested in with_outputs() but
    not declared in type hints"."""
    return pardo.with_output_types(typing.Any, **{tag: typing.Any for tag in tags})


# What a row's or a group's content can raise (pandas' and Arrow's parse errors are ValueErrors): these
# alone may become dead letters. OSError (a full disk, a lost connection) and MemoryError are the
# infrastructure's: they fail the bundle, so that the runner retries it and, if they persist, the job fails.
DATA_ERRORS = (ValueError, TypeError, LookupError, ArithmeticError)
INFRASTRUCTURE_ERRORS = (OSError, MemoryError)  # re-raised wherever a broader clause would record them

# What a group's step can raise outside its fit and still be the group's own failure (our code meeting a
# shape nobody foresaw): Beam's exception handling around the fit stages takes these alone.
GROUP_ERRORS = DATA_ERRORS + (RuntimeError, AttributeError, AssertionError)


def reraise_infrastructure(exc: BaseException) -> None:
    """Re-raises `exc` if it is the infrastructure's (a full disk, a lost connection, memory), for the
    `except Exception` around a fit, where a user's model may raise anything else. An error that names its
    own ledger reason stays the group's: a fit's time limit (utils.deadline.CallTimeout) is a TimeoutError,
    and so an OSError."""
    if isinstance(exc, INFRASTRUCTURE_ERRORS) and not getattr(exc, "ledger_reason", None):
        raise exc

