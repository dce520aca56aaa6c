"""What leaves the enclave: sealed outputs, sealed events, and the checks made before either.

An output is checked against the function's declarations (:func:`declaration_problem`) before
anything is sealed; each output is sealed under a fresh key wrapped to its recipients
(:func:`seal_output`); each progress or error event is signed by the enclave and sealed to each
recipient the contract discloses its channel to (:func:`sealed_events`, enclave/events.py).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from teeflow.crypto import DataKey, PublicKey, b64e, hpke_seal, key_wrap_info, pad, seal_stream
from teeflow.enclave.events import EventCounter, seal_event
from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.task import SealedOutput
from teeflow.enclave.timing import PhaseTimer
from teeflow.functions.api import InputData, OutputData
from teeflow.functions.outputs import check_outputs, uploaded_declarations

__all__ = ["declaration_problem", "owner_keys", "seal_output", "sealed_events"]


def declaration_problem(
    contract: Mapping[str, Any], inputs: Mapping[str, InputData], outputs: Mapping[str, OutputData]
) -> str | None:
    """The public reason an output breaks what the function declared (functions/outputs.py)."""
    function = contract["function"]
    try:
        if function["kind"] == "builtin":
            from teeflow.functions.registry import get_builtin

            declarations = get_builtin(function["name"]).declarations
        else:
            declarations = uploaded_declarations(function.get("outputs") or {})
    except (KeyError, ValueError) as exc:
        return f"the function's output declarations are unusable: {exc}"
    return check_outputs(
        {slot: out.getvalue() for slot, out in outputs.items()},
        declarations,
        {slot: data.size for slot, data in inputs.items()},
    )


def seal_output(
    identity: EnclaveIdentity,
    chash: str,
    contract: Mapping[str, Any],
    slot: str,
    out: OutputData,
) -> SealedOutput:
    """Seal what was written to ``out`` under a fresh key wrapped (HPKE, RFC 9180) to the
    recipients of ``slot``, or to the enclave itself for a joint output."""
    spec = contract["outputs"][slot]
    key = DataKey.generate()
    plaintext = out.getvalue()
    if spec.get("pad") is not None:  # length hiding, inside the sealed plaintext
        plaintext = pad(plaintext, spec["pad"])
    sink = io.BytesIO()
    sealed = seal_stream(io.BytesIO(plaintext), sink, key)  # hashes as it seals
    ciphertext = sink.getvalue()
    wrapped: dict[str, str] = {}
    joint = spec.get("joint_owners")
    if joint:
        info = key_wrap_info("joint-output", chash, slot)
        enclave_pk = identity.receiving_key.public_key
        wrapped["enclave"] = b64e(hpke_seal(key.raw, enclave_pk, info=info))
    else:
        for name in spec["recipients"]:
            recipient = PublicKey.from_b64(contract["participants"][name]["enc_pk"])
            info = key_wrap_info("output", chash, slot)
            wrapped[name] = b64e(hpke_seal(key.raw, recipient, info=info))
    return SealedOutput(
        ciphertext, sealed.ciphertext_digest, wrapped, list(joint) if joint else None
    )


def sealed_events(
    identity: EnclaveIdentity,
    chash: str,
    contract: Mapping[str, Any],
    channel: str,
    timer: PhaseTimer,
    data: dict[str, Any],
    events: EventCounter,
) -> list[tuple[str, str]]:
    """One event per recipient the contract discloses ``channel`` to, each signed by the
    enclave with its own sequence number and sealed to that recipient (enclave/events.py)."""
    seq = events.next()
    sealed = []
    for name in contract.get("disclosure", {}).get(channel, []):
        recipient = PublicKey.from_b64(contract["participants"][name]["enc_pk"])
        with timer.phase("crypto"):
            payload = seal_event(
                _jsonable(data),
                chash=chash,
                recipient=name,
                recipient_key=recipient,
                signing_key=identity.signing_key,
                attempt=events.attempt,
                seq=seq,
            )
        sealed.append((name, payload))
    return sealed


def owner_keys(
    contract: Mapping[str, Any], owners: list[str] | None
) -> dict[str, dict[str, str]] | None:
    """Each joint owner's public keys as the contract shows them (None: not a joint output)."""
    if not owners:
        return None
    participants = contract["participants"]
    return {
        name: {"sign_pk": participants[name]["sign_pk"], "enc_pk": participants[name]["enc_pk"]}
        for name in owners
    }


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """Progress metrics as plain JSON values (floats stay floats, numpy scalars become Python)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and value != value:  # NaN is not JSON
            value = None
        out[str(key)] = value
    return out
