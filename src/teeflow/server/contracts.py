"""Build a task contract from a member's proposal.

The control plane fills in what it knows (dataset hashes, public keys, the executor's measurement
and key). It is untrusted: every participant checks the result against its own records and its
own attestation policy before signing, and the enclave re-checks it.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from teeflow.crypto import CryptoError, canonical_json
from teeflow.enclave.contract import (
    CONTRACT_VERSION,
    ContractError,
    required_signers,
    validate_contract,
)
from teeflow.functions.registry import builtin_catalogue
from teeflow.server.app import Platform
from teeflow.server.errors import ApiError

__all__ = [
    "DEFAULT_EXPIRES_IN_S",
    "MAX_EXPIRES_IN_S",
    "MAX_JSON_DEPTH",
    "Proposal",
    "build_contract",
    "declared_outputs",
    "plain_json",
]

DEFAULT_EXPIRES_IN_S = 7 * 24 * 3600
"""A contract's lifetime unless the proposal says otherwise: 7 days."""
MAX_EXPIRES_IN_S = 366 * 24 * 3600


MAX_JSON_DEPTH = 32


def plain_json(value: Any) -> Any:
    """Return ``value`` if canonical JSON (RFC 8785) can hash it and it nests at most
    :data:`MAX_JSON_DEPTH` levels; raise ValueError otherwise.

    Python's JSON parser accepts NaN, infinities, integers beyond 2**53 and lone surrogates, none
    of which RFC 8785 can hash: stored, such a value would break every contract or audit entry
    that holds it, and every response that shows it.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    try:
        canonical_json(value)
    except CryptoError:
        raise ValueError(
            "must be plain JSON: finite numbers, integers within +/-2**53, valid Unicode"
        ) from None
    return value


class OutputSpec(BaseModel):
    recipients: list[str] | None = None
    joint_owners: list[str] | None = None
    pad: Literal["pow2"] | int | None = Field(
        default=None,
        description='pad the sealed output to a bucket: "pow2" or a size in bytes '
        "(outputs with recipients only)",
    )


class Proposal(BaseModel):
    function: str = Field(description="a built-in name, or the id of an uploaded function")
    inputs: dict[str, str] = Field(default_factory=dict, description="slot -> dataset id")
    arguments: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, OutputSpec]
    disclosure: dict[str, list[str]] = Field(default_factory=dict)
    description: str = Field(default="", max_length=2000)
    expires_in_s: int = Field(
        default=DEFAULT_EXPIRES_IN_S,
        ge=1,
        le=MAX_EXPIRES_IN_S,
        description="seconds from now until the contract expires (the enclave refuses it then)",
    )

    @field_validator("arguments")
    @classmethod
    def _plain_arguments(cls, value: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = plain_json(value)
        return result


def _function_entry(platform: Platform, name: str) -> dict[str, Any]:
    builtin = builtin_catalogue().get(name)
    if builtin is not None:
        return {"kind": "builtin", "name": name, "code_sha256": builtin.code_sha256}
    record = platform.store.get_function(name)
    if record is None:
        raise ApiError.invalid(
            f"no built-in or uploaded function {name!r} (`teeflow function list`)"
        )
    source = (
        platform.store.get_dataset(record.source_dataset_id) if record.source_dataset_id else None
    )
    if source is None or source.ciphertext_sha256 is None:
        raise ApiError.invalid(f"function {name!r} has no uploaded source")
    return {
        "kind": "uploaded",
        "name": record.name,
        "function_id": record.function_id,
        "owner": record.owner,
        "code_sha256": record.code_sha256,
        "sealed": record.sealed,
        "source_dataset_id": record.source_dataset_id,
        "source_sha256": source.ciphertext_sha256,
        "outputs": declared_outputs(record.spec),
    }


def declared_outputs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An uploaded function's output declarations (functions/outputs.py) from its stored spec;
    a function stored before declarations had kinds declared bare names: opaque, unbounded."""
    outputs = spec.get("outputs") or {}
    if isinstance(outputs, list):
        return {slot: {"kind": "bytes", "max_bytes": None} for slot in outputs}
    return {slot: dict(value) for slot, value in outputs.items()}


def _input_entry(platform: Platform, slot: str, dataset_id: str) -> dict[str, Any]:
    record = platform.store.get_dataset(dataset_id)
    if record is None:
        raise ApiError.invalid(f"input {slot!r}: dataset {dataset_id} does not exist")
    if record.state != "ready" or record.ciphertext_sha256 is None:
        raise ApiError.invalid(f"input {slot!r}: dataset {dataset_id} has no uploaded content yet")
    entry: dict[str, Any] = {
        "dataset_id": dataset_id,
        "name": record.name,
        "kind": record.kind,
        "ciphertext_sha256": record.ciphertext_sha256,
        "joint": None,
    }
    if record.joint_owners:
        meta = record.meta or {}
        entry["owners"] = sorted(record.joint_owners)
        entry["joint"] = {
            "task_id": record.produced_by_task,
            "contract_hash": meta.get("contract_hash"),
            "slot": meta.get("slot"),
        }
    else:
        entry["owners"] = [record.owner]
        policy = (record.meta or {}).get("policy")
        if policy is not None:  # the owner's signed policy (enclave/policies.py), signed over
            entry["policy"] = policy
        schema = (record.meta or {}).get("schema")
        if schema is not None:  # the owner's signed schema summary (client/_schema_publish.py)
            entry["schema"] = schema
    return entry


def _executor_entry(platform: Platform) -> dict[str, Any]:
    executors = platform.store.list_executors()
    if not executors:
        raise ApiError(503, "no_executor", "no enclave executor is registered; start one first")
    newest = max(executors, key=lambda e: e.registered_at)
    return {"tee": newest.tee, "measurement": newest.measurement, "public_keys": newest.public_keys}


def build_contract(platform: Platform, proposal: Proposal, *, creator: str) -> dict[str, Any]:
    now = platform.clock()
    outputs: dict[str, dict[str, Any]] = {}
    for slot, spec in proposal.outputs.items():
        if spec.recipients and not spec.joint_owners:
            outputs[slot] = {"recipients": sorted(set(spec.recipients))}
            if spec.pad is not None:
                outputs[slot]["pad"] = spec.pad
        elif spec.joint_owners and not spec.recipients:
            outputs[slot] = {"joint_owners": sorted(set(spec.joint_owners))}
        else:
            raise ApiError.invalid(f"output {slot!r} needs either recipients or joint_owners")
    disclosure = {
        k: sorted(set(v)) for k, v in proposal.disclosure.items() if k in ("progress", "errors")
    }
    disclosure.setdefault("errors", [creator])
    function = _function_entry(platform, proposal.function)
    undeclared = sorted(set(outputs) - set(function.get("outputs", outputs)))
    if undeclared:
        raise ApiError.invalid(
            f"function {proposal.function!r} declares no output {undeclared[0]!r}; "
            "its owner declares outputs at upload (`teeflow function upload --output`)"
        )
    contract: dict[str, Any] = {
        "version": CONTRACT_VERSION,
        "task_id": uuid.uuid4().hex,
        "nonce": secrets.token_hex(16),
        "created_at": now.isoformat(),
        "expires_at": (now + timedelta(seconds=proposal.expires_in_s)).isoformat(),
        "creator": creator,
        "description": proposal.description,
        "function": function,
        "executor": _executor_entry(platform),
        "inputs": {slot: _input_entry(platform, slot, ds) for slot, ds in proposal.inputs.items()},
        "arguments": proposal.arguments,
        "outputs": outputs,
        "disclosure": disclosure,
        "participants": {},
    }
    participants: dict[str, dict[str, str]] = {}
    for name in sorted(required_signers(contract)):
        user = platform.store.get_user(name)
        if user is None:
            raise ApiError.invalid(f"contract names unknown user {name!r}")
        participants[name] = {"sign_pk": user.sign_pk, "enc_pk": user.enc_pk}
    contract["participants"] = participants
    try:
        validate_contract(contract)
    except ContractError as exc:
        raise ApiError.invalid(str(exc)) from None
    return contract
