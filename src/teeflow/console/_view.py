"""A task as the console shows it: plain dictionaries a template renders (autoescaped).

Nothing here talks to the control plane; it reads a task document (``Client.task``) and the
member's name, and says who may do what.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teeflow.crypto import CryptoError, PublicKey, VerifyKey, fingerprint

__all__ = ["TERMINAL", "my_outputs", "output_kind", "task_actions", "task_view", "todo_groups"]

TERMINAL = frozenset({"succeeded", "failed", "canceled", "rejected"})


def _fingerprint(keys: Any) -> str:
    try:
        return fingerprint(VerifyKey.from_b64(keys["sign_pk"]), PublicKey.from_b64(keys["enc_pk"]))
    except (CryptoError, KeyError, TypeError, ValueError):
        return "(malformed keys)"


def my_outputs(task: Mapping[str, Any], me: str) -> list[str]:
    """Output slots the contract makes readable by ``me``."""
    outputs = task["contract"]["outputs"]
    return sorted(slot for slot, spec in outputs.items() if me in (spec.get("recipients") or []))


def output_kind(task: Mapping[str, Any], slot: str, functions: list[dict[str, Any]]) -> str | None:
    """The declared kind of output ``slot`` (``metrics``, ``model``, ``table``, ``bytes``): an
    uploaded function's declaration in the contract, else the built-in's in ``functions``
    (``Client.functions()``); None when nothing declares it."""
    function = task["contract"]["function"]
    declared = (function.get("outputs") or {}).get(slot)
    if isinstance(declared, Mapping):
        return str(declared.get("kind"))
    for entry in functions:
        if entry.get("kind") == "builtin" and entry.get("name") == function["name"]:
            text = str((entry.get("output_declarations") or {}).get(slot, ""))
            return text.split(",", 1)[0] or None
    return None


def task_actions(task: Mapping[str, Any], me: str) -> list[str]:
    """What ``me`` may ask for now: approve / reject while its approval is pending, run for the
    creator once everyone approved, cancel for the creator before the task ends, withdraw for a
    participant who approved, before the task ends (client/_run_state.py)."""
    status = task["status"]
    actions: list[str] = []
    if status == "proposed" and me in task.get("pending", []):
        actions += ["approve", "reject"]
    if task["creator"] == me and status == "approved":
        actions.append("run")
    if task["creator"] == me and status not in TERMINAL:
        actions.append("cancel")
    approved = task.get("approvals", {}).get(me) == "approve"
    if approved and status not in TERMINAL and me not in task.get("withdrawn", []):
        actions.append("withdraw")
    return actions


def task_view(
    task: Mapping[str, Any], me: str, trust: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The contract in readable form: function, enclave, inputs, arguments, outputs,
    disclosure and participants with their key fingerprints, approval state and ``trust``
    (participant -> "you", "verified", "unverified", "new" or "KEYS CHANGED", from the keys
    this member pinned; see client/_pins.py)."""
    contract = task["contract"]
    executor = contract["executor"]
    approvals = task.get("approvals", {})
    facts = task.get("inputs") or {}
    inputs = [
        {
            "slot": slot,
            "dataset_id": spec["dataset_id"],
            "name": spec.get("name"),
            "owners": list(spec.get("owners") or []),
            "joint": bool(spec.get("joint")),
            "sha256": spec.get("ciphertext_sha256"),
            "size": (facts.get(slot) or {}).get("size"),
            "rows": (facts.get(slot) or {}).get("rows"),
            "mine": me in (spec.get("owners") or []),
        }
        for slot, spec in sorted(contract["inputs"].items())
    ]
    outputs = [
        {
            "slot": slot,
            "joint": bool(spec.get("joint_owners")),
            "who": list(spec.get("joint_owners") or spec.get("recipients") or []),
            "pad": spec.get("pad"),
            "mine": me in (spec.get("recipients") or []),
        }
        for slot, spec in sorted(contract["outputs"].items())
    ]
    participants = [
        {
            "name": name,
            "fingerprint": _fingerprint(keys),
            "state": {"approve": "approved", "reject": "rejected"}.get(
                approvals.get(name, ""), "pending"
            ),
            "me": name == me,
            "trust": (trust or {}).get(name, ""),
        }
        for name, keys in sorted(contract["participants"].items())
    ]
    function = contract["function"]
    return {
        "id": task["id"],
        "status": task["status"],
        "creator": task["creator"],
        "failure_reason": task.get("failure_reason"),
        "contract_hash": task["contract_hash"],
        "description": contract.get("description") or "",
        "function": {
            "name": function["name"],
            "kind": function["kind"],
            "owner": function.get("owner"),
            "sealed": bool(function.get("sealed")),
            "code_sha256": function["code_sha256"],
        },
        "executor": {
            "tee": executor["tee"],
            "measurement": executor["measurement"],
            "simulated": executor["tee"] == "sim",
        },
        "inputs": inputs,
        "arguments": sorted(contract["arguments"].items()),
        "outputs": outputs,
        "disclosure": sorted(contract.get("disclosure", {}).items()),
        "participants": participants,
        "actions": task_actions(task, me),
        "terminal": task["status"] in TERMINAL,
    }


def todo_groups(
    tasks: list[dict[str, Any]], me: str, opened: set[tuple[str, str]]
) -> dict[str, list[dict[str, Any]]]:
    """The To do page: tasks waiting for my approval, tasks I can run, outputs for me that I
    have not opened in this launch, and everything else in flight."""
    approve, run, outputs, running = [], [], [], []
    for task in tasks:
        row = {"id": task["id"], "function": task["contract"]["function"]["name"], **task}
        actions = task_actions(task, me)
        if "approve" in actions:
            approve.append(row)
        elif "run" in actions:
            run.append(row)
        elif task["status"] in ("queued", "running", "approved", "proposed"):
            running.append(row)
        if task["status"] == "succeeded":
            for slot in my_outputs(task, me):
                outputs.append({**row, "slot": slot, "new": (task["id"], slot) not in opened})
    return {"approve": approve, "run": run, "outputs": outputs, "running": running}
