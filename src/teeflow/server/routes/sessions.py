"""Inference sessions: members send sealed requests, the session's executor answers them.

The control plane only relays (server/relay.py, in memory): a request is sealed to the enclave and
signed by its requester, an answer is sealed to the requester and signed by the enclave. It checks
who may talk to whom (a participant of the task; the executor holding its lease), never what they
say: whether the requester may query at all is the enclave's decision, from the signed contract.

Member:   POST /v1/tasks/{id}/requests            queue a request, long-poll for its answer
          GET  /v1/tasks/{id}/requests/{rid}      long-poll for an answer still pending
Executor: POST /v1/executor/tasks/{id}/requests/next    hand back answers, long-poll for requests
          POST /v1/executor/tasks/{id}/session-receipt  the receipt of a canceled session
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from teeflow.enclave.session import is_session_contract
from teeflow.enclave.session_wire import MAX_REQUEST_BYTES, REQUEST_ID
from teeflow.server.app import Platform
from teeflow.server.deps import CurrentExecutor, CurrentUser, PlatformDep
from teeflow.server.errors import ApiError, error_responses
from teeflow.server.notify import task_key
from teeflow.server.relay import (
    DuplicateRequest,
    PendingRequest,
    RelayedAnswer,
    RelayFull,
    answer_key,
    requests_key,
)
from teeflow.server.routes.tasks import task_for
from teeflow.server.store import AuditEntry, ExecutorRecord, TaskRecord, UserRecord

router = APIRouter()

MAX_WAIT_SECONDS = 30.0
_OPEN = ("queued", "running")
_B64_MAX = (MAX_REQUEST_BYTES + 2) // 3 * 4
_PENDING: dict[int | str, dict[str, Any]] = {
    202: {"description": "Not answered within `wait`; poll GET …/requests/{request_id}"}
}


class SealedRequest(BaseModel):
    request_id: str = Field(min_length=1, max_length=64, pattern=REQUEST_ID.pattern)
    ciphertext: str = Field(min_length=1, max_length=_B64_MAX, description="base64 HPKE")
    signature: str = Field(min_length=1, max_length=200, description="base64 Ed25519")


class SealedAnswer(BaseModel):
    request_id: str = Field(max_length=64)
    requester: str = Field(max_length=64)
    sealed: str = Field(default="", max_length=1 << 26, description="base64 HPKE")
    signature: str = Field(default="", max_length=200, description="base64 Ed25519, enclave's")
    refused: str = Field(default="", max_length=64)


class Answers(BaseModel):
    answers: list[SealedAnswer] = Field(default_factory=list, max_length=256)


class SessionReceipt(BaseModel):
    receipt: dict[str, Any]


def _session(platform: Platform, task_id: str, user: UserRecord) -> TaskRecord:
    task = task_for(platform, task_id, user)
    if not is_session_contract(task.contract):
        raise ApiError.conflict("this task is not an inference session")
    if task.status not in _OPEN:
        platform.relay.close(task_id)
        raise ApiError.conflict(f"the session is {task.status}; it answers no requests")
    return task


async def _wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _answered(request_id: str, answer: RelayedAnswer) -> dict[str, Any]:
    return {"request_id": request_id, "status": "answered", **asdict(answer)}


async def _await_answer(
    platform: Platform,
    task_id: str,
    user: UserRecord,
    request_id: str,
    wait: float,
    *,
    checked: bool,
) -> Response | dict[str, Any]:
    """The answer, once it is there; ``checked``: the session was just found open."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + platform.settings.long_poll_seconds(wait)
    key = answer_key(task_id, user.username, request_id)
    task_changed = not checked
    while True:
        with (
            platform.notifier.subscribe(key) as answered,
            platform.notifier.subscribe(task_key(task_id)) as changed,
        ):
            found = platform.relay.collect(task_id, user.username, request_id)
            if found is not None:
                return _answered(request_id, found)
            if task_changed:  # no answer yet: does the session still answer at all?
                await run_in_threadpool(_session, platform, task_id, user)
            if not platform.relay.pending(task_id, user.username, request_id):
                raise ApiError.not_found(f"request {request_id}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                body = {"request_id": request_id, "status": "pending"}
                return JSONResponse(status_code=202, content=body)
            await _wait_any((answered, changed), remaining)
            task_changed = changed.is_set()


@router.post(
    "/v1/tasks/{task_id}/requests",
    tags=["tasks"],
    responses={**_PENDING, **error_responses(401, 404, 409, 422, 429)},
)
async def send_request(
    task_id: str,
    body: SealedRequest,
    user: CurrentUser,
    platform: PlatformDep,
    wait: float = Query(20.0, ge=0.0, le=MAX_WAIT_SECONDS, description="long-poll for the answer"),
) -> Any:
    """Queue a sealed request for the session's enclave; return its sealed answer (200) or, if
    none came within ``wait`` seconds, 202 (collect it with GET …/requests/{request_id})."""
    await run_in_threadpool(_session, platform, task_id, user)
    pending = PendingRequest(user.username, body.request_id, body.ciphertext, body.signature)
    try:
        platform.relay.submit(task_id, pending)
    except DuplicateRequest:
        raise ApiError.conflict(f"request {body.request_id} is already pending") from None
    except RelayFull:
        raise ApiError(429, "busy", "the session's queue is full; retry shortly") from None
    platform.notifier.notify(requests_key(task_id))
    return await _await_answer(platform, task_id, user, body.request_id, wait, checked=True)


@router.get(
    "/v1/tasks/{task_id}/requests/{request_id}",
    tags=["tasks"],
    responses={**_PENDING, **error_responses(401, 404, 409, 422)},
)
async def get_answer(
    task_id: str,
    request_id: str,
    user: CurrentUser,
    platform: PlatformDep,
    wait: float = Query(0.0, ge=0.0, le=MAX_WAIT_SECONDS, description="long-poll for the answer"),
) -> Any:
    """The sealed answer to one of the caller's pending requests (200), or 202 while pending.
    An answer given before the session ended can still be collected."""
    await run_in_threadpool(task_for, platform, task_id, user)
    return await _await_answer(platform, task_id, user, request_id, wait, checked=False)


def _leased(platform: Platform, task_id: str, executor: ExecutorRecord) -> TaskRecord:
    task = platform.store.get_task(task_id)
    if task is None or task.status != "running" or task.lease_owner != executor.executor_id:
        raise ApiError(409, "lease_lost", "this executor does not hold the task's lease")
    return task


def hand_back(
    platform: Platform, task_id: str, executor_id: str, answers: list[SealedAnswer]
) -> None:
    """Store the enclave's answers to requests ``executor_id`` took, and wake their requesters."""
    for answer in answers:
        relayed = RelayedAnswer(answer.sealed, answer.signature, answer.refused)
        # Only the executor that took a request can answer it; the enclave signed the answer.
        if platform.relay.answer(
            task_id, answer.requester, answer.request_id, relayed, executor=executor_id
        ):
            platform.notifier.notify(answer_key(task_id, answer.requester, answer.request_id))


@router.post(
    "/v1/executor/tasks/{task_id}/requests/next",
    tags=["executors"],
    response_model=None,
    responses={
        204: {"description": "No request came within `wait`"},
        **error_responses(401, 409, 422),
    },
)
async def next_requests(
    task_id: str,
    request: Request,
    executor: CurrentExecutor,
    platform: PlatformDep,
    body: Answers | None = None,
    wait: float = Query(0.0, ge=0.0, le=MAX_WAIT_SECONDS, description="long-poll up to seconds"),
    limit: int = Query(
        16, ge=0, le=256, description="most requests to take at once; 0: only hand back answers"
    ),
) -> Response | dict[str, Any]:
    """Hand back the enclave's answers to requests this executor took (``answers``, delivered at
    once), then take queued requests of the session it holds the lease of (200), or 204.

    One call per round trip: the answers to one batch ride on the call that fetches the next.
    409 once the lease is gone (the task was canceled, finished or leased to another executor):
    the session must stop. The wait is capped at half the lease time, as for ``/lease``.
    """
    hand_back(platform, task_id, executor.executor_id, body.answers if body else [])
    if limit == 0:
        return Response(status_code=204)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + platform.settings.long_poll_seconds(wait, executor=True)
    check_lease = True
    while True:
        with (
            platform.notifier.subscribe(requests_key(task_id)) as queued,
            platform.notifier.subscribe(task_key(task_id)) as changed,
        ):
            # Every change of the lease (cancel, finish, re-lease) notifies task_key: a wake-up
            # by a queued request alone need not ask the database again.
            if check_lease:
                await run_in_threadpool(_leased, platform, task_id, executor)
            if await request.is_disconnected():
                return Response(status_code=204)  # a dead executor must not take requests
            taken = platform.relay.take(task_id, limit, executor=executor.executor_id)
            if taken:
                return {"requests": [asdict(r) for r in taken]}
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Response(status_code=204)
            await _wait_any((queued, changed), remaining)
            check_lease = changed.is_set()


@router.post(
    "/v1/executor/tasks/{task_id}/session-receipt",
    tags=["executors"],
    responses=error_responses(401, 409, 422),
)
def session_receipt(
    task_id: str, body: SessionReceipt, executor: CurrentExecutor, platform: PlatformDep
) -> dict[str, str]:
    """The enclave's receipt for a session that was canceled while this executor served it."""
    task = platform.store.get_task(task_id)
    if (
        task is None
        or task.status != "canceled"
        or task.lease_owner != executor.executor_id
        or task.receipt is not None
    ):
        raise ApiError(
            409, "lease_lost", "only the executor of a canceled session gives its receipt"
        )
    platform.store.transition(
        task_id,
        from_states={"canceled"},
        to="canceled",
        now=platform.clock(),
        receipt=body.receipt,
        audit=AuditEntry(
            actor=f"executor:{executor.executor_id}",
            action="task.session_stopped",
            subject=task_id,
            details={"receipt": body.receipt},
        ),
    )
    platform.relay.close(task_id)
    platform.notifier.notify(task_key(task_id))
    return {"status": "canceled"}
