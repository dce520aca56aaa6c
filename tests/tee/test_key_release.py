"""Attested key release (RCAR): what the key service refuses, and what it releases.

Each refusal test breaks one condition of the release and keeps the others valid, so it fails
for exactly that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from teeflow.attestation import Policy, SimProvider, SimQuotingKey
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.enclave.keyrelease import KeyReleaseError, jwk_x25519, obtain_keyring
from teeflow.enclave.keyring import AllowListError
from teeflow.enclave.keyservice import KeyReleaseRefused, KeyService

from .conftest import EXECUTOR_POLICY, DirectTransport, hardware, service_policy, signed_allow_list
from .fakes import DirectProvider, FakeHardware, FakeHardwareVerifier

MEASUREMENT = "ab" * 48


def _release(service: KeyService, hw: FakeHardware, tmp_path: Path, transport: Any = None) -> Any:
    return obtain_keyring(
        transport=transport or DirectTransport(service),
        provider=DirectProvider(hw),
        service_policy=service_policy(tmp_path / "kbs"),
        service_verifier=_sim_verifier(tmp_path),
        now=lambda: datetime.now(UTC),
    )


def _sim_verifier(tmp_path: Path) -> Callable[..., Any]:
    from teeflow.attestation import verify_evidence

    keys = service_policy(tmp_path / "kbs").sim_quoting_keys
    return lambda evidence, now: verify_evidence(evidence, now=now, sim_quoting_keys=keys)


@pytest.fixture
def service(make_service: Callable[..., KeyService], participants: list[SigningKey]) -> KeyService:
    made = make_service()
    made.set_allow_list(signed_allow_list(participants, [("tdx", MEASUREMENT, 1)], version=1))
    return made


@pytest.mark.parametrize("tee", ["tdx", "sev-snp", "sgx"])
def test_release_to_an_allowed_measurement(
    make_service: Callable[..., KeyService],
    participants: list[SigningKey],
    hardware_root: SigningKey,
    tmp_path: Path,
    tee: str,
) -> None:
    records: list[dict[str, Any]] = []
    hw = hardware(tee, hardware_root)
    svc = make_service(records=records)
    svc.set_allow_list(signed_allow_list(participants, [(tee, hw.measurement_hex, 1)], version=1))

    first = _release(svc, hw, tmp_path)
    second = _release(svc, hw, tmp_path)

    assert first.keyring.measurement == hw.measurement_hex
    assert first.keyring.epoch == 1
    # Every executor of the measurement gets the same key.
    assert first.keyring.current.public_keys() == second.keyring.current.public_keys()
    releases = [r for r in records if r["action"] == "key.release"]
    assert len(releases) == 2 and releases[0]["measurement"] == hw.measurement_hex


def test_refuses_a_measurement_not_on_the_allow_list(
    service: KeyService, hardware_root: SigningKey, tmp_path: Path
) -> None:
    other = FakeHardware("tdx", bytes.fromhex("cd" * 48), root=hardware_root)
    with pytest.raises(KeyReleaseRefused, match="not in allowed_measurements") as caught:
        _release(service, other, tmp_path)
    assert caught.value.code == "not-allowed"


def test_refuses_a_revoked_measurement(
    service: KeyService, participants: list[SigningKey], hardware_root: SigningKey, tmp_path: Path
) -> None:
    hw = hardware("tdx", hardware_root)
    _release(service, hw, tmp_path)
    service.set_allow_list(
        signed_allow_list(
            participants, [("tdx", MEASUREMENT, 1)], version=2, revoked=(MEASUREMENT,)
        )
    )
    with pytest.raises(KeyReleaseRefused) as caught:
        _release(service, hw, tmp_path)
    assert caught.value.code == "not-allowed"


class _Replay(DirectTransport):
    """Answers the new challenge with the attestation recorded from an earlier session."""

    def __init__(self, service: KeyService, recorded: Mapping[str, Any]) -> None:
        super().__init__(service)
        self.recorded = recorded

    def attest(self, attestation: Mapping[str, Any]) -> None:
        self.service.attest(self.session, self.recorded)


class _Recorder(DirectTransport):
    def attest(self, attestation: Mapping[str, Any]) -> None:
        self.recorded = attestation
        super().attest(attestation)


def test_refuses_evidence_for_a_stale_nonce(
    service: KeyService, hardware_root: SigningKey, tmp_path: Path
) -> None:
    hw = hardware("tdx", hardware_root)
    recorder = _Recorder(service)
    _release(service, hw, tmp_path, recorder)

    # The same session answered twice: the nonce is spent.
    with pytest.raises(KeyReleaseRefused) as twice:
        service.attest(recorder.session, recorder.recorded)
    # Old evidence against a new nonce: binding fails on the nonce half of report_data.
    with pytest.raises(KeyReleaseRefused, match="nonce does not match") as replayed:
        _release(service, hw, tmp_path, _Replay(service, recorder.recorded))
    assert twice.value.code == "stale-nonce"
    assert replayed.value.code == "binding"


def test_refuses_a_nonce_past_its_lifetime(
    make_service: Callable[..., KeyService],
    participants: list[SigningKey],
    hardware_root: SigningKey,
    tmp_path: Path,
) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    svc = make_service(clock=lambda: now[0], nonce_ttl=timedelta(seconds=60))
    svc.set_allow_list(signed_allow_list(participants, [("tdx", MEASUREMENT, 1)], version=1))

    class Late(DirectTransport):
        def attest(self, attestation: Mapping[str, Any]) -> None:
            now[0] += timedelta(seconds=61)
            super().attest(attestation)

    with pytest.raises(KeyReleaseRefused, match="expired") as caught:
        _release(svc, hardware("tdx", hardware_root), tmp_path, Late(svc))
    assert caught.value.code == "stale-nonce"


def test_refuses_evidence_that_does_not_bind_the_public_key(
    service: KeyService, hardware_root: SigningKey, tmp_path: Path
) -> None:
    class Swap(DirectTransport):
        """A host that keeps the enclave's evidence but asks for the key under its own."""

        def attest(self, attestation: Mapping[str, Any]) -> None:
            swapped = {**attestation, "tee-pubkey": jwk_x25519(PrivateKey.generate().public_key)}
            super().attest(swapped)

    with pytest.raises(KeyReleaseRefused, match="not bound to this public key") as caught:
        _release(service, hardware("tdx", hardware_root), tmp_path, Swap(service))
    assert caught.value.code == "binding"


def test_refuses_a_debug_enclave(
    service: KeyService, hardware_root: SigningKey, tmp_path: Path
) -> None:
    with pytest.raises(KeyReleaseRefused, match="DEBUG") as caught:
        _release(service, hardware("tdx", hardware_root, debug=True), tmp_path)
    assert caught.value.code == "policy"


def test_refuses_a_tcb_below_the_policy(
    service: KeyService, hardware_root: SigningKey, tmp_path: Path
) -> None:
    with pytest.raises(KeyReleaseRefused, match="TCB status OutOfDate") as caught:
        _release(service, hardware("tdx", hardware_root, tcb_svn=3), tmp_path)
    assert caught.value.code == "policy"


def test_refuses_evidence_from_another_hardware_root(service: KeyService, tmp_path: Path) -> None:
    with pytest.raises(KeyReleaseRefused, match="does not verify") as caught:
        _release(service, hardware("tdx", SigningKey.generate()), tmp_path)
    assert caught.value.code == "evidence"


def test_executor_refuses_a_key_service_it_cannot_attest(
    make_service: Callable[..., KeyService],
    participants: list[SigningKey],
    hardware_root: SigningKey,
    tmp_path: Path,
) -> None:
    """A host answering in the service's place (own sim quoting key) would hand the executor a
    key the host knows; the executor's pinned service policy refuses it."""
    impostor = make_service(provider=SimProvider(SimQuotingKey.load_or_create(tmp_path / "evil")))
    impostor.set_allow_list(signed_allow_list(participants, [("tdx", MEASUREMENT, 1)], version=1))
    with pytest.raises(KeyReleaseError, match="did not attest"):
        _release(impostor, hardware("tdx", hardware_root), tmp_path)


def test_allow_list_needs_every_participant_and_a_newer_version(
    service: KeyService, participants: list[SigningKey]
) -> None:
    with pytest.raises(AllowListError, match="has not signed"):
        service.set_allow_list(signed_allow_list(participants[:1], [], version=5))
    with pytest.raises(AllowListError, match="not newer"):
        service.set_allow_list(signed_allow_list(participants, [], version=1))
    forged = signed_allow_list(participants, [("tdx", "ee" * 48, 1)], version=6)
    forged["body"]["entries"].append({"tee": "tdx", "measurement": "ff" * 48, "epoch": 1})
    with pytest.raises(AllowListError, match="does not verify"):
        service.set_allow_list(forged)


def test_rotation_adds_an_epoch_and_keeps_the_old_one(
    service: KeyService, participants: list[SigningKey], hardware_root: SigningKey, tmp_path: Path
) -> None:
    hw = hardware("tdx", hardware_root)
    before = _release(service, hw, tmp_path).keyring
    service.set_allow_list(signed_allow_list(participants, [("tdx", MEASUREMENT, 2)], version=2))

    after = _release(service, hw, tmp_path).keyring

    assert after.epoch == 2
    assert after.identities[1].public_keys() == before.current.public_keys()
    assert after.current.public_keys() != before.current.public_keys()


def test_policy_without_simulated_refuses_fake_hardware(
    make_service: Callable[..., KeyService],
    participants: list[SigningKey],
    hardware_root: SigningKey,
    tmp_path: Path,
) -> None:
    """The fake hardware's claims are marked simulated: a production policy never takes them."""
    strict = Policy(allowed_tees=EXECUTOR_POLICY.allowed_tees)
    svc = make_service(policy=strict, verifier=FakeHardwareVerifier(hardware_root.verify_key))
    svc.set_allow_list(signed_allow_list(participants, [("tdx", MEASUREMENT, 1)], version=1))
    with pytest.raises(KeyReleaseRefused, match="SIMULATED"):
        _release(svc, hardware("tdx", hardware_root), tmp_path)
