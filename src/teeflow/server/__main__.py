"""``python -m teeflow.server --data-dir DIR [--host H] [--port P] [--tls-cert F --tls-key F]``:
the control plane alone. Off loopback it serves TLS (or refuses, unless ``--insecure-http``)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from teeflow.server.app import create_app
from teeflow.server.settings import Settings
from teeflow.tls import InsecureTransportError, add_serve_arguments, serve_tls_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teeflow-server")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8321)
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    os.umask(0o077)  # the database, secrets, blobs and caches are this user's alone
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        tls = serve_tls_options(
            args.host, cert=args.tls_cert, key=args.tls_key, insecure_http=args.insecure_http
        )
    except InsecureTransportError as exc:
        parser.error(str(exc))
    app = create_app(Settings(data_dir=args.data_dir))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=True, **tls)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
