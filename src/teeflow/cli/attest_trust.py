"""``teeflow attest trust | enclave``: the member's own attestation policy, and a live check.

``trust`` writes $TEEFLOW_HOME/policy.json, the policy every later approval checks the enclave
against. ``--simulated`` accepts only the sim TEE, only quotes from the quoting key of the local
platform in ``--data-dir``, and only the measurement this member computes from its own installed
teeflow code: a platform running other code is rejected. Simulation gives no hardware protection.

Registered on the ``attest`` app by :func:`register` (the ``attest`` module owns the app).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from teeflow.attestation import AttestationError, Policy, SimQuotingKey, sim_measurement
from teeflow.cli._output import emit, fail, warn
from teeflow.cli._session import JsonOut, PassphraseFile, flat, session
from teeflow.client import MemberHome

__all__ = ["register"]

_SIM_KEY_FILE = "sim-quoting-key"  # written by the platform under DATA_DIR/platform
_SIM_WARNING = (
    "SIMULATED enclave trusted: simulation gives NO hardware protection; the operator of this "
    "machine can read every dataset, model and key. Use it for development only."
)


def _simulated_policy(data_dir: Path) -> Policy:
    platform_dir = data_dir / "platform"
    if not (platform_dir / _SIM_KEY_FILE).is_file():
        fail(
            f"no simulated quoting key in {platform_dir}: start the platform first "
            f"(`teeflow server --data-dir {data_dir}`)"
        )
    quoting_key = SimQuotingKey.load_or_create(platform_dir)
    return Policy(
        allowed_tees=frozenset({"sim"}),
        allow_simulated=True,
        sim_quoting_keys=frozenset({quoting_key.public_key_hex}),
        allowed_measurements=frozenset({sim_measurement()}),
        accepted_tcb_statuses=frozenset({"Simulated"}),
    )


def trust(
    simulated: Annotated[
        bool,
        typer.Option(
            "--simulated", help="Trust the local SIMULATED platform (no hardware protection)."
        ),
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="The local platform's data directory (with --simulated).",
            file_okay=False,
        ),
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy-file",
            help="Install this policy (JSON or TOML) after validating it.",
            dir_okay=False,
        ),
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Write your attestation policy: the enclaves you accept before sharing any key."""
    if simulated == (policy_file is not None):
        fail("give exactly one of --simulated (with --data-dir) or --policy-file FILE")
    try:
        if policy_file is not None:
            policy = Policy.from_file(policy_file)
        elif data_dir is None:
            fail("--simulated needs --data-dir DIR (the local platform's data directory)")
        else:
            policy = _simulated_policy(data_dir)
    except AttestationError as exc:
        fail(str(exc))
    home = MemberHome()
    try:
        home.save_policy(policy.to_dict())
    except OSError as exc:
        fail(f"cannot write {home.policy_path}: {exc.strerror or exc}")
    if policy.allow_simulated:
        warn(_SIM_WARNING)
    result: dict[str, Any] = {
        "policy": str(home.policy_path),
        "allowed_tees": sorted(policy.allowed_tees),
        "allowed_measurements": sorted(policy.allowed_measurements),
        "sim_quoting_keys": sorted(policy.sim_quoting_keys),
        "allow_simulated": policy.allow_simulated,
    }
    emit(result if as_json else flat(result), as_json=as_json, title="Attestation policy written")


def enclave(passphrase_file: PassphraseFile = None, as_json: JsonOut = False) -> None:
    """Fetch the platform's enclave evidence and verify it against your policy."""
    with session(passphrase_file) as client:
        attested = client.attest()
    keys = attested.pop("public_keys")
    key_id = attested.pop("key_id")  # signed by the attested key; checked by client.attest
    attested["key_id"] = f"{key_id['measurement']}:{key_id['epoch']}"
    result = {**attested, **{f"{name}_public_key": value for name, value in sorted(keys.items())}}
    if attested.get("simulated"):
        warn("the enclave is SIMULATED: no hardware protects the data (development only)")
    emit({"verdict": "accepted", **result}, as_json=as_json, title="Enclave attested")


def register(app: typer.Typer) -> None:
    """Add ``trust`` and ``enclave`` to the ``attest`` app."""
    app.command("trust")(trust)
    app.command("enclave")(enclave)
