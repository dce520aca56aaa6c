"""enclave/checks.py: a joint input's owners are the keys its producing receipt records, not names.

The producing receipt is made here by the runtime itself (``EnclaveRuntime.receipt``), then a
consuming task is checked with ``check_bundle``: the host chooses the names and keys the contract
shows, the enclave must hold them to the recorded keys.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from session_kit import MEASUREMENT, NOW, Party

from teeflow.crypto import DataKey, b64e, hpke_seal, key_wrap_info, seal_bytes, sha256_hex
from teeflow.enclave.checks import TaskRejected, check_bundle
from teeflow.enclave.contract import APPROVAL_DOMAIN, contract_hash
from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.keyring import Keyring
from teeflow.enclave.receipt import sign_receipt, verify_receipt
from teeflow.enclave.run_state import sign_run_authorisation
from teeflow.enclave.runtime import EnclaveRuntime, SealedOutput, TaskBundle
from teeflow.functions.registry import get_builtin

IDENTITY = EnclaveIdentity.generate()
RUNTIME = EnclaveRuntime(identity=IDENTITY, tee="sim", measurement=MEASUREMENT)
OWNERS = {name: Party(name) for name in ("ownera", "ownerb")}
KEY = DataKey.generate()
CIPHERTEXT = seal_bytes(b"joint model", KEY)


def _contract(
    task_id: str,
    participants: dict[str, Party],
    executor: EnclaveIdentity = IDENTITY,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "version": 2,
        "task_id": task_id,
        "nonce": f"n-{task_id}",
        "created_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(days=7)).isoformat(),
        "creator": "ownera",
        "function": {
            "kind": "builtin",
            "name": "echo",
            "code_sha256": get_builtin("echo").code_sha256,
        },
        "executor": {
            "tee": "sim",
            "measurement": MEASUREMENT,
            "public_keys": executor.public_keys(),
        },
        "participants": {name: party.public() for name, party in participants.items()},
        "arguments": {},
        "disclosure": {"errors": ["ownera"]},
        **fields,
    }


def _produced(runtime: EnclaveRuntime = RUNTIME) -> tuple[str, dict[str, Any]]:
    """The producing task's contract hash and its receipt, signed by the runtime."""
    contract = _contract(
        "produce", OWNERS, inputs={}, outputs={"model": {"joint_owners": sorted(OWNERS)}}
    )
    chash = contract_hash(contract)
    sealed = SealedOutput(CIPHERTEXT, sha256_hex(CIPHERTEXT), {"enclave": ""}, sorted(OWNERS))
    receipt = runtime.receipt(
        contract, chash, {}, {"model": sealed}, status="succeeded", reason="", now=NOW
    )
    return chash, receipt


def _use(
    signers: dict[str, Party],
    receipt: dict[str, Any],
    produced_hash: str,
    executor: EnclaveIdentity = IDENTITY,
) -> TaskBundle:
    """A task on the joint model, shown with ``signers``' keys and signed by each of them;
    ``executor`` is the enclave key the consuming contract names."""
    third = Party("third")
    parties = {**signers, "third": third}
    contract = _contract(
        "use",
        parties,
        executor,
        inputs={
            "joint": {
                "dataset_id": "joint-1",
                "owners": sorted(signers),
                "ciphertext_sha256": sha256_hex(CIPHERTEXT),
                "joint": {"task_id": "produce", "contract_hash": produced_hash, "slot": "model"},
            }
        },
        outputs={"joint": {"recipients": ["third"]}},
    )
    chash = contract_hash(contract)
    approvals = {
        name: {
            "signature": b64e(party.signing_key.sign(APPROVAL_DOMAIN, chash.encode("ascii"))),
            "wrapped_keys": {},
        }
        for name, party in parties.items()
    }
    info = key_wrap_info("joint-output", produced_hash, "model")
    wrapped = b64e(hpke_seal(KEY.raw, IDENTITY.receiving_key.public_key, info=info))
    joint = {"joint": {"receipt": receipt, "wrapped_key": wrapped}}
    run = sign_run_authorisation(
        chash, parties["ownera"].signing_key, issued_at=NOW, run_nonce="0" * 32
    )
    return TaskBundle(
        contract=contract, approvals=approvals, joint_inputs=joint, run_authorisation=run
    )


def _check(bundle: TaskBundle) -> None:
    check_bundle(bundle, identity=IDENTITY, tee="sim", measurement=MEASUREMENT, now=NOW)


def test_the_receipt_records_each_joint_owners_keys() -> None:
    _, receipt = _produced()

    body = verify_receipt(receipt, IDENTITY.signing_key.verify_key)

    assert body["outputs"]["model"]["joint_owner_keys"] == {
        name: party.public() for name, party in OWNERS.items()
    }


def test_the_owners_own_keys_open_the_joint_input() -> None:
    produced_hash, receipt = _produced()

    _check(_use(OWNERS, receipt, produced_hash))


@pytest.mark.parametrize("swapped", [["ownera"], ["ownerb"], ["ownera", "ownerb"]])
def test_owners_shown_with_other_keys_are_refused(swapped: list[str]) -> None:
    produced_hash, receipt = _produced()
    impostors = {name: Party(name) if name in swapped else OWNERS[name] for name in OWNERS}

    with pytest.raises(TaskRejected, match=rf"owner '{swapped[0]}' has not signed"):
        _check(_use(impostors, receipt, produced_hash))


def test_a_receipt_without_owner_keys_is_refused() -> None:
    produced_hash, receipt = _produced()
    body = dict(verify_receipt(receipt, IDENTITY.signing_key.verify_key))
    body["outputs"] = {"model": {**body["outputs"]["model"], "joint_owner_keys": None}}
    older = sign_receipt(body, IDENTITY.signing_key)

    with pytest.raises(TaskRejected, match="records no owner keys"):
        _check(_use(OWNERS, older, produced_hash))


def test_a_joint_output_made_before_a_rotation_opens_after_it() -> None:
    """Made under epoch 1 (its receipt names key id …:1), used by a task approved under epoch 2:
    the enclave takes epoch 1's key from its keyring to check the receipt and unwrap the key."""
    epoch2 = EnclaveIdentity.generate()
    keyring = Keyring(MEASUREMENT, {1: IDENTITY, 2: epoch2})
    before = EnclaveRuntime(identity=IDENTITY, tee="sim", measurement=MEASUREMENT, key_epoch=1)
    produced_hash, receipt = _produced(before)
    assert receipt["body"]["key_id"] == {"measurement": MEASUREMENT, "epoch": 1}
    bundle = _use(OWNERS, receipt, produced_hash, executor=epoch2)

    plan = check_bundle(
        bundle, identity=epoch2, tee="sim", measurement=MEASUREMENT, now=NOW, keyring=keyring
    )
    assert plan.input_keys["joint"] == KEY

    with pytest.raises(TaskRejected, match="which this enclave does not hold"):
        check_bundle(
            bundle, identity=epoch2, tee="sim", measurement=MEASUREMENT, now=NOW,
            keyring=Keyring(MEASUREMENT, {2: epoch2}),
        )  # fmt: skip
