"""Long-lived channels of an inference session: one WebSocket per member, one for its executor.

The same relay as the HTTP routes (server/routes/sessions.py, server/relay.py), without a round
trip per request: each side authenticates once, when it connects (the member's bearer token, the
executor's token), and the session (or the lease) is checked then and again whenever the task
changes. Frames are JSON text:

Member   -> relay:    ``{"request_id", "ciphertext", "signature"}`` (as ``POST …/requests``)
Relay    -> member:   ``{"request_id", "status": "answered", "sealed", "signature", "refused"}``,
                      or ``{"request_id", "status": "error", "error": {"code", "message"}}``
Relay    -> executor: ``{"requests": [{"requester", "request_id", "ciphertext", "signature"}]}``
Executor -> relay:    ``{"answers": [SealedAnswer, …], "checkpoint": {"sealed", "sequence"}}``

A refusal of the whole channel is ``{"status": "error", "error": {…}}`` followed by a close with
code 4000 + the HTTP status (4401, 4404, 4409). Nothing here is written to the database: the
relay holds requests and answers in memory, and the enclave counts and limits requests.
Everything a frame holds stays sealed and signed end to end; the relay can drop, delay, replay or
reorder frames, and the enclave (request ids used once) and the member's client (an answer
signed for this very request) refuse what it forged.

Member:   WS /v1/tasks/{id}/channel
Executor: WS /v1/executor/tasks/{id}/channel
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from teeflow.crypto import CryptoError, b64d
from teeflow.server.app import Platform
from teeflow.server.deps import (
    MAX_SEQUENCE,
    authenticate_executor,
    authenticate_user,
    bearer_token,
)
from teeflow.server.errors import ApiError
from teeflow.server.notify import task_key
from teeflow.server.relay import DuplicateRequest, PendingRequest, RelayFull, requests_key
from teeflow.server.routes.sessions import (
    MAX_WAIT_SECONDS,
    Answers,
    SealedRequest,
    _await_answer,
    _leased,
    _session,
    hand_back,
)
from teeflow.server.store import Conflict, ExecutorRecord, UserRecord

__all__ = ["BATCH", "router"]

router = APIRouter()
log = logging.getLogger("teeflow.server")

_Caller = TypeVar("_Caller", UserRecord, ExecutorRecord)

BATCH = 16
"""Most requests pushed to the executor in one frame."""


class SealedCheckpoint(BaseModel):
    sealed: str = Field(min_length=1, max_length=1 << 26, description="base64, the enclave's")
    sequence: int = Field(ge=0, le=MAX_SEQUENCE)


class AnswerFrame(Answers):
    checkpoint: SealedCheckpoint | None = None
    """The session's counters, sealed by the enclave before these answers left it."""


def _error(code: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"status": "error", "error": {"code": code, "message": message}}
    if request_id is not None:
        frame["request_id"] = request_id
    return frame


async def _refuse(websocket: WebSocket, exc: ApiError) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.send_json(_error(exc.code, exc.message))
        await websocket.close(code=4000 + exc.status, reason=exc.code)


async def _admit(
    websocket: WebSocket,
    task_id: str,
    authenticate: Callable[[Platform, str | None], _Caller],
    check: Callable[[Platform, str, _Caller], object],
) -> tuple[Platform, _Caller] | None:
    """Accept the connection and authenticate it once; None (the channel refused and closed)
    if ``authenticate`` or ``check`` raises ApiError."""
    platform: Platform = websocket.app.state.platform
    await websocket.accept()
    token = bearer_token(websocket.headers.get("authorization"))
    try:
        caller = await run_in_threadpool(authenticate, platform, token)
        await run_in_threadpool(check, platform, task_id, caller)
    except ApiError as exc:
        await _refuse(websocket, exc)
        return None
    return platform, caller


@router.websocket("/v1/tasks/{task_id}/channel")
async def member_channel(websocket: WebSocket, task_id: str) -> None:
    """A member's requests to a session and their answers, over one connection."""
    admitted = await _admit(websocket, task_id, authenticate_user, _session)
    if admitted is None:
        return
    platform, user = admitted
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    waiters: set[asyncio.Task[None]] = set()
    writer = asyncio.create_task(_write(websocket, outbox))
    try:
        while True:
            frame = await websocket.receive_text()
            request_id = _submit(platform, task_id, user, frame, outbox)
            if request_id is not None:
                waiter = asyncio.create_task(_answer(platform, task_id, user, request_id, outbox))
                waiters.add(waiter)
                waiter.add_done_callback(waiters.discard)
    except WebSocketDisconnect:
        pass
    finally:
        for task in (writer, *waiters):
            task.cancel()


def _submit(
    platform: Platform,
    task_id: str,
    user: UserRecord,
    frame: str,
    outbox: asyncio.Queue[dict[str, Any]],
) -> str | None:
    """Queue one request frame; its request id, or None (an error frame went out instead)."""
    try:
        body = SealedRequest.model_validate_json(frame)
    except ValidationError:
        request_id = _request_id(frame)
        message = "a request frame is {request_id, ciphertext, signature} (docs/inference.md)"
        outbox.put_nowait(_error("invalid", message, request_id))
        return None
    pending = PendingRequest(user.username, body.request_id, body.ciphertext, body.signature)
    try:
        platform.relay.submit(task_id, pending)
    except DuplicateRequest:
        message = f"request {body.request_id} is already pending"
        outbox.put_nowait(_error("conflict", message, body.request_id))
        return None
    except RelayFull:
        message = "the session's queue is full; retry shortly"
        outbox.put_nowait(_error("busy", message, body.request_id))
        return None
    platform.notifier.notify(requests_key(task_id))
    return body.request_id


def _request_id(frame: str) -> str | None:
    with contextlib.suppress(ValueError):
        found = json.loads(frame)
        if isinstance(found, dict) and isinstance(found.get("request_id"), str):
            return str(found["request_id"])[:64]
    return None


async def _answer(
    platform: Platform,
    task_id: str,
    user: UserRecord,
    request_id: str,
    outbox: asyncio.Queue[dict[str, Any]],
) -> None:
    """Wait for the answer (or the end of the session) and queue it for the member."""
    checked = True
    while True:
        try:
            found = await _await_answer(
                platform, task_id, user, request_id, MAX_WAIT_SECONDS, checked=checked
            )
        except ApiError as exc:
            outbox.put_nowait(_error(exc.code, exc.message, request_id))
            return
        if isinstance(found, dict):
            outbox.put_nowait(found)
            return
        checked = False  # still pending: look at the session again before waiting on


async def _write(websocket: WebSocket, outbox: asyncio.Queue[dict[str, Any]]) -> None:
    """The one writer of the member's socket."""
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        while True:
            await websocket.send_json(await outbox.get())


@router.websocket("/v1/executor/tasks/{task_id}/channel")
async def executor_channel(websocket: WebSocket, task_id: str) -> None:
    """The session's requests to the executor holding its lease, and the enclave's answers."""
    admitted = await _admit(websocket, task_id, authenticate_executor, _leased)
    if admitted is None:
        return
    platform, executor = admitted
    writer = CheckpointWriter(platform, task_id, executor)
    reader = asyncio.create_task(_read_answers(websocket, platform, task_id, executor, writer))
    try:
        await _push_requests(websocket, platform, task_id, executor, reader)
    except ApiError as exc:  # the lease is gone: the session must stop
        await _refuse(websocket, exc)
    except (RuntimeError, WebSocketDisconnect):
        pass
    finally:
        reader.cancel()
        await writer.flush()


async def _push_requests(
    websocket: WebSocket,
    platform: Platform,
    task_id: str,
    executor: ExecutorRecord,
    reader: asyncio.Task[None],
) -> None:
    """Send queued requests as they come, until the executor leaves (``reader`` ends) or loses
    the lease (ApiError)."""
    check_lease = False
    while not reader.done():
        with (
            platform.notifier.subscribe(requests_key(task_id)) as queued,
            platform.notifier.subscribe(task_key(task_id)) as changed,
        ):
            # Every change of the lease (cancel, finish, re-lease) notifies task_key.
            if check_lease:
                await run_in_threadpool(_leased, platform, task_id, executor)
            taken = platform.relay.take(task_id, BATCH, executor=executor.executor_id)
            if taken:
                await websocket.send_json({"requests": [asdict(r) for r in taken]})
                continue
            waiters = [asyncio.ensure_future(queued.wait()), asyncio.ensure_future(changed.wait())]
            try:
                await asyncio.wait(
                    [*waiters, reader], timeout=MAX_WAIT_SECONDS, return_when=FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
            check_lease = changed.is_set()


async def _read_answers(
    websocket: WebSocket,
    platform: Platform,
    task_id: str,
    executor: ExecutorRecord,
    writer: CheckpointWriter,
) -> None:
    """Hand back the answer frames the executor sends, until it disconnects."""
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        while True:
            frame = await websocket.receive_text()
            try:
                body = AnswerFrame.model_validate_json(frame)
                sealed = b64d(body.checkpoint.sealed) if body.checkpoint else None
            except (ValidationError, CryptoError):
                log.warning("session %s: a malformed frame from its executor", task_id)
                continue  # the executor's own bug; its requesters time out
            if sealed is not None and body.checkpoint is not None:
                writer.offer(sealed, body.checkpoint.sequence)
            hand_back(platform, task_id, executor.executor_id, body.answers)


class CheckpointWriter:
    """Stores the newest sealed checkpoint the executor sent over the channel, one write at a
    time, off the answers' path (docs/decisions/0026-session-channel.md): answers are relayed at
    once, and a checkpoint that arrives while one is being written replaces any still waiting."""

    def __init__(self, platform: Platform, task_id: str, executor: ExecutorRecord) -> None:
        self._platform = platform
        self._task_id = task_id
        self._executor = executor
        self._waiting: tuple[bytes, int] | None = None
        self._running: asyncio.Task[None] | None = None

    def offer(self, sealed: bytes, sequence: int) -> None:
        self._waiting = (sealed, sequence)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        """Wait until the newest checkpoint offered is stored (or failed to be)."""
        while self._running is not None and not self._running.done():
            await asyncio.shield(self._running)

    async def _drain(self) -> None:
        while self._waiting is not None:
            (sealed, sequence), self._waiting = self._waiting, None
            try:
                await run_in_threadpool(self._store, sealed, sequence)
            except (ApiError, Conflict, OSError) as exc:
                log.warning(
                    "session %s: checkpoint %d not stored (%s)", self._task_id, sequence, exc
                )

    def _store(self, sealed: bytes, sequence: int) -> None:
        platform = self._platform
        _leased(platform, self._task_id, self._executor)
        key = f"checkpoints/{self._task_id}/{uuid.uuid4().hex}"
        with platform.blobs.writer(key) as blob:
            blob.write(sealed)
        try:
            platform.store.put_checkpoint(
                task_id=self._task_id, blob_key=key, epoch=sequence, now=platform.clock()
            )
        except Conflict:
            platform.blobs.delete(key)
            raise
