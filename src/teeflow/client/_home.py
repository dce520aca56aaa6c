"""What a member keeps on its own machine besides its keys: credentials, data keys, policy.

Everything here is written with mode 0600 under the member's home ($TEEFLOW_HOME, default
~/.teeflow). Data keys never leave this directory except HPKE-wrapped to an attested enclave.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

    def save_credentials(self, *, server: str, username: str, token: str) -> None:
        body = {"server": server, "username": username, "token": token}
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
        self, dataset_id: str, key: DataKey, *, ciphertext_sha256: str, name: str
    ) -> None:
        record = {"key": b64e(key.raw), "ciphertext_sha256": ciphertext_sha256, "name": name}
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
