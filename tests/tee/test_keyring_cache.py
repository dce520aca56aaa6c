"""The hardware-sealed keyring cache: on SGX (Gramine's ``_sgx_mrenclave``) and SEV-SNP (the
MSG_KEY_REQ derived key through a fake ``/dev/sev-guest``) a restart uses the cache instead of a
second key release; a cache sealed for another measurement, or altered, is ignored and the
executor falls back to key release. TDX has no sealing key (tested end to end in
test_tee_executors.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from teeflow.attestation import (
    FIELD_GUEST_POLICY,
    FIELD_MEASUREMENT,
    SNP_GET_DERIVED_KEY,
    AttestationError,
    snp_derived_key,
    verify_evidence,
)
from teeflow.crypto import SigningKey
from teeflow.enclave.boot import BootedEnclave, boot_with_key_release
from teeflow.enclave.keycache import GramineSealingKey, SealingKeySource, SnpSealingKey
from teeflow.enclave.keyrelease import KeyReleaseError
from teeflow.enclave.keyservice import KeyReleaseRefused, KeyService
from teeflow.executor.keyrelease import sealing_for

from .conftest import DirectTransport, service_policy, signed_allow_list
from .fakes import DirectProvider, FakeHardware, FakeSevGuest

A, B = bytes.fromhex("a1" * 48), bytes.fromhex("b2" * 48)


class Env:
    def __init__(self, service: KeyService, records: list[dict[str, Any]], tmp: Path) -> None:
        self.service, self.records, self.tmp = service, records, tmp

    def boot(
        self,
        hw: FakeHardware,
        sealing: SealingKeySource | None,
        transport: DirectTransport | None = None,
    ) -> BootedEnclave:
        keys = service_policy(self.tmp / "kbs").sim_quoting_keys
        return boot_with_key_release(
            provider=DirectProvider(hw),
            transport=transport or DirectTransport(self.service),
            service_policy=service_policy(self.tmp / "kbs"),
            service_verifier=lambda e, now: verify_evidence(e, now=now, sim_quoting_keys=keys),
            now=lambda: datetime.now(UTC),
            sealing=sealing,
            cache_path=self.tmp / "host" / "keyring-cache.sealed",
        )

    def releases(self) -> int:
        return sum(1 for r in self.records if r["action"] == "key.release")


@pytest.fixture
def env(
    make_service: Callable[..., KeyService], participants: list[SigningKey], tmp_path: Path
) -> Env:
    records: list[dict[str, Any]] = []
    service = make_service(records=records)
    # MRENCLAVE is 32 bytes, the SNP measurement 48.
    entries = [(t, m[:n].hex(), 1) for t, n in (("sgx", 32), ("sev-snp", 48)) for m in (A, B)]
    service.set_allow_list(signed_allow_list(participants, entries, version=1))
    return Env(service, records, tmp_path)


def _gramine(tmp: Path, hw: FakeHardware, name: str) -> GramineSealingKey:
    keys = tmp / name / "dev" / "attestation" / "keys"
    keys.mkdir(parents=True)
    (keys / "_sgx_mrenclave").write_bytes(hw.sealing_key(16))
    return GramineSealingKey(tmp / name)


def test_sgx_restart_uses_the_sealed_cache(env: Env, hardware_root: SigningKey) -> None:
    hw = FakeHardware("sgx", A, root=hardware_root)
    sealing = _gramine(env.tmp, hw, "dev-a")

    first = env.boot(hw, sealing)
    second = env.boot(hw, sealing)

    assert env.releases() == 1
    assert not first.keyring_from_cache and second.keyring_from_cache
    assert second.runtime.identity.public_keys() == first.runtime.identity.public_keys()


def test_snp_restart_uses_the_derived_key_cache(env: Env, hardware_root: SigningKey) -> None:
    hw = FakeHardware("sev-snp", A, root=hardware_root)
    device = FakeSevGuest(hw)

    first = env.boot(hw, SnpSealingKey(device))
    second = env.boot(hw, SnpSealingKey(device))

    assert env.releases() == 1 and second.keyring_from_cache
    assert second.runtime.identity.public_keys() == first.runtime.identity.public_keys()
    # The key is asked of the VCEK root, bound to the guest policy and the measurement.
    assert device.requests[0] == (0, FIELD_GUEST_POLICY | FIELD_MEASUREMENT, 0)


def test_cache_sealed_for_another_measurement_is_ignored(
    env: Env, hardware_root: SigningKey
) -> None:
    hw_a, hw_b = (
        FakeHardware("sgx", A, root=hardware_root),
        FakeHardware("sgx", B, root=hardware_root),
    )
    env.boot(hw_a, _gramine(env.tmp, hw_a, "dev-a"))  # caches A's keyring at the shared path

    booted = env.boot(hw_b, _gramine(env.tmp, hw_b, "dev-b"))

    assert not booted.keyring_from_cache and env.releases() == 2
    assert booted.runtime.measurement == B[:32].hex()


def test_cache_under_the_right_key_but_another_measurement_is_ignored(
    env: Env, hardware_root: SigningKey
) -> None:
    """Even a sealing key that ignored the measurement would not open A's cache for B."""
    hw_a, hw_b = (
        FakeHardware("sgx", A, root=hardware_root),
        FakeHardware("sgx", B, root=hardware_root),
    )
    same_key = _gramine(env.tmp, hw_a, "dev-a")
    env.boot(hw_a, same_key)

    booted = env.boot(hw_b, same_key)

    assert not booted.keyring_from_cache and booted.runtime.measurement == B[:32].hex()


def test_altered_cache_is_ignored_and_replaced(env: Env, hardware_root: SigningKey) -> None:
    hw = FakeHardware("sgx", A, root=hardware_root)
    sealing = _gramine(env.tmp, hw, "dev-a")
    env.boot(hw, sealing)
    cache = env.tmp / "host" / "keyring-cache.sealed"
    blob = bytearray(cache.read_bytes())
    blob[-20] ^= 1
    cache.write_bytes(bytes(blob))

    booted = env.boot(hw, sealing)
    again = env.boot(hw, sealing)

    assert not booted.keyring_from_cache and env.releases() == 2
    assert again.keyring_from_cache  # the fresh release was cached again


def test_missing_hardware_key_falls_back_to_key_release(
    env: Env, hardware_root: SigningKey
) -> None:
    hw = FakeHardware("sgx", A, root=hardware_root)
    booted = env.boot(hw, GramineSealingKey(env.tmp / "no-such-device"))
    assert not booted.keyring_from_cache and env.releases() == 1


def test_derived_key_request_matches_the_kernel_abi(hardware_root: SigningKey) -> None:
    # include/uapi/linux/sev-guest.h: _IOWR('S', 0x1, struct snp_guest_request_ioctl) = 0xc0205301
    assert SNP_GET_DERIVED_KEY == 0xC0205301
    a = snp_derived_key(FakeSevGuest(FakeHardware("sev-snp", A, root=hardware_root)))
    b = snp_derived_key(FakeSevGuest(FakeHardware("sev-snp", B, root=hardware_root)))
    assert len(a) == 32 and a != b


def test_derived_key_refusal_is_a_clear_error(hardware_root: SigningKey) -> None:
    device = FakeSevGuest(FakeHardware("sev-snp", A, root=hardware_root))
    with pytest.raises(AttestationError, match="MSG_KEY_RSP status 0x16"):
        snp_derived_key(device, vmpl=7)


def test_tdx_has_no_sealing_key() -> None:
    args = argparse.Namespace(tee="tdx", device_root=None, sev_guest=Path("/dev/sev-guest"))
    assert sealing_for(args) is None


# -- a cache is used only while the key service confirms it is current (keystatus.py) --------


def _sgx_entries(epoch: int) -> list[tuple[str, str, int]]:
    return [("sgx", A[:32].hex(), epoch), ("sgx", B[:32].hex(), 1)]


def test_a_revoked_measurements_cached_keyring_is_not_used(
    env: Env, participants: list[SigningKey], hardware_root: SigningKey
) -> None:
    """Revoking a measurement stops it on a host that has its keyring cached: the boot asks
    the key service, learns of the revocation, deletes the cache and the release is refused."""
    hw = FakeHardware("sgx", A, root=hardware_root)
    sealing = _gramine(env.tmp, hw, "dev-a")
    env.boot(hw, sealing)
    cache = env.tmp / "host" / "keyring-cache.sealed"
    assert cache.is_file()
    env.service.set_allow_list(
        signed_allow_list(participants, _sgx_entries(1), version=2, revoked=(A[:32].hex(),))
    )

    # In process the service's refusal surfaces as is (over HTTP it is a KeyReleaseError).
    with pytest.raises(KeyReleaseRefused, match=r"not in allowed_measurements") as refused:
        env.boot(hw, sealing)

    assert refused.value.code == "not-allowed"
    assert not cache.exists() and env.releases() == 1


def test_a_new_epoch_replaces_the_cached_keyring(
    env: Env, participants: list[SigningKey], hardware_root: SigningKey
) -> None:
    """A rotation (epoch 2) is picked up at the next boot despite the cache: a full release
    brings epoch 2 (and keeps 1), and the new keyring is what is cached."""
    hw = FakeHardware("sgx", A, root=hardware_root)
    sealing = _gramine(env.tmp, hw, "dev-a")
    first = env.boot(hw, sealing)
    env.service.set_allow_list(signed_allow_list(participants, _sgx_entries(2), version=2))

    rotated = env.boot(hw, sealing)
    again = env.boot(hw, sealing)

    assert first.keyring is not None and first.keyring.epoch == 1
    assert rotated.keyring is not None and not rotated.keyring_from_cache
    assert rotated.keyring.epoch == 2 and sorted(rotated.keyring.identities) == [1, 2]
    assert again.keyring_from_cache and again.keyring is not None and again.keyring.epoch == 2
    assert env.releases() == 2


class _Down(DirectTransport):
    def auth(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        raise KeyReleaseError("cannot reach the key service (test: it is down)")


def test_an_unreachable_key_service_does_not_open_the_cache(
    env: Env, hardware_root: SigningKey
) -> None:
    """Fail closed: a cache the key service cannot confirm is not used (nor deleted)."""
    hw = FakeHardware("sgx", A, root=hardware_root)
    sealing = _gramine(env.tmp, hw, "dev-a")
    env.boot(hw, sealing)

    with pytest.raises(KeyReleaseError, match="cannot reach"):
        env.boot(hw, sealing, transport=_Down(env.service))

    assert (env.tmp / "host" / "keyring-cache.sealed").is_file()


class _OlderAnswer(DirectTransport):
    """A host that answers the status with one it kept from an earlier session."""

    kept: Mapping[str, Any] | None = None

    def status(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        answer = super().status(request)
        if _OlderAnswer.kept is None:
            _OlderAnswer.kept = answer
        return _OlderAnswer.kept


def test_a_replayed_status_answer_is_refused(
    env: Env, participants: list[SigningKey], hardware_root: SigningKey
) -> None:
    """The status names the session's nonce: an answer saved before a revocation and replayed
    after it is refused, so a host cannot keep a revoked cache alive."""
    hw = FakeHardware("sgx", A, root=hardware_root)
    sealing = _gramine(env.tmp, hw, "dev-a")
    env.boot(hw, sealing)
    _OlderAnswer.kept = None
    env.boot(hw, sealing, transport=_OlderAnswer(env.service))  # keeps the "current" answer
    env.service.set_allow_list(
        signed_allow_list(participants, _sgx_entries(1), version=2, revoked=(A[:32].hex(),))
    )

    with pytest.raises(KeyReleaseError, match="another session"):
        env.boot(hw, sealing, transport=_OlderAnswer(env.service))
