"""The control plane's relay for inference sessions: requests in, sealed answers out.

Untrusted and ephemeral by design. It holds only what members and the enclave already sealed
(request ciphertexts with the requester's signature, answers sealed to the requester with the
enclave's signature), in this process's memory: nothing is written to the database, the blob store
or the logs, and a restart of the control plane drops whatever was pending (members retry with a
new request id). Several control-plane processes need the requests of one session routed to the
same process.

Everything runs on the server's event loop (the routes are ``async``); a lock still guards the
maps so that a call from a worker thread cannot corrupt them.

Listeners let the long-lived channels (server/routes/channel.py) skip the notifier on the hot
path: an executor's channel is called as soon as a request for its session is queued, and a
member's channel receives an answer it waits on at once, instead of it being stored for
``collect``. Listeners are called outside the lock, in the thread that queued or answered.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "AnswerListener",
    "DuplicateRequest",
    "PendingRequest",
    "RelayFull",
    "RelayedAnswer",
    "SessionRelay",
    "answer_key",
    "requests_key",
]


def requests_key(task_id: str) -> str:
    """Notifier key: a request for this session was queued."""
    return f"session:{task_id}:requests"


def answer_key(task_id: str, requester: str, request_id: str) -> str:
    """Notifier key: the answer to this request arrived."""
    return f"session:{task_id}:answer:{requester}:{request_id}"


class RelayFull(Exception):
    """The session's queue (or the relay's memory budget) is full: retry later."""


class DuplicateRequest(Exception):
    """The requester already has a pending request with this id."""


@dataclass(frozen=True)
class PendingRequest:
    requester: str
    request_id: str
    ciphertext: str
    """base64, as the member sent it."""
    signature: str

    @property
    def size(self) -> int:
        return len(self.ciphertext) + len(self.signature)


@dataclass(frozen=True)
class RelayedAnswer:
    sealed: str
    """base64 answer sealed to the requester; empty when the enclave refused without sealing."""
    signature: str
    refused: str = ""


_Key = tuple[str, str]  # (requester, request_id)

AnswerListener = Callable[[RelayedAnswer], None]
"""Receives the enclave's answer to one request in place of ``collect``."""


@dataclass
class _Session:
    queued: OrderedDict[_Key, tuple[PendingRequest, float]]
    taken: dict[_Key, tuple[str, float]]
    """(requester, request_id) -> (the executor that took it, when)."""
    answers: dict[_Key, tuple[RelayedAnswer, float]]


class SessionRelay:
    """Per-session queues of sealed requests, and the sealed answers until they are collected."""

    def __init__(
        self,
        *,
        max_queued: int = 1024,
        max_bytes: int = 512 << 20,
        answer_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_queued = max_queued
        self.max_bytes = max_bytes
        self.answer_ttl = answer_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._bytes = 0
        self._queued_listeners: dict[str, Callable[[], None]] = {}
        self._answer_listeners: dict[tuple[str, str, str], AnswerListener] = {}

    def _session(self, task_id: str) -> _Session:
        found = self._sessions.get(task_id)
        if found is None:
            found = self._sessions[task_id] = _Session(OrderedDict(), {}, {})
        return found

    def on_queued(self, task_id: str, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a request for the session is queued; one listener a
        session, the newest wins."""
        with self._lock:
            self._queued_listeners[task_id] = listener

    def off_queued(self, task_id: str, listener: Callable[[], None]) -> None:
        """Stop calling ``listener`` (if it is still the session's)."""
        with self._lock:
            if self._queued_listeners.get(task_id) is listener:
                del self._queued_listeners[task_id]

    def forget(self, task_id: str, requester: str, request_id: str) -> None:
        """Drop the answer listener of a request: its answer is kept for ``collect`` again."""
        with self._lock:
            self._answer_listeners.pop((task_id, requester, request_id), None)

    def submit(
        self, task_id: str, request: PendingRequest, *, on_answer: AnswerListener | None = None
    ) -> bool:
        """Queue a request; RelayFull or DuplicateRequest when it cannot be. ``on_answer``:
        called with the answer when it comes, which is then not kept for ``collect``. True if
        the session's ``on_queued`` listener was called (no need to notify anyone else)."""
        key = (request.requester, request.request_id)
        listener = self._queue(task_id, key, request, on_answer)
        if listener is None:
            return False
        listener()
        return True

    def _queue(
        self,
        task_id: str,
        key: _Key,
        request: PendingRequest,
        on_answer: AnswerListener | None,
    ) -> Callable[[], None] | None:
        with self._lock:
            self._expire()
            session = self._session(task_id)
            if key in session.queued or key in session.taken or key in session.answers:
                raise DuplicateRequest(request.request_id)
            if (
                len(session.queued) >= self.max_queued
                or self._bytes + request.size > self.max_bytes
            ):
                raise RelayFull(task_id)
            session.queued[key] = (request, self._clock())
            self._bytes += request.size
            if on_answer is not None:
                self._answer_listeners[(task_id, *key)] = on_answer
            return self._queued_listeners.get(task_id)

    def take(self, task_id: str, limit: int, *, executor: str) -> list[PendingRequest]:
        """Hand up to ``limit`` queued requests, oldest first, to the session's executor."""
        with self._lock:
            session = self._sessions.get(task_id)
            if session is None:
                return []
            taken: list[PendingRequest] = []
            while session.queued and len(taken) < limit:
                key, (request, _) = session.queued.popitem(last=False)
                self._bytes -= request.size
                session.taken[key] = (executor, self._clock())
                taken.append(request)
            return taken

    def answer(
        self,
        task_id: str,
        requester: str,
        request_id: str,
        answer: RelayedAnswer,
        *,
        executor: str,
    ) -> bool:
        """Store the enclave's answer to a request ``executor`` took; False if it took none such
        (the request expired, or the control plane restarted)."""
        key = (requester, request_id)
        with self._lock:
            session = self._sessions.get(task_id)
            if session is None or session.taken.get(key, ("", 0.0))[0] != executor:
                return False
            del session.taken[key]
            listener = self._answer_listeners.pop((task_id, *key), None)
            if listener is None:
                session.answers[key] = (answer, self._clock())
            elif not (session.queued or session.taken or session.answers):
                del self._sessions[task_id]
        if listener is not None:
            listener(answer)
        return True

    def collect(self, task_id: str, requester: str, request_id: str) -> RelayedAnswer | None:
        """Pop the answer to the requester's request, if it arrived."""
        with self._lock:
            session = self._sessions.get(task_id)
            if session is None:
                return None
            found = session.answers.pop((requester, request_id), None)
            return found[0] if found else None

    def pending(self, task_id: str, requester: str, request_id: str) -> bool:
        """Whether the request is queued, with the executor, or answered and not yet collected."""
        key = (requester, request_id)
        with self._lock:
            session = self._sessions.get(task_id)
            return session is not None and (
                key in session.queued or key in session.taken or key in session.answers
            )

    def close(self, task_id: str) -> None:
        """The session ended: drop the requests it will never answer. Answers it gave stay until
        their requesters collect them (or they expire)."""
        with self._lock:
            session = self._sessions.get(task_id)
            if session is not None:
                self._bytes -= sum(r.size for r, _ in session.queued.values())
                for key in (*session.queued, *session.taken):
                    self._answer_listeners.pop((task_id, *key), None)
                session.queued.clear()
                session.taken.clear()
                if not session.answers:
                    del self._sessions[task_id]

    def _expire(self) -> None:
        """Drop what waited longer than ``answer_ttl``: requests no executor took, requests taken
        by an executor that never answered, answers nobody collected."""
        cutoff = self._clock() - self.answer_ttl
        for task_id, session in list(self._sessions.items()):
            for key in [k for k, (_, at) in session.queued.items() if at < cutoff]:
                self._bytes -= session.queued.pop(key)[0].size
                self._answer_listeners.pop((task_id, *key), None)
            for key in [k for k, (_, at) in session.answers.items() if at < cutoff]:
                del session.answers[key]
            for key in [k for k, (_, at) in session.taken.items() if at < cutoff]:
                del session.taken[key]
                self._answer_listeners.pop((task_id, *key), None)
            if not (session.queued or session.taken or session.answers):
                del self._sessions[task_id]
