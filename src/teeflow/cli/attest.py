"""``teeflow attest``: verify TEE evidence against a policy; print the local measurement."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from teeflow.attestation import (
    TEE_TYPES,
    AttestationError,
    Claims,
    Evidence,
    Policy,
    SnpCollateral,
    TeeType,
    dcap_tee_of,
    load_dcap_collateral,
    sim_measurement,
    sim_measurement_inputs,
    verify_evidence,
)
from teeflow.cli._escape import safe

app = typer.Typer(help="Verify TEE evidence and show measurements.", no_args_is_help=True)

_SNP_REPORT_SIZE = 0x4A0


def _decode_file(data: bytes) -> bytes:
    """Quote files come as raw bytes or as hex text, with or without ``0x``."""
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        return data
    body = text.removeprefix("0x").removeprefix("0X")
    if body and len(body) % 2 == 0 and all(c in string.hexdigits for c in body):
        return bytes.fromhex(body)
    return data


def load_evidence(path: Path, tee: str | None) -> Evidence:
    """Read EVIDENCE_FILE: Evidence JSON, a sim quote, or a raw/hex SGX, TDX or SNP quote."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AttestationError(f"cannot read {path}: {exc.strerror}", code="config") from exc
    if data.lstrip().startswith(b"{"):
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise AttestationError(f"{path} is not valid JSON") from exc
        if isinstance(doc, dict) and "raw" in doc and "tee" in doc:
            return Evidence.from_json(doc)
        return Evidence(tee="sim", raw=data)
    raw = _decode_file(data)
    guessed: TeeType | None = dcap_tee_of(raw)
    if guessed is None and len(raw) == _SNP_REPORT_SIZE:
        guessed = "sev-snp"
    chosen = tee or guessed
    if chosen is None:
        raise AttestationError(f"cannot tell which TEE produced {path}; pass --tee", code="config")
    if chosen not in TEE_TYPES:
        raise AttestationError(f"--tee must be one of {', '.join(TEE_TYPES)}", code="config")
    return Evidence(tee=chosen, raw=raw)


def _collateral(
    evidence: Evidence, collateral: Path | None, vcek: Path | None, chain: Path | None
) -> object | None:
    if evidence.tee in ("sgx", "tdx"):
        if collateral is None:
            raise AttestationError(
                f"{evidence.tee} evidence needs --collateral FILE (dcap-qvl collateral JSON)",
                code="collateral",
            )
        loaded: object = load_dcap_collateral(collateral)
        return loaded
    if evidence.tee == "sev-snp":
        if vcek is None or chain is None:
            raise AttestationError(
                "sev-snp evidence needs --vcek FILE and --chain FILE (AMD KDS cert_chain)",
                code="collateral",
            )
        return SnpCollateral.from_files(vcek=vcek, chain=chain)
    return None


def _parse_time(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError as exc:
        raise AttestationError(f"--at {at!r} is not ISO 8601", code="config") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _emit(as_json: bool, claims: Claims | None, error: AttestationError | None) -> None:
    if as_json:
        out: dict[str, Any] = {
            "verdict": "rejected" if error else "accepted",
            "reason": str(error) if error else None,
            "code": error.code if error else None,
            "claims": claims.to_dict() if claims else None,
        }
        typer.echo(json.dumps(out, indent=2))
        return
    if claims is not None:
        for key, value in claims.to_dict().items():
            if isinstance(value, dict):
                for sub, item in value.items():
                    typer.echo(f"{safe(key)}.{safe(sub)}: {safe(item)}")
            else:
                typer.echo(f"{safe(key)}: {safe(value)}")
        if claims.simulated:
            typer.echo("WARNING: SIMULATED evidence - no hardware protection")
    typer.echo(f"REJECTED: {safe(error)}" if error else "ACCEPTED")


@app.command("verify")
def verify_command(
    evidence_file: Annotated[Path, typer.Argument(help="Quote/report (raw, hex) or Evidence JSON")],
    tee: Annotated[str | None, typer.Option(help="sgx, tdx, sev-snp or sim")] = None,
    collateral: Annotated[Path | None, typer.Option(help="DCAP collateral JSON")] = None,
    vcek: Annotated[Path | None, typer.Option(help="SEV-SNP VCEK certificate")] = None,
    chain: Annotated[Path | None, typer.Option(help="AMD ASK+ARK cert_chain PEM")] = None,
    at: Annotated[
        str | None, typer.Option(help="Verification time, ISO 8601 (default now)")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy file (JSON or TOML)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Verify EVIDENCE_FILE; exit 0 only when the policy accepts it."""
    claims: Claims | None = None
    try:
        chosen = Policy.from_file(policy) if policy else Policy()
        evidence = load_evidence(evidence_file, tee)
        now = _parse_time(at)
        claims = verify_evidence(
            evidence,
            now=now,
            collateral=_collateral(evidence, collateral, vcek, chain),
            sim_quoting_keys=chosen.sim_quoting_keys,
        )
        chosen.check(claims, now=now)
    except AttestationError as exc:
        _emit(as_json, claims, exc)
        raise typer.Exit(1) from None
    _emit(as_json, claims, None)


@app.command("measure")
def measure_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON with the inputs")] = False,
) -> None:
    """Print this installation's sim measurement (trusted sources + dependency versions)."""
    if as_json:
        inputs = sim_measurement_inputs()
        typer.echo(json.dumps({"measurement": sim_measurement(), **inputs}, indent=2))
    else:
        typer.echo(sim_measurement())
