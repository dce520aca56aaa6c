"""``teeflow server``: a local platform, the control plane plus sim executors, until Ctrl-C.

Each part is its own OS process (server/launcher.py); their logs go to DATA_DIR/logs/. The
executors are SIMULATED enclaves: every protocol check is real, no hardware protects the data.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from teeflow.cli._output import fail, warn
from teeflow.server.db import is_sqlite_url
from teeflow.server.launcher import LocalPlatform
from teeflow.server.settings import Settings
from teeflow.tls import InsecureTransportError, TlsFiles, serve_tls_options

__all__ = ["register"]


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def server(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Database, blobs, keys and logs.", file_okay=False)
    ],
    host: Annotated[
        str, typer.Option("--host", help="Listen address of the control plane.")
    ] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option("--port", help="Listen port (default: a free one).")
    ] = None,
    executors: Annotated[
        int, typer.Option("--executors", min=0, help="Sim executors to start.")
    ] = 1,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Control-plane processes; more than 1 needs PostgreSQL (TEEFLOW_DATABASE_URL).",
        ),
    ] = 1,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", dir_okay=False, help="Serve HTTPS with this certificate."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", dir_okay=False, help="Its private key (PEM).")
    ] = None,
    ca_cert: Annotated[
        Path | None,
        typer.Option(
            "--ca-cert", dir_okay=False, help="The CA of --tls-cert, for the local executors."
        ),
    ] = None,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http",
            help="Serve plain http off loopback (tokens and secrets travel in clear).",
        ),
    ] = False,
) -> None:
    """Run a local platform (control plane + sim executors) until Ctrl-C.

    Off loopback (--host 0.0.0.0) the control plane serves HTTPS: give --tls-cert, --tls-key
    and --ca-cert (`teeflow tls init` makes them)."""
    tls = None
    if tls_cert is not None or tls_key is not None or ca_cert is not None:
        if tls_cert is None or tls_key is None or ca_cert is None:
            fail("give --tls-cert, --tls-key and --ca-cert together")
        tls = TlsFiles(ca_cert=ca_cert, cert=tls_cert, key=tls_key)
    try:  # the control plane would refuse too; say why here, before anything starts
        serve_tls_options(host, cert=tls_cert, key=tls_key, insecure_http=insecure_http)
    except InsecureTransportError as exc:
        fail(str(exc))
    if workers > 1 and is_sqlite_url(Settings(data_dir=data_dir).resolved_database_url):
        fail(
            "--workers > 1 needs PostgreSQL: set TEEFLOW_DATABASE_URL=postgresql+psycopg://...; "
            "the embedded SQLite database serves one control-plane worker"
        )
    platform = LocalPlatform(
        data_dir,
        host=host,
        port=port,
        executors=executors,
        tls=tls,
        insecure_http=insecure_http,
        workers=workers,
    )
    logs = platform.data_dir / "logs"
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        platform.start()
        typer.echo(f"teeflow control plane: {platform.url}  (listening on {host}:{platform.port})")
        typer.echo(f"data: {platform.data_dir}   logs: {logs}")
        typer.echo(f"members trust it with: teeflow attest trust --simulated --data-dir {data_dir}")
        warn(f"{executors} SIMULATED executor(s): no hardware protection; for development only")
        while True:
            time.sleep(1.0)
            if platform.server is not None and platform.server.poll() is not None:
                fail(f"the control plane exited ({platform.server.returncode}); see {logs}")
            if any(p.poll() is not None for p in platform.executors):
                warn(f"an executor exited; see {logs}")
                platform.executors = [p for p in platform.executors if p.poll() is None]
    except KeyboardInterrupt:
        typer.echo("stopping", err=True)
    except RuntimeError as exc:
        fail(f"{exc} (logs in {logs})")
    finally:
        platform.stop()


def register(app: typer.Typer) -> None:
    """Add the top-level ``server`` command to ``app``."""
    app.command("server")(server)
