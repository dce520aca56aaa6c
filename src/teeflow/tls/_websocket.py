"""One WebSocket to the control plane, over the same URL and TLS check as its HTTP client.

The socket is read by whoever waits for a message, in that thread (websockets' Sans-I/O
protocol does the framing): no reader thread and no hand-over per message, which websockets'
own synchronous client costs on every frame. Pings that arrive are answered whenever the owner
reads; an owner that may sit idle longer than the server's ping timeout reopens the socket
(``reopened``)."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from types import TracebackType

import httpx
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidMessage
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event, State
from websockets.uri import parse_uri

__all__ = ["ClientConnection", "connect_websocket"]

_MAX_SIZE = 64 << 20
_READ = 1 << 16
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class ClientConnection:
    """An open WebSocket. One thread at a time receives; any thread may send meanwhile. Raises
    websockets.exceptions.ConnectionClosed (``rcvd``: the close frame received, if any) once it
    is closed, as websockets' own connections do."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        sock.settimeout(None)  # reads wait in select; sends block until the kernel takes them
        self._socket = sock
        self._protocol = protocol
        self._mutex = threading.Lock()
        """Held while the protocol changes and while its bytes are sent."""
        self._events: deque[Event] = deque()
        self._fragments: list[bytes] = []
        self._text = False

    def send(self, message: str | bytes) -> None:
        """Send one text (``str``) or binary (``bytes``) message."""
        with self._mutex:
            if self._protocol.state is not State.OPEN:
                raise self._closed()
            if isinstance(message, str):
                self._protocol.send_text(message.encode("utf-8"))
            else:
                self._protocol.send_binary(message)
            self._flush()

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message (``str`` for text, ``bytes`` for binary). Raises TimeoutError if
        none comes within ``timeout`` seconds (None: wait as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._events:
                message = self._message(self._events.popleft())
                if message is not None:
                    return message
            with self._mutex:
                if self._protocol.state is State.CLOSED or self._protocol.close_rcvd is not None:
                    raise self._closed()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("no message within the timeout")
            self._read(remaining)

    def __iter__(self) -> Iterator[str | bytes]:
        """Messages until the connection closes normally (ConnectionClosedError otherwise)."""
        with contextlib.suppress(ConnectionClosedOK):
            while True:
                yield self.recv()

    def closed_while_idle(self) -> bool:
        """Read what arrived without waiting (answering pings); True if the connection is
        closed. Messages that arrived unasked are dropped."""
        with contextlib.suppress(TimeoutError):
            while self._protocol.state is State.OPEN:
                self._read(0.0)
        self._events.clear()
        return self._protocol.state is not State.OPEN

    def close(self) -> None:
        """Close (a normal close, 1000) and release the socket; never raises."""
        with self._mutex, contextlib.suppress(OSError, ConnectionClosed):
            if self._protocol.state is State.OPEN:
                self._protocol.send_close()
                self._flush()
        with contextlib.suppress(OSError):
            self._socket.close()

    def __enter__(self) -> ClientConnection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _message(self, event: Event) -> str | bytes | None:
        if not isinstance(event, Frame) or event.opcode not in _DATA:
            return None  # pings are answered by the protocol itself
        if event.opcode is not Opcode.CONT:
            self._fragments, self._text = [], event.opcode is Opcode.TEXT
        self._fragments.append(bytes(event.data))
        if not event.fin:
            return None
        data, self._fragments = b"".join(self._fragments), []
        return data.decode("utf-8") if self._text else data

    def _read(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds for bytes (TimeoutError) and feed them to the
        protocol; events go to the queue, answers (pongs, the close reply) out at once."""
        data: bytes | None = b""  # reset, or closed here (no file descriptor left): the end
        with contextlib.suppress(OSError, ValueError):
            pending = isinstance(self._socket, ssl.SSLSocket) and self._socket.pending() > 0
            ready = pending or select.select([self._socket], [], [], timeout)[0]
            data = self._socket.recv(_READ) if ready else None
        if data is None:
            raise TimeoutError("no message within the timeout")
        with self._mutex:
            if data:
                self._protocol.receive_data(data)
            else:
                self._protocol.receive_eof()
            self._events.extend(self._protocol.events_received())
            with contextlib.suppress(ConnectionClosed):
                self._flush()

    def _flush(self) -> None:
        """Send what the protocol has to send; hold ``_mutex``."""
        for data in self._protocol.data_to_send():
            if not data:
                with contextlib.suppress(OSError):
                    self._socket.shutdown(socket.SHUT_WR)
                continue
            try:
                self._socket.sendall(data)
            except OSError as exc:  # the peer is gone: closed, as websockets reports it
                raise self._closed() from exc

    def _closed(self) -> ConnectionClosed:
        """The exception of a closed connection (the close frame received, if any); nothing
        more is read from it. Hold ``_mutex``."""
        self._protocol.receive_eof()
        with contextlib.suppress(OSError):
            self._socket.close()
        return self._protocol.close_exc


def connect_websocket(
    http: httpx.Client, path: str, tls: ssl.SSLContext | bool, *, timeout: float = 10.0
) -> ClientConnection:
    """A WebSocket to ``path`` of ``http``'s server (``ws://`` for ``http://``, ``wss://`` for
    ``https://``), sending ``http``'s Authorization header and checking the server's certificate
    as ``tls`` says (an SSLContext, True: the system's CAs, False: no check; as httpx's
    ``verify``). Raises OSError or websockets.exceptions.WebSocketException if it cannot connect
    (or the handshake takes over ``timeout`` seconds: TimeoutError); frames up to 64 MiB, no
    compression. The caller closes it (``close()`` or ``with``)."""
    url = http.base_url.join(path)
    secure = url.scheme == "https"
    uri = parse_uri(str(url.copy_with(scheme="wss" if secure else "ws")))
    sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        if secure:
            sock = _tls_context(tls).wrap_socket(sock, server_hostname=uri.host)
        protocol = ClientProtocol(uri, max_size=_MAX_SIZE)
        request = protocol.connect()
        if "Authorization" in http.headers:
            request.headers["Authorization"] = http.headers["Authorization"]
        protocol.send_request(request)
        connection = ClientConnection(sock, protocol)
        with connection._mutex:
            connection._flush()
        _handshake(connection, protocol, timeout)
    except BaseException:
        sock.close()
        raise
    return connection


def _handshake(connection: ClientConnection, protocol: ClientProtocol, timeout: float) -> None:
    """Wait for the server's response; frames sent right after it stay queued."""
    deadline = time.monotonic() + timeout
    while not connection._events:
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out while waiting for the WebSocket handshake")
        connection._read(remaining)
    if protocol.handshake_exc is not None:
        raise protocol.handshake_exc
    if not isinstance(connection._events.popleft(), Response):
        raise InvalidMessage("the server did not accept the WebSocket")


def _tls_context(tls: ssl.SSLContext | bool) -> ssl.SSLContext:
    if isinstance(tls, ssl.SSLContext):
        return tls
    context = ssl.create_default_context()
    if not tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
