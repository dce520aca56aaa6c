"""Who receives anything computed from a member's inputs: the heart of its review (issue 17).

The enclave cannot tell which output depends on which input, so a careful member assumes every
output, every disclosed progress or error message and every answer of a session depends on every
input. :func:`audience` lists, per input of ``me``, everyone who will receive something computed
from it and through what; :func:`exposure_warnings` warns whenever that is anyone but ``me``,
whatever else the recipient list holds (being a recipient too protects nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "CARRIES_STATISTICS",
    "REVEALS",
    "audience",
    "exposure_warnings",
    "output_declaration_warnings",
    "statistics_warnings",
]

REVEALS = {
    "echo": "your input byte for byte",
    "psi": "which of your ids the other parties' tables hold (and so your ids themselves)",
    "private-join-sum": "your ids that the other tables hold and your amounts summed into theirs",
}
"""What a built-in's outputs reveal of the inputs, named in the warning."""

CARRIES_STATISTICS = {"tabular-train": "model"}
"""Built-ins whose output slot is a model file carrying statistics of every feature column
(docs/model-format.md): means and standard deviations of numeric columns, the category values of
text columns, and for ``model: gbdt`` LightGBM split thresholds on them."""


def audience(contract: Mapping[str, Any], me: str) -> dict[str, dict[str, list[str]]]:
    """``{my input slot: {channel: sorted names}}`` for every input ``me`` owns (alone or
    jointly); channels are ``output 'X'``, ``joint output 'X'``, ``progress messages``,
    ``error messages`` and ``session answers``."""
    channels: dict[str, list[str]] = {}
    for slot, spec in sorted(contract["outputs"].items()):
        if spec.get("joint_owners"):
            channels[f"joint output {slot!r}"] = sorted(spec["joint_owners"])
        else:
            channels[f"output {slot!r}"] = sorted(spec.get("recipients") or [])
    for channel, names in sorted(contract.get("disclosure", {}).items()):
        what = {"errors": "error"}.get(channel, channel)
        channels[f"{what} messages"] = sorted(names)
    requesters = contract.get("arguments", {}).get("requesters")
    if isinstance(requesters, list):
        channels["session answers"] = sorted(str(name) for name in requesters)
    return {
        slot: dict(channels)
        for slot, spec in sorted(contract["inputs"].items())
        if me in spec["owners"]
    }


def exposure_warnings(contract: Mapping[str, Any], me: str) -> list[str]:
    """One warning per (input of mine, channel) that reaches anyone but ``me``."""
    function = contract["function"]
    reveals = REVEALS.get(function["name"]) if function["kind"] == "builtin" else None
    warnings: list[str] = []
    for slot, channels in audience(contract, me).items():
        for channel, names in channels.items():
            others = [name for name in names if name != me]
            if not others:
                continue
            if channel.startswith("joint"):
                how = "co-owned with them: usable in any later task that you approve too"
            else:
                how = f"readable by {', '.join(names)}"
            message = f"your input {slot!r} reaches {', '.join(others)} through {channel} ({how})"
            if reveals and channel.startswith("output"):
                message += f"; it reveals {reveals}"
            warnings.append(message)
    return warnings


def output_declaration_warnings(contract: Mapping[str, Any], me: str) -> list[str]:
    """Outputs of an uploaded function, computed from ``me``'s inputs, that it declared as
    opaque or unbounded (a model or bytes output can hold a copy of any input)."""
    function = contract["function"]
    if function["kind"] != "uploaded" or not audience(contract, me):
        return []
    declared = function.get("outputs") or {}
    warnings = []
    for slot in sorted(contract["outputs"]):
        spec = declared.get(slot) or {}
        if spec.get("kind") in ("bytes", "model") or spec.get("max_bytes") is None:
            bound, kind = spec.get("max_bytes"), spec.get("kind", "nothing")
            warnings.append(
                f"output {slot!r} of the uploaded function is declared {kind}"
                + (f" up to {bound} bytes" if bound else " with no size bound")
                + ": it can hold a copy of your input"
            )
    return warnings


def statistics_warnings(
    contract: Mapping[str, Any],
    me: str,
    columns_of: Callable[[str], Mapping[str, str] | None],
) -> list[str]:
    """One warning per input of ``me`` whose column statistics a model file delivered to others
    carries, naming them and those columns, and the member's column the model is trained to
    predict (its ``label_column``: the model file keeps its class values).
    ``columns_of(dataset_id)`` gives ``{column: "number" | "text"}`` of the member's own table
    (client/_columns.py reads it from the schema summary), or None when unknown."""
    function = contract["function"]
    slot = CARRIES_STATISTICS.get(function["name"]) if function["kind"] == "builtin" else None
    spec = contract["outputs"].get(slot) if slot else None
    if not spec or spec.get("joint_owners"):
        return []
    others = [name for name in spec.get("recipients") or [] if name != me]
    if not others:
        return []
    arguments = contract.get("arguments", {})
    id_columns = arguments.get("id_columns")
    warnings = []
    for input_slot, input_spec in sorted(contract["inputs"].items()):
        if me not in input_spec["owners"]:
            continue
        own_id = id_columns.get(input_slot) if isinstance(id_columns, dict) else None
        label = arguments.get("label_column")
        not_features = {label, arguments.get("id_column"), own_id}
        columns = columns_of(str(input_spec["dataset_id"]))
        carried = _carried(columns, not_features, gbdt=arguments.get("model") == "gbdt")
        if carried is None:
            carried = (
                f"means and standard deviations (or category values) of the feature columns of "
                f"your input {input_slot!r}, and the values of the label column {label!r} if "
                "it is yours"
            )
        elif columns is not None and label in columns:
            carried = "; ".join(part for part in (carried, _LABEL.format(label=label)) if part)
        if not carried:
            continue
        warnings.append(
            f"the model file delivered to {', '.join(others)} (output {slot!r}) carries {carried}"
        )
    return warnings


_LABEL = (
    "your column {label!r} as the label it predicts, with its distinct values when it has 3 or more"
)
"""What a model trained to predict a member's own column carries of it (``class_names``)."""


def _carried(
    columns: Mapping[str, str] | None, not_features: set[Any], *, gbdt: bool
) -> str | None:
    if columns is None:
        return None
    numbers = [c for c, kind in columns.items() if kind == "number" and c not in not_features]
    texts = [c for c, kind in columns.items() if kind != "number" and c not in not_features]
    parts = []
    if numbers:
        parts.append(f"means and standard deviations of your columns {', '.join(numbers)}")
    if texts:
        parts.append(f"the category values of your columns {', '.join(texts)}")
    if parts and gbdt:
        parts.append("LightGBM split thresholds on them")
    return "; ".join(parts)
