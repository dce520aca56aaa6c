"""The thread-free WebSocket client (tls/_websocket.py) and the member's channel reopening it,
against a real WebSocket server (websockets' own)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from teeflow.client._channel import SessionChannel
from teeflow.tls import connect_websocket, make_private_ca

Handler = Callable[[ServerConnection], None]


@pytest.fixture
def server() -> Iterator[Callable[[Handler], httpx.Client]]:
    servers = []

    def start(handler: Handler) -> httpx.Client:
        server = serve(handler, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        host, port = server.socket.getsockname()[:2]
        return httpx.Client(base_url=f"http://{host}:{port}", headers={"Authorization": "Bearer t"})

    yield start
    for one in servers:
        one.shutdown()


def test_messages_arrive_whole_and_in_order_however_the_bytes_are_cut(
    server: Callable[[Handler], httpx.Client],
) -> None:
    seen: list[str] = []

    def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.append(ws.request.headers["Authorization"])
        ws.send("one")
        ws.send(b"two")
        ws.send(["thr", "ee"])  # one message in two frames
        ws.send("x" * 300_000)  # more than one read
        ws.send(ws.recv())

    with connect_websocket(server(handler), "/", False) as socket:
        got = [socket.recv(timeout=10) for _ in range(4)]
        socket.send("echo")
        assert socket.recv(timeout=10) == "echo"
    assert got == ["one", b"two", "three", "x" * 300_000]
    assert seen == ["Bearer t"]


def test_a_ping_is_answered_when_the_owner_next_reads(
    server: Callable[[Handler], httpx.Client],
) -> None:
    ponged = threading.Event()

    def handler(ws: ServerConnection) -> None:
        ponged.set() if ws.ping().wait(10) else None
        ws.recv()

    with connect_websocket(server(handler), "/", False) as socket:
        while not ponged.is_set():
            assert not socket.closed_while_idle()
            ponged.wait(0.01)
        socket.send("done")


def test_a_close_is_reported_with_its_code(server: Callable[[Handler], httpx.Client]) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(json.dumps({"status": "error"}))
        ws.close(code=4409, reason="lease_lost")

    with connect_websocket(server(handler), "/", False) as socket:
        assert json.loads(socket.recv(timeout=10)) == {"status": "error"}
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert socket.closed_while_idle()
        with pytest.raises(ConnectionClosed):
            socket.send("late")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409


def test_no_message_within_the_timeout_raises_timeout_error(
    server: Callable[[Handler], httpx.Client],
) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv()

    with connect_websocket(server(handler), "/", False) as socket:
        with pytest.raises(TimeoutError):
            socket.recv(timeout=0.05)
        socket.send("done")


def test_one_thread_sends_while_another_waits_for_messages(
    server: Callable[[Handler], httpx.Client],
) -> None:
    def handler(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with connect_websocket(server(handler), "/", False) as socket:
        received: list[str | bytes] = []
        reader = threading.Thread(
            target=lambda: received.extend(socket.recv(10) for _ in range(50))
        )
        reader.start()
        for index in range(50):
            socket.send(str(index))
        reader.join(30)
    assert received == [str(index) for index in range(50)]


def test_the_member_channel_reopens_a_socket_the_server_closed_while_it_was_idle(
    server: Callable[[Handler], httpx.Client],
) -> None:
    connections: list[int] = []
    closing = threading.Event()

    def handler(ws: ServerConnection) -> None:
        connections.append(len(connections))
        request = json.loads(ws.recv())
        ws.send(json.dumps({"request_id": request["request_id"], "status": "answered"}))
        if len(connections) == 1:  # as uvicorn does when pings go unanswered
            closing.set()
            ws.close(code=1011, reason="keepalive ping timeout")

    channel = SessionChannel(server(handler), False, "task")
    try:
        first = channel.exchange({"request_id": "r1"}, timeout=10)
        assert closing.wait(10)
        socket = channel._socket
        for _ in range(1000):  # until the close frame is here (it is sent right after)
            if socket.closed_while_idle():
                break
            threading.Event().wait(0.01)
        second = channel.exchange({"request_id": "r2"}, timeout=10)
    finally:
        channel.close()
    assert first["request_id"] == "r1" and second["request_id"] == "r2"
    assert connections == [0, 1]


def test_over_tls_the_server_is_verified_and_large_messages_arrive_whole(tmp_path: Path) -> None:
    tls = make_private_ca(tmp_path / "ca", hosts=["127.0.0.1"])
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(tls.cert, tls.key)

    def handler(ws: ServerConnection) -> None:
        ws.send("y" * 200_000)
        ws.send(ws.recv())

    server = serve(handler, "127.0.0.1", 0, ssl=served)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.socket.getsockname()[1]
        http = httpx.Client(base_url=f"https://127.0.0.1:{port}")
        trusted = ssl.create_default_context(cafile=str(tls.ca_cert))
        with connect_websocket(http, "/", trusted) as socket:
            assert socket.recv(timeout=10) == "y" * 200_000
            socket.send("over tls")
            assert socket.recv(timeout=10) == "over tls"
        with pytest.raises(ssl.SSLCertVerificationError):
            connect_websocket(http, "/", ssl.create_default_context())  # not the system's CA
    finally:
        server.shutdown()
