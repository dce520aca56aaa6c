"""Checked access to a task's arguments: a bad value becomes a FunctionError saying what to fix."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from teeflow.functions.api import Context, FunctionError, OutputData

__all__ = [
    "check_known",
    "choice_arg",
    "float_arg",
    "int_arg",
    "int_list_arg",
    "output_slots",
    "str_arg",
]


PLATFORM_ARGUMENTS = frozenset({"memory_bytes"})
"""Arguments the enclave itself reads (teeflow.enclave.memory), accepted by every function."""


def check_known(ctx: Context, known: Iterable[str]) -> None:
    unknown = sorted(set(ctx.args) - set(known) - PLATFORM_ARGUMENTS)
    if unknown:
        raise FunctionError(
            f"unknown argument(s) {', '.join(unknown)}; this function accepts "
            f"{', '.join(sorted(known))}"
        )


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
