"""``python -m teeflow.executor --server URL --data-dir DIR``: one executor process."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import threading
from pathlib import Path

from teeflow.attestation import AttestationError
from teeflow.enclave.boot import boot_enclave
from teeflow.enclave.keyrelease import KeyReleaseError
from teeflow.enclave.memory import parse_size
from teeflow.executor.keyrelease import add_tee_arguments, boot_from_args
from teeflow.executor.worker import Worker, read_secret
from teeflow.functions.registry import preload_builtins
from teeflow.tls import InsecureTransportError, client_verify, env_ca_cert, env_insecure_http


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teeflow-executor")
    parser.add_argument(
        "--server", required=True, help="control plane URL (https:// unless on this machine)"
    )
    parser.add_argument(
        "--ca-cert",
        type=Path,
        default=env_ca_cert(),
        help="PEM of the CA that signed the control plane's certificate (default: the "
        "system's roots); env TEEFLOW_CA_CERT",
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        default=env_insecure_http(),
        help="allow plain http to another host: the executor secret and tokens travel in "
        "clear; env TEEFLOW_INSECURE_HTTP=1",
    )
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="the platform's data directory"
    )
    parser.add_argument("--tee", default="sim", choices=["sim", "sgx", "tdx", "sev-snp"])
    add_tee_arguments(parser)
    parser.add_argument("--max-tasks", type=int, default=None)
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=float(os.environ.get("TEEFLOW_CHECKPOINT_INTERVAL_S", "1.0")),
        help="seconds between training checkpoints (0: after every epoch); "
        "env TEEFLOW_CHECKPOINT_INTERVAL_S",
    )
    parser.add_argument(
        "--memory-limit",
        default=os.environ.get("TEEFLOW_ENCLAVE_MEMORY_LIMIT"),
        help="the TEE's memory (e.g. 8G: SGX enclave size, CVM memory); tasks that declare or "
        "are estimated to need more are refused; env TEEFLOW_ENCLAVE_MEMORY_LIMIT",
    )
    args = parser.parse_args(argv)
    os.umask(0o077)  # the database, secrets, blobs and caches are this user's alone
    try:
        memory_limit = parse_size(args.memory_limit) if args.memory_limit else None
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=os.environ.get("TEEFLOW_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    if logging.getLogger().getEffectiveLevel() >= logging.INFO:
        # httpx logs every request at INFO: a line per lease, finish and heartbeat, a tenth of
        # the executor's CPU per task under load. Its warnings still show; DEBUG shows all.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        verify = client_verify(args.server, ca_cert=args.ca_cert, insecure_http=args.insecure_http)
    except InsecureTransportError as exc:
        parser.error(str(exc))
    if args.key_service_policy is None and args.tee == "sim":
        enclave = boot_enclave(tee=args.tee, platform_dir=args.data_dir / "platform")
    elif args.key_service_policy is None:
        parser.error(
            f"--tee {args.tee} gets its enclave key by key release: give --key-service-policy"
        )
    else:
        try:
            enclave = boot_from_args(args, args.server, verify=verify)
        except (KeyReleaseError, AttestationError) as exc:
            logging.getLogger("teeflow.executor").error("key release failed: %s", exc)
            return 2
    enclave.runtime.checkpoint_interval_s = args.checkpoint_interval
    enclave.runtime.memory_limit_bytes = memory_limit
    secret = os.environ.get("TEEFLOW_EXECUTOR_SECRET") or read_secret(args.data_dir)
    worker = Worker(enclave=enclave, server_url=args.server, secret=secret, verify=verify)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Import the built-ins (PaddlePaddle: seconds) before taking work, so no task pays for it.
    preload_builtins()
    # What the imports left (PaddlePaddle, scikit-learn, the built-ins: ~225 000 objects) goes
    # to the collector's permanent generation: otherwise every full collection walks it again,
    # and a training loop that makes tensors by the thousand pays ~10 % over a plain script
    # (issue 16, P1-mlp: function / plain 1.14 -> 1.02 measured with bench_training.py).
    gc.freeze()
    worker.register()
    worker.run_forever(stop=stop, max_tasks=args.max_tasks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
