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
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from teeflow.attestation import (
    AMD_KDS_URL,
    CollateralSource,
    DirectoryCollateral,
    FetchingCollateral,
    Policy,
    SimProvider,
    SimQuotingKey,
    hardware_verifier,
    kds_fetch,
    pccs_fetch,
    sim_measurement,
)
from teeflow.crypto import read_or_create_secret
from teeflow.enclave.keyrelease import Verifier
from teeflow.enclave.keyservice import KeyService
from teeflow.keyservice.app import create_keyservice_app
from teeflow.tls import (
    CA_CERT_ENV,
    InsecureTransportError,
    add_serve_arguments,
    client_verify,
    env_ca_cert,
    serve_tls_options,
)

log = logging.getLogger("teeflow.keyservice")


def collateral_source(args: argparse.Namespace) -> CollateralSource | None:
    """Where hardware collateral comes from: ``--pccs-url`` (fetched, cached under the data
    directory; VCEKs from ``--amd-kds-url``), else ``--collateral-dir`` (offline files), else
    none (hardware evidence is then refused as unverifiable).

    Both URLs follow teeflow.tls's client rule: https verified against ``--ca-cert`` (or
    ``TEEFLOW_CA_CERT``; the system's roots when neither is set), plain http only to loopback
    or with ``--collateral-insecure-http``. Raises InsecureTransportError otherwise.
    """
    if args.pccs_url:
        ca_cert = args.ca_cert or env_ca_cert()
        insecure = args.collateral_insecure_http

        def rule(url: str, ca: Path | None) -> ssl.SSLContext | bool:
            return client_verify(url, ca_cert=ca, insecure_http=insecure)

        # AMD's own KDS has a public certificate; a private CA applies to a local KDS mirror.
        kds_ca = None if args.amd_kds_url == AMD_KDS_URL else ca_cert
        return FetchingCollateral(
            args.data_dir / "collateral-cache",
            dcap=pccs_fetch(args.pccs_url, verify=rule(args.pccs_url, ca_cert)),
            kds=kds_fetch(args.amd_kds_url, verify=rule(args.amd_kds_url, kds_ca)),
        )
    if args.collateral_dir:
        return DirectoryCollateral(args.collateral_dir)
    return None


def production_verifier(policy: Policy, source: CollateralSource | None = None) -> Verifier:
    """Sim evidence against the policy's pinned quoting keys; SGX/TDX DCAP quotes and SEV-SNP
    reports against collateral from ``source`` (dcap-qvl; VCEK chain to the pinned AMD roots)."""
    return hardware_verifier(source, sim_quoting_keys=policy.sim_quoting_keys)


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
        verifier=verifier or production_verifier(policy, collateral_source(args)),
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
    parse.add_argument(
        "--collateral-dir", type=Path, default=None,
        help="offline collateral for executors' hardware evidence: dcap/<tee>-<FMSPC>-<ca>.json, "
        "snp/vcek-<chip>-<tcb>.der, snp/cert_chain.pem",
    )  # fmt: skip
    parse.add_argument("--pccs-url", default=None, help="PCCS base URL for DCAP collateral")
    parse.add_argument("--amd-kds-url", default=AMD_KDS_URL, help="AMD KDS URL for VCEKs")
    parse.add_argument(
        "--ca-cert", type=Path, default=None,
        help=f"CA (PEM) that signed the PCCS's (and a KDS mirror's) certificate (else "
        f"{CA_CERT_ENV}, else the system's roots)",
    )  # fmt: skip
    parse.add_argument(
        "--collateral-insecure-http", action="store_true",
        help="allow a plain-http PCCS/KDS URL on another host (the quote's platform ids travel "
        "in clear; collateral stays signature-checked)",
    )  # fmt: skip
    add_serve_arguments(parse)
    return parse


def serve(args: argparse.Namespace, verifier: Verifier | None = None) -> None:
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(message)s")
    try:
        tls = serve_tls_options(
            args.host,
            cert=args.tls_cert,
            key=args.tls_key,
            insecure_http=args.insecure_http,
            what="the key service",
        )
        app = create_keyservice_app(build_service(args, verifier))
    except InsecureTransportError as exc:
        raise SystemExit(f"teeflow-keyservice: {exc}") from exc
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", **tls)


def main(argv: list[str] | None = None) -> int:
    serve(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
