"""Run a local platform: the control plane and sim executors, each a separate OS process.

Used by ``teeflow server``, ``teeflow demo`` and the end-to-end tests. With ``tls`` the control
plane serves HTTPS and every executor verifies it against the CA (``TEEFLOW_CA_CERT``). Logs go to
``DATA_DIR/logs/`` (scanned by the tests for leaked plaintext and secrets). The data directory
is 0700 and every process runs with umask 077: only the platform's user reads its files.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from teeflow.crypto import private_directory
from teeflow.tls import CA_CERT_ENV, TlsFiles, client_verify

__all__ = ["PRIVATE_UMASK", "LocalPlatform", "free_port", "wait_healthy"]

PRIVATE_UMASK = 0o077
"""The control plane and executors create their files 0600 and directories 0700."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(
    url: str,
    *,
    timeout: float = 60.0,
    process: subprocess.Popen[bytes] | None = None,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Wait until ``url``'s ``/v1/health`` answers 200 (RuntimeError when ``process`` exits or
    ``timeout`` seconds pass); ``verify`` as for httpx (the CA of an https server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"control plane exited with status {process.returncode}; see its log"
            )
        try:
            if httpx.get(f"{url}/v1/health", timeout=1.0, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"control plane at {url} did not become healthy in {timeout:.0f} s")


class LocalPlatform:
    """A control plane plus ``executors`` sim executors on loopback, all separate processes.

    ``tls`` (a :class:`~teeflow.tls.TlsFiles`) makes the control plane serve HTTPS with its
    server certificate; ``url`` is then ``https://127.0.0.1:PORT`` and executors get the CA as
    ``TEEFLOW_CA_CERT`` (its certificate must name 127.0.0.1). Listening on another ``host``
    than loopback needs ``tls`` or ``insecure_http``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        executors: int = 1,
        port: int | None = None,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
        insecure_http: bool = False,
        workers: int = 1,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host  # the control plane's listen address; executors dial loopback
        self.port = port or free_port()
        self.tls = tls
        self.insecure_http = insecure_http  # plain http on a non-loopback ``host``, warned
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.n_executors = executors
        self.workers = workers
        """Control-plane processes behind the one port (several need PostgreSQL)."""
        self.env = {**os.environ, **(env or {})}
        if tls is not None:
            self.env.setdefault(CA_CERT_ENV, str(tls.ca_cert))
        self.server: subprocess.Popen[bytes] | None = None
        self.control_planes: list[subprocess.Popen[bytes]] = []
        """Further control planes on the same data, started by :meth:`add_control_plane`."""
        self.executors: list[subprocess.Popen[bytes]] = []
        self._killed: set[int] = set()
        self._logs = self.data_dir / "logs"

    def _spawn(
        self, args: list[str], log_name: str, *, prefix: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        private_directory(self._logs)
        log = os.open(self._logs / log_name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            return subprocess.Popen(
                [*prefix, sys.executable, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                umask=PRIVATE_UMASK,  # whatever the processes create is theirs alone
            )
        finally:
            os.close(log)

    def _tls_args(self) -> tuple[str, ...]:
        if self.tls is not None:
            return ("--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key))
        return ("--insecure-http",) if self.insecure_http else ()

    def _start_server(self) -> None:
        self.server = self._spawn(
            [
                *("-m", "teeflow.server", "--data-dir", str(self.data_dir)),
                *("--host", self.host, "--port", str(self.port), *self._tls_args()),
                *("--workers", str(self.workers)),
            ],
            "server.log",
        )
        verify = client_verify(self.url, ca_cert=self.tls.ca_cert if self.tls else None)
        wait_healthy(self.url, process=self.server, verify=verify)

    def add_control_plane(self) -> str:
        """Start one more control-plane process on the same database and blobs, on a port of
        its own (as a second host behind a load balancer would be); returns its URL."""
        port = free_port()
        process = self._spawn(
            [
                *("-m", "teeflow.server", "--data-dir", str(self.data_dir)),
                *("--host", "127.0.0.1", "--port", str(port), *self._tls_args()),
            ],
            f"server-{len(self.control_planes) + 1}.log",
        )
        self.control_planes.append(process)
        url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        verify = client_verify(url, ca_cert=self.tls.ca_cert if self.tls else None)
        wait_healthy(url, process=process, verify=verify)
        return url

    def start(self) -> LocalPlatform:
        private_directory(self.data_dir, tighten=True)
        self._start_server()
        for _ in range(self.n_executors):
            self.add_executor()
        self.wait_executors(self.n_executors)
        return self

    def add_executor(
        self,
        *,
        server_url: str | None = None,
        data_dir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        prefix: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        """Start one more executor; ``server_url`` points it elsewhere (e.g. at a proxy),
        ``data_dir`` gives it its own data directory (as on another host), ``extra_args`` go to
        ``python -m teeflow.executor`` (e.g. ``--tee tdx --key-service-policy FILE``), and
        ``prefix`` runs before the interpreter (e.g. ``unshare ...`` into namespaces of its
        own; it must end by executing the command it is given)."""
        index = len(self.executors)
        url = server_url or self.url
        own_dir = str(data_dir or self.data_dir)
        process = self._spawn(
            ["-m", "teeflow.executor", "--server", url, "--data-dir", own_dir, *extra_args],
            f"executor-{index}.log",
            prefix=prefix,
        )
        self.executors.append(process)
        return process

    def wait_executors(self, count: int, timeout: float = 60.0) -> None:
        """Wait until ``count`` executors registered (the audit log counts registrations)."""
        from teeflow.server.settings import Settings
        from teeflow.server.store import Store

        # The server's database, as its environment selects it (TEEFLOW_DATABASE_URL in ``env``).
        settings = Settings(
            data_dir=self.data_dir, database_url=self.env.get("TEEFLOW_DATABASE_URL") or None
        )
        store = Store.from_url(settings.resolved_database_url)
        try:
            deadline = time.monotonic() + timeout
            while len(store.list_executors()) < count:
                dead = [
                    i
                    for i, p in enumerate(self.executors)
                    if p.poll() is not None and i not in self._killed
                ]
                if dead:
                    log = self._logs / f"executor-{dead[0]}.log"
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise RuntimeError(
                        f"executor {dead[0]} exited during start; the end of {log}:\n{tail}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"executors did not register in {timeout:.0f} s")
                time.sleep(0.1)
        finally:
            store.close()

    def kill_executor(self, index: int) -> None:
        """SIGKILL one executor (its process group), as a crash would."""
        process = self.executors[index]
        self._killed.add(index)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def pause_executor(self, index: int) -> None:
        """SIGSTOP one executor (its process group): it holds its lease and does nothing, as a
        host that stalls would, until :meth:`resume_executor`."""
        os.killpg(self.executors[index].pid, signal.SIGSTOP)

    def resume_executor(self, index: int) -> None:
        os.killpg(self.executors[index].pid, signal.SIGCONT)

    def restart_server(self) -> None:
        if self.server is not None:
            _stop(self.server)
        self._start_server()

    def stop(self) -> None:
        for process in self.executors + self.control_planes:
            _stop(process)
        if self.server is not None:
            _stop(self.server)

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(timeout=10)
