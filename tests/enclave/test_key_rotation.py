"""After a rotation (a new key epoch), tasks approved under the old epoch still open with the old
key, and checkpoints sealed under it still open: nothing is re-encrypted. A checkpoint names
the key id (measurement, epoch) it was sealed under; the enclave opens it with that epoch from its
keyring, and a checkpoint whose key id was altered, or names a key it lacks, is refused."""

from __future__ import annotations

import pytest
from session_kit import MEASUREMENT, NOW, make_served

from teeflow.attestation import SimProvider, SimQuotingKey
from teeflow.crypto import canonical_json, seal_bytes, unseal_bytes
from teeflow.enclave.boot import BootedEnclave
from teeflow.enclave.checkpoint_seal import CheckpointKeyError, read_key_id
from teeflow.enclave.identity import EnclaveIdentity, derive_key
from teeflow.enclave.keyring import KeyId, Keyring
from teeflow.enclave.runtime import EnclaveRuntime, OpenRefused


def test_a_task_of_the_old_epoch_runs_with_the_old_key(model_bytes: bytes, tmp_path) -> None:
    served = make_served(model_bytes)  # approved under the epoch-1 key
    keyring = Keyring(MEASUREMENT, {1: served.runtime.identity, 2: EnclaveIdentity.generate()})
    current = EnclaveRuntime(
        identity=keyring.current, tee="sim", measurement=MEASUREMENT, clock=lambda: NOW
    )  # the contract's own time: it expires a week after NOW
    booted = BootedEnclave(
        runtime=current,
        provider=SimProvider(SimQuotingKey.load_or_create(tmp_path), measurement=MEASUREMENT),
        keyring=keyring,
    )
    chash = served.chash
    old_key = derive_key(keyring.identities[1].secret, purpose="checkpoint", context=chash)
    checkpoint = seal_bytes(b"epoch 7 weights", old_key)  # sealed before the rotation

    chosen = booted.runtime_for(served.bundle.contract)
    opened = chosen.open_task(served.bundle, served.host)

    assert chosen.identity is keyring.identities[1]
    assert opened.contract_hash == chash
    resumed_key = derive_key(chosen.identity.secret, purpose="checkpoint", context=chash)
    assert unseal_bytes(checkpoint, resumed_key) == b"epoch 7 weights"
    # The current epoch's key alone would refuse the old contract.
    with pytest.raises(OpenRefused, match="another enclave public key"):
        current.open_task(served.bundle, served.host)


def _booted(keyring: Keyring, tmp_path) -> BootedEnclave:
    runtime = EnclaveRuntime(
        identity=keyring.current, tee="sim", measurement=MEASUREMENT, clock=lambda: NOW,
        key_epoch=keyring.epoch, keyring=keyring,
    )  # fmt: skip
    provider = SimProvider(SimQuotingKey.load_or_create(tmp_path), measurement=MEASUREMENT)
    return BootedEnclave(runtime=runtime, provider=provider, keyring=keyring)


def _checkpoint(run_id: str, state: bytes) -> bytes:
    # seq 3, event seq 5, the run id, then the function's state (runtime._load_checkpoint).
    return (3).to_bytes(8, "big") + (5).to_bytes(8, "big") + bytes.fromhex(run_id) + state


def test_a_checkpoint_sealed_before_a_rotation_resumes_after_it(model_bytes, tmp_path) -> None:
    served = make_served(model_bytes)  # approved under the epoch-1 key
    epoch1 = served.runtime.identity
    before = _booted(Keyring(MEASUREMENT, {1: epoch1}), tmp_path / "a")
    chash = served.chash
    sealed = before.runtime.seal_checkpoint(chash, b"epoch 7 weights")

    after = _booted(Keyring(MEASUREMENT, {1: epoch1, 2: EnclaveIdentity.generate()}), tmp_path)

    assert read_key_id(sealed)[0] == KeyId(MEASUREMENT, 1)
    # The current (epoch 2) runtime opens it with the epoch it names, from the keyring.
    assert after.runtime.open_checkpoint(chash, sealed) == b"epoch 7 weights"
    assert after.runtime_for(served.bundle.contract).open_checkpoint(chash, sealed) == (
        b"epoch 7 weights"
    )


def _with_key_id(sealed: bytes, **changes: object) -> bytes:
    key_id, rest = read_key_id(sealed)
    header = canonical_json({"measurement": key_id.measurement, "epoch": key_id.epoch, **changes})
    return b"TFC1" + len(header).to_bytes(2, "big") + header + rest


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"epoch": 2}, "does not open under its named key id"),  # a key it holds: wrong key
        ({"epoch": 9}, "does not hold"),
        ({"measurement": "ee" * 32}, "does not hold"),
    ],
)
def test_a_checkpoint_with_an_altered_key_id_is_refused(
    model_bytes, tmp_path, changes: dict[str, object], reason: str
) -> None:
    served = make_served(model_bytes)
    keyring = Keyring(MEASUREMENT, {1: served.runtime.identity, 2: EnclaveIdentity.generate()})
    booted = _booted(keyring, tmp_path)
    runtime = booted.runtime_for(served.bundle.contract)
    sealed = runtime.seal_checkpoint(served.chash, b"weights")

    with pytest.raises(CheckpointKeyError, match=reason):
        runtime.open_checkpoint(served.chash, _with_key_id(sealed, **changes))


def test_the_enclave_refuses_to_resume_an_altered_checkpoint(model_bytes, tmp_path) -> None:
    """Through open_task: the host hands over a checkpoint whose key id was changed."""
    served = make_served(model_bytes)
    keyring = Keyring(MEASUREMENT, {1: served.runtime.identity, 2: EnclaveIdentity.generate()})
    runtime = _booted(keyring, tmp_path).runtime_for(served.bundle.contract)
    run_id = "00" * 32  # the grant is fresh (NOW), so any run id resumes
    good = runtime.seal_checkpoint(served.chash, _checkpoint(run_id, b"state"))
    served.host.checkpoints.append((3, _with_key_id(good, epoch=2)))

    with pytest.raises(OpenRefused, match="does not open under its named key id"):
        runtime.open_task(served.bundle, served.host)

    served.host.checkpoints.append((3, good))
    assert runtime.open_task(served.bundle, served.host).restored == b"state"


def test_a_checkpoint_without_a_key_id_is_refused_clearly(model_bytes) -> None:
    served = make_served(model_bytes)
    old_format = seal_bytes(b"x" * 64, derive_key(b"k" * 32, purpose="checkpoint", context="c"))
    with pytest.raises(CheckpointKeyError, match="names no key id"):
        served.runtime.open_checkpoint(served.chash, old_format)
