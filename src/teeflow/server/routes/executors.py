"""Executor-facing API (workers pull their work), plus the attestation and audit views.

Executors present the operator's registration secret once and then a token. They fetch a dataset's
ciphertext only for a task they hold the lease on, and only when its owner approved that task.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator

from teeflow.crypto import b64d, b64e, content_digest_like
from teeflow.enclave.session import is_session_contract
from teeflow.server.app import Platform
from teeflow.server.blocking import in_worker_thread, run_blocking
from teeflow.server.contracts import plain_json
from teeflow.server.deps import (
    MAX_SEQUENCE,
    CurrentExecutor,
    CurrentUser,
    PlatformDep,
    token_hash,
)
from teeflow.server.errors import ApiError, error_responses
from teeflow.server.notify import QUEUE, task_key, wait_for
from teeflow.server.routes._streams import (
    BLOB_RESPONSE,
    UPLOAD_BODY,
    receive_blob,
    send_blob,
)
from teeflow.server.row_blobs import row_key
from teeflow.server.store import (
    AuditEntry,
    Conflict,
    ExecutorRecord,
    Finishing,
    LeaseFacts,
    NewOutput,
    TaskRecord,
)

router = APIRouter(tags=["executors"])
T = TypeVar("T")


class Registration(BaseModel):
    secret: str
    tee: str = Field(max_length=16)
    measurement: str = Field(max_length=128)
    evidence: dict[str, Any]
    public_keys: dict[str, str]
    key_id: dict[str, Any] | None = Field(
        default=None,
        description="{measurement, epoch, signature}: the key id the executor holds, signed by "
        "its enclave key (members check it; enclave/key_id_claim.py)",
    )

    @field_validator("evidence", "key_id")
    @classmethod
    def _plain_evidence(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        result: dict[str, Any] | None = None if value is None else plain_json(value)
        return result


INLINE_BYTES = 64 << 10
"""Ciphertexts up to this size travel inside the lease / finish bodies (base64), saving a round
trip each; larger ones stream through their own requests."""


class OutputMeta(BaseModel):
    ciphertext_sha256: str = Field(pattern=r"^(?:blake3:)?[0-9a-f]{64}$")  # a content digest
    wrapped_keys: dict[str, str]
    joint_owners: list[str] | None = None
    content: str | None = Field(
        default=None,
        max_length=(INLINE_BYTES * 4) // 3 + 4,
        description="the ciphertext, base64, instead of a separate upload (small outputs only)",
    )


class Finish(BaseModel):
    status: Literal["succeeded", "failed"]
    reason: str = Field(default="", max_length=4000)
    receipt: dict[str, Any]
    outputs: dict[str, OutputMeta] = Field(default_factory=dict)

    @field_validator("receipt")
    @classmethod
    def _plain_receipt(cls, value: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = plain_json(value)
        return result


class Event(BaseModel):
    recipient: str = Field(max_length=128)
    payload: str = Field(max_length=1 << 20)
    kind: str = Field(default="sealed", max_length=64)  # the width of events.kind


@router.get("/v1/enclave", tags=["attestation"], responses=error_responses(401, 503))
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
        "key_id": newest.key_id,
        "executors": [
            {"id": e.executor_id, "measurement": e.measurement, "key_id": e.key_id}
            for e in executors
        ],
    }


@router.get("/v1/audit", tags=["audit"], responses=error_responses(401, 422))
def audit(
    _: CurrentUser,
    platform: PlatformDep,
    after: int = Query(0, ge=0, le=MAX_SEQUENCE),
    limit: int = Query(1000, ge=0, le=10_000),
) -> list[dict[str, Any]]:
    from teeflow.server.audit import event_to_dict

    return [event_to_dict(e) for e in platform.store.list_audit(after_seq=after, limit=limit)]


@router.post("/v1/executors", status_code=201, responses=error_responses(401, 422))
def register(body: Registration, platform: PlatformDep) -> dict[str, str]:
    # As bytes: compare_digest refuses non-ASCII str, and a hostile secret may hold any text.
    if not hmac.compare_digest(body.secret.encode(), platform.executor_secret.encode()):
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
        key_id=body.key_id,
        token_hash=token_hash(token),
        now=now,
    )
    platform.store.append_audit(
        actor=f"executor:{executor_id}",
        action="executor.register",
        subject=executor_id,
        # The evidence, so an auditor checks the key against its own policy (audit_verify.py).
        details={
            "tee": body.tee,
            "measurement": body.measurement,
            "public_keys": body.public_keys,
            "key_id": body.key_id,
            "evidence": body.evidence,
        },
        now=now,
    )
    return {"executor_id": executor_id, "token": token}


def _named_datasets(task: TaskRecord) -> list[str]:
    """The dataset ids a task's bundle may send: its inputs' and its uploaded function's."""
    source_id = task.contract["function"].get("source_dataset_id")
    named = [s["dataset_id"] for s in task.contract["inputs"].values() if s.get("dataset_id")]
    return [*named, source_id] if source_id else named


def _bundle(
    platform: Platform, task: TaskRecord, facts: LeaseFacts, read: Callable[[str], str]
) -> dict[str, Any]:
    """A leased task's bundle; ``facts`` as :meth:`Store.lease_facts` gives them, ``read`` a
    small blob's ciphertext (base64) by key (one read per key for a whole lease batch)."""
    inputs = task.contract["inputs"]
    source_id = task.contract["function"].get("source_dataset_id")
    approvals = {
        a.username: {"signature": a.signature, "wrapped_keys": a.wrapped_keys}
        for a in facts.approvals
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
    inline: dict[str, str] = {}
    for slot, spec in inputs.items():
        content = _small_blob(read, _approved_input(spec, set(approvals), facts))
        if content is not None:
            inline[slot] = content
    return {
        "task_id": task.task_id,
        "contract": task.contract,
        "approvals": approvals,
        "joint_inputs": joint,
        # Signed by members; the enclave checks both (enclave/run_state.py).
        "run_authorisation": task.run_authorisation,
        "withdrawals": task.withdrawals,
        "inline_inputs": inline,
        # The uploaded function's code, as GET .../function sends it (checked by its code hash).
        "inline_function": _small_blob(read, facts.datasets.get(source_id or "")),
        "inline_limit": INLINE_BYTES,
        # Lets the executor skip asking for a checkpoint that is not there. The host is untrusted
        # either way: hiding a checkpoint only makes the enclave start over.
        "has_checkpoint": facts.has_checkpoint,
    }


def _approved_input(
    spec: Mapping[str, Any], approved: set[str], facts: LeaseFacts
) -> tuple[str, int | None] | None:
    """An input slot's dataset (blob key, size) if every one of its owners approved the task
    and its ciphertext is stored; None otherwise. The one rule for sending an input, inline in
    the lease or on its own."""
    if not set(spec["owners"]) <= approved:
        return None
    blob_key, size = facts.datasets.get(spec.get("dataset_id") or "", (None, None))
    return None if blob_key is None else (blob_key, size)


def _small_blob(
    read: Callable[[str], str], found: tuple[str | None, int | None] | None
) -> str | None:
    """A dataset's ciphertext, base64 (``read`` by its key), when ``found`` (its blob key and
    size) says it is at most INLINE_BYTES; None for a larger or missing one (the executor
    downloads it on its own)."""
    blob_key, size = found or (None, None)
    if blob_key is None or size is None or size > INLINE_BYTES:
        return None
    return read(blob_key)


def _blob_reader(platform: Platform) -> Callable[[str], str]:
    """Reads a small blob's ciphertext as base64, each key once (the tasks of a lease batch
    often share an input): a cache for one batch only, so a replaced blob is read anew by the
    next lease."""
    read: dict[str, str] = {}

    def content(blob_key: str) -> str:
        if blob_key not in read:
            with platform.blobs.open(blob_key) as handle:
                read[blob_key] = b64e(handle.read(INLINE_BYTES + 1))
        return read[blob_key]

    return content


MAX_LEASE_WAIT_SECONDS = 30.0
LeaseWait = Annotated[
    float,
    Query(ge=0.0, le=MAX_LEASE_WAIT_SECONDS, description="long-poll up to seconds for work"),
]
SessionsFlag = Annotated[
    bool, Query(description="false: batch tasks only (the executor already serves a session)")
]


@router.post(
    "/v1/executor/lease",
    response_model=None,
    responses={204: {"description": "No task was queued"}, **error_responses(401, 422)},
)
async def lease(
    request: Request,
    executor: CurrentExecutor,
    platform: PlatformDep,
    wait: LeaseWait = 0.0,
    sessions: SessionsFlag = True,
) -> Response | dict[str, Any]:
    """Lease the next queued task (200), or 204 if none came within ``wait`` seconds.

    An executor that serves an inference session keeps leasing with ``sessions=false``, so a
    session never holds an executor away from batch work (docs/inference.md).

    The wait is capped at half the lease time, so that leases which expire while every executor
    waits are still found and re-queued promptly.
    """
    seen = LastSeen(executor)
    leased = await wait_for_work(
        request, platform, wait, lambda: _lease_once(executor, platform, sessions, seen)
    )
    return leased if leased is not None else Response(status_code=204)


async def wait_for_work(
    request: Request, platform: Platform, wait: float, take: Callable[[], T | None]
) -> T | None:
    """Call ``take`` (in a thread) until it returns work or ``wait`` seconds pass, woken by the
    queue's notifications; None when none came or the executor hung up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + platform.settings.long_poll_seconds(wait, executor=True)
    while True:
        with platform.notifier.subscribe(QUEUE) as woken:
            if await request.is_disconnected():
                # A dead executor's pending long-poll must not take work it can never run.
                return None
            work = await run_blocking(take)
            remaining = deadline - loop.time()
            if work is not None or remaining <= 0 or not await wait_for(woken, remaining):
                return work


def _skip_for(executor: ExecutorRecord, *, sessions: bool) -> Callable[[Mapping[str, Any]], bool]:
    """Which waiting tasks this executor passes over: those approved for another TEE or
    measurement (its enclave would only refuse them: a mixed fleet), and sessions if asked."""
    enclave = (executor.tee, executor.measurement)

    def skip(contract: Mapping[str, Any]) -> bool:
        named = contract.get("executor") or {}
        if (named.get("tee"), named.get("measurement")) != enclave:
            return True
        return not sessions and is_session_contract(contract)

    return skip


class LastSeen:
    """When one request last recorded its executor as seen, so that a long-poll that wakes
    often, or a batch of leases, writes ``last_seen_at`` at most once a second."""

    def __init__(self, executor: ExecutorRecord) -> None:
        self.executor_id = executor.executor_id
        self.at = executor.last_seen_at

    def touch(self, platform: Platform, now: datetime) -> None:
        if (now - self.at).total_seconds() >= 1.0:
            platform.store.touch_executor(self.executor_id, now)
            self.at = now


def _lease_once(
    executor: ExecutorRecord, platform: Platform, sessions: bool, seen: LastSeen
) -> dict[str, Any] | None:
    leased = lease_bundles(executor, platform, sessions, seen, limit=1)
    return leased[0] if leased else None


def lease_bundles(
    executor: ExecutorRecord, platform: Platform, sessions: bool, seen: LastSeen, *, limit: int
) -> list[dict[str, Any]]:
    """Lease up to ``limit`` tasks for ``executor`` in one store transaction (at most one
    inference session among them) and return their bundles, oldest first; a task whose attempts
    are exhausted is failed instead of handed out."""
    now = platform.clock()
    seen.touch(platform, now)
    tasks = platform.store.lease_batch(
        executor_id=executor.executor_id,
        now=now,
        lease_seconds=platform.settings.lease_seconds,
        limit=limit,
        audit=AuditEntry(
            actor=f"executor:{executor.executor_id}", action="task.lease", subject="", details={}
        ),
        skip=_skip_for(executor, sessions=sessions),
        one_of=is_session_contract,
    )
    running: list[TaskRecord] = []
    for task in tasks:
        platform.notifier.notify(task_key(task.task_id))
        if task.attempts > platform.settings.max_attempts:
            _abandon(platform, executor, task, now)
        else:
            running.append(task)
    # The batch's approvals, datasets and checkpoints in one read.
    facts = platform.store.lease_facts_of({t.task_id: _named_datasets(t) for t in running})
    read = _blob_reader(platform)
    return [
        {
            **_bundle(platform, task, facts[task.task_id], read),
            "lease_seconds": platform.settings.lease_seconds,
        }
        for task in running
    ]


def _abandon(platform: Platform, executor: ExecutorRecord, task: TaskRecord, now: datetime) -> None:
    """Fail a task an executor died on every time, rather than retry it forever."""
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
    platform.notifier.notify(task_key(task.task_id), QUEUE)


def _output_key(task_id: str, slot: str) -> str:
    """Blob key of an output: slot names may hold ':' (``flags:bank``), so they are hex-encoded."""
    return f"outputs/{task_id}/{slot.encode('utf-8').hex()}"


def _leased(
    platform: Platform,
    task_id: str,
    executor: ExecutorRecord,
    known: Mapping[str, TaskRecord] | None = None,
) -> TaskRecord:
    """The task if ``executor`` holds its lease (looked up in ``known``, a batch's tasks read
    at once, when given); ApiError 409 ``lease_lost`` otherwise."""
    task = platform.store.get_task(task_id) if known is None else known.get(task_id)
    if task is None or task.status != "running" or task.lease_owner != executor.executor_id:
        raise ApiError(409, "lease_lost", "this executor does not hold the task's lease")
    return task


@router.post("/v1/executor/tasks/{task_id}/heartbeat", responses=error_responses(401, 409, 422))
@in_worker_thread
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


@router.get(
    "/v1/executor/tasks/{task_id}/inputs/{slot}",
    response_class=Response,
    responses={**BLOB_RESPONSE, **error_responses(401, 403, 404, 409, 422)},
)
def input_content(
    task_id: str, slot: str, executor: CurrentExecutor, platform: PlatformDep
) -> StreamingResponse:
    """A large input's ciphertext (a small one comes with the lease); 403 unless every owner
    of the slot approved the task and its dataset is stored."""
    task = _leased(platform, task_id, executor)
    spec = task.contract["inputs"].get(slot)
    if spec is None:
        raise ApiError.not_found(f"input {slot!r}")
    dataset_ids = [spec["dataset_id"]] if spec.get("dataset_id") else []
    facts = platform.store.lease_facts(task_id, dataset_ids)
    approved = {a.username for a in facts.approvals if a.decision == "approve"}
    found = _approved_input(spec, approved, facts)
    if found is None:
        raise ApiError.forbidden(
            f"input {slot!r} is not available: its owners have not approved this task, "
            "or its dataset is gone"
        )
    return send_blob(platform, found[0], filename=f"{slot}.sealed")


@router.get(
    "/v1/executor/tasks/{task_id}/function",
    response_class=Response,
    responses={**BLOB_RESPONSE, **error_responses(401, 404, 409, 422)},
)
def function_source(
    task_id: str, executor: CurrentExecutor, platform: PlatformDep
) -> StreamingResponse:
    task = _leased(platform, task_id, executor)
    dataset_id = task.contract["function"].get("source_dataset_id")
    dataset = platform.store.get_dataset(dataset_id) if dataset_id else None
    if dataset is None or dataset.blob_key is None:
        raise ApiError.not_found("function source")
    return send_blob(platform, dataset.blob_key, filename="function.sealed")


@router.get(
    "/v1/executor/tasks/{task_id}/checkpoint",
    response_model=None,
    response_class=Response,
    responses={
        **BLOB_RESPONSE,
        204: {"description": "No checkpoint yet"},
        **error_responses(401, 404, 409, 422),
    },
)
def get_checkpoint(task_id: str, executor: CurrentExecutor, platform: PlatformDep) -> Response:
    _leased(platform, task_id, executor)
    found = platform.store.get_checkpoint(task_id)
    if found is None:
        return Response(status_code=204)
    return send_blob(platform, found[0], filename="checkpoint.sealed")


@router.put(
    "/v1/executor/tasks/{task_id}/checkpoint",
    responses=error_responses(401, 409, 413, 422),
    openapi_extra=UPLOAD_BODY,
)
async def put_checkpoint(
    task_id: str,
    request: Request,
    executor: CurrentExecutor,
    platform: PlatformDep,
    x_sequence: int = Header(default=0, ge=0, le=MAX_SEQUENCE),
) -> dict[str, str]:
    # The store's reads and writes run off the event loop (a write may wait for a lock).
    await run_blocking(_leased, platform, task_id, executor)
    key = f"checkpoints/{task_id}/{uuid.uuid4().hex}"
    sha256, _ = await receive_blob(request, platform, key)
    try:
        await run_blocking(
            platform.store.put_checkpoint,
            task_id=task_id,
            blob_key=key,
            epoch=x_sequence,
            now=platform.clock(),
        )
    except Conflict:
        await run_blocking(platform.blobs.delete, key)
        raise ApiError.conflict("a newer checkpoint of this task is already stored") from None
    return {"ciphertext_sha256": sha256}


@router.post(
    "/v1/executor/tasks/{task_id}/events", status_code=201, responses=error_responses(401, 409, 422)
)
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
    platform.notifier.notify(task_key(task_id))
    return {"seq": seq}


@router.put(
    "/v1/executor/tasks/{task_id}/outputs/{slot}",
    responses=error_responses(401, 409, 413, 422),
    openapi_extra=UPLOAD_BODY,
)
async def put_output(
    task_id: str, slot: str, request: Request, executor: CurrentExecutor, platform: PlatformDep
) -> dict[str, Any]:
    task = await run_blocking(_leased, platform, task_id, executor)
    if slot not in task.contract["outputs"]:
        raise ApiError.invalid(f"the contract has no output slot {slot!r}")
    sha256, size = await receive_blob(request, platform, _output_key(task_id, slot))
    return {"ciphertext_sha256": sha256, "size": size}


def _inline_ciphertext(slot: str, meta: OutputMeta) -> bytes:
    """The inline ciphertext of an output, checked against its digest; ApiError 422 if not."""
    try:
        ciphertext = b64d(meta.content or "")
    except ValueError:
        raise ApiError.invalid(f"output {slot!r}: content is not base64") from None
    digest = meta.ciphertext_sha256
    if len(ciphertext) > INLINE_BYTES or content_digest_like(ciphertext, digest) != digest:
        raise ApiError.invalid(f"output {slot!r}: inline content does not match its digest")
    return ciphertext


def _new_output(platform: Platform, task: TaskRecord, slot: str, meta: OutputMeta) -> NewOutput:
    """The output a finish records: a small inline one goes into the database with the finish
    (server/row_blobs.py), a larger inline one into the blob store now, an uploaded one is
    already there. ApiError 422 if it is missing, corrupt or differs from the contract."""
    spec = task.contract["outputs"].get(slot)
    if spec is None:
        raise ApiError.invalid(f"output {slot!r} was not uploaded")
    if sorted(meta.joint_owners or []) != sorted(spec.get("joint_owners") or []):
        raise ApiError.invalid(f"output {slot!r}: joint owners differ from the contract")
    key = _output_key(task.task_id, slot)
    content = None if meta.content is None else _inline_ciphertext(slot, meta)
    if content is not None and len(content) <= platform.settings.row_output_bytes:
        key = row_key(key)
    elif content is not None:
        with platform.blobs.writer(key) as writer:
            writer.write(content)
        content = None
    elif not platform.blobs.exists(key):
        raise ApiError.invalid(f"output {slot!r} was not uploaded")
    return NewOutput(
        slot=slot,
        blob_key=key,
        ciphertext_sha256=meta.ciphertext_sha256,
        size=platform.blobs.size(key) if content is None else len(content),
        wrapped_keys=meta.wrapped_keys,
        joint_owners=meta.joint_owners,
        dataset_id=uuid.uuid4().hex if meta.joint_owners else None,
        dataset_name=f"{slot} of task {task.task_id[:8]}",
        meta={"contract_hash": task.contract_hash, "slot": slot},
        content=content,
    )


@router.post("/v1/executor/tasks/{task_id}/finish", responses=error_responses(401, 409, 422))
@in_worker_thread
def finish(
    task_id: str, body: Finish, executor: CurrentExecutor, platform: PlatformDep
) -> dict[str, str]:
    return finish_task(platform, executor, task_id, body)


def finish_task(
    platform: Platform, executor: ExecutorRecord, task_id: str, body: Finish
) -> dict[str, str]:
    """Record ``executor``'s result of ``task_id``; :class:`ApiError` 409 ``lease_lost`` when it
    no longer holds the lease, 422 when an output is missing or differs from the contract."""
    one = finishing(platform, executor, task_id, body)
    (done,) = platform.store.finish_batch([one], now=platform.clock())
    return finished(platform, one, done)


def finishing(
    platform: Platform,
    executor: ExecutorRecord,
    task_id: str,
    body: Finish,
    known: Mapping[str, TaskRecord] | None = None,
) -> Finishing:
    """The store's record of a finish, every output checked (and a large inline one written
    to the blob store) first, so that a refused finish leaves nothing half-written;
    :class:`ApiError` 409 ``lease_lost`` / 422 as :func:`finish_task`. ``known``: the tasks
    of a batch, read at once (:meth:`Store.tasks_by_id`); the lease is checked against them."""
    task = _leased(platform, task_id, executor, known)
    outputs = [_new_output(platform, task, slot, meta) for slot, meta in body.outputs.items()]
    return Finishing(
        task_id=task_id,
        executor_id=executor.executor_id,
        status=body.status,
        receipt=body.receipt,
        failure_reason=body.reason or None,
        audit=AuditEntry(
            actor=f"executor:{executor.executor_id}",
            action=f"task.{body.status}",
            subject=task_id,
            details={"receipt": body.receipt, "reason": body.reason},
        ),
        outputs=outputs,
    )


def finished(platform: Platform, one: Finishing, done: bool | Conflict) -> dict[str, str]:
    """The answer to ``one`` as the store recorded it (``done``), the task's waiters woken;
    :class:`ApiError` 409 if it was refused."""
    if isinstance(done, Conflict):
        raise ApiError.conflict("the task's outputs are already recorded")
    if not done:
        raise ApiError(409, "lease_lost", "lease lost before finish; the task will be retried")
    platform.notifier.notify(task_key(one.task_id))
    return {"status": one.status}
