"""Task contracts: the exact thing every participant signs and the enclave checks.

A contract is a JSON object hashed as canonical JSON (RFC 8785) with SHA-256::

    {
      "version": 2,
      "task_id": "…", "nonce": "…", "created_at": "<ISO 8601>", "creator": "alice",
      "expires_at": "<ISO 8601 with time zone, after created_at>",
      "function": {"kind": "builtin"|"uploaded", "name": "…", "code_sha256": "…",
                   "owner": "carol", "sealed": false, "source_sha256": "…" (uploaded only),
                   "outputs": {"<slot>": {"kind": "metrics", "max_bytes": 4096}} (uploaded only:
                   what each output is, functions/outputs.py)},
      "executor": {"tee": "sim", "measurement": "…",
                   "public_keys": {"x25519": "<b64>", "ed25519": "<b64>"}},
      "participants": {"alice": {"sign_pk": "<b64>", "enc_pk": "<b64>"}, …},
      "inputs":  {"<slot>": {"dataset_id": "…", "owners": ["bob"], "ciphertext_sha256": "…",
                             "joint": null | {"task_id": "…", "contract_hash": "…", "slot": "…"}}},
      "arguments": {…, "requesters": ["alice"] (an inference session's requesters)},
      "outputs": {"<slot>": {"recipients": ["alice"], "pad": "pow2" | <bucket bytes> (optional)}
                            | {"joint_owners": ["bob", "dave"]}},
      "disclosure": {"progress": ["alice"], "errors": ["alice", "bob"]}
    }

An input with several owners is a joint output of an earlier task: its key is wrapped to the
enclave, and every owner must sign the contract that uses it. The ``requesters`` of an inference
session (enclave/session.py) receive its answers, so they sign too.

Version 2 added ``expires_at``: the enclave refuses the task after it (enclave/run_state.py),
and a task runs only with the creator's signed run authorisation. Version 1 contracts (no
expiry) are refused: propose them again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from teeflow.crypto import canonical_hash, check_pad, is_content_digest
from teeflow.enclave.run_state import RunStateError, parse_time
from teeflow.functions.outputs import uploaded_declarations

__all__ = [
    "APPROVAL_DOMAIN",
    "CONTRACT_VERSION",
    "ContractError",
    "contract_hash",
    "required_signers",
    "validate_contract",
]

CONTRACT_VERSION = 2
APPROVAL_DOMAIN = "contract-approval"
_SLOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ContractError(ValueError):
    """The contract is malformed or inconsistent."""


def contract_hash(contract: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the contract's canonical JSON (RFC 8785)."""
    return canonical_hash(dict(contract))


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ContractError(f"{where} must be a non-empty list of usernames")
    if len(set(value)) != len(value):
        raise ContractError(f"{where} lists a username twice")
    return list(value)


def _content_digest(value: Any, where: str) -> str:
    # The field keeps its v1 name; its value names the algorithm (crypto/_digest.py).
    if not is_content_digest(value):
        raise ContractError(
            f"{where} must be a content digest: 64 lowercase hex (SHA-256) or 'blake3:' and 64"
        )
    return str(value)


def _hex64(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ContractError(f"{where} must be a lowercase hex SHA-256")
    return value


def validate_contract(contract: Mapping[str, Any]) -> None:
    """Check structure and internal consistency; raise ContractError naming the first problem."""
    if contract.get("version") != CONTRACT_VERSION:
        raise ContractError(f"unsupported contract version {contract.get('version')!r}")
    for key in ("task_id", "nonce", "creator", "created_at", "expires_at"):
        if not isinstance(contract.get(key), str) or not contract[key]:
            raise ContractError(f"contract field {key!r} is missing")
    try:
        created, expires = (parse_time(contract[k], k) for k in ("created_at", "expires_at"))
    except RunStateError as exc:
        raise ContractError(str(exc)) from None
    if expires <= created:
        raise ContractError("contract expires_at must be after created_at")
    function = contract.get("function")
    if not isinstance(function, Mapping) or function.get("kind") not in ("builtin", "uploaded"):
        raise ContractError("contract function must have kind 'builtin' or 'uploaded'")
    _hex64(function.get("code_sha256"), "function.code_sha256")
    owner = function.get("owner")
    if owner is not None and (not isinstance(owner, str) or not owner):
        raise ContractError("contract function owner must be a username")
    declared = function.get("outputs")
    if declared is not None:
        if not isinstance(declared, Mapping):
            raise ContractError("contract function outputs must map slots to declarations")
        try:
            uploaded_declarations(declared)
        except ValueError as exc:
            raise ContractError(f"function {exc}") from None
    executor = contract.get("executor")
    if not isinstance(executor, Mapping) or not isinstance(executor.get("public_keys"), Mapping):
        raise ContractError("contract executor must name its tee, measurement and public keys")
    participants = contract.get("participants")
    if not isinstance(participants, Mapping) or not participants:
        raise ContractError("contract must list its participants with their public keys")
    for name, keys in participants.items():
        if not isinstance(keys, Mapping) or not {"sign_pk", "enc_pk"} <= set(keys):
            raise ContractError(f"participant {name!r} lacks sign_pk / enc_pk")
    inputs = contract.get("inputs")
    outputs = contract.get("outputs")
    if not isinstance(inputs, Mapping) or not isinstance(outputs, Mapping) or not outputs:
        raise ContractError("contract must have inputs and at least one output")
    for slot, spec in inputs.items():
        if not isinstance(slot, str) or not _SLOT.match(slot) or not isinstance(spec, Mapping):
            raise ContractError(f"input slot {slot!r} is not a valid slot")
        _names(spec.get("owners"), f"inputs[{slot}].owners")
        _content_digest(spec.get("ciphertext_sha256"), f"inputs[{slot}].ciphertext_sha256")
    for slot, spec in outputs.items():
        if not isinstance(slot, str) or not _SLOT.match(slot) or not isinstance(spec, Mapping):
            raise ContractError(f"output slot {slot!r} is not a valid slot")
        if ("recipients" in spec) == ("joint_owners" in spec):
            raise ContractError(f"output {slot!r} needs exactly one of recipients / joint_owners")
        _names(spec.get("recipients") or spec.get("joint_owners"), f"outputs[{slot}]")
        if spec.get("pad") is not None:
            if "joint_owners" in spec:
                raise ContractError(f"output {slot!r}: a joint output cannot be padded")
            try:
                check_pad(spec["pad"])
            except ValueError as exc:
                raise ContractError(f"output {slot!r}: {exc}") from None
    if not isinstance(contract.get("arguments"), Mapping):
        raise ContractError("contract arguments must be an object")
    if "requesters" in contract["arguments"]:
        _names(contract["arguments"]["requesters"], "arguments.requesters")
    disclosure = contract.get("disclosure", {})
    if not isinstance(disclosure, Mapping):
        raise ContractError("contract disclosure must be an object")
    for kind, names in disclosure.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ContractError(f"disclosure[{kind!r}] must be a list of usernames")
    missing = required_signers(contract) - set(participants)
    if missing:
        raise ContractError(f"contract names users who are not participants: {sorted(missing)}")


def required_signers(contract: Mapping[str, Any]) -> set[str]:
    """Everyone whose approval the task needs: creator, function owner, every input owner, every
    output recipient or joint owner, everyone a disclosure names, and every session requester."""
    signers = {contract["creator"]}
    owner = contract["function"].get("owner")
    if owner:
        signers.add(owner)
    for spec in contract["inputs"].values():
        signers.update(spec["owners"])
    for spec in contract["outputs"].values():
        signers.update(spec.get("recipients") or spec.get("joint_owners") or [])
    for names in contract.get("disclosure", {}).values():
        signers.update(names)
    requesters = contract.get("arguments", {}).get("requesters")
    if isinstance(requesters, list):
        signers.update(name for name in requesters if isinstance(name, str))
    return signers
