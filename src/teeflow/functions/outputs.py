"""What a function's outputs are allowed to be, and the enclave's check that they are.

Every output slot of a task has a declaration: its *kind* and an upper bound on its size. A
built-in declares its outputs in the catalogue (``Builtin.declarations``, measured with the
enclave); an uploaded function declares them at upload, and the declarations travel in the
contract every participant signs (``contract.function.outputs``). After the function returns and
before anything is sealed, the enclave checks each output against its declaration and fails the
task with a public reason when one breaks it, so a "metrics" output cannot carry a copy of an
input. Kinds:

=========  ============================================================================
metrics    a JSON object of numbers (also booleans, null, labels of at most
           :data:`MAX_LABEL` characters, and lists or objects of these), at most
           :data:`MAX_METRICS_BYTES` bytes
table      UTF-8 text (CSV)
model      a model file (opaque bytes)
bytes      anything (opaque bytes)
=========  ============================================================================

A bound is ``base + scale * n`` bytes, where ``n`` is the plaintext size of every input
(``of="inputs"``) or of the input named like the slot (``of="slot"``: ``echo``'s ``X`` is bounded
by input ``X``, ``psi``'s ``flags:X`` by input ``X``); with ``scale`` 0 it is just ``base``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "KINDS",
    "MAX_LABEL",
    "MAX_METRICS_BYTES",
    "OutputDeclaration",
    "check_outputs",
    "declaration_for",
    "uploaded_declarations",
]

KINDS = ("metrics", "table", "model", "bytes")
MAX_METRICS_BYTES = 64 << 10
MAX_LABEL = 128
_MAX_DEPTH = 4


@dataclass(frozen=True)
class OutputDeclaration:
    """One output's kind and size bound (``base`` + ``scale`` x input bytes; None: unbounded)."""

    kind: str
    base: int | None
    scale: float = 0.0
    of: Literal["inputs", "slot"] = "inputs"

    def bound(self, slot: str, pattern: str, input_sizes: Mapping[str, int]) -> int | None:
        """The most bytes output ``slot`` (matched by ``pattern``) may hold, or None."""
        if self.base is None:
            return None
        if not self.scale:
            return self.base
        if self.of == "slot":
            prefix = pattern[:-1] if pattern.endswith("*") else pattern
            n = input_sizes.get(slot.removeprefix(prefix), 0)
        else:
            n = sum(input_sizes.values())
        return self.base + math.ceil(self.scale * n)

    def describe(self) -> str:
        """For a member's review, e.g. ``metrics, at most 4096 bytes``."""
        if self.base is None:
            return f"{self.kind}, no size bound"
        if not self.scale:
            return f"{self.kind}, at most {self.base} bytes"
        of = "the input of the same name" if self.of == "slot" else "all inputs"
        scale = f"{self.scale:g} x " if self.scale != 1 else ""
        return f"{self.kind}, at most {scale}the size of {of} + {self.base} bytes"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "base": self.base, "scale": self.scale, "of": self.of}


def uploaded_declarations(
    outputs: Mapping[str, Mapping[str, Any]],
) -> dict[str, OutputDeclaration]:
    """The declarations of an uploaded function, from its contract entry ``function.outputs``
    (``{slot: {"kind": ..., "max_bytes": n | None}}``); raises ValueError naming a bad one."""
    result: dict[str, OutputDeclaration] = {}
    for slot, spec in outputs.items():
        if not isinstance(spec, Mapping) or spec.get("kind") not in KINDS:
            raise ValueError(f"output {slot!r} must declare a kind: one of {', '.join(KINDS)}")
        limit = spec.get("max_bytes")
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0
        ):
            raise ValueError(f"output {slot!r}: max_bytes must be a positive integer")
        if spec["kind"] == "metrics" and (limit is None or limit > MAX_METRICS_BYTES):
            raise ValueError(f"output {slot!r}: metrics are at most {MAX_METRICS_BYTES} bytes")
        result[slot] = OutputDeclaration(spec["kind"], limit)
    return result


def declaration_for(
    slot: str, declarations: Mapping[str, OutputDeclaration]
) -> tuple[str, OutputDeclaration] | None:
    """``(pattern, declaration)`` for ``slot``: an exact name first, then the longest prefix
    pattern (``flags:*``, ``*``)."""
    if slot in declarations:
        return slot, declarations[slot]
    patterns = [p for p in declarations if p.endswith("*") and slot.startswith(p[:-1])]
    if not patterns:
        return None
    pattern = max(patterns, key=len)
    return pattern, declarations[pattern]


def _metrics_problem(data: bytes) -> str | None:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return "it is not JSON"
    if not isinstance(value, dict):
        return "it is not a JSON object"
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return f"it nests deeper than {_MAX_DEPTH} levels"
        if isinstance(item, dict):
            if any(len(str(key)) > MAX_LABEL for key in item):
                return f"a key is longer than {MAX_LABEL} characters"
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            if len(item) > MAX_LABEL:
                return f"it holds text longer than {MAX_LABEL} characters (metrics are numbers)"
        elif not (item is None or isinstance(item, bool | int | float)):
            return "it holds a value that is not a number"
    return None


def _problem(kind: str, data: bytes) -> str | None:
    if kind == "metrics":
        return _metrics_problem(data)
    if kind == "table":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "it is not UTF-8 text"
    return None


def check_outputs(
    outputs: Mapping[str, bytes],
    declarations: Mapping[str, OutputDeclaration],
    input_sizes: Mapping[str, int],
) -> str | None:
    """The public reason the first output that breaks its declaration is refused, or None.

    The reason names the slot, its kind and bound, and what is wrong in general terms; never a
    value, key or size of the output itself.
    """
    for slot, data in sorted(outputs.items()):
        found = declaration_for(slot, declarations)
        if found is None:
            return f"output {slot!r} breaks its declaration: the function declares no such output"
        pattern, declaration = found
        limit = declaration.bound(slot, pattern, input_sizes)
        if declaration.kind == "metrics":
            limit = MAX_METRICS_BYTES if limit is None else min(limit, MAX_METRICS_BYTES)
        problem = None
        if limit is not None and len(data) > limit:
            problem = f"it is larger than its bound of {limit} bytes"
        problem = problem or _problem(declaration.kind, data)
        if problem:
            return f"output {slot!r} breaks its declaration ({declaration.describe()}): {problem}"
    return None
