"""A member's own checks against a built-in's declaration (functions/declarations.py).

Before a proposal is sent: its arguments (unknown, mistyped, out of range, missing). Before an
approval is signed: the member's own input datasets, through the schema summary its client
recorded when it checked the file at upload (client/_schema.py), against the declared input
slots (kind, format, required columns, class folders). Both raise ClientError in the member's
terms; nothing has left the machine, so the member fixes the data or the proposer re-proposes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teeflow.client._errors import ClientError
from teeflow.client._home import MemberHome
from teeflow.functions.declarations import ArgumentError, InputSlot, Signature
from teeflow.functions.registry import builtin_catalogue

__all__ = ["check_own_inputs", "check_proposal"]

_FORMAT_KINDS = {"csv": "table", "parquet": "table", "zip": "images", "npz": "images"}


def _signature(function: str) -> Signature | None:
    builtin = builtin_catalogue().get(function)
    return None if builtin is None else builtin.signature


def check_proposal(
    function: str, *, arguments: Mapping[str, Any], inputs: Mapping[str, str]
) -> None:
    """ClientError, listing the accepted arguments with their types, when ``arguments`` break
    the declaration of built-in ``function`` (an uploaded function declares none: not checked)."""
    signature = _signature(function)
    if signature is None:
        return
    try:
        signature.check_arguments(arguments, slots=list(inputs))
    except ArgumentError as exc:
        raise ClientError(f"{function}: {exc}") from None


def check_own_inputs(contract: Mapping[str, Any], *, me: str, home: MemberHome) -> list[str]:
    """Check each input dataset ``me`` alone owns against the contract's built-in declaration.

    Raises ClientError naming the dataset, the slot and what is missing; returns a note for a
    dataset with no recorded schema summary (uploaded before the check, or as raw bytes)."""
    function = contract["function"]
    signature = _signature(function["name"]) if function.get("kind") == "builtin" else None
    if signature is None:
        return []
    arguments: Mapping[str, Any] = contract.get("arguments") or {}
    inputs: Mapping[str, Mapping[str, Any]] = contract["inputs"]
    table_slots = [
        slot
        for slot in inputs
        if (declared := signature.slot(slot)) is not None and declared.kind == "table"
    ]
    notes: list[str] = []
    for slot, spec in sorted(inputs.items()):
        declared = signature.slot(slot)
        if spec.get("joint") or spec["owners"] != [me] or declared is None:
            continue
        if declared.kind in ("model", "any"):  # nothing a schema summary could check
            continue
        record = home.dataset_record(spec["dataset_id"]) or {}
        schema = record.get("schema")
        label = f"your dataset {record.get('name') or spec['dataset_id']!r} (input {slot!r})"
        if not isinstance(schema, Mapping):
            notes.append(f"{label}: no schema summary was recorded at upload; not checked")
            continue
        _check_kind(label, declared, schema, function["name"])
        if declared.kind in ("table", "ids") and "columns" in schema:
            _check_columns(label, slot, signature, schema, arguments, table_slots)
    return notes


def _check_kind(label: str, declared: InputSlot, schema: Mapping[str, Any], function: str) -> None:
    kind = _FORMAT_KINDS.get(str(schema.get("format")))
    wanted = "table" if declared.kind == "ids" else declared.kind
    if kind is None or wanted in ("any", "model") or kind == wanted:
        if kind == "images" and wanted == "images" and not schema.get("classes"):
            raise ClientError(f"{label} holds no class folders; {function} needs labelled images")
        return
    raise ClientError(
        f"{label} is {schema.get('format')} ({kind}), but {function} takes {wanted} data in this "
        f"slot ({', '.join(declared.formats)}); propose it in another slot or upload other data"
    )


def _check_columns(
    label: str,
    slot: str,
    signature: Signature,
    schema: Mapping[str, Any],
    arguments: Mapping[str, Any],
    table_slots: list[str],
) -> None:
    have = [str(column["name"]) for column in schema["columns"]]
    for name, column in signature.required_columns(slot, arguments, table_slots=table_slots):
        if name in have or (column.unless_single_column and len(have) == 1):
            continue
        source = f" (the argument `{column.argument}`)" if column.argument in arguments else ""
        raise ClientError(
            f"{label} has no column {name!r}, {column.meaning}{source}; its columns are "
            f"{', '.join(have)}. Upload a table with that column, or ask the proposer to "
            "propose again with the column your table has"
        )
