"""A task output kept as its recipient's own dataset, without a round trip through the member.

``POST /v1/tasks/{task_id}/outputs/{slot}/dataset``: a named recipient of a succeeded task's
output registers that output as a dataset it owns. The control plane copies the output's
ciphertext into a dataset blob as it is; it never sees the data key, which the recipient
unwraps on its own machine and keeps in its keyring (client/_outputs.py). Later tasks use the
dataset like any upload: its owner wraps the key to the enclave at approval. See
docs/decisions/0020-models-a-member-takes-home.md.

Refused: joint outputs (they stay sealed to the enclave; their dataset already exists, owned by
all their owners), padded outputs (the sealed plaintext is framed, so it is not the dataset's
bytes: the client re-seals those instead), callers who are not a recipient, unfinished tasks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from teeflow.server.app import Platform
from teeflow.server.deps import CurrentUser, PlatformDep
from teeflow.server.errors import ApiError, error_responses
from teeflow.server.quotas import storage_left, storage_quota_error
from teeflow.server.routes.datasets import DatasetPublic, Kind, dataset_or_404, public_dataset
from teeflow.server.routes.tasks import task_for
from teeflow.server.store import DatasetRecord, OutputRecord

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

_COPY = 1 << 20


class OutputDatasetCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/\\\x00]+$")
    kind: Kind = "model"
    description: str = Field(default="", max_length=2000)


def joint_output_message(slot: str, owners: Sequence[str], dataset_id: str | None) -> str:
    """What a member is told when it asks for a joint output's content."""
    where = f" (dataset {dataset_id})" if dataset_id else ""
    return (
        f"output {slot!r} is jointly owned by {', '.join(owners)}{where}: it stays sealed to the "
        "enclave and is never downloaded; use it as an input of a later task that all its "
        "owners approve"
    )


def kept_datasets(platform: Platform, task_id: str, slot: str, owner: str) -> list[DatasetRecord]:
    """The datasets ``owner`` registered from output ``slot`` of ``task_id`` (not deleted)."""
    return [
        record
        for record in platform.store.list_datasets(owner=owner)
        if record.produced_by_task == task_id
        and (record.meta or {}).get("slot") == slot
        and not record.joint_owners
        and record.state == "ready"
    ]


@router.post(
    "/{task_id}/outputs/{slot}/dataset",
    status_code=201,
    responses=error_responses(401, 403, 404, 409, 413, 422),
)
async def output_as_dataset(
    task_id: str,
    slot: str,
    body: OutputDatasetCreate,
    user: CurrentUser,
    platform: PlatformDep,
) -> DatasetPublic:
    """Register output ``slot`` as a dataset the caller owns; the same dataset again if the
    caller registered it before. The dataset's ciphertext is the output's, byte for byte."""
    task = task_for(platform, task_id, user)
    if task.status != "succeeded":
        raise ApiError.conflict(f"task is {task.status}; only a succeeded task's outputs are kept")
    output = _output(platform, task_id, slot)
    if output.joint_owners:
        raise ApiError.forbidden(joint_output_message(slot, output.joint_owners, output.dataset_id))
    if user.username not in output.wrapped_keys:
        raise ApiError.forbidden(f"you are not a recipient of output {slot!r}")
    if task.contract["outputs"].get(slot, {}).get("pad") is not None:
        raise ApiError.conflict(
            f"output {slot!r} is padded: its sealed bytes are framed, not the dataset itself; "
            "download it and upload the plaintext as a dataset (`teeflow dataset from-output` "
            "does this for you)"
        )
    earlier = kept_datasets(platform, task_id, slot, user.username)
    if earlier:
        return public_dataset(earlier[0], user.username)
    dataset_id = uuid.uuid4().hex
    left = await run_in_threadpool(storage_left, platform, user.username)
    if output.size > left:
        raise storage_quota_error(platform.settings.max_storage_bytes)
    platform.store.create_dataset(
        dataset_id=dataset_id,
        name=body.name,
        kind=body.kind,
        description=body.description,
        owner=user.username,
        now=platform.clock(),
        produced_by_task=task_id,
        meta={"slot": slot, "contract_hash": task.contract_hash},
    )
    key = f"datasets/{dataset_id}"
    sha256, size = await run_in_threadpool(_copy_blob, platform, output.blob_key, key)
    if sha256 != output.ciphertext_sha256:
        platform.blobs.delete(key)
        raise ApiError(500, "output_corrupt", f"output {slot!r} no longer matches its hash")
    platform.store.mark_dataset_ready(dataset_id, ciphertext_sha256=sha256, size=size, blob_key=key)
    platform.store.append_audit(
        actor=user.username,
        action="dataset.from_output",
        subject=dataset_id,
        details={
            "task_id": task_id,
            "slot": slot,
            "name": body.name,
            "kind": body.kind,
            "ciphertext_sha256": sha256,
        },
        now=platform.clock(),
    )
    return public_dataset(dataset_or_404(platform, dataset_id), user.username)


def _output(platform: Platform, task_id: str, slot: str) -> OutputRecord:
    for output in platform.store.list_outputs(task_id):
        if output.slot == slot:
            result: OutputRecord = output
            return result
    raise ApiError.not_found(f"output {slot!r}")


def _copy_blob(platform: Platform, source: str, target: str) -> tuple[str, int]:
    """Copy blob ``source`` to ``target`` in bounded memory; (content digest, size) of the copy."""
    with platform.blobs.open(source) as reader, platform.blobs.writer(target) as writer:
        while block := reader.read(_COPY):
            writer.write(block)
    return writer.digest, writer.size
