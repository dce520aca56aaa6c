"""A member's review of a contract before signing (DESIGN.md task lifecycle, step 2).

Blocking problems raise ClientError; what a careful human should know is returned as warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from teeflow.client._columns import remembered_columns
from teeflow.client._declared import check_own_inputs
from teeflow.client._errors import ClientError
from teeflow.client._exposure import (
    exposure_warnings,
    output_declaration_warnings,
    statistics_warnings,
)
from teeflow.client._home import MemberHome
from teeflow.client._ledger import PrivacyLedger
from teeflow.client._pins import check_participants
from teeflow.client._privacy import review_policies
from teeflow.client._schema_publish import partner_schema_notes
from teeflow.enclave.contract import ContractError, contract_hash, validate_contract

if TYPE_CHECKING:
    from teeflow.client.keyring import MemberKeys

__all__ = ["review_contract"]


def review_contract(
    task: Mapping[str, Any],
    *,
    me: str,
    keys: MemberKeys,
    home: MemberHome,
    attested: Mapping[str, Any],
) -> list[str]:
    contract = task["contract"]
    try:
        validate_contract(contract)
    except ContractError as exc:
        raise ClientError(f"contract is malformed: {exc}") from exc
    chash = contract_hash(contract)
    if chash != task.get("contract_hash"):
        raise ClientError("the server's contract hash does not match the contract it shows")
    executor = contract["executor"]
    if (
        executor.get("tee") != attested["tee"]
        or executor.get("measurement") != attested["measurement"]
        or dict(executor.get("public_keys", {})) != dict(attested["public_keys"])
    ):
        raise ClientError(
            "the contract names an enclave other than the one you attested; refuse to approve"
        )
    mine = contract["participants"].get(me)
    from teeflow.client._client import public_keys

    if mine is None or dict(mine) != public_keys(keys):
        raise ClientError("the contract lists other public keys for you than your keyring holds")
    for slot, spec in contract["inputs"].items():
        if spec.get("joint") or spec["owners"] != [me]:
            continue
        record = home.dataset_record(spec["dataset_id"])
        if record is None:
            raise ClientError(
                f"input {slot!r} names dataset {spec['dataset_id']} you hold no key for"
            )
        if record["ciphertext_sha256"] != spec["ciphertext_sha256"]:
            raise ClientError(
                f"input {slot!r}: the contract's ciphertext hash differs from what you uploaded"
            )
    check_participants(contract, me=me, home=home)
    notes = check_own_inputs(contract, me=me, home=home)
    notes += partner_schema_notes(contract, me=me)
    notes += review_policies(contract, me=me, ledger=PrivacyLedger(home.root))
    carried = statistics_warnings(contract, me, lambda d: remembered_columns(home, d))
    return _warnings(contract, me, attested) + carried + notes


def _warnings(contract: Mapping[str, Any], me: str, attested: Mapping[str, Any]) -> list[str]:
    warnings: list[str] = []
    if attested.get("simulated"):
        warnings.append(
            "the enclave is SIMULATED: no hardware protects the data (development only)"
        )
    function = contract["function"]
    my_inputs = [s for s, spec in contract["inputs"].items() if me in spec["owners"]]
    owner = function.get("owner")
    if function["kind"] == "uploaded" and function.get("sealed") and owner != me and my_inputs:
        warnings.append(
            f"the function's code is confidential to {owner!r}: you cannot read what it does "
            f"with your input(s) {my_inputs}"
        )
    # Everyone but me who receives anything computed from my inputs, recipient or not myself.
    warnings += exposure_warnings(contract, me)
    warnings += output_declaration_warnings(contract, me)
    # -- inference sessions: requesters, limits, precision (issue 17 item 5) --
    from teeflow.client._session_review import session_review_lines

    warnings.extend(session_review_lines(contract, me))
    return warnings
