"""Executor-facing API (workers pull their work), plus the attestation and audit views.

Executors present the operator's registration secret once and then a token. They fetch a dataset's
ciphertext only for a task they hold the lease on, and only when its owner approved that task.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from teeflow.server.app import Platform
from teeflow.server.deps import CurrentExecutor, CurrentUser, PlatformDep, token_hash
from teeflow.server.errors import ApiError
from teeflow.server.routes._streams import receive_blob, send_blob
from teeflow.server.store import AuditEntry, Conflict, ExecutorRecord, TaskRecord

router = APIRouter(tags=["executors"])


class Registration(BaseModel):
    secret: str
    tee: str = Field(max_length=16)
    measurement: str = Field(max_length=128)
    evidence: dict[str, Any]
    public_keys: dict[str, str]


class OutputMeta(BaseModel):
    ciphertext_sha256: str
    wrapped_keys: dict[str, str]
    joint_owners: list[str] | None = None


class Finish(BaseModel):
    status: Literal["succeeded", "failed"]
    reason: str = Field(default="", max_length=4000)
    receipt: dict[str, Any]
    outputs: dict[str, OutputMeta] = Field(default_factory=dict)


class Event(BaseModel):
    recipient: str
    payload: str = Field(max_length=1 << 20)
    kind: str = "sealed"


@router.get("/v1/enclave", tags=["attestation"])
def enclave(_: CurrentUser, platform: PlatformDep) -> dict[str, Any]:
    """The registered executors' evidence, for members to verify against their own policy."""
    executors = sorted(platform.store.list_executors(), key=lambda e: e.registered_at)
    if not executors:
        raise ApiError(503, "no_executor", "no enclave executor is registered; start one first")
    newest = executors[-1]
    return {
        "tee": newest.tee,
        "measurement": newest.measurement,
        "public_keys": newest.public_keys,
        "evidence": newest.evidence,
        "executors": [{"id": e.executor_id, "measurement": e.measurement} for e in executors],
    }


@router.get("/v1/audit", tags=["audit"])
def audit(
    _: CurrentUser, platform: PlatformDep, after: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    from teeflow.server.audit import event_to_dict

    return [event_to_dict(e) for e in platform.store.list_audit(after_seq=after)][:limit]


@router.post("/v1/executors", status_code=201)
def register(body: Registration, platform: PlatformDep) -> dict[str, str]:
    if not hmac.compare_digest(body.secret, platform.executor_secret):
        raise ApiError(401, "unauthorized", "wrong executor registration secret")
    executor_id = uuid.uuid4().hex
    token = "tfx_" + secrets.token_urlsafe(32)
    now = platform.clock()
    platform.store.register_executor(
        executor_id=executor_id,
        tee=body.tee,
        measurement=body.measurement,
        evidence=body.evidence,
        public_keys=body.public_keys,
        token_hash=token_hash(token),
        now=now,
    )
    platform.store.append_audit(
        actor=f"executor:{executor_id}",
        action="executor.register",
        subject=executor_id,
        details={"tee": body.tee, "measurement": body.measurement, "public_keys": body.public_keys},
        now=now,
    )
    return {"executor_id": executor_id, "token": token}


def _bundle(platform: Platform, task: TaskRecord) -> dict[str, Any]:
    approvals = {
        a.username: {"signature": a.signature, "wrapped_keys": a.wrapped_keys}
        for a in platform.store.list_approvals(task.task_id)
        if a.decision == "approve"
    }
    joint: dict[str, Any] = {}
    for slot, spec in task.contract["inputs"].items():
        if not spec.get("joint"):
            continue
        producer = platform.store.get_task(spec["joint"]["task_id"])
        produced = [
            o
            for o in platform.store.list_outputs(spec["joint"]["task_id"])
            if o.slot == spec["joint"]["slot"]
        ]
        if producer is not None and producer.receipt is not None and produced:
            joint[slot] = {
                "receipt": producer.receipt,
                "wrapped_key": produced[0].wrapped_keys.get("enclave"),
            }
    return {
        "task_id": task.task_id,
        "contract": task.contract,
        "approvals": approvals,
        "joint_inputs": joint,
    }


@router.post("/v1/executor/lease", response_model=None)
def lease(executor: CurrentExecutor, platform: PlatformDep) -> Response | dict[str, Any]:
    now = platform.clock()
    platform.store.touch_executor(executor.executor_id, now)
    task = platform.store.lease_next(
        executor_id=executor.executor_id,
        now=now,
        lease_seconds=platform.settings.lease_seconds,
        audit=AuditEntry(
            actor=f"executor:{executor.executor_id}", action="task.lease", subject="", details={}
        ),
    )
    if task is None:
        return Response(status_code=204)
    if task.attempts > platform.settings.max_attempts:
        # An executor died on this task every time: fail it rather than retry forever.
        platform.store.finish(
            task_id=task.task_id,
            executor_id=executor.executor_id,
            status="failed",
            receipt=None,
            failure_reason=f"no executor finished the task in {task.attempts - 1} attempts",
            now=now,
            audit=AuditEntry(
                actor="control-plane",
                action="task.abandoned",
                subject=task.task_id,
                details={"reason": "attempts exhausted"},
            ),
        )
        return Response(status_code=204)
    return {**_bundle(platform, task), "lease_seconds": platform.settings.lease_seconds}


def _output_key(task_id: str, slot: str) -> str:
    """Blob key of an output: slot names may hold ':' (``flags:bank``), so they are hex-encoded."""
    return f"outputs/{task_id}/{slot.encode('utf-8').hex()}"


def _leased(platform: Platform, task_id: str, executor: ExecutorRecord) -> TaskRecord:
    task = platform.store.get_task(task_id)
    if task is None or task.status != "running" or task.lease_owner != executor.executor_id:
        raise ApiError(409, "lease_lost", "this executor does not hold the task's lease")
    return task


@router.post("/v1/executor/tasks/{task_id}/heartbeat")
def heartbeat(task_id: str, executor: CurrentExecutor, platform: PlatformDep) -> dict[str, bool]:
    ok = platform.store.heartbeat(
        task_id=task_id,
        executor_id=executor.executor_id,
        now=platform.clock(),
        lease_seconds=platform.settings.lease_seconds,
    )
    if not ok:
        raise ApiError(
            409, "lease_lost", "lease lost (expired, canceled or taken by another executor)"
        )
    return {"ok": True}


@router.get("/v1/executor/tasks/{task_id}/inputs/{slot}")
def input_content(
    task_id: str, slot: str, executor: CurrentExecutor, platform: PlatformDep
) -> StreamingResponse:
    task = _leased(platform, task_id, executor)
    spec = task.contract["inputs"].get(slot)
    if spec is None:
        raise ApiError.not_found(f"input {slot!r}")
    approved = {
        a.username for a in platform.store.list_approvals(task_id) if a.decision == "approve"
    }
    if not set(spec["owners"]) <= approved:
        raise ApiError.forbidden(f"the owners of input {slot!r} have not approved this task")
    dataset = platform.store.get_dataset(spec["dataset_id"])
    if dataset is None or dataset.blob_key is None:
        raise ApiError.not_found(f"dataset of input {slot!r}")
    return send_blob(platform, dataset.blob_key, filename=f"{slot}.sealed")


@router.get("/v1/executor/tasks/{task_id}/function")
def function_source(
    task_id: str, executor: CurrentExecutor, platform: PlatformDep
) -> StreamingResponse:
    task = _leased(platform, task_id, executor)
    dataset_id = task.contract["function"].get("source_dataset_id")
    dataset = platform.store.get_dataset(dataset_id) if dataset_id else None
    if dataset is None or dataset.blob_key is None:
        raise ApiError.not_found("function source")
    return send_blob(platform, dataset.blob_key, filename="function.sealed")


@router.get("/v1/executor/tasks/{task_id}/checkpoint", response_model=None)
def get_checkpoint(task_id: str, executor: CurrentExecutor, platform: PlatformDep) -> Response:
    _leased(platform, task_id, executor)
    found = platform.store.get_checkpoint(task_id)
    if found is None:
        return Response(status_code=204)
    return send_blob(platform, found[0], filename="checkpoint.sealed")


@router.put("/v1/executor/tasks/{task_id}/checkpoint")
async def put_checkpoint(
    task_id: str,
    request: Request,
    executor: CurrentExecutor,
    platform: PlatformDep,
    x_sequence: int = Header(default=0),
) -> dict[str, str]:
    _leased(platform, task_id, executor)
    key = f"checkpoints/{task_id}/{uuid.uuid4().hex}"
    sha256, _ = await receive_blob(request, platform, key)
    try:
        platform.store.put_checkpoint(
            task_id=task_id, blob_key=key, epoch=x_sequence, now=platform.clock()
        )
    except Conflict:
        platform.blobs.delete(key)
        raise ApiError.conflict("a newer checkpoint of this task is already stored") from None
    return {"ciphertext_sha256": sha256}


@router.post("/v1/executor/tasks/{task_id}/events", status_code=201)
def add_event(
    task_id: str, body: Event, executor: CurrentExecutor, platform: PlatformDep
) -> dict[str, int]:
    task = _leased(platform, task_id, executor)
    if body.recipient not in task.participants:
        raise ApiError.invalid("event recipient is not a participant")
    seq = platform.store.add_event(
        task_id=task_id,
        recipient=body.recipient,
        kind=body.kind,
        payload=body.payload,
        now=platform.clock(),
    )
    return {"seq": seq}


@router.put("/v1/executor/tasks/{task_id}/outputs/{slot}")
async def put_output(
    task_id: str, slot: str, request: Request, executor: CurrentExecutor, platform: PlatformDep
) -> dict[str, Any]:
    task = _leased(platform, task_id, executor)
    if slot not in task.contract["outputs"]:
        raise ApiError.invalid(f"the contract has no output slot {slot!r}")
    sha256, size = await receive_blob(request, platform, _output_key(task_id, slot))
    return {"ciphertext_sha256": sha256, "size": size}


@router.post("/v1/executor/tasks/{task_id}/finish")
def finish(
    task_id: str, body: Finish, executor: CurrentExecutor, platform: PlatformDep
) -> dict[str, str]:
    task = _leased(platform, task_id, executor)
    now = platform.clock()
    for slot, meta in body.outputs.items():
        key = _output_key(task_id, slot)
        if slot not in task.contract["outputs"] or not platform.blobs.exists(key):
            raise ApiError.invalid(f"output {slot!r} was not uploaded")
        dataset_id = None
        if meta.joint_owners:
            dataset_id = uuid.uuid4().hex
            platform.store.create_dataset(
                dataset_id=dataset_id,
                name=f"{slot} of task {task_id[:8]}",
                kind="model",
                description="joint output; sealed to the enclave",
                owner=meta.joint_owners[0],
                now=now,
                produced_by_task=task_id,
                joint_owners=meta.joint_owners,
                meta={"contract_hash": task.contract_hash, "slot": slot},
            )
            platform.store.mark_dataset_ready(
                dataset_id,
                ciphertext_sha256=meta.ciphertext_sha256,
                size=platform.blobs.size(key),
                blob_key=key,
            )
        platform.store.add_output(
            task_id=task_id,
            slot=slot,
            blob_key=key,
            ciphertext_sha256=meta.ciphertext_sha256,
            size=platform.blobs.size(key),
            wrapped_keys=meta.wrapped_keys,
            joint_owners=meta.joint_owners,
            dataset_id=dataset_id,
        )
    done = platform.store.finish(
        task_id=task_id,
        executor_id=executor.executor_id,
        status=body.status,
        receipt=body.receipt,
        failure_reason=body.reason or None,
        now=now,
        audit=AuditEntry(
            actor=f"executor:{executor.executor_id}",
            action=f"task.{body.status}",
            subject=task_id,
            details={"receipt": body.receipt, "reason": body.reason},
        ),
    )
    if not done:
        raise ApiError(409, "lease_lost", "lease lost before finish; the task will be retried")
    return {"status": body.status}
