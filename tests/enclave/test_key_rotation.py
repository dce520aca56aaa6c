"""After a rotation (a new key epoch), tasks approved under the old epoch still open with the old
key, and checkpoints sealed under it still open: nothing is re-encrypted."""

from __future__ import annotations

import pytest
from session_kit import MEASUREMENT, NOW, make_served

from teeflow.attestation import SimProvider, SimQuotingKey
from teeflow.crypto import seal_bytes, unseal_bytes
from teeflow.enclave.boot import BootedEnclave
from teeflow.enclave.identity import EnclaveIdentity, derive_key
from teeflow.enclave.keyring import Keyring
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
