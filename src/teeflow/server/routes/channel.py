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
relay holds requests and answers in memory, and the enclave counts and limits requests. On the
way of a request there is no notifier and no task of its own: the relay calls the executor
channel's listener when a request is queued, and hands the answer to the member channel that
waits for it (server/relay.py); one watcher per member channel fails its waiting requests when
the session stops answering, as the HTTP long poll does.
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
import threading
import uuid
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
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
from teeflow.server.notify import task_key, wait_for
from teeflow.server.relay import (
    DuplicateRequest,
    PendingRequest,
    RelayedAnswer,
    RelayFull,
    requests_key,
)
from teeflow.server.routes.sessions import (
    MAX_WAIT_SECONDS,
    Answers,
    SealedRequest,
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
    channel = _InFlight(platform, task_id, user)
    writer = asyncio.create_task(_write(websocket, channel.outbox))
    watcher = asyncio.create_task(channel.watch())
    try:
        while True:
            channel.submit(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        writer.cancel()
        watcher.cancel()
        channel.forget()


class _InFlight:
    """A member channel's requests waiting for their answers. The relay hands each answer
    straight to the channel (server/relay.py's listeners); ``watch`` fails what waits once the
    session answers no more, or a request is gone from the relay (expired, control plane
    restarted), as the HTTP route's long poll does."""

    def __init__(self, platform: Platform, task_id: str, user: UserRecord) -> None:
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._platform = platform
        self._task_id = task_id
        self._user = user
        self._waiting: set[str] = set()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def submit(self, frame: str) -> None:
        """Queue one request frame in the relay, or answer it with an error frame."""
        try:
            body = SealedRequest.model_validate_json(frame)
        except ValidationError:
            message = "a request frame is {request_id, ciphertext, signature} (docs/inference.md)"
            self.outbox.put_nowait(_error("invalid", message, _request_id(frame)))
            return
        request_id = body.request_id
        pending = PendingRequest(self._user.username, request_id, body.ciphertext, body.signature)
        try:
            listened = self._platform.relay.submit(
                self._task_id, pending, on_answer=partial(self._answered, request_id)
            )
        except DuplicateRequest:
            message = f"request {request_id} is already pending"
            self.outbox.put_nowait(_error("conflict", message, request_id))
            return
        except RelayFull:
            message = "the session's queue is full; retry shortly"
            self.outbox.put_nowait(_error("busy", message, request_id))
            return
        self._waiting.add(request_id)
        if not listened:  # no executor channel here: wake the executor's HTTP long poll
            self._platform.notifier.notify(requests_key(self._task_id))

    def _answered(self, request_id: str, answer: RelayedAnswer) -> None:
        """The relay's listener: queue the answer frame (from any thread)."""
        self._waiting.discard(request_id)
        frame = {"request_id": request_id, "status": "answered", **asdict(answer)}
        if threading.get_ident() == self._thread:
            self.outbox.put_nowait(frame)
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to answer
                self._loop.call_soon_threadsafe(self.outbox.put_nowait, frame)

    async def watch(self) -> None:
        """Until cancelled: on every change of the task (and every MAX_WAIT_SECONDS), fail the
        waiting requests the session will not answer."""
        relay, username = self._platform.relay, self._user.username
        with self._platform.notifier.subscribe(task_key(self._task_id)) as changed:
            while True:
                await wait_for(changed, MAX_WAIT_SECONDS)
                changed.clear()
                if not self._waiting:
                    continue
                try:
                    await run_in_threadpool(_session, self._platform, self._task_id, self._user)
                except ApiError as exc:
                    for request_id in list(self._waiting):
                        self._fail(request_id, exc)
                    continue
                for request_id in list(self._waiting):
                    if not relay.pending(self._task_id, username, request_id):
                        self._fail(request_id, ApiError.not_found(f"request {request_id}"))

    def _fail(self, request_id: str, exc: ApiError) -> None:
        self._waiting.discard(request_id)
        self._platform.relay.forget(self._task_id, self._user.username, request_id)
        self.outbox.put_nowait(_error(exc.code, exc.message, request_id))

    def forget(self) -> None:
        """The member left: answers still to come are kept for ``collect`` (and expire)."""
        for request_id in self._waiting:
            self._platform.relay.forget(self._task_id, self._user.username, request_id)
        self._waiting.clear()


def _request_id(frame: str) -> str | None:
    with contextlib.suppress(ValueError):
        found = json.loads(frame)
        if isinstance(found, dict) and isinstance(found.get("request_id"), str):
            return str(found["request_id"])[:64]
    return None


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
    """Send queued requests as they come (the relay calls this channel's listener when one is
    queued), until the executor leaves (``reader`` ends) or loses the lease (ApiError)."""
    loop, thread = asyncio.get_running_loop(), threading.get_ident()
    queued = asyncio.Event()

    def wake() -> None:
        if threading.get_ident() == thread:
            queued.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(queued.set)

    platform.relay.on_queued(task_id, wake)
    # The waits outlive a round, so that a round that finds nothing creates no new ones.
    on_queue: asyncio.Future[Any] | None = None
    on_change: asyncio.Future[Any] | None = None
    try:
        # Every change of the lease (cancel, finish, re-lease) notifies task_key.
        with platform.notifier.subscribe(task_key(task_id)) as changed:
            while not reader.done():
                if changed.is_set():
                    changed.clear()
                    await run_in_threadpool(_leased, platform, task_id, executor)
                queued.clear()
                taken = platform.relay.take(task_id, BATCH, executor=executor.executor_id)
                if taken:
                    await websocket.send_json({"requests": [_pushed(r) for r in taken]})
                    continue
                if on_queue is None or on_queue.done():
                    on_queue = asyncio.ensure_future(queued.wait())
                if on_change is None or on_change.done():
                    on_change = asyncio.ensure_future(changed.wait())
                await asyncio.wait(
                    [on_queue, on_change, reader],
                    timeout=MAX_WAIT_SECONDS,
                    return_when=FIRST_COMPLETED,
                )
    finally:
        platform.relay.off_queued(task_id, wake)
        for waiter in (on_queue, on_change):
            if waiter is not None:
                waiter.cancel()


def _pushed(request: PendingRequest) -> dict[str, str]:
    return {
        "requester": request.requester,
        "request_id": request.request_id,
        "ciphertext": request.ciphertext,
        "signature": request.signature,
    }


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
