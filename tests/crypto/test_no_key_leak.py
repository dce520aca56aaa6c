"""Errors and reprs never carry key material, in hex or base64 (fail closed, leak nothing)."""

from __future__ import annotations

import base64

import pytest

from teeflow.crypto import (
    DataKey,
    IntegrityError,
    PrivateKey,
    SigningKey,
    hpke_open,
    hpke_seal,
    key_wrap_info,
    seal_bytes,
    unseal_bytes,
)


def encodings(secret: bytes) -> list[str]:
    """Every textual form a key could leak in, and 8-byte windows of each."""
    forms = [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        repr(secret),
    ]
    windows = [secret[i : i + 8] for i in range(0, len(secret) - 7, 4)]
    forms += [w.hex() for w in windows] + [base64.b64encode(w).decode()[:10] for w in windows]
    return forms


def assert_no_leak(text: str, secret: bytes) -> None:
    leaked = [form for form in encodings(secret) if form in text]
    assert not leaked, f"key material in {text!r}"


def test_reprs_show_no_private_key_material() -> None:
    data_key, signing, private = DataKey.generate(), SigningKey.generate(), PrivateKey.generate()

    texts = [
        (repr(data_key), data_key.raw),
        (str(data_key), data_key.raw),
        (repr([data_key]), data_key.raw),
        (repr(signing), signing.to_bytes()),
        (str(signing), signing.to_bytes()),
        (repr(private), private.to_bytes()),
        (str(private), private.to_bytes()),
    ]

    for text, secret in texts:
        assert_no_leak(text, secret)


def _unseal_failures(key: DataKey) -> list[IntegrityError]:
    sealed = seal_bytes(b"secret plaintext " * 10, key, chunk_size=32)
    attempts = [
        sealed[:-1],
        sealed + b"x",
        sealed[:50] + bytes([sealed[50] ^ 1]) + sealed[51:],
        sealed[:10],
    ]
    errors = []
    for blob in attempts:
        with pytest.raises(IntegrityError) as caught:
            unseal_bytes(blob, key)
        errors.append(caught.value)
    with pytest.raises(IntegrityError) as wrong_key:
        unseal_bytes(sealed, DataKey.generate())
    return [*errors, wrong_key.value]


def test_unseal_errors_carry_no_key_or_plaintext() -> None:
    key = DataKey.generate()

    errors = _unseal_failures(key)

    for error in errors:
        text = f"{error} {error!r} {error.args}"
        assert_no_leak(text, key.raw)
        assert "secret plaintext" not in text
        assert error.__cause__ is None or not str(error.__cause__)


def test_unwrap_errors_carry_no_key_material() -> None:
    recipient, data_key = PrivateKey.generate(), DataKey.generate()
    wrapped = hpke_seal(data_key.raw, recipient.public_key, info=key_wrap_info("a", "b", "c"))

    with pytest.raises(IntegrityError) as caught:
        hpke_open(wrapped, recipient, info=key_wrap_info("a", "b", "d"))

    text = f"{caught.value} {caught.value!r} {caught.value.__cause__!r}"
    assert_no_leak(text, recipient.to_bytes())
    assert_no_leak(text, data_key.raw)
