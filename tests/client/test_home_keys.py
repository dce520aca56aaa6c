"""A member's home never lets a dataset id the control plane chose replace a key it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from teeflow.client import ClientError, MemberHome
from teeflow.crypto import DataKey


def test_another_key_for_a_held_dataset_id_is_refused_and_the_first_is_kept(
    tmp_path: Path,
) -> None:
    home = MemberHome(tmp_path)
    first, second = DataKey.generate(), DataKey.generate()
    home.save_dataset_key("abc123", first, ciphertext_sha256="aa" * 32, name="mine")

    with pytest.raises(ClientError, match="already holds a different key") as refused:
        home.save_dataset_key("abc123", second, ciphertext_sha256="bb" * 32, name="kept")
    with pytest.raises(ClientError, match="already holds a different key"):
        home.save_dataset_key("abc123", first, ciphertext_sha256="bb" * 32, name="kept")

    assert home.dataset_key("abc123") == first
    assert second.raw.hex() not in str(refused.value) and first.raw.hex() not in str(refused.value)


def test_the_same_key_and_hash_again_is_a_no_op(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)
    key = DataKey.generate()
    home.save_dataset_key("abc123", key, ciphertext_sha256="aa" * 32, name="mine")
    home.save_dataset_key("abc123", key, ciphertext_sha256="aa" * 32, name="again")
    assert home.dataset_key("abc123") == key
