"""The public surface of teeflow.crypto is deliberate: a change here is an API change."""

from __future__ import annotations

import teeflow.crypto

EXPECTED = {
    "BLAKE3",
    "CHUNK_SIZE",
    "SHA256",
    "ContentHasher",
    "DigestAlgorithm",
    "SealedDigest",
    "content_digest",
    "content_digest_like",
    "digest_algorithm",
    "is_content_digest",
    "CryptoError",
    "DataKey",
    "IntegrityError",
    "PrivateKey",
    "PublicKey",
    "SealInfo",
    "SigningKey",
    "UnsealReader",
    "VerifyKey",
    "b64d",
    "b64e",
    "canonical_hash",
    "canonical_json",
    "check_pad",
    "fingerprint",
    "hpke_open",
    "hpke_seal",
    "key_wrap_info",
    "pad",
    "private_directory",
    "read_or_create_secret",
    "seal_bytes",
    "seal_stream",
    "sealed_plaintext_size",
    "sha256_hex",
    "signed_message",
    "unpad",
    "unseal_bytes",
    "unseal_stream",
}


def test_exported_names_are_exactly_the_public_api() -> None:
    assert set(teeflow.crypto.__all__) == EXPECTED
    assert all(hasattr(teeflow.crypto, name) for name in EXPECTED)


def test_integrity_error_is_a_crypto_error() -> None:
    assert issubclass(teeflow.crypto.IntegrityError, teeflow.crypto.CryptoError)
