"""``python -m teeflow.executor --server URL --data-dir DIR``: one executor process."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from teeflow.enclave.boot import boot_enclave
from teeflow.executor.worker import Worker, read_secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teeflow-executor")
    parser.add_argument("--server", required=True, help="control plane URL")
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="the platform's data directory"
    )
    parser.add_argument("--tee", default="sim")
    parser.add_argument("--max-tasks", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("TEEFLOW_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    enclave = boot_enclave(tee=args.tee, platform_dir=args.data_dir / "platform")
    secret = os.environ.get("TEEFLOW_EXECUTOR_SECRET") or read_secret(args.data_dir)
    worker = Worker(enclave=enclave, server_url=args.server, secret=secret)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.register()
    worker.run_forever(stop=stop, max_tasks=args.max_tasks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
