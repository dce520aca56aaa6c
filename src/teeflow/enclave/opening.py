"""Opening a checked task's inputs, function code and checkpoint inside the enclave.

Each function here takes bytes from the untrusted host and believes nothing of them: a ciphertext
must hash to the approved digest before it is opened, function code to the approved code hash,
and a checkpoint must open under this measurement's key (enclave/checkpoint_seal.py) and name the
run it was made under. Each raises TaskRejected with a public reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teeflow.crypto import (
    DataKey,
    IntegrityError,
    content_digest_like,
    sha256_hex,
    unseal_bytes,
)
from teeflow.enclave.checks import TaskRejected
from teeflow.enclave.events import EventCounter
from teeflow.enclave.run_state import RunGrant, stale_message
from teeflow.enclave.task import Host, TaskBundle
from teeflow.enclave.timing import PhaseTimer
from teeflow.functions.api import InputData

__all__ = ["CHECKPOINT_HEADER", "checkpoint_state", "open_function", "open_inputs"]

CHECKPOINT_HEADER = 48
"""Bytes before the function's state in a sealed checkpoint (see :func:`checkpoint_state`)."""


def checkpoint_state(payload: bytes, grant: RunGrant) -> tuple[bytes, int, EventCounter]:
    """An opened checkpoint's function state, checkpoint sequence and event counter.

    Layout inside the seal: checkpoint seq (8 bytes, big-endian), event seq (8), the run id
    it was made under (32), then the function's state. The sequences travel inside it, so a
    resumed run counts on where the crashed one stopped. A run authorisation past its start
    window is accepted only to resume a checkpoint made under that same authorisation.
    """
    if len(payload) < CHECKPOINT_HEADER:
        raise TaskRejected("checkpoint is too short to be one this enclave made")
    run_id = payload[16:CHECKPOINT_HEADER].hex()
    if not grant.fresh and run_id != grant.run_id:
        raise TaskRejected(stale_message(grant))
    seq, event_seq = int.from_bytes(payload[:8], "big"), int.from_bytes(payload[8:16], "big")
    return payload[CHECKPOINT_HEADER:], seq, EventCounter(seq=event_seq)


def open_inputs(
    bundle: TaskBundle,
    keys: Mapping[str, DataKey],
    host: Host,
    timer: PhaseTimer,
) -> tuple[dict[str, InputData], dict[str, str]]:
    """Each input slot's ciphertext from ``host``, its hash checked against the approved one,
    opened for reading under its key; ``(slot -> InputData, slot -> checked hash)``. Raises
    TaskRejected for a changed or undecryptable input."""
    inputs: dict[str, InputData] = {}
    hashes: dict[str, str] = {}
    for slot, spec in bundle.contract["inputs"].items():
        ciphertext = host.read_input(slot)
        with timer.phase("crypto"):
            # Only the hash is checked here: the plaintext is decrypted, a chunk at a time, as
            # the function reads it (each chunk authenticated before use; functions/api.py).
            # The algorithm is the one the approved digest names, never the file's own.
            digest = content_digest_like(ciphertext, spec["ciphertext_sha256"])
            if digest != spec["ciphertext_sha256"]:
                raise TaskRejected(
                    f"input {slot!r}: ciphertext hash {digest[:16]}… differs from the approved"
                    f" {spec['ciphertext_sha256'][:16]}… (the dataset changed after approval)"
                )
            try:
                owner = ",".join(spec["owners"])
                inputs[slot] = InputData.sealed(slot, ciphertext, keys[slot], owner=owner)
            except IntegrityError as exc:
                raise TaskRejected(f"input {slot!r} does not decrypt: {exc}") from None
        hashes[slot] = digest
    return inputs, hashes


def open_function(key: DataKey | None, contract: Mapping[str, Any], host: Host) -> str | None:
    """The uploaded function's source, checked against the approved code hash (unsealed with
    ``key`` when its owner sealed it); None for a built-in. Raises TaskRejected."""
    function = contract["function"]
    if function["kind"] == "builtin":
        return None
    blob = host.read_function_source()
    if function.get("sealed"):
        if key is None:
            raise TaskRejected("sealed function code has no wrapped key from its owner")
        try:
            blob = unseal_bytes(blob, key)
        except IntegrityError as exc:
            raise TaskRejected(f"function code does not decrypt: {exc}") from None
    if sha256_hex(blob) != function["code_sha256"]:
        raise TaskRejected("function code differs from the code hash the parties approved")
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        raise TaskRejected("function code is not UTF-8 Python source") from None
