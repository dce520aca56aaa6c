"""Fixtures for the key-release tests: a key service in the simulated TEE, fake TEE hardware,
and participants who sign the allow-list."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from teeflow.attestation import Policy, SimProvider, SimQuotingKey, sim_measurement
from teeflow.crypto import SigningKey, b64e, canonical_json
from teeflow.enclave.keyrelease import KeyReleaseTransport
from teeflow.enclave.keyring import ALLOW_LIST_DOMAIN, ALLOW_LIST_FORMAT
from teeflow.enclave.keyservice import KeyService
from teeflow.server.launcher import wait_healthy

from .fakes import FakeHardware, FakeHardwareVerifier


@contextmanager
def key_service_process(data: Path, port: int, log: Path) -> Iterator[str]:
    """The real ``python -m teeflow.keyservice`` on ``data`` (with ``policy.json`` and
    ``signers.txt`` in it), serving on ``port``; yields its URL and stops it on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "teeflow.keyservice", "--data-dir", str(data),
             "--policy", str(data / "policy.json"), "--signers", str(data / "signers.txt"),
             "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process=process)  # type: ignore[arg-type]
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def signed_allow_list(
    signers: list[SigningKey],
    entries: list[tuple[str, str, int]],
    *,
    version: int,
    revoked: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An allow-list document signed by each of ``signers``."""
    body = {
        "format": ALLOW_LIST_FORMAT,
        "version": version,
        "entries": [{"tee": t, "measurement": m, "epoch": e} for t, m, e in entries],
        "revoked": list(revoked),
    }
    message = canonical_json(body)
    return {
        "body": body,
        "signatures": {
            s.verify_key.b64(): b64e(s.sign(ALLOW_LIST_DOMAIN, message)) for s in signers
        },
    }


def service_policy(data_dir: Path) -> Policy:
    """What an executor accepts as its key service: the simulated TEE, its quoting key pinned,
    the measurement of this build."""
    return Policy(
        allowed_tees=frozenset({"sim"}),
        allow_simulated=True,
        sim_quoting_keys=frozenset({SimQuotingKey.load_or_create(data_dir).public_key_hex}),
        allowed_measurements=frozenset({sim_measurement()}),
        accepted_tcb_statuses=frozenset({"Simulated"}),
    )


# The key service's policy for executors on the FAKE hardware (its claims are simulated).
EXECUTOR_POLICY = Policy(
    allowed_tees=frozenset({"sgx", "tdx", "sev-snp"}),
    allow_simulated=True,
    accepted_tcb_statuses=frozenset({"UpToDate"}),
)


class DirectTransport:
    """The executor's transport wired straight to an in-process service (one session)."""

    def __init__(self, service: KeyService) -> None:
        self.service = service
        self.session = ""

    def auth(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        self.session, challenge = self.service.auth(request)
        return challenge

    def attest(self, attestation: Mapping[str, Any]) -> None:
        self.service.attest(self.session, attestation)

    def resource(self) -> Mapping[str, Any]:
        return self.service.resource(self.session)

    def status(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.service.status(self.session, request)


@pytest.fixture
def participants() -> list[SigningKey]:
    return [SigningKey.generate(), SigningKey.generate()]


@pytest.fixture
def hardware_root() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def make_service(
    tmp_path: Path, participants: list[SigningKey], hardware_root: SigningKey
) -> Callable[..., KeyService]:
    def make(**overrides: Any) -> KeyService:
        data = tmp_path / "kbs"
        data.mkdir(exist_ok=True)
        records: list[dict[str, Any]] = overrides.pop("records", [])
        kwargs: dict[str, Any] = {
            "state_dir": data / "state",
            "provider": SimProvider(SimQuotingKey.load_or_create(data)),
            "measurement": sim_measurement(),
            "sealing_secret": b"\x01" * 32,
            "policy": EXECUTOR_POLICY,
            "signers": frozenset(s.verify_key.b64() for s in participants),
            "verifier": FakeHardwareVerifier(hardware_root.verify_key),
            "audit": records.append,
            "clock": lambda: datetime.now(UTC),
        }
        kwargs.update(overrides)
        return KeyService(**kwargs)

    return make


def hardware(tee: str, root: SigningKey, **kwargs: Any) -> FakeHardware:
    return FakeHardware(tee, bytes.fromhex("ab" * 48), root=root, **kwargs)


__all__ = [
    "DirectTransport",
    "KeyReleaseTransport",
    "hardware",
    "service_policy",
    "signed_allow_list",
]
