"""``python -m teeflow.keyservice --data-dir DIR --policy FILE --signers FILE``.

Runs the key service in the simulated TEE (``--tee sim``, the only one that boots here) with its
own quoting key and sealing secret in DIR. ``--policy`` is what it accepts from executors (a
Policy file; the allow-list supplies the measurements); ``--signers`` lists the participants'
Ed25519 public keys (base64, one a line) whose signatures an allow-list needs. On a real TEE
these two files are measured into the service (a Gramine trusted file), not runtime switches.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from teeflow.attestation import (
    AttestationError,
    Claims,
    Evidence,
    Policy,
    SimProvider,
    SimQuotingKey,
    sim_measurement,
    verify_evidence,
)
from teeflow.crypto import read_or_create_secret
from teeflow.enclave.keyrelease import Verifier
from teeflow.enclave.keyservice import KeyService
from teeflow.keyservice.app import create_keyservice_app

log = logging.getLogger("teeflow.keyservice")


def production_verifier(policy: Policy) -> Verifier:
    """Sim evidence against the policy's pinned quoting keys. Hardware evidence needs
    collateral (DCAP from a PCCS, SEV-SNP VCEK) that this service does not fetch yet: it
    refuses such evidence, saying so (docs/key-release.md, "What was not run")."""

    def verify(evidence: Evidence, now: datetime) -> Claims:
        if evidence.tee != "sim":
            raise AttestationError(
                f"this key service has no collateral source for {evidence.tee} evidence yet",
                code="collateral",
            )
        return verify_evidence(evidence, now=now, sim_quoting_keys=policy.sim_quoting_keys)

    return verify


def build_service(args: argparse.Namespace, verifier: Verifier | None = None) -> KeyService:
    """The KeyService for ``args`` (the test entry point swaps in its fake-hardware verifier)."""
    data: Path = args.data_dir
    data.mkdir(parents=True, exist_ok=True)
    policy = Policy.from_file(args.policy)
    signers = frozenset(
        line.strip() for line in Path(args.signers).read_text().splitlines() if line.strip()
    )
    audit_path = data / "audit.jsonl"

    def audit(record: dict[str, Any]) -> None:
        stamped = {"at": datetime.now(UTC).isoformat(), **record}
        with audit_path.open("a") as handle:
            handle.write(json.dumps(stamped, sort_keys=True) + "\n")
        log.info("%s %s", record["action"], record.get("measurement", ""))

    measurement = sim_measurement()
    return KeyService(
        state_dir=data / "state",
        provider=SimProvider(SimQuotingKey.load_or_create(data), measurement=measurement),
        measurement=measurement,
        sealing_secret=read_or_create_secret(data / "sealing-secret", lambda: os.urandom(32)),
        policy=policy,
        signers=signers,
        verifier=verifier or production_verifier(policy),
        audit=audit,
    )


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="teeflow-keyservice")
    parse.add_argument("--data-dir", required=True, type=Path)
    parse.add_argument("--policy", required=True, type=Path, help="Policy file for executors")
    parse.add_argument("--signers", required=True, type=Path, help="allow-list signers, b64")
    parse.add_argument("--host", default="127.0.0.1")
    parse.add_argument("--port", type=int, default=8700)
    parse.add_argument("--tee", default="sim", choices=["sim"])
    return parse


def serve(args: argparse.Namespace, verifier: Verifier | None = None) -> None:
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(message)s")
    app = create_keyservice_app(build_service(args, verifier))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    serve(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
