"""A task's contract as lines a member reads before approving (``teeflow task show``).

Every string in a contract came from another member or from the control plane, so every one
goes through :func:`teeflow.cli._escape.safe` and into a Rich ``Text`` (never markup): a
description, a name or an argument cannot forge a line of this view or drive the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text

from teeflow.cli._escape import safe
from teeflow.crypto import CryptoError, PublicKey, VerifyKey, fingerprint

__all__ = ["render_contract"]


def _fingerprint(keys: Mapping[str, str]) -> str:
    try:
        return fingerprint(VerifyKey.from_b64(keys["sign_pk"]), PublicKey.from_b64(keys["enc_pk"]))
    except (CryptoError, KeyError, TypeError, ValueError):
        return "(malformed keys)"


def _names(names: Any) -> str:
    return ", ".join(safe(name) for name in names or []) or "nobody"


def _function(function: Mapping[str, Any]) -> list[Text]:
    name = safe(function["name"])
    if function["kind"] == "builtin":
        head = f"function: {name} (BUILT-IN, teeflow's own code)"
    else:
        code = "code SEALED (confidential)" if function.get("sealed") else "code plain"
        head = (
            f"function: {name} (UPLOADED by {safe(function.get('owner'))}, "
            f"id {safe(function.get('function_id'))}, {code})"
        )
    lines = [Text(head), Text(f"  code sha256 {safe(function['code_sha256'])}")]
    if function["kind"] == "uploaded" and not function.get("sealed"):
        lines.append(
            Text("  read it with `teeflow task show ID --code` (checked against the hash)")
        )
    for slot, spec in sorted((function.get("outputs") or {}).items()):
        bound = spec.get("max_bytes")
        limit = f"at most {safe(bound)} bytes" if bound is not None else "NO SIZE BOUND"
        lines.append(Text(f"  declares output {safe(slot)}: {safe(spec.get('kind'))}, {limit}"))
    return lines


def _inputs(contract: Mapping[str, Any], facts: Mapping[str, Any]) -> list[Text]:
    lines = [Text("inputs:", style="bold")]
    for slot, spec in sorted(contract["inputs"].items()):
        joint = "  (joint, sealed to the enclave)" if spec.get("joint") else ""
        lines.append(
            Text(
                f"  {safe(slot)}: dataset {safe(spec['dataset_id'])} {safe(repr(spec.get('name')))}"
                f" owner {_names(spec['owners'])}{joint}"
            )
        )
        fact = facts.get(slot) or {}
        size, rows = fact.get("size"), fact.get("rows")
        lines.append(
            Text(
                f"    ciphertext {safe(size) + ' bytes' if size is not None else 'size unknown'}"
                f", rows {safe(rows) if rows is not None else 'unknown (no schema summary)'}"
                f", sha256 {safe(spec['ciphertext_sha256'])}"
            )
        )
    return lines


def _outputs(contract: Mapping[str, Any]) -> list[Text]:
    lines = [Text("outputs:", style="bold")]
    for slot, spec in sorted(contract["outputs"].items()):
        if spec.get("joint_owners"):
            owners = _names(spec["joint_owners"])
            lines.append(Text(f"  {safe(slot)}: JOINT, owned by {owners}; sealed to the enclave"))
        else:
            pad = f"  (padded: {safe(spec['pad'])})" if spec.get("pad") is not None else ""
            lines.append(Text(f"  {safe(slot)}: readable by {_names(spec.get('recipients'))}{pad}"))
    return lines


def _value(value: Any) -> str:
    return f"'{safe(value)}'" if isinstance(value, str) else safe(repr(value))


def render_contract(
    task: Mapping[str, Any], keys_trust: Mapping[str, str] | None = None
) -> list[Text]:
    """The contract as lines of Rich Text, every foreign string escaped (cli/_escape.py).

    ``keys_trust``: participant -> how far this member trusts its keys (client/_pins.py)."""
    contract = task["contract"]
    executor = contract["executor"]
    lines = [
        Text.assemble(
            ("Task ", "bold"),
            safe(task["id"]),
            "  status: ",
            (safe(task["status"]), "bold"),
            f"  creator: {safe(task['creator'])}",
        ),
        Text(f"contract hash: {safe(task['contract_hash'])}"),
        Text(f"expires: {safe(contract.get('expires_at'))} (no enclave runs it later)"),
    ]
    if task.get("withdrawn"):
        withdrawn = ", ".join(safe(name) for name in task["withdrawn"])
        lines.append(Text(f"approval withdrawn by: {withdrawn}", "bold red"))
    if contract.get("description"):
        lines.append(Text(f"description: {safe(contract['description'])}"))
    lines += _function(contract["function"])
    tee = Text(f"enclave: tee {safe(executor['tee'])}")
    if executor["tee"] == "sim":
        tee.append("  SIMULATED - no hardware protection", style="bold red")
    lines += [tee, Text(f"  measurement {safe(executor['measurement'])}")]
    lines += _inputs(contract, task.get("inputs") or {})
    lines.append(Text("arguments:", style="bold"))
    lines += [
        Text(f"  {safe(k)} = {_value(v)}") for k, v in sorted(contract["arguments"].items())
    ] or [Text("  (none)")]
    lines += _outputs(contract)
    lines.append(Text("disclosure:", style="bold"))
    for channel, names in sorted(contract.get("disclosure", {}).items()):
        what = {"errors": "error"}.get(channel, channel)
        lines.append(Text(f"  {safe(what)} messages go to {_names(names)}"))
    lines.append(Text("participants:", style="bold"))
    approvals = task.get("approvals", {})
    for name, keys in sorted(contract["participants"].items()):
        state = {"approve": "approved", "reject": "REJECTED"}.get(
            approvals.get(name, ""), "pending"
        )
        line = Text(f"  {safe(name)}: key fingerprint {_fingerprint(keys)}  [{state}]")
        trust = (keys_trust or {}).get(name)
        if trust and trust not in ("you", "verified"):
            line.append(f"  keys {trust.upper()}: `teeflow member show`", style="bold yellow")
        lines.append(line)
    return lines
