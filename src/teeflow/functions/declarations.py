"""Typed declarations of a built-in's arguments and input slots, checked on both sides.

A member's client checks a proposal's arguments against the declaration before anything is sent
(client/_declared.py), and the enclave checks the contract's arguments against the same
declaration before it unwraps a key (enclave/checks.py): a client that skips the check gains
nothing. At approval, each member's client checks its own dataset's schema summary against the
declared input slots (:meth:`Signature.required_columns`).

    Argument        one argument: type, range or choices, default, required, meaning
    Column          a column an input table must hold, named by an argument or a default
    InputSlot       one input slot (or every unnamed slot): kind, formats, required columns
    Signature       a built-in's arguments and inputs; ``check_arguments`` raises ArgumentError

Pure data and checks, no I/O: it runs in the enclave too.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "PLATFORM_ARGUMENTS",
    "Argument",
    "ArgumentError",
    "Column",
    "InputSlot",
    "Signature",
]

ArgType = Literal[
    "int", "float", "bool", "str", "enum", "int_list", "float_list", "enum_list", "str_list",
    "size", "mapping", "object", "scalar",
]  # fmt: skip
InputKind = Literal["table", "images", "model", "ids", "any"]


class ArgumentError(ValueError):
    """Arguments that break a declaration; ``problems`` lists each one, ``str()`` says all of
    them and the accepted arguments with their types."""

    def __init__(self, problems: list[str], accepted: str) -> None:
        super().__init__(f"{'; '.join(problems)}. Accepted arguments: {accepted}")
        self.problems = problems


def _number(value: Any, *, integer: bool) -> float | None:
    """``value`` as a number (an int, a float for non-integers, or a numeric string, as the
    built-ins read them); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            return None
    if integer and not isinstance(value, int):
        return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(number: float) -> str:
    """``1048576`` rather than ``1.04858e+06``; ``1e-07`` stays short."""
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e16 else f"{number:g}"


@dataclass(frozen=True)
class Argument:
    """One argument a built-in reads. ``low``/``high`` bound numbers (and list items);
    ``choices`` are the values of an ``enum`` (or the items of an ``enum_list``); ``keys`` bound
    an ``object``'s fields, each as ``(name, low, high)``."""

    name: str
    type: ArgType
    meaning: str
    default: Any = None
    required: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    keys: tuple[tuple[str, float, float], ...] = ()
    max_items: int = 64
    extra_keys: tuple[str, ...] = ()
    """Keys a ``mapping`` accepts besides the task's input slots (e.g. ``request``)."""
    text_numbers: bool = True
    """Whether an ``int``/``float`` may be given as a numeric string (``"5"``), as the
    built-ins' own readers accept; the enclave's session limits take numbers only."""
    nullable: bool = False
    """Whether an explicit null means "the default" (e.g. ``decimals``)."""

    def type_text(self) -> str:
        """A short human form of the type, e.g. ``int 1..1000`` or ``one of cnn, resnet18``."""
        bounds = ""
        if self.low is not None and self.high is not None:
            bounds = f" {_fmt(self.low)}..{_fmt(self.high)}"
        text = {
            "enum": f"one of {', '.join(self.choices)}",
            "enum_list": f"list of {', '.join(self.choices)}",
            "int_list": f"list of int{bounds}",
            "float_list": f"list of 1 to {self.max_items} numbers",
            "size": f"int{bounds} or [height, width]",
            "mapping": "{input slot: column name}",
            "object": "{" + ", ".join(key for key, _, _ in self.keys) + "}",
            "scalar": "string or number",
            "str_list": "list of names",
        }.get(self.type, f"{self.type}{bounds}")
        return text

    def _in_range(self, number: float) -> bool:
        return (self.low is None or number >= self.low) and (
            self.high is None or number <= self.high
        )

    def problem(self, value: Any, *, slots: Collection[str] | None = None) -> str | None:
        """What is wrong with ``value`` for this argument, or None when it is fine."""
        wrong = f"argument `{self.name}` must be {self.type_text()}, got {value!r}"
        if value is None and self.nullable:
            return None
        if isinstance(value, str) and self.type in ("int", "float") and not self.text_numbers:
            return wrong
        if self.type in ("int", "float"):
            number = _number(value, integer=self.type == "int")
            return None if number is not None and self._in_range(number) else wrong
        if self.type == "bool":
            return None if isinstance(value, bool) else wrong
        if self.type == "str":
            return None if isinstance(value, str) and value else wrong
        if self.type == "scalar":
            ok = isinstance(value, str | int | float) and not isinstance(value, bool)
            return None if ok else wrong
        if self.type == "enum":
            return None if value in self.choices else wrong
        if self.type == "size":
            items = [value, value] if isinstance(value, int) else value
            ok = isinstance(items, list) and len(items) == 2
            return None if ok and self._all_ints(items) else wrong
        if self.type in ("int_list", "float_list", "enum_list", "str_list"):
            return None if self._list_ok(value) else wrong
        if self.type == "mapping":
            return self._mapping_problem(value, wrong, slots)
        if self.type == "object":
            return self._object_problem(value, wrong)
        return wrong

    def _all_ints(self, items: list[Any]) -> bool:
        return all(
            isinstance(item, int) and not isinstance(item, bool) and self._in_range(item)
            for item in items
        )

    def _list_ok(self, value: Any) -> bool:
        if self.type == "int_list":
            if isinstance(value, str):  # "64,32", as the built-in reads it
                value = [part.strip() for part in value.split(",") if part.strip()]
            items = value if isinstance(value, list) else [value]
            numbers = [_number(item, integer=True) for item in items]
            return bool(numbers) and all(n is not None and self._in_range(n) for n in numbers)
        if self.type == "enum_list":
            items = [value] if isinstance(value, str) else value
            return isinstance(items, list) and all(item in self.choices for item in items)
        if self.type == "float_list":
            items = value if isinstance(value, list) else [value]
            return 1 <= len(items) <= self.max_items and all(
                _number(item, integer=False) is not None and not isinstance(item, str)
                for item in items
            )
        return (
            isinstance(value, list)
            and 1 <= len(value) <= self.max_items
            and all(isinstance(item, str) and item for item in value)
        )

    def _mapping_problem(self, value: Any, wrong: str, slots: Collection[str] | None) -> str | None:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
        ):
            return wrong
        unknown = (
            sorted(set(value) - set(slots) - set(self.extra_keys)) if slots is not None else []
        )
        if unknown:
            return (
                f"argument `{self.name}` names input slot(s) {', '.join(unknown)}, which this "
                f"task does not have; its slots are {', '.join(sorted(slots or []))}"
            )
        return None

    def _object_problem(self, value: Any, wrong: str) -> str | None:
        names = {key for key, _, _ in self.keys}
        if not isinstance(value, dict) or set(value) - names:
            return wrong
        for key, low, high in self.keys:
            if key not in value:
                continue
            number = _number(value[key], integer=False)
            if number is None or isinstance(value[key], str) or not low <= number <= high:
                return f"argument `{self.name}.{key}` must be a number {low:g}..{high:g}"
        return None


PLATFORM_ARGUMENTS = (
    Argument(
        "memory_bytes",
        "int",
        "enclave memory the task may use, in bytes (default: estimated from the inputs)",
        low=1,
        high=2**50,
    ),
)
"""Arguments the enclave itself reads (enclave/memory.py), accepted by every built-in."""


@dataclass(frozen=True)
class Column:
    """A column an input table must hold. Its name is the argument ``argument``'s value, else
    ``default``; with ``per_slot`` (e.g. ``id_columns``) a slot may name its own. ``when`` says
    in which tables it is needed: ``always``; ``named`` (only when an argument names it);
    ``pooled`` (every table when rows are pooled: partition ``rows``, or a single table)."""

    meaning: str
    argument: str | None = None
    default: str | None = None
    per_slot: str | None = None
    when: Literal["always", "named", "pooled"] = "always"
    unless_single_column: bool = False
    """Not needed in a one-column table (a plain list of ids, as psi also reads)."""

    def name_for(self, slot: str, args: Mapping[str, Any]) -> str | None:
        per_slot = args.get(self.per_slot) if self.per_slot else None
        if isinstance(per_slot, Mapping) and isinstance(per_slot.get(slot), str):
            return str(per_slot[slot])
        named = args.get(self.argument) if self.argument else None
        return named if isinstance(named, str) else self.default


@dataclass(frozen=True)
class InputSlot:
    """An input slot by name, or ``*`` for every slot not named otherwise."""

    name: str
    kind: InputKind
    formats: tuple[str, ...]
    meaning: str
    columns: tuple[Column, ...] = ()


@dataclass(frozen=True)
class Signature:
    """What a built-in takes: its arguments and its input slots."""

    arguments: tuple[Argument, ...] = ()
    inputs: tuple[InputSlot, ...] = ()
    rules: tuple[str, ...] = field(default=())
    """Extra rules in words (e.g. "mean and std go together"), for the docs."""

    def argument(self, name: str) -> Argument | None:
        return next((a for a in (*self.arguments, *PLATFORM_ARGUMENTS) if a.name == name), None)

    def accepted(self) -> str:
        """Every accepted argument with its type, e.g. ``epochs (int 1..1000, default 5)``."""
        parts = []
        for arg in self.arguments:
            extra = ", required" if arg.required else ""
            if arg.default is not None:
                extra += f", default {arg.default!r}"
            parts.append(f"{arg.name} ({arg.type_text()}{extra})")
        return "; ".join(parts) if parts else "none"

    def check_arguments(
        self, args: Mapping[str, Any], *, slots: Collection[str] | None = None
    ) -> None:
        """Raise ArgumentError for an unknown, mistyped, out-of-range or missing argument.

        ``slots`` (the task's input slots) lets a per-slot mapping such as ``id_columns`` be
        checked against them."""
        problems: list[str] = []
        known = [a.name for a in self.arguments]
        for name in sorted(args):
            declared = self.argument(str(name))
            if declared is None:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                problems.append(f"unknown argument `{name}`{hint}")
                continue
            problem = declared.problem(args[name], slots=slots)
            if problem:
                problems.append(problem)
        problems += [
            f"argument `{a.name}` is required"
            for a in self.arguments
            if a.required and a.name not in args
        ]
        if problems:
            raise ArgumentError(problems, self.accepted())

    def slot(self, name: str) -> InputSlot | None:
        """The declaration of input slot ``name`` (a named one, else ``*``)."""
        named = {s.name: s for s in self.inputs}
        return named.get(name) or named.get("*")

    def required_columns(
        self, slot: str, args: Mapping[str, Any], *, table_slots: Collection[str]
    ) -> list[tuple[str, Column]]:
        """``(column name, its declaration)`` for each column table ``slot`` must hold under
        ``args``; ``table_slots`` are the task's table inputs (a single table pools no rows)."""
        declared = self.slot(slot)
        if declared is None:
            return []
        pooled = args.get("partition") == "rows" or len(table_slots) <= 1
        needed = []
        for column in declared.columns:
            name = column.name_for(slot, args)
            named = (column.argument in args) or (
                column.per_slot is not None and slot in (args.get(column.per_slot) or {})
            )
            if name is None or (column.when == "named" and not named):
                continue
            if column.when == "named" and args.get("partition") == "rows":
                continue
            if column.when == "pooled" and not pooled:
                continue
            needed.append((name, column))
        return needed


def describe_signature(signature: Signature) -> dict[str, Any]:
    """The signature as plain JSON: ``{"arguments": [...], "inputs": [...], "rules": [...]}``,
    each argument with name, type (and ``type_text``), meaning, default, required, bounds."""
    arguments = [
        {
            "name": arg.name,
            "type": arg.type,
            "type_text": arg.type_text(),
            "meaning": arg.meaning,
            "default": arg.default,
            "required": arg.required,
            "low": arg.low,
            "high": arg.high,
            "choices": list(arg.choices),
        }
        for arg in signature.arguments
    ]
    inputs = [
        {
            "slot": slot.name,
            "kind": slot.kind,
            "formats": list(slot.formats),
            "meaning": slot.meaning,
            "columns": [column_text(column) for column in slot.columns],
        }
        for slot in signature.inputs
    ]
    return {"arguments": arguments, "inputs": inputs, "rules": list(signature.rules)}


def column_text(column: Column) -> str:
    """A required column in words, e.g. ``the label column (named by label_column)``."""
    named = f"named by `{column.argument}`" if column.argument else ""
    if column.default:
        named += f", default `{column.default}`"
    if column.per_slot:
        named += f"; per input by `{column.per_slot}`"
    when = {
        "always": "",
        "named": ", when an argument names it (not with partition rows)",
        "pooled": ", in every table when rows are pooled (partition rows, or a single table)",
    }[column.when]
    lenient = ", unless the input is a plain list of ids" if column.unless_single_column else ""
    return f"{column.meaning} ({named.lstrip(', ')}){when}{lenient}"
