"""Serving the console on 127.0.0.1: bind first (so the port, and with it the allowed Host
names, is known before the first request), then run uvicorn on that socket."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from teeflow.client import Client
from teeflow.console._security import LaunchSecrets
from teeflow.console.app import create_app

__all__ = ["ConsoleServer"]

HOST = "127.0.0.1"


class ConsoleServer:
    """One launch of the console for ``client``: ``url`` holds the launch token.

    ``run()`` blocks (the CLI); ``start()`` / ``stop()`` run it in a thread (tests).
    """

    def __init__(self, client: Client, *, port: int = 0) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((HOST, port))
        except OSError as exc:
            self.socket.close()
            raise OSError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from exc
        self.launch = LaunchSecrets(port=self.socket.getsockname()[1])
        self.app = create_app(client, self.launch)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The URL to open, with this launch's token."""
        return self.launch.url()

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.launch.port}"

    def run(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self, timeout: float = 30.0) -> ConsoleServer:
        self._thread = threading.Thread(target=self.run, name="teeflow-console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the console did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.socket.close()
