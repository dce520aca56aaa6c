"""Inference sessions over the long-lived channel (server/routes/channel.py) through a real
control plane and real executor processes: the same answers as over HTTP, a hostile relay's
replayed or swapped frames refused, non-parties kept out, the enclave's limits kept."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from teeflow.client import Client, ClientError, InferenceError
from teeflow.crypto import VerifyKey, b64d
from teeflow.enclave.contract import contract_hash
from teeflow.enclave.session_wire import open_response
from teeflow.server.launcher import LocalPlatform
from teeflow.tls import connect_websocket

from .conftest import MemberFactory
from .test_inference_session import _rows, _start_session, model_dataset

__all__ = ["model_dataset"]  # the module's fixture, shared with the HTTP session tests

Tamper = Callable[[str, Callable[[str], None], Callable[[str], None]], None]
"""(frame from upstream, send to the member, send upstream)."""


class HostileRelay:
    """A WebSocket proxy in front of the control plane's channel that sees every frame (as the
    untrusted relay does) and may replay, swap or drop them."""

    def __init__(self, upstream: httpx.Client, tamper: Tamper) -> None:
        self._upstream = upstream
        self._tamper = tamper
        self.sent: list[str] = []
        self.received: list[dict[str, Any]] = []
        self._server: Server = serve(self._handle, "127.0.0.1", 0)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def _handle(self, member: ServerConnection) -> None:
        path = member.request.path if member.request else "/"
        with connect_websocket(self._upstream, path, False) as upstream:

            def down() -> None:
                try:
                    for frame in upstream:
                        self.received.append(json.loads(frame))
                        self._tamper(str(frame), member.send, upstream.send)
                except ConnectionClosed:
                    pass

            threading.Thread(target=down, daemon=True).start()
            try:
                for frame in member:
                    self.sent.append(str(frame))
                    upstream.send(frame)
            except ConnectionClosed:
                pass

    def close(self) -> None:
        self._server.shutdown()


def _via(relay: HostileRelay, client: Client) -> httpx.Client:
    return httpx.Client(
        base_url=relay.url, headers={"Authorization": client.http.headers["Authorization"]}
    )


@pytest.fixture(scope="module")
def session(member: MemberFactory, model_dataset: str) -> Iterator[dict[str, Any]]:
    task = _start_session(member, model_dataset)
    yield task
    member("hospital").cancel(task["id"])


def test_a_session_over_the_channel_answers_as_over_http(
    member: MemberFactory, session: dict[str, Any], platform: LocalPlatform
) -> None:
    clinic = member("clinic")
    over_http = clinic.infer(session["id"], _rows())

    with clinic.open_session(session["id"], channel=True) as channel:
        first = channel.infer(_rows())
        again = channel.infer(_rows())

    assert first == over_http and again == over_http
    logs = "".join(p.read_text() for p in (platform.data_dir / "logs").glob("executor-*.log"))
    assert "inference session open" in logs and "no session channel" not in logs


def test_a_member_who_is_not_a_party_cannot_connect_or_read(
    member: MemberFactory, session: dict[str, Any]
) -> None:
    eve = member("eve")
    with connect_websocket(eve.http, f"/v1/tasks/{session['id']}/channel", False) as socket:
        refusal = json.loads(socket.recv(timeout=30))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
    assert refusal["error"]["code"] == "not_found"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
    anonymous = httpx.Client(base_url=eve.server)
    with connect_websocket(anonymous, f"/v1/tasks/{session['id']}/channel", False) as socket:
        assert json.loads(socket.recv(timeout=30))["error"]["code"] == "unauthorized"


def _open(client: Client, task: dict[str, Any], frame: dict[str, Any], sent: str) -> dict:
    keys = task["contract"]["executor"]["public_keys"]
    request = json.loads(sent)
    envelope: dict[str, Any] = open_response(
        b64d(frame["sealed"]),
        b64d(frame["signature"]),
        contract_hash=contract_hash(task["contract"]),
        requester="clinic",
        request_id=request["request_id"],
        request_ciphertext=b64d(request["ciphertext"]),
        enclave_key=VerifyKey.from_b64(keys["ed25519"]),
        receiving_key=client.keys.receiving_key,
    )
    return envelope


def test_a_request_frame_replayed_by_the_relay_is_refused_by_the_enclave(
    member: MemberFactory, session: dict[str, Any]
) -> None:
    clinic = member("clinic")
    answered = threading.Event()
    replays: list[dict[str, Any]] = []

    def replay_once(
        frame: str, to_member: Callable[[str], None], up: Callable[[str], None]
    ) -> None:
        if not answered.is_set():
            answered.set()
            to_member(frame)
            up(relay.sent[0])  # the member's request again, after it was answered
        else:
            replays.append(json.loads(frame))

    relay = HostileRelay(clinic.http, replay_once)
    try:
        with clinic.open_session(session["id"]) as channel:
            channel.connect(_via(relay, clinic))
            got = channel.infer(_rows())
            assert got == clinic.infer(session["id"], _rows())
            while not replays:  # the relay's replay reaches the enclave and is answered
                threading.Event().wait(0.05)
    finally:
        relay.close()

    envelope = _open(clinic, clinic.task(session["id"]), replays[0], relay.sent[0])
    assert envelope["status"] == "error" and "already used" in envelope["error"]


def test_an_answer_frame_swapped_by_the_relay_is_refused_by_the_client(
    member: MemberFactory, session: dict[str, Any]
) -> None:
    clinic = member("clinic")
    answers: list[dict[str, Any]] = []

    def swap(frame: str, to_member: Callable[[str], None], _up: Callable[[str], None]) -> None:
        answer = json.loads(frame)
        answers.append(answer)
        if len(answers) == 1:
            to_member(frame)
        else:  # the first request's answer, given out as the answer to this one
            to_member(json.dumps({**answers[0], "request_id": answer["request_id"]}))

    relay = HostileRelay(clinic.http, swap)
    try:
        with clinic.open_session(session["id"]) as channel:
            channel.connect(_via(relay, clinic))
            channel.infer(_rows())
            with pytest.raises(ClientError, match="not made by the session's enclave"):
                channel.infer(_rows()[:3])
    finally:
        relay.close()


def test_the_request_limit_holds_over_the_channel(
    member: MemberFactory, model_dataset: str
) -> None:
    hospital, clinic = member("hospital"), member("clinic")
    task = _start_session(member, model_dataset, max_requests=2)

    with clinic.open_session(task["id"], channel=True) as channel:
        for _ in range(2):
            channel.infer(_rows()[:1])
        with pytest.raises((ClientError, InferenceError)):
            channel.infer(_rows()[:1], timeout=60)

    assert hospital.wait(task["id"], timeout=60)["status"] == "succeeded"
    session = hospital.receipt(task["id"])["body"]["session"]
    assert session["end"] == "max_requests" and session["requests_answered"] == 2
