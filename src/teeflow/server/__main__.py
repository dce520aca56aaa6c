"""``python -m teeflow.server --data-dir DIR [--host H] [--port P] [--tls-cert F --tls-key F]
[--workers N] [--access-log]``: the control plane alone. Off loopback it serves TLS (or refuses,
unless ``--insecure-http``).

With ``--workers N`` (N > 1) uvicorn runs N processes on one listening socket; they share the
database and the blob store, and their long-polls wake each other through PostgreSQL
``LISTEN/NOTIFY`` (server/notify_pg.py). SQLite is refused with several workers: its notifier is
in-process, so a member waiting in one worker would see a task finished through another only when
its wait timed out (docs/decisions/0022-several-control-plane-workers.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn

from teeflow.server.app import LOG_FORMAT, create_app
from teeflow.server.db import is_sqlite_url
from teeflow.server.settings import Settings
from teeflow.tls import InsecureTransportError, add_serve_arguments, serve_tls_options

ACCESS_LOG_ENV = "TEEFLOW_ACCESS_LOG"
"""``1``: log every request by default (``--access-log``); errors are logged either way."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teeflow-server")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8321)
    add_serve_arguments(parser)
    parser.add_argument(
        "--workers", type=int, default=1, help="control-plane processes (PostgreSQL only if > 1)"
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get(ACCESS_LOG_ENV, "") == "1",
        help=f"log one line per request (uvicorn's access log, about 0.1 ms of CPU a request); "
        f"off unless {ACCESS_LOG_ENV}=1",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    os.umask(0o077)  # the database, secrets, blobs and caches are this user's alone
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        tls = serve_tls_options(
            args.host, cert=args.tls_cert, key=args.tls_key, insecure_http=args.insecure_http
        )
    except InsecureTransportError as exc:
        parser.error(str(exc))
    settings = Settings(data_dir=args.data_dir)
    serve: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": "info",
        "access_log": args.access_log,
        # The client's address is the TCP peer's: X-Forwarded-For counts only from the proxies
        # in TEEFLOW_TRUSTED_PROXIES (server/throttle.py), never from uvicorn's default 127.0.0.1.
        "proxy_headers": False,
        **tls,
    }
    if args.workers == 1:
        uvicorn.run(create_app(settings), **serve)
        return 0
    if is_sqlite_url(settings.resolved_database_url):
        print(
            "teeflow-server: --workers > 1 needs PostgreSQL (set TEEFLOW_DATABASE_URL=postgresql+"
            "psycopg://...); SQLite serves one worker only",
            file=sys.stderr,
        )
        return 2
    # Every worker builds its own app from the environment; migrate once before they start.
    os.environ["TEEFLOW_DATA_DIR"] = str(args.data_dir.resolve())
    from teeflow.server.store import Store

    store = Store.from_url(settings.resolved_database_url)
    try:
        store.migrate()
    finally:
        store.close()
    uvicorn.run(
        "teeflow.server.app:app_from_environment",
        factory=True,
        workers=args.workers,
        **serve,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
