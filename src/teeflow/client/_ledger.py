"""The owner's own privacy-budget ledger, kept in its MemberHome (issue 15).

The control plane is not trusted to count what a dataset has spent, so every owner's client
keeps, per dataset, its signed policy and every spend it approved::

    <home>/privacy/<dataset_id>.json  (mode 0600)
    {"policy": {signed policy}, "version": 3,
     "entries": [{"task_id", "contract_hash", "slot", "epsilon", "delta", "state", "at"}]}

``state`` is ``approved`` (counted in full from the moment the owner signs), ``spent`` (the
enclave's receipt stated the spend; it may be below the declared one) or ``refunded`` (the
enclave's signed receipt says the function never ran: docs/privacy.md, "refunds"). Every change
bumps ``version``; the owner signs "remaining budget at version v" into each approval
(enclave/budget.py). Spends add up by basic composition: epsilons add, deltas add.

One home is one ledger: two machines with copies of the same keys keep two ledgers that do not
know of each other (docs/privacy.md says what follows).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from teeflow.client._errors import ClientError
from teeflow.client.keyring import write_private_file
from teeflow.enclave.policies import DatasetPolicy

__all__ = ["PrivacyLedger"]


class PrivacyLedger:
    """Per-dataset policies and DP spends of one member, on its own machine."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "privacy"

    def _path(self, dataset_id: str) -> Path:
        if not dataset_id.isalnum():
            raise ValueError("dataset id must be alphanumeric")
        return self.root / f"{dataset_id}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One approval at a time per home: two concurrent approvals must not both see the
        # same remaining budget.
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self, dataset_id: str) -> dict[str, Any] | None:
        path = self._path(dataset_id)
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def _write(self, dataset_id: str, record: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(record, indent=2, sort_keys=True).encode()
        write_private_file(self._path(dataset_id), data, overwrite=True)

    # -- policy -----------------------------------------------------------------------------

    def set_policy(self, dataset_id: str, signed: Mapping[str, Any]) -> None:
        """Record the signed policy the owner set; spends recorded so far stay counted."""
        with self._locked():
            record = self._read(dataset_id) or {"version": 0, "entries": []}
            record["policy"] = dict(signed)
            record["version"] = int(record["version"]) + 1
            self._write(dataset_id, record)

    def signed_policy(self, dataset_id: str) -> dict[str, Any] | None:
        record = self._read(dataset_id)
        return None if record is None else record.get("policy")

    def policy(self, dataset_id: str) -> DatasetPolicy | None:
        signed = self.signed_policy(dataset_id)
        return None if signed is None else DatasetPolicy.from_dict(signed["policy"])

    # -- budget -----------------------------------------------------------------------------

    def entries(self, dataset_id: str) -> list[dict[str, Any]]:
        record = self._read(dataset_id) or {}
        return [dict(entry) for entry in record.get("entries", [])]

    def remaining(self, dataset_id: str) -> tuple[float, float, int]:
        """``(epsilon, delta, version)`` left of the policy's budget; ClientError without one."""
        record = self._read(dataset_id)
        policy = self.policy(dataset_id)
        if record is None or policy is None or policy.dp_epsilon is None:
            raise ClientError(f"dataset {dataset_id} has no differential-privacy budget")
        counted = [e for e in record["entries"] if e["state"] != "refunded"]
        epsilon = policy.dp_epsilon - sum(float(e["epsilon"]) for e in counted)
        delta = (policy.dp_delta or 0.0) - sum(float(e["delta"]) for e in counted)
        return epsilon, delta, int(record["version"])

    def reserve(
        self,
        dataset_id: str,
        *,
        task_id: str,
        contract_hash: str,
        slot: str,
        spend: tuple[float, float],
    ) -> tuple[float, float, int]:
        """Count ``spend`` against the budget before approving; return the remaining budget
        *before* it and the ledger version that includes it. ClientError (rule ``budget``) when
        it does not fit. Reserving the same contract and slot again returns the first answer."""
        with self._locked():
            for entry in self.entries(dataset_id):
                if entry["contract_hash"] == contract_hash and entry["slot"] == slot:
                    before = entry["remaining_before"]
                    return float(before[0]), float(before[1]), int(entry["version"])
            epsilon, delta, version = self.remaining(dataset_id)
            if spend[0] > epsilon + 1e-12 or spend[1] > delta + 1e-18:
                raise ClientError(
                    f"dataset {dataset_id}: rule 'budget': the task spends epsilon={spend[0]:g}, "
                    f"delta={spend[1]:g}; your ledger has epsilon={epsilon:g}, delta={delta:g} "
                    "left of the policy's budget. Reject the task, or ask for a smaller epsilon"
                )
            record = self._read(dataset_id) or {}
            record["version"] = version + 1
            record["entries"].append(
                {
                    "task_id": task_id,
                    "contract_hash": contract_hash,
                    "slot": slot,
                    "epsilon": spend[0],
                    "delta": spend[1],
                    "state": "approved",
                    "remaining_before": [epsilon, delta],
                    "version": version + 1,
                    "at": datetime.now(UTC).isoformat(),
                }
            )
            self._write(dataset_id, record)
            return epsilon, delta, version + 1

    def settle(self, dataset_id: str, contract_hash: str, privacy: Mapping[str, Any]) -> str:
        """Apply a verified receipt's ``privacy`` field to this contract's entries; return the
        new state. Refund only when the enclave says the function never ran; otherwise the
        spend stands, as the receipt states it (never more than approved)."""
        with self._locked():
            record = self._read(dataset_id)
            if record is None:
                return "unknown"
            state = "unknown"
            for entry in record["entries"]:
                if entry["contract_hash"] != contract_hash:
                    continue
                if entry["state"] == "spent":
                    pass  # a receipt that ran was seen: a later "never ran" one refunds nothing
                elif not privacy.get("function_ran", True):
                    entry["state"] = "refunded"
                else:
                    spent = (privacy.get("spent") or {}).get(entry["slot"]) or {}
                    for key in ("epsilon", "delta"):
                        entry[key] = min(float(entry[key]), float(spent.get(key, entry[key])))
                    entry["state"] = "spent"
                state = entry["state"]
            record["version"] = int(record["version"]) + 1
            self._write(dataset_id, record)
            return state
