"""``python -m teeflow.server --data-dir DIR [--host H] [--port P]``: the control plane alone."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from teeflow.server.app import create_app
from teeflow.server.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teeflow-server")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8321)
    args = parser.parse_args(argv)
    os.umask(0o077)  # the database, secrets, blobs and caches are this user's alone
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(Settings(data_dir=args.data_dir))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
