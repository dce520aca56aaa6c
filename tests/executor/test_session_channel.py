"""The executor's side of the session channel (executor/session_channel.py): when the enclave's
sealed counters go to the relay with the answers, against a scripted relay socket and session."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from teeflow.enclave.session import SessionRequest, SessionResponse
from teeflow.executor import session_channel


class ScriptedSocket:
    """Hands out the scripted frames, then raises TimeoutError (calling ``after`` each time)."""

    def __init__(self, frames: list[str], after: Any) -> None:
        self.frames = frames
        self.sent: list[dict[str, Any]] = []
        self.after = after

    def __enter__(self) -> ScriptedSocket:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def recv(self, timeout: float) -> str:
        assert timeout >= 0
        if self.frames:
            return self.frames.pop(0)
        self.after(self)
        raise TimeoutError

    def send(self, frame: str) -> None:
        self.sent.append(json.loads(frame))


class Session:
    end: str | None = None

    def __init__(self) -> None:
        self.sealed = 0

    def seconds_left(self) -> float:
        return 60.0

    def handle(self, request: SessionRequest) -> SessionResponse:
        return SessionResponse(request.requester, request.request_id, b"sealed", b"sig")

    def checkpoint(self, host: Any) -> None:
        self.sealed += 1
        host.save_checkpoint(f"counters-{self.sealed}".encode(), self.sealed)


def _requests(*ids: str) -> str:
    return json.dumps(
        {"requests": [{"requester": "clinic", "request_id": i} for i in ids]},
    )


def _serve(monkeypatch: pytest.MonkeyPatch, frames: list[str], every: float) -> list[dict]:
    stop = threading.Event()
    socket = ScriptedSocket(frames, after=lambda _: stop.set())
    monkeypatch.setattr(session_channel, "connect_websocket", lambda *a, **k: socket)
    ended = session_channel.serve_over_channel(
        None,  # type: ignore[arg-type]
        False,
        "task-1",
        Session(),  # type: ignore[arg-type]
        stop=stop,
        lost=threading.Event(),
        host=object(),  # type: ignore[arg-type]
        request=lambda item: SessionRequest(item["requester"], item["request_id"], b"", b""),
        wire=lambda answer: {"request_id": answer.request_id},
        checkpoint_every=every,
    )
    assert ended == "shutdown"
    return socket.sent


def test_with_no_interval_every_frame_of_answers_carries_the_sealed_counters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _serve(monkeypatch, [_requests("a"), _requests("b", "c")], every=0.0)

    assert [[a["request_id"] for a in f["answers"]] for f in sent] == [["a"], ["b", "c"]]
    assert [f["checkpoint"]["sequence"] for f in sent] == [1, 2]


def test_paced_counters_go_out_before_the_session_is_given_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _serve(monkeypatch, [_requests("a"), _requests("b")], every=3600.0)

    # the first answers carry counters; the next wait for the interval, but the executor that
    # shuts down sends the counters of every answer it gave before it leaves
    assert [f["answers"] for f in sent] == [[{"request_id": "a"}], [{"request_id": "b"}], []]
    assert "checkpoint" not in sent[1]
    assert sent[0]["checkpoint"]["sequence"] == 1 and sent[2]["checkpoint"]["sequence"] == 2
