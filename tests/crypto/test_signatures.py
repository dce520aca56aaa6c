"""Ed25519 signatures are domain-separated: one made for one purpose never verifies for another."""

from __future__ import annotations

import pytest

from teeflow.crypto import CryptoError, IntegrityError, SigningKey, VerifyKey, signed_message

# RFC 8032 section 7.1, TEST 1: the raw key pair under teeflow's wrapper.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_EMPTY_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
    "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
# RFC8032_SECRET.sign("contract", b"abc"), i.e. Ed25519 over b"teeflow/v1/contract\x00abc".
SIGNATURE_CONTRACT_ABC = bytes.fromhex(
    "d63ae3d93b9e69452fe89d82a99221e7c2167783faeaf2434c6dacf41a260d18"
    "d24dc91ed80dc0aaff5e3d39e1ddd2d8064698f2ac3a2e62e5c9b9e7a5f85f00"
)


def test_signed_message_is_the_documented_layout() -> None:
    assert signed_message("contract", b"abc") == b"teeflow/v1/contract\x00abc"


def test_signature_known_answer() -> None:
    key = SigningKey.from_bytes(RFC8032_SECRET)

    signature = key.sign("contract", b"abc")

    assert key.verify_key.raw == RFC8032_PUBLIC
    # Ed25519 is deterministic (RFC 8032 section 5.1.6), so this pins signed_message's layout.
    assert signature == SIGNATURE_CONTRACT_ABC
    key.verify_key.verify("contract", b"abc", signature)


def test_raw_rfc_8032_signature_is_not_a_teeflow_signature() -> None:
    # The raw RFC 8032 signature of the empty message is not a teeflow signature of anything.
    key = SigningKey.from_bytes(RFC8032_SECRET)

    with pytest.raises(IntegrityError):
        key.verify_key.verify("contract", b"", RFC8032_EMPTY_SIGNATURE)


@pytest.mark.parametrize(
    ("signed_for", "checked_for"),
    [("contract", "receipt"), ("receipt", "contract"), ("approval", "approva"), ("a", "a\x01")],
)
def test_signature_for_one_domain_fails_for_another(signed_for: str, checked_for: str) -> None:
    key = SigningKey.generate()
    signature = key.sign(signed_for, b"the same message")

    with pytest.raises(IntegrityError, match="signature check failed"):
        key.verify_key.verify(checked_for, b"the same message", signature)


def test_domain_and_message_cannot_be_shifted_across_the_separator() -> None:
    key = SigningKey.generate()
    signature = key.sign("con", b"tract\x00payload")

    with pytest.raises(IntegrityError):
        key.verify_key.verify("contract", b"payload", signature)


@pytest.mark.parametrize("domain", ["", "a\x00b"])
def test_ambiguous_domains_are_refused(domain: str) -> None:
    with pytest.raises(CryptoError):
        SigningKey.generate().sign(domain, b"m")


def test_changed_message_signature_or_key_fails() -> None:
    key = SigningKey.generate()
    signature = key.sign("contract", b"message")
    other = SigningKey.generate().verify_key

    with pytest.raises(IntegrityError):
        key.verify_key.verify("contract", b"messagE", signature)
    with pytest.raises(IntegrityError):
        # flip a bit: overwriting with 0 would often change nothing (S's top byte is small)
        key.verify_key.verify("contract", b"message", signature[:-1] + bytes([signature[-1] ^ 1]))
    with pytest.raises(IntegrityError):
        key.verify_key.verify("contract", b"message", signature[:10])
    with pytest.raises(IntegrityError):
        other.verify("contract", b"message", signature)


def test_verify_key_round_trips_through_base64() -> None:
    key = SigningKey.generate().verify_key

    assert VerifyKey.from_b64(key.b64()) == key
