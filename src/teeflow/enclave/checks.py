"""Everything the enclave verifies before it unwraps a single key (DESIGN.md guarantees 2-4).

The control plane is not trusted: it could mark a task approved or queued, swap a signature,
replay a wrapped key from another task, or change a ciphertext. Each of those fails one check
here, with a reason that names what failed and leaks nothing secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from teeflow.crypto import (
    CryptoError,
    DataKey,
    IntegrityError,
    VerifyKey,
    b64d,
    hpke_open,
    key_wrap_info,
)
from teeflow.enclave.budget import check_budgets
from teeflow.enclave.contract import (
    APPROVAL_DOMAIN,
    ContractError,
    contract_hash,
    validate_contract,
)
from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.keyring import Keyring
from teeflow.enclave.policies import PolicyViolation, check_policies
from teeflow.enclave.receipt import verify_receipt
from teeflow.enclave.run_state import RunGrant, RunStateError, check_run_state
from teeflow.functions.declarations import ArgumentError

if TYPE_CHECKING:
    from teeflow.enclave.task import TaskBundle

__all__ = ["FUNCTION_SLOT", "ExecutionPlan", "TaskRejected", "check_bundle"]

FUNCTION_SLOT = "__function__"


class TaskRejected(Exception):
    """The enclave refuses the task; the message is public (it names the failed check)."""


@dataclass(frozen=True)
class ExecutionPlan:
    contract_hash: str
    input_keys: dict[str, DataKey]
    function_key: DataKey | None
    grant: RunGrant
    """The creator's run authorisation as checked (enclave/run_state.py)."""
    min_rows: int = 0
    """The strictest input policy's aggregation threshold (enclave/policies.py)."""
    spend: dict[str, dict[str, float]] = field(default_factory=dict)
    """input slot -> the (epsilon, delta) the task spends of its DP budget (enclave/budget.py)."""


def check_bundle(
    bundle: TaskBundle,
    *,
    identity: EnclaveIdentity,
    tee: str,
    measurement: str,
    now: datetime,
    keyring: Keyring | None = None,
) -> ExecutionPlan:
    """Every check before a key is unwrapped; ``now`` is the enclave's clock (aware).
    ``keyring`` holds the earlier epochs a joint input may have been wrapped under.

    Raises TaskRejected naming the first check that failed.
    """
    contract = bundle.contract
    try:
        validate_contract(contract)
    except ContractError as exc:
        raise TaskRejected(f"contract is invalid: {exc}") from None
    chash = contract_hash(contract)
    _check_executor(contract["executor"], identity=identity, tee=tee, measurement=measurement)
    # Owner policies before signatures: a task no approval could make legal is refused by rule.
    try:
        policies = check_policies(contract)
    except PolicyViolation as exc:
        raise TaskRejected(str(exc)) from None
    _check_signatures(contract, chash, bundle.approvals)
    try:
        grant = check_run_state(
            contract,
            chash,
            run_authorisation=bundle.run_authorisation,
            withdrawals=bundle.withdrawals,
            now=now,
        )
    except RunStateError as exc:
        raise TaskRejected(str(exc)) from None
    try:
        spend = check_budgets(contract, chash, policies, bundle.approvals)
    except PolicyViolation as exc:
        raise TaskRejected(str(exc)) from None
    keys: dict[str, DataKey] = {}
    for slot, spec in contract["inputs"].items():
        if spec.get("joint"):
            producer = _producer(slot, bundle, identity, keyring, measurement)
            keys[slot] = _joint_key(slot, spec, bundle, producer)
        else:
            if len(spec["owners"]) != 1:
                raise TaskRejected(f"input {slot!r} has several owners but no joint provenance")
            owner = spec["owners"][0]
            keys[slot] = _unwrap(identity, bundle.approvals[owner], "input", chash, slot, owner)
    return ExecutionPlan(
        chash,
        keys,
        _function_key(contract, chash, bundle, identity),
        grant,
        min_rows=max((p.min_rows for p in policies.values()), default=0),
        spend=spend,
    )


def _check_executor(
    executor: Mapping[str, Any], *, identity: EnclaveIdentity, tee: str, measurement: str
) -> None:
    if executor.get("tee") != tee:
        raise TaskRejected(f"contract is for TEE {executor.get('tee')!r}, this enclave is {tee!r}")
    if executor.get("measurement") != measurement:
        raise TaskRejected(
            "contract was approved for another enclave measurement; this enclave runs "
            f"{measurement[:16]}…"
        )
    if dict(executor.get("public_keys", {})) != identity.public_keys():
        raise TaskRejected("contract names another enclave public key")


def _check_signatures(
    contract: Mapping[str, Any], chash: str, approvals: Mapping[str, Mapping[str, Any]]
) -> None:
    for name, keys in sorted(contract["participants"].items()):
        approval = approvals.get(name)
        if approval is None or not approval.get("signature"):
            raise TaskRejected(f"participant {name!r} has not approved this contract")
        try:
            VerifyKey.from_b64(keys["sign_pk"]).verify(
                APPROVAL_DOMAIN, chash.encode("ascii"), b64d(approval["signature"])
            )
        except CryptoError:
            raise TaskRejected(
                f"approval of {name!r} does not verify against the contract hash "
                f"{chash[:16]}… (forged, swapped or for another contract)"
            ) from None


def _unwrap(
    identity: EnclaveIdentity,
    approval: Mapping[str, Any],
    purpose: str,
    chash: str,
    slot: str,
    owner: str,
) -> DataKey:
    wrapped = approval.get("wrapped_keys", {}).get(slot)
    if not wrapped:
        raise TaskRejected(f"{owner!r} sent no key for {slot!r}")
    try:
        raw = hpke_open(
            b64d(wrapped), identity.receiving_key, info=key_wrap_info(purpose, chash, slot)
        )
        return DataKey(raw)
    except CryptoError:
        raise TaskRejected(
            f"key for {slot!r} from {owner!r} does not unwrap for this contract "
            "(wrapped for another task, slot or enclave)"
        ) from None


def _joint_key(
    slot: str, spec: Mapping[str, Any], bundle: TaskBundle, identity: EnclaveIdentity
) -> DataKey:
    """The key of joint input ``slot``, once the receipt of the task that produced it (signed by
    this enclave) matches it and every owner it records, by public key, signed this contract."""
    joint = spec["joint"]
    provenance = bundle.joint_inputs.get(slot)
    if provenance is None:
        raise TaskRejected(f"joint input {slot!r} arrived without its provenance")
    try:
        body = verify_receipt(provenance["receipt"], identity.signing_key.verify_key)
    except IntegrityError:
        raise TaskRejected(
            f"joint input {slot!r}: receipt was not signed by this enclave"
        ) from None
    produced = body.get("outputs", {}).get(joint["slot"], {})
    if (
        body.get("status") != "succeeded"
        or body.get("contract_hash") != joint["contract_hash"]
        or produced.get("ciphertext_sha256") != spec["ciphertext_sha256"]
        or sorted(produced.get("joint_owners") or []) != sorted(spec["owners"])
    ):
        raise TaskRejected(
            f"joint input {slot!r} does not match the receipt of the task that produced it"
        )
    _check_owner_keys(slot, produced, bundle.contract["participants"])
    try:
        info = key_wrap_info("joint-output", joint["contract_hash"], joint["slot"])
        return DataKey(
            hpke_open(b64d(provenance["wrapped_key"]), identity.receiving_key, info=info)
        )
    except CryptoError:
        raise TaskRejected(f"joint input {slot!r}: key does not unwrap") from None


def _producer(
    slot: str,
    bundle: TaskBundle,
    identity: EnclaveIdentity,
    keyring: Keyring | None,
    measurement: str,
) -> EnclaveIdentity:
    """The epoch's identity a joint input was made under: the one its receipt's ``key_id``
    names (the receipt's signature is then checked under that very key), taken from the
    keyring; receipts without a key id, and a sim enclave without a keyring, use ``identity``."""
    provenance = bundle.joint_inputs.get(slot)
    receipt = provenance.get("receipt") if isinstance(provenance, Mapping) else None
    body = receipt.get("body") if isinstance(receipt, Mapping) else None
    named = body.get("key_id") if isinstance(body, Mapping) else None
    if not isinstance(named, Mapping) or keyring is None:
        return identity
    epoch = named.get("epoch")
    held = keyring.identities.get(epoch) if isinstance(epoch, int) else None
    if named.get("measurement") != measurement or held is None:
        raise TaskRejected(
            f"joint input {slot!r} was made under key id "
            f"{str(named.get('measurement'))[:16]}…:{epoch}, which this enclave does not hold "
            "(another measurement, or an epoch its keyring lacks)"
        )
    return held


def _check_owner_keys(
    slot: str, produced: Mapping[str, Any], participants: Mapping[str, Mapping[str, Any]]
) -> None:
    # Owners are identified by the keys the producing contract showed (and each owner signed),
    # not by the names the host shows now: the host could bind a name to a key of its own.
    # check_bundle has verified every participant's signature before any input is opened.
    recorded = produced.get("joint_owner_keys")
    if not isinstance(recorded, Mapping) or sorted(recorded) != sorted(
        produced.get("joint_owners") or []
    ):
        raise TaskRejected(
            f"joint input {slot!r}: the receipt of the task that produced it records no owner "
            "keys (made by an older enclave); its owners must produce it again"
        )
    signing_keys = {keys.get("sign_pk") for keys in participants.values()}
    for owner, keys in sorted(recorded.items()):
        if not isinstance(keys, Mapping) or keys.get("sign_pk") not in signing_keys:
            raise TaskRejected(
                f"joint input {slot!r}: owner {owner!r} has not signed this contract with the key "
                "recorded when the joint output was made (the contract shows other keys for it)"
            )


def _function_key(
    contract: Mapping[str, Any], chash: str, bundle: TaskBundle, identity: EnclaveIdentity
) -> DataKey | None:
    function = contract["function"]
    if function["kind"] == "builtin":
        from teeflow.functions.registry import get_builtin

        try:
            builtin = get_builtin(function["name"])
        except KeyError as exc:
            raise TaskRejected(str(exc.args[0])) from None
        if builtin.code_sha256 != function["code_sha256"]:
            raise TaskRejected(
                f"built-in {function['name']!r} in this enclave differs from the approved code hash"
            )
        try:  # the same declaration the member's client checked before proposing
            builtin.signature.check_arguments(
                contract.get("arguments") or {}, slots=list(contract["inputs"])
            )
        except ArgumentError as exc:
            raise TaskRejected(f"built-in {function['name']!r}: {exc}") from None
        return None
    if not function.get("sealed"):
        return None
    owner = function.get("owner", "")
    return _unwrap(
        identity, bundle.approvals.get(owner, {}), "function", chash, FUNCTION_SLOT, owner
    )
