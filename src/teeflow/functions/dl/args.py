"""Checked access to a task's arguments: a bad value becomes a FunctionError saying what to fix."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from teeflow.functions.api import Context, FunctionError, OutputData
from teeflow.functions.declarations import PLATFORM_ARGUMENTS, Argument, Signature

__all__ = [
    "check_known",
    "choice_arg",
    "declared_choice",
    "declared_float",
    "declared_int",
    "declared_int_list",
    "float_arg",
    "int_arg",
    "int_list_arg",
    "output_slots",
    "str_arg",
]


def check_known(ctx: Context, signature: Signature) -> None:
    """FunctionError naming each argument that ``signature`` (the built-in's declaration,
    functions/builtins/signatures.py) does not declare; the platform's own arguments
    (declarations.PLATFORM_ARGUMENTS, e.g. ``memory_bytes``) are accepted by every function."""
    known = {arg.name for arg in signature.arguments}
    platform = {arg.name for arg in PLATFORM_ARGUMENTS}
    unknown = sorted(set(ctx.args) - known - platform)
    if unknown:
        raise FunctionError(
            f"unknown argument(s) {', '.join(unknown)}; this function accepts "
            f"{', '.join(sorted(known))}"
        )


def _declared(signature: Signature, name: str) -> Argument:
    declared = signature.argument(name)
    if declared is None:  # a built-in reading an argument it does not declare: a bug here
        raise LookupError(f"argument {name!r} is not declared")
    return declared


def _bounds(arg: Argument) -> tuple[float, float]:
    if arg.low is None or arg.high is None:  # a declaration without bounds: a bug here
        raise LookupError(f"argument {arg.name!r} declares no bounds")
    return arg.low, arg.high


def declared_int(ctx: Context, signature: Signature, name: str) -> int:
    """Argument ``name`` as an int, with the default and bounds ``signature`` declares."""
    arg = _declared(signature, name)
    low, high = _bounds(arg)
    return int_arg(ctx, name, int(arg.default), low=int(low), high=int(high))


def declared_float(
    ctx: Context, signature: Signature, name: str, *, default: float | None = None
) -> float:
    """Argument ``name`` as a float, bounded as ``signature`` declares; its default is the
    declared one, or ``default`` where the declaration leaves it to the function (a model's
    own threshold, a model kind's learning rate)."""
    arg = _declared(signature, name)
    low, high = _bounds(arg)
    fallback = arg.default if default is None else default
    return float_arg(ctx, name, float(fallback), low=float(low), high=float(high))


def declared_int_list(ctx: Context, signature: Signature, name: str) -> list[int]:
    """Argument ``name`` as layer sizes (:func:`int_list_arg`), defaulting as declared."""
    return int_list_arg(ctx, name, list(_declared(signature, name).default))


def declared_choice(ctx: Context, signature: Signature, name: str) -> str:
    """Argument ``name``, one of the choices ``signature`` declares (default: the declared)."""
    arg = _declared(signature, name)
    return choice_arg(ctx, name, str(arg.default), arg.choices)


def int_arg(ctx: Context, name: str, default: int, *, low: int, high: int) -> int:
    value = ctx.arg(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FunctionError(f"argument {name!r} must be an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise FunctionError(f"argument {name!r} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise FunctionError(f"argument {name!r} must be between {low} and {high}, got {number}")
    return number


def float_arg(ctx: Context, name: str, default: float, *, low: float, high: float) -> float:
    value = ctx.arg(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FunctionError(f"argument {name!r} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise FunctionError(f"argument {name!r} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise FunctionError(f"argument {name!r} must be between {low} and {high}, got {number}")
    return number


def choice_arg(ctx: Context, name: str, default: str, choices: Collection[str]) -> str:
    value = ctx.arg(name, default)
    if value not in choices:
        raise FunctionError(
            f"argument {name!r} must be one of {', '.join(sorted(choices))}, got {value!r}"
        )
    return str(value)


def str_arg(ctx: Context, name: str, default: str | None = None) -> str | None:
    value = ctx.arg(name, default)
    if value is not None and not isinstance(value, str):
        raise FunctionError(f"argument {name!r} must be a string, got {value!r}")
    return value


def int_list_arg(ctx: Context, name: str, default: list[int]) -> list[int]:
    """A list of positive ints, given as a list or a comma-separated string ("64,32")."""
    value: Any = ctx.arg(name, default)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    try:
        sizes = [int(size) for size in value]
    except (TypeError, ValueError):
        raise FunctionError(
            f"argument {name!r} must be a list of layer sizes such as [64, 32]"
        ) from None
    if not sizes or any(not 1 <= size <= 4096 for size in sizes):
        raise FunctionError(f"argument {name!r} needs 1 to 4096 units per layer, got {value!r}")
    return sizes


def output_slots(
    ctx: Context, *, allowed: Collection[str], required_any: Collection[str]
) -> dict[str, OutputData]:
    """The contract's output slots, checked against what this function can write."""
    unknown = sorted(set(ctx.outputs) - set(allowed))
    if unknown:
        raise FunctionError(
            f"unknown output slot(s) {', '.join(unknown)}; this function writes "
            f"{', '.join(sorted(allowed))}"
        )
    if not set(ctx.outputs) & set(required_any):
        raise FunctionError(f"the task needs an output slot named one of {', '.join(required_any)}")
    return dict(ctx.outputs)
