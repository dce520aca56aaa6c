"""HPKE key wrap (RFC 9180): only the named recipient, in the named context, can unwrap."""

from __future__ import annotations

import pytest

from teeflow.crypto import (
    CryptoError,
    DataKey,
    IntegrityError,
    PrivateKey,
    hpke_open,
    hpke_seal,
    key_wrap_info,
)

CONTRACT = "9f" * 32


def test_wrapped_key_opens_for_its_recipient_and_context() -> None:
    recipient = PrivateKey.generate()
    key = DataKey.generate()
    info = key_wrap_info("input", CONTRACT, "images")

    wrapped = hpke_seal(key.raw, recipient.public_key, info=info)
    opened = hpke_open(wrapped, recipient, info=info)

    assert DataKey(opened) == key


@pytest.mark.parametrize(
    "other_info",
    [
        key_wrap_info("input", "00" * 32, "images"),  # another contract
        key_wrap_info("input", CONTRACT, "labels"),  # another slot
        key_wrap_info("output", CONTRACT, "images"),  # another purpose
        b"",
    ],
    ids=["contract", "slot", "purpose", "empty"],
)
def test_context_mismatch_is_rejected(other_info: bytes) -> None:
    recipient = PrivateKey.generate()
    wrapped = hpke_seal(
        b"k" * 32, recipient.public_key, info=key_wrap_info("input", CONTRACT, "images")
    )

    with pytest.raises(IntegrityError, match="does not open"):
        hpke_open(wrapped, recipient, info=other_info)


def test_wrong_recipient_is_rejected() -> None:
    info = key_wrap_info("input", CONTRACT, "images")
    wrapped = hpke_seal(b"k" * 32, PrivateKey.generate().public_key, info=info)

    with pytest.raises(IntegrityError):
        hpke_open(wrapped, PrivateKey.generate(), info=info)


@pytest.mark.parametrize("index", [0, 31, 32, -1], ids=["enc start", "enc end", "ct", "tag"])
def test_changed_wrap_is_rejected(index: int) -> None:
    recipient = PrivateKey.generate()
    info = key_wrap_info("input", CONTRACT, "images")
    wrapped = bytearray(hpke_seal(b"k" * 32, recipient.public_key, info=info))
    wrapped[index] ^= 1

    with pytest.raises(IntegrityError):
        hpke_open(bytes(wrapped), recipient, info=info)


@pytest.mark.parametrize("length", [0, 16, 32, 47])
def test_short_wrap_is_rejected(length: int) -> None:
    with pytest.raises(IntegrityError):
        hpke_open(b"\x00" * length, PrivateKey.generate(), info=b"x")


def test_context_fields_cannot_be_shifted_across_separators() -> None:
    with pytest.raises(CryptoError, match="NUL"):
        key_wrap_info("input", CONTRACT, "a\x00b")
    with pytest.raises(CryptoError, match="NUL"):
        key_wrap_info("in\x00put", CONTRACT, "a")
