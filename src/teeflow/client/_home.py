"""What a member keeps on its own machine besides its keys: credentials, data keys, policy.

Everything here is written with mode 0600 under the member's home ($TEEFLOW_HOME, default
~/.teeflow). Data keys never leave this directory except HPKE-wrapped to an attested enclave.
Besides keys, the home is what this member trusts instead of the control plane: the public keys
of the members it dealt with (pinned), the contract hashes it approved, the enclave keys it
attested, and the audit log head it last verified.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from teeflow.client._errors import ClientError
from teeflow.client.keyring import default_home, write_private_file
from teeflow.crypto import DataKey, b64d, b64e

__all__ = ["MemberHome", "default_home"]


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private_file(path, data, overwrite=True)


class MemberHome:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_home()

    # -- credentials ------------------------------------------------------------------------

    @property
    def credentials_path(self) -> Path:
        return self.root / "credentials.json"

    def save_credentials(
        self,
        *,
        server: str,
        username: str,
        token: str,
        ca_cert: Path | None = None,
        insecure_http: bool = False,
    ) -> None:
        """Remember the session; ``ca_cert`` and ``insecure_http`` are the transport settings
        it was made with, so later commands reach the server the same way."""
        body: dict[str, str] = {"server": server, "username": username, "token": token}
        if ca_cert is not None:
            body["ca_cert"] = str(Path(ca_cert).resolve())
        if insecure_http:
            body["insecure_http"] = "1"
        _write_private(self.credentials_path, json.dumps(body).encode())

    def credentials(self) -> dict[str, str]:
        if not self.credentials_path.exists():
            return {}
        data: dict[str, str] = json.loads(self.credentials_path.read_text())
        return data

    def clear_credentials(self) -> None:
        self.credentials_path.unlink(missing_ok=True)

    # -- data keys --------------------------------------------------------------------------

    def _dataset_path(self, dataset_id: str) -> Path:
        if not dataset_id.isalnum():
            raise ValueError("dataset id must be alphanumeric")
        return self.root / "datasets" / f"{dataset_id}.json"

    def save_dataset_key(
        self,
        dataset_id: str,
        key: DataKey,
        *,
        ciphertext_sha256: str,
        name: str,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep ``key`` for ``dataset_id`` (an id the control plane chose), with the schema
        summary its upload check recorded (client/_schema.py; None when the file was not checked).

        Raises ClientError, and keeps the key already held, when this home holds another key or
        ciphertext hash for that id: a control plane that names an existing dataset as a new one
        (an upload, an output kept with ``dataset from-output``) must not make the member lose
        the key to its own data. Saving the same key and hash again is a no-op."""
        earlier = self.dataset_record(dataset_id)
        if earlier is not None:
            if (
                earlier["key"] == b64e(key.raw)
                and earlier["ciphertext_sha256"] == ciphertext_sha256
            ):
                return
            raise ClientError(
                f"your keyring already holds a different key for dataset {dataset_id}: the "
                "control plane named an existing dataset as a new one; nothing was kept and "
                "your key is unchanged (report this to the operator; do not use that dataset id "
                "for this data)"
            )
        record: dict[str, Any] = {
            "key": b64e(key.raw),
            "ciphertext_sha256": ciphertext_sha256,
            "name": name,
        }
        if schema is not None:
            record["schema"] = dict(schema)
        _write_private(self._dataset_path(dataset_id), json.dumps(record).encode())

    def dataset_record(self, dataset_id: str) -> dict[str, Any] | None:
        path = self._dataset_path(dataset_id)
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def dataset_key(self, dataset_id: str) -> DataKey | None:
        record = self.dataset_record(dataset_id)
        return None if record is None else DataKey(b64d(record["key"]))

    # -- attestation policy -----------------------------------------------------------------

    @property
    def policy_path(self) -> Path:
        return self.root / "policy.json"

    def save_policy(self, policy: dict[str, Any]) -> None:
        _write_private(self.policy_path, json.dumps(policy, indent=2, sort_keys=True).encode())

    # -- pinned members (client/_pins.py) ----------------------------------------------------

    @property
    def members_path(self) -> Path:
        return self.root / "members.json"

    def pinned_members(self) -> dict[str, dict[str, Any]]:
        """username -> {"sign_pk", "enc_pk", "pinned_at", "verified", "source"}."""
        return _read_json(self.members_path, {})

    def pinned_member(self, name: str) -> dict[str, Any] | None:
        return self.pinned_members().get(name)

    def pin_member(self, name: str, record: Mapping[str, Any]) -> None:
        members = self.pinned_members()
        members[name] = dict(record)
        _write_json(self.members_path, members)

    # -- contracts this member approved, enclaves it attested (client/_trust.py) -------------

    @property
    def approvals_path(self) -> Path:
        return self.root / "approved.json"

    def approved_contracts(self) -> dict[str, dict[str, Any]]:
        """contract hash -> {"task_id", "public_keys" (the enclave's), "approved_at"}."""
        return _read_json(self.approvals_path, {})

    def record_approval(
        self, *, task_id: str, contract_hash: str, enclave_keys: Mapping[str, str], at: str
    ) -> None:
        approved = self.approved_contracts()
        approved[contract_hash] = {
            "task_id": task_id,
            "public_keys": dict(enclave_keys),
            "approved_at": at,
        }
        _write_json(self.approvals_path, approved)

    @property
    def enclaves_path(self) -> Path:
        return self.root / "enclaves.json"

    def attested_enclaves(self) -> dict[str, dict[str, Any]]:
        """Enclave Ed25519 key (b64) -> {"public_keys", "tee", "measurement", "attested_at"}."""
        return _read_json(self.enclaves_path, {})

    def record_attested_enclave(
        self, *, public_keys: Mapping[str, str], tee: str, measurement: str, at: str
    ) -> None:
        enclaves = self.attested_enclaves()
        key = str(public_keys.get("ed25519", ""))
        if enclaves.get(key, {}).get("public_keys") == dict(public_keys):
            return
        enclaves[key] = {
            "public_keys": dict(public_keys),
            "tee": tee,
            "measurement": measurement,
            "attested_at": at,
        }
        _write_json(self.enclaves_path, enclaves)

    # -- the audit log head last verified (cli/audit.py) ------------------------------------

    @property
    def audit_heads_path(self) -> Path:
        return self.root / "audit-heads.json"

    def audit_head(self, server: str) -> dict[str, Any] | None:
        """{"seq", "hash", "verified_at"} of ``server``'s log as last verified, or None."""
        heads: dict[str, dict[str, Any]] = _read_json(self.audit_heads_path, {})
        return heads.get(server)

    def save_audit_head(self, server: str, *, seq: int, hash: str, at: str) -> None:
        heads: dict[str, dict[str, Any]] = _read_json(self.audit_heads_path, {})
        heads[server] = {"seq": seq, "hash": hash, "verified_at": at}
        _write_json(self.audit_heads_path, heads)

    # -- the key service's allow-list version last seen in force (cli/allow_list.py) -------

    @property
    def allow_lists_path(self) -> Path:
        return self.root / "allow-lists.json"

    def allow_list_version(self, server: str) -> int | None:
        """The highest allow-list version this member saw in force at ``server``, or None."""
        seen = _read_json(self.allow_lists_path, {}).get(server)
        return None if seen is None else int(seen)

    def save_allow_list_version(self, server: str, version: int) -> None:
        """Remember ``version`` as seen in force at ``server`` (the highest one is kept)."""
        seen = _read_json(self.allow_lists_path, {})
        seen[server] = max(version, int(seen.get(server, 0)))
        _write_json(self.allow_lists_path, seen)

    # -- withdrawn approvals (client/_run_state.py) ------------------------------------------

    @property
    def withdrawals_path(self) -> Path:
        return self.root / "withdrawals.json"

    def save_withdrawal(self, task_id: str, withdrawal: Mapping[str, Any]) -> None:
        """Keep this member's signed withdrawal, to tell later whether the task ran anyway."""
        withdrawals = _read_json(self.withdrawals_path, {})
        withdrawals[task_id] = dict(withdrawal)
        _write_json(self.withdrawals_path, withdrawals)

    def withdrawal(self, task_id: str) -> dict[str, Any] | None:
        """This member's signed withdrawal of ``task_id``, or None."""
        found: dict[str, Any] | None = _read_json(self.withdrawals_path, {}).get(task_id)
        return found


def _read_json(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    """A JSON object kept in the home; ClientError if it is damaged (never trust it partly)."""
    if not path.exists():
        return default
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ClientError(f"cannot read {path}: {exc}; restore it from a backup") from exc
    if not isinstance(data, dict):
        raise ClientError(f"{path} is damaged (not a JSON object); restore it from a backup")
    return data


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    _write_private(path, json.dumps(data, indent=2, sort_keys=True).encode())
