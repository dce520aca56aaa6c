"""A task's outputs as a member sees them, and an output kept as the member's own dataset.

:func:`keep_output` turns an output addressed to this member (a trained model, a table) into a
dataset it owns, usable in later tasks without uploading it again: the member unwraps the
output's data key here, checks the ciphertext hash against the enclave's signed receipt, and
asks the control plane to copy that ciphertext into a dataset; the key goes into the member's
keyring like the key of any upload. The control plane never sees the key. A padded output's
sealed plaintext is framed (crypto/_padding.py), so it is downloaded, decrypted and re-sealed
under a fresh key instead. See docs/decisions/0020-models-a-member-takes-home.md.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from teeflow.client._errors import ClientError, raise_for_error
from teeflow.client.keyring import write_private_file
from teeflow.crypto import (
    CryptoError,
    DataKey,
    IntegrityError,
    b64d,
    content_digest_like,
    hpke_open,
    is_content_digest,
    key_wrap_info,
    unpad,
    unseal_stream,
)
from teeflow.enclave.contract import contract_hash

if TYPE_CHECKING:
    from teeflow.client._client import Client

__all__ = [
    "check_readable",
    "download_output",
    "joint_output_error",
    "keep_output",
    "open_output_key",
    "output_rows",
]

WRAPPED_KEY_HEADER = "X-Teeflow-Wrapped-Key"
"""The output's key wrapped to its recipient, sent with the content (server/routes/tasks.py)."""
RECEIPT_HEADER = "X-Teeflow-Receipt"
CONTRACT_HEADER = "X-Teeflow-Contract"
"""The task's signed receipt and its contract, sent with the content (base64 of JSON)."""


def joint_output_error(slot: str, spec: Mapping[str, Any]) -> ClientError:
    """Why a joint output cannot be downloaded or kept, and how it is used instead."""
    owners = ", ".join(spec.get("joint_owners") or [])
    return ClientError(
        f"output {slot!r} is jointly owned by {owners}: it stays sealed to the enclave and no "
        "one downloads it; use its dataset id (`teeflow task outputs TASK`) as an input of a "
        "later task that all its owners approve"
    )


def check_readable(contract: Mapping[str, Any], slot: str, me: str) -> Mapping[str, Any]:
    """The contract's spec of output ``slot``; ClientError unless ``me`` is a recipient."""
    spec = contract["outputs"].get(slot)
    if spec is None:
        raise ClientError(
            f"the task has no output {slot!r}; it has {', '.join(sorted(contract['outputs']))}"
        )
    if spec.get("joint_owners"):
        raise joint_output_error(slot, spec)
    if me not in (spec.get("recipients") or []):
        raise ClientError(f"output {slot!r} is not addressed to you")
    result: Mapping[str, Any] = spec
    return result


def open_output_key(client: Client, task: Mapping[str, Any], slot: str, wrapped: str) -> DataKey:
    """The data key of output ``slot``, unwrapped with this member's receiving key (the wrap is
    bound to the contract hash and the slot: RFC 9180 ``info``)."""
    chash = contract_hash(task["contract"])
    try:
        raw = hpke_open(
            b64d(wrapped), client.keys.receiving_key, info=key_wrap_info("output", chash, slot)
        )
    except (IntegrityError, CryptoError, ValueError) as exc:
        raise ClientError(f"output key does not open for you: {exc}") from exc
    return DataKey(raw)


def keep_output(
    client: Client,
    task_id: str,
    slot: str,
    *,
    name: str | None = None,
    kind: str = "model",
    description: str = "",
) -> dict[str, Any]:
    """Register output ``slot`` of ``task_id`` as a dataset this member owns; the dataset record
    (``id``, ``ciphertext_sha256`` ...) plus ``resealed``: whether it had to be re-uploaded.

    Raises ClientError for a joint output, an output not addressed to this member, a receipt
    that does not verify, and a copy whose ciphertext is not the one the enclave signed for.
    """
    task = client.task(task_id)
    if task["status"] != "succeeded":
        raise ClientError(f"task {task_id} is {task['status']}: only a succeeded task's outputs")
    body = client._verified_receipt(task)["body"]
    spec = check_readable(task["contract"], slot, client._me())
    name = name or f"{slot} of task {task_id[:8]}"
    if spec.get("pad") is not None:
        plain = client.output(task_id, slot)
        assert isinstance(plain, bytes)  # no destination: bytes
        resealed = client.upload_dataset(plain, name=name, kind=kind, description=description)
        return {**resealed, "resealed": True}
    expected = body.get("outputs", {}).get(slot, {}).get("ciphertext_sha256")
    path = f"/v1/tasks/{quote(task_id, safe='')}/outputs/{quote(slot, safe='')}"
    wrapped = client._call("GET", f"{path}/key")["wrapped_key"]
    key = open_output_key(client, task, slot, wrapped)
    record: dict[str, Any] = client._call(
        "POST", f"{path}/dataset", json={"name": name, "kind": kind, "description": description}
    )
    if not expected or record.get("ciphertext_sha256") != expected:
        raise ClientError(
            f"the dataset the control plane made of output {slot!r} is not the ciphertext the "
            f"enclave signed for; do not use dataset {record.get('id')}"
        )
    client.home.save_dataset_key(record["id"], key, ciphertext_sha256=expected, name=name)
    return {**record, "resealed": False}


def output_rows(client: Client, task_id: str) -> list[dict[str, Any]]:
    """One row per output of ``task_id``: ``slot``, ``recipients``, ``joint`` (bool),
    ``owners`` (joint owners), ``dataset_id`` (the joint output's dataset, or the datasets this
    member kept of it, comma-separated; ``-`` for none), ``readable_by_you``."""
    rows = []
    for output in client.outputs(task_id):
        joint = bool(output.get("joint_owners"))
        kept = list(output.get("kept_as") or [])
        dataset_ids = [output["dataset_id"]] if output.get("dataset_id") else kept
        rows.append(
            {
                "slot": output["slot"],
                "recipients": output.get("recipients") or [],
                "joint": joint,
                "owners": list(output.get("joint_owners") or []),
                "dataset_id": ", ".join(dataset_ids) or "-",
                "readable_by_you": bool(output.get("readable_by_you")),
            }
        )
    return rows


def _task_with_receipt(headers: Mapping[str, str], task_id: str) -> dict[str, Any] | None:
    """The contract and signed receipt the output route sends with the ciphertext, as a task
    view for :meth:`Client._verified_receipt` (which checks them exactly as the task view's);
    None when the control plane left them out (then the client fetches the task)."""
    receipt, contract = headers.get(RECEIPT_HEADER), headers.get(CONTRACT_HEADER)
    if receipt is None or contract is None:
        return None
    try:
        task = {"id": task_id, "receipt": _json(receipt), "contract": _json(contract)}
    except (CryptoError, ValueError) as exc:
        raise ClientError(f"the receipt sent with the output is malformed: {exc}") from exc
    if not isinstance(task["receipt"], dict) or not isinstance(task["contract"], dict):
        raise ClientError("the receipt sent with the output is malformed: not JSON objects")
    return task


def _json(header: str) -> Any:
    return json.loads(b64d(header))


def download_output(
    client: Client, task_id: str, slot: str, destination: Path | None = None
) -> bytes | Path:
    """Download, check against the receipt, and decrypt an output addressed to this member.

    Raises ApiError (403) for an output not addressed to this member, and for a joint output
    (it stays sealed to the enclave; the message says how to use it)."""
    response = client.http.get(f"/v1/tasks/{task_id}/outputs/{slot}/content")
    raise_for_error(response)
    task = _task_with_receipt(response.headers, task_id) or client.task(task_id)
    body = client._verified_receipt(task)["body"]
    expected = body.get("outputs", {}).get(slot, {}).get("ciphertext_sha256")
    wrapped = response.headers.get(WRAPPED_KEY_HEADER)
    if wrapped is None:
        wrapped = client._call("GET", f"/v1/tasks/{task_id}/outputs/{slot}/key")["wrapped_key"]
    key = open_output_key(client, task, slot, wrapped)
    ciphertext = response.content
    if not is_content_digest(expected) or content_digest_like(ciphertext, expected) != expected:
        raise ClientError(f"output {slot!r} does not match the enclave's receipt; it was altered")
    plain = io.BytesIO()
    try:
        unseal_stream(io.BytesIO(ciphertext), plain, key)
    except IntegrityError as exc:
        raise ClientError(f"output {slot!r} does not decrypt: {exc}") from exc
    data = plain.getvalue()
    if task["contract"]["outputs"].get(slot, {}).get("pad") is not None:
        try:
            data = unpad(data)  # the contract asked for padding: the exact bytes are framed
        except IntegrityError as exc:
            raise ClientError(f"output {slot!r} does not decrypt: {exc}") from exc
    if destination is None:
        return data
    write_private_file(destination, data, overwrite=True)
    return destination
