"""Replay defence of an inference session with bounded state (enclave/session_replay.py):
the checkpoint does not grow with the session, and a replay is refused inside the window, below
it, and after a resume from the sealed checkpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from session_kit import NOW, Served, ServeFactory

from teeflow.crypto import CryptoError, seal_bytes
from teeflow.enclave.session import InferenceSession, SessionRefused, SessionRequest
from teeflow.enclave.session_limits import SessionCounters, counters_key
from teeflow.enclave.session_replay import REPLAY_WINDOW, ReplayWindows
from teeflow.enclave.session_wire import new_request_id, request_sequence

MANY = {"max_requests": 1_000_000, "max_requests_per_minute": 1_000_000}
ROW = json.dumps({"rows": []}).encode()  # cheap to answer; its id is used all the same


def _id(sequence: int, tag: str = "t") -> str:
    return f"{sequence:016x}-{tag}"


def _open(served: Served) -> InferenceSession:
    return InferenceSession.open(served.runtime, served.bundle, served.host, now=NOW)


def _send(served: Served, session: InferenceSession, request: SessionRequest) -> dict[str, Any]:
    response = session.handle(request)
    return served.open(request, response.sealed, response.signature)


def _sealed_state(served: Served) -> SessionCounters:
    sealed = served.host.checkpoints[-1][1]
    return SessionCounters.unseal(
        sealed, counters_key(served.runtime.identity.secret, served.chash)
    )


def test_the_checkpoint_does_not_grow_with_the_number_of_requests(serve: ServeFactory) -> None:
    served = serve(arguments=MANY)
    session = _open(served)
    sizes = []
    for rounds in range(4):
        for index in range(REPLAY_WINDOW):
            rid = new_request_id(f"r{rounds}x{index:04d}")  # ids of one length
            request = served.request("alice", ROW, rid)
            assert "request id" not in str(_send(served, session, request))
        session.checkpoint(served.host)
        sizes.append(len(served.host.checkpoints[-1][1]))

    state = _sealed_state(served)
    assert state.answered + state.failed == 4 * REPLAY_WINDOW
    assert len(state.replay["alice"]["ids"]) == REPLAY_WINDOW
    # counters gain a digit at most; the ids kept are as many and as long after 4 windows as
    # after one (the old checkpoint listed every id used: +REPLAY_WINDOW ids a round)
    assert max(sizes) - min(sizes) < 64, sizes


def test_replays_inside_and_below_the_window_are_refused(serve: ServeFactory) -> None:
    served = serve(arguments=MANY)
    session = _open(served)
    oldest = served.request("alice", ROW, "oldest")
    late = served.request("alice", ROW, "late")  # issued early, sent after the window moved on
    _send(served, session, oldest)
    newer = [served.request("alice", ROW, f"n{index}") for index in range(REPLAY_WINDOW)]
    for request in newer[:-1]:
        _send(served, session, request)
    recent = newer[-2]

    assert "already used" in _send(served, session, recent)["error"]  # inside the window
    first_time = _send(served, session, late)  # out of order, but above the floor: admitted
    assert not any(word in first_time.get("error", "") for word in ("already used", "older"))
    assert "already used" in _send(served, session, late)["error"]  # once only
    # the window was full: "oldest" left it when "late" came, "late" when newer[-1] came
    _send(served, session, newer[-1])
    below = _send(served, session, oldest)["error"]
    assert "older than the 256 newest requests" in below and "new request id" in below
    never_sent = served.request("alice", ROW, _id(request_sequence(oldest.request_id) - 1, "never"))
    assert "older than" in _send(served, session, never_sent)["error"]
    # another requester's window is their own
    assert "older than" not in _send(served, session, served.request("owner", ROW, "o"))["error"]


def test_a_session_resumed_from_its_checkpoint_refuses_replays(serve: ServeFactory) -> None:
    served = serve(arguments=MANY)
    first = _open(served)
    requests = [served.request("alice", ROW, f"r{index}") for index in range(REPLAY_WINDOW + 1)]
    for request in requests:
        _send(served, first, request)
    first.checkpoint(served.host)
    first.close()

    resumed = _open(served)  # another executor: same enclave key, the host's checkpoint

    assert "already used" in _send(served, resumed, requests[-1])["error"]
    assert "older than" in _send(served, resumed, requests[0])["error"]
    assert (
        "already used" not in _send(served, resumed, served.request("alice", ROW, "new"))["error"]
    )


def test_a_checkpoint_of_the_old_format_resumes_and_its_ids_cannot_be_sent() -> None:
    # the old checkpoint listed every id used; ids of that format no longer pass REQUEST_ID
    key = counters_key(b"s" * 32, "c" * 64)
    old = {"answered": 2, "seen": [["alice", "1f0e"], ["alice", "x"]]}
    counters = SessionCounters.unseal(seal_bytes(json.dumps(old).encode(), key), key)
    assert counters.answered == 2 and counters.replay == {}
    with pytest.raises(CryptoError, match="16 lowercase hex digits"):
        request_sequence("1f0e")


@pytest.mark.parametrize(
    "replay",
    [
        {"alice": {"floor": 0, "ids": ["not-an-id"]}},
        {"alice": {"floor": "0", "ids": []}},
        {"alice": {"ids": []}},
        {"alice": {"floor": 0, "ids": [_id(n) for n in range(REPLAY_WINDOW + 1)]}},
    ],
)
def test_a_malformed_replay_window_in_a_checkpoint_refuses_the_session(
    serve: ServeFactory, replay: dict[str, Any]
) -> None:
    served = serve()
    key = counters_key(served.runtime.identity.secret, served.chash)
    served.host.save_checkpoint(seal_bytes(json.dumps({"replay": replay}).encode(), key), 1)

    with pytest.raises(SessionRefused, match="not the enclave's counters"):
        _open(served)


def test_the_window_keeps_the_newest_ids_whatever_their_arrival_order() -> None:
    windows = ReplayWindows()
    for sequence in [5, 3, *range(10, 10 + REPLAY_WINDOW)]:
        assert windows.refusal("a", _id(sequence)) is None
        windows.admit("a", _id(sequence))

    state = windows.state()["a"]
    assert len(state["ids"]) == REPLAY_WINDOW and state["floor"] == 5
    for sequence in (3, 4, 5):  # used (3, 5) or never sent (4), at or below the floor
        assert "older than" in (windows.refusal("a", _id(sequence)) or "")
    assert windows.refusal("a", _id(9)) is None  # never sent, above the floor
    assert "already used" in (windows.refusal("a", _id(10)) or "")
    assert ReplayWindows.from_state(windows.state()).state() == windows.state()
