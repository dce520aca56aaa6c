"""Bounded replay defence of an inference session (docs/decisions/0032-bounded-session-replay.md).

Every request id starts with a sequence number that its requester's client draws from its clock
(enclave/session_wire.py, :func:`~teeflow.enclave.session_wire.new_request_id`). Per requester,
the enclave keeps a sliding anti-replay window in the manner of IPsec (RFC 4303 section 3.4.3):

- the ids of the last :data:`REPLAY_WINDOW` requests it admitted, and
- a floor: the highest sequence number it has let go of.

An id is admitted only if it is not in the window and its sequence number is above the floor.
When the window is full, the id with the lowest sequence number leaves it and its sequence number
becomes the floor. So an id once admitted is refused for ever (it is in the window, or at or below
the floor), while the state is at most :data:`REPLAY_WINDOW` ids per participant of the contract,
whatever the length of the session. Requests may arrive out of order as long as no more than
:data:`REPLAY_WINDOW` newer ones of the same requester overtook them.

The state rides in the session's sealed checkpoint (enclave/session_limits.py), so a session
resumed on another executor refuses the ids the last checkpoint holds. No clock is trusted: the
sequence numbers are the requester's, signed with the request, and only move that requester's
own window.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

from teeflow.crypto import CryptoError
from teeflow.enclave.session_wire import request_sequence

__all__ = ["REPLAY_WINDOW", "ReplayWindows"]

REPLAY_WINDOW = 256
"""Ids remembered per requester: how far a request may be overtaken by newer ones of the same
requester and still be answered."""


class _Window:
    def __init__(self, floor: int, ids: list[str]) -> None:
        self.floor = floor
        self.ids = set(ids)
        self.heap = [(request_sequence(rid), rid) for rid in self.ids]
        heapq.heapify(self.heap)


class ReplayWindows:
    """One anti-replay window per requester (module docstring). Not thread-safe."""

    def __init__(self, windows: Mapping[str, _Window] | None = None) -> None:
        self._windows: dict[str, _Window] = dict(windows or {})

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ReplayWindows:
        """Windows from :meth:`state` (a sealed checkpoint). ValueError if it is not one."""
        windows: dict[str, _Window] = {}
        for requester, window in state.items():
            floor, ids = window["floor"], window["ids"]
            if (
                not isinstance(floor, int)
                or not isinstance(ids, list)
                or len(ids) > REPLAY_WINDOW
                or not all(isinstance(rid, str) for rid in ids)
            ):
                raise ValueError("not a replay window")
            try:
                windows[str(requester)] = _Window(floor, ids)
            except CryptoError:
                raise ValueError("not a replay window") from None
        return cls(windows)

    def state(self) -> dict[str, dict[str, Any]]:
        """``{requester: {"floor": int, "ids": [str, ...]}}``, JSON-ready; at most
        :data:`REPLAY_WINDOW` ids per requester."""
        return {
            requester: {"floor": window.floor, "ids": sorted(window.ids)}
            for requester, window in self._windows.items()
        }

    def refusal(self, requester: str, request_id: str) -> str | None:
        """Why ``request_id`` (already checked against REQUEST_ID) may not be admitted, or None."""
        window = self._windows.get(requester)
        if window is None:
            return None
        if request_id in window.ids:
            return f"request id {request_id!r} was already used in this session"
        if request_sequence(request_id) <= window.floor:
            return (
                f"request id {request_id!r} is older than the {REPLAY_WINDOW} newest requests you "
                "sent to this session, so it cannot be told from a replay; send the request again "
                "with a new request id"
            )
        return None

    def admit(self, requester: str, request_id: str) -> None:
        """Remember ``request_id`` (after :meth:`refusal` said None); the oldest id of a full
        window leaves it and raises its floor."""
        window = self._windows.get(requester)
        if window is None:
            window = self._windows[requester] = _Window(-1, [])
        window.ids.add(request_id)
        heapq.heappush(window.heap, (request_sequence(request_id), request_id))
        while len(window.ids) > REPLAY_WINDOW:
            sequence, oldest = heapq.heappop(window.heap)
            window.ids.discard(oldest)
            window.floor = max(window.floor, sequence)
