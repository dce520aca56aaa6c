"""Datasets: metadata plus a ciphertext the member sealed on its own machine.

Only the owner downloads a dataset's ciphertext; executors get it only for a task the owner
approved (routes/executors.py). A joint output is never downloadable: it stays sealed to the
enclave and is only usable as the input of a task all its owners approve.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from teeflow.crypto import VerifyKey
from teeflow.enclave.policies import verify_policy
from teeflow.server.deps import CurrentUser, PlatformDep
from teeflow.server.errors import ApiError, error_responses
from teeflow.server.quotas import OPEN_TASK_STATES, storage_left, storage_quota_error
from teeflow.server.routes._streams import (
    BLOB_RESPONSE,
    UPLOAD_BODY,
    receive_blob,
    send_blob,
)
from teeflow.server.store import AuditEntry, DatasetRecord

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

MAX_SCHEMA_BYTES = 256 << 10
Kind = Literal["table", "images", "model", "other", "function"]


class DatasetCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/\\\x00]+$")
    kind: Kind = "other"
    description: str = Field(default="", max_length=2000)
    rows: int | None = Field(
        default=None,
        ge=0,
        le=2**53,
        description="the owner's schema summary: how many rows the table has, for the review of "
        "the tasks that use it (the owner's word; unknown when not given)",
    )


class DatasetPublic(BaseModel):
    id: str
    name: str
    kind: str
    description: str
    owner: str
    joint_owners: list[str] | None
    state: str
    ciphertext_sha256: str | None
    size: int | None
    produced_by_task: str | None
    created_at: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    """The owner's signed schema summary, when the owner published one (client checks it)."""


def public_dataset(record: DatasetRecord, viewer: str) -> DatasetPublic:
    """The dataset as ``viewer`` sees it: its size only if it is one of the owners (others see
    the sizes of a task's inputs in that task, as its participants: routes/tasks.py)."""
    owners = set(record.joint_owners or []) | {record.owner}
    return DatasetPublic(
        id=record.dataset_id,
        name=record.name,
        kind=record.kind,
        description=record.description,
        owner=record.owner,
        joint_owners=list(record.joint_owners) if record.joint_owners else None,
        state=record.state,
        ciphertext_sha256=record.ciphertext_sha256,
        size=record.size if viewer in owners else None,
        produced_by_task=record.produced_by_task,
        created_at=record.created_at.isoformat(),
        schema=(record.meta or {}).get("schema"),
    )


def dataset_or_404(platform: Any, dataset_id: str) -> DatasetRecord:
    record: DatasetRecord | None = platform.store.get_dataset(dataset_id)
    if record is None:
        raise ApiError.not_found(f"dataset {dataset_id}")
    return record


@router.post("", status_code=201, responses=error_responses(401, 422))
def create_dataset(body: DatasetCreate, user: CurrentUser, platform: PlatformDep) -> DatasetPublic:
    now = platform.clock()
    record = platform.store.create_dataset(
        dataset_id=uuid.uuid4().hex,
        name=body.name,
        kind=body.kind,
        description=body.description,
        owner=user.username,
        now=now,
        meta={"rows": body.rows} if body.rows is not None else None,
    )
    return public_dataset(record, user.username)


@router.put(
    "/{dataset_id}/content",
    responses=error_responses(401, 403, 404, 409, 413, 422),
    openapi_extra=UPLOAD_BODY,
)
async def upload_content(
    dataset_id: str,
    request: Request,
    user: CurrentUser,
    platform: PlatformDep,
    x_content_sha256: str | None = Header(default=None),
) -> DatasetPublic:
    record = dataset_or_404(platform, dataset_id)
    if record.owner != user.username or record.joint_owners:
        raise ApiError.forbidden("only the dataset's owner uploads its content")
    if record.state != "pending":
        raise ApiError.conflict("dataset content is already uploaded; create a new dataset")
    key = f"datasets/{dataset_id}"
    left = await run_in_threadpool(storage_left, platform, user.username)
    try:
        sha256, size = await receive_blob(
            request, platform, key, expected_sha256=x_content_sha256, max_bytes=left
        )
    except ApiError as exc:
        if exc.status == 413 and left < platform.settings.max_upload_bytes:
            raise storage_quota_error(platform.settings.max_storage_bytes) from None
        raise
    platform.store.mark_dataset_ready(dataset_id, ciphertext_sha256=sha256, size=size, blob_key=key)
    platform.store.append_audit(
        actor=user.username,
        action="dataset.upload",
        subject=dataset_id,
        details={
            "name": record.name,
            "kind": record.kind,
            "ciphertext_sha256": sha256,
        },  # no size: every member reads the audit log (docs/decisions/0007)
        now=platform.clock(),
    )
    return public_dataset(dataset_or_404(platform, dataset_id), user.username)


@router.get("", responses=error_responses(401, 422))
def list_datasets(
    user: CurrentUser, platform: PlatformDep, owner: str | None = None
) -> list[DatasetPublic]:
    """Your datasets (owned or jointly owned), or another member's by ``owner`` (metadata only)."""
    if owner is None:
        records = platform.store.list_datasets(visible_to=user.username)
    else:
        records = [r for r in platform.store.list_datasets(owner=owner) if not r.joint_owners]
    return [public_dataset(r, user.username) for r in records]


@router.get("/{dataset_id}", responses=error_responses(401, 404, 422))
def get_dataset(dataset_id: str, user: CurrentUser, platform: PlatformDep) -> DatasetPublic:
    return public_dataset(dataset_or_404(platform, dataset_id), user.username)


@router.get(
    "/{dataset_id}/content",
    response_class=Response,
    responses={**BLOB_RESPONSE, **error_responses(401, 403, 404, 409, 422)},
)
def download_content(
    dataset_id: str, user: CurrentUser, platform: PlatformDep
) -> StreamingResponse:
    record = dataset_or_404(platform, dataset_id)
    if record.joint_owners:
        raise ApiError.forbidden(
            "a joint output never leaves the enclave; "
            "use it as the input of a task its owners approve"
        )
    if record.owner != user.username:
        raise ApiError.forbidden("only the dataset's owner can download its ciphertext")
    if record.state != "ready" or record.blob_key is None:
        raise ApiError.conflict("dataset content has not been uploaded yet")
    return send_blob(platform, record.blob_key, filename=f"{dataset_id}.sealed")


@router.delete("/{dataset_id}", status_code=204, responses=error_responses(401, 403, 404, 409, 422))
def delete_dataset(dataset_id: str, user: CurrentUser, platform: PlatformDep) -> None:
    """Delete a dataset you own: its ciphertext is removed and its space freed; its record stays
    (state ``deleted``), as do the audit log's entries and the contracts that name it.

    409 while an unfinished task takes it as an input (cancel the task, or wait for it to end).
    """
    record = dataset_or_404(platform, dataset_id)
    if record.owner != user.username or record.joint_owners:
        raise ApiError.forbidden("only the dataset's sole owner can delete it")
    if record.state == "deleted":
        return
    using = platform.store.tasks_using(dataset_id, statuses=OPEN_TASK_STATES)
    if using:
        raise ApiError.conflict(
            f"unfinished task(s) {', '.join(using)} use this dataset; cancel them or wait until "
            "they end, then delete it"
        )
    blob_key = platform.store.mark_dataset_deleted(
        dataset_id,
        now=platform.clock(),
        audit=AuditEntry(
            actor=user.username,
            action="dataset.delete",
            subject=dataset_id,
            details={"name": record.name, "ciphertext_sha256": record.ciphertext_sha256},
        ),
    )
    if blob_key is not None:
        platform.blobs.delete(blob_key)


class SignedPolicy(BaseModel):
    """An owner-signed dataset policy (enclave/policies.py); the control plane only stores it."""

    policy: dict[str, Any]
    signature: str = Field(max_length=200)


@router.put("/{dataset_id}/policy", responses=error_responses(401, 403, 404, 409, 422))
def set_policy(
    dataset_id: str, body: SignedPolicy, user: CurrentUser, platform: PlatformDep
) -> dict[str, Any]:
    """Attach the owner's signed policy; every later contract over the dataset carries it.

    The control plane checks the signature so a mistake shows at once; the owner's client and
    the enclave check it again (the control plane is not trusted to)."""
    record = dataset_or_404(platform, dataset_id)
    if record.owner != user.username or record.joint_owners:
        raise ApiError.forbidden("only the dataset's owner sets its policy")
    if record.state != "ready":
        raise ApiError.conflict("upload the dataset's content before its policy")
    signed = body.model_dump()
    try:
        policy = verify_policy(signed, VerifyKey.from_b64(user.sign_pk))
    except ValueError as exc:
        raise ApiError.invalid(f"policy refused: {exc}") from None
    if policy.owner != user.username or policy.ciphertext_sha256 != record.ciphertext_sha256:
        raise ApiError.invalid("the policy names another owner or another ciphertext")
    now = platform.clock()
    platform.store.set_dataset_meta(
        dataset_id,
        key="policy",
        value=signed,
        now=now,
        audit=AuditEntry(
            actor=user.username,
            action="dataset.policy",
            subject=dataset_id,
            details={"policy": signed["policy"], "signature": signed["signature"]},
        ),
    )
    return signed


class SignedSchema(BaseModel):
    """An owner-signed schema summary (client/_schema_publish.py); the control plane only stores
    it, and partners verify it against the owner's key they pinned."""

    schema_: dict[str, Any] = Field(alias="schema")
    signature: str = Field(max_length=200)


@router.put("/{dataset_id}/schema", responses=error_responses(401, 403, 404, 409, 413, 422))
def publish_schema(
    dataset_id: str, body: SignedSchema, user: CurrentUser, platform: PlatformDep
) -> dict[str, Any]:
    """Publish the owner's signed schema summary (opt-in): partners see it with the dataset."""
    record = dataset_or_404(platform, dataset_id)
    if record.owner != user.username or record.joint_owners:
        raise ApiError.forbidden("only the dataset's owner publishes its schema")
    if record.state != "ready":
        raise ApiError.conflict("upload the dataset's content before its schema")
    signed = {"schema": body.schema_, "signature": body.signature}
    if len(json.dumps(signed)) > MAX_SCHEMA_BYTES:
        raise ApiError(413, "too_large", f"a schema summary is at most {MAX_SCHEMA_BYTES} bytes")
    platform.store.set_dataset_meta(
        dataset_id,
        key="schema",
        value=signed,
        now=platform.clock(),
        audit=AuditEntry(
            actor=user.username, action="dataset.schema", subject=dataset_id, details={}
        ),
    )
    return signed
