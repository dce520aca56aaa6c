"""Length-hiding padding inside the sealed plaintext (crypto/_padding.py, docs/sealed-format.md)."""

from __future__ import annotations

import pytest

from teeflow.crypto import IntegrityError, check_pad, pad, unpad


@pytest.mark.parametrize("payload", [b"", b"a", b"z" * 5000])
def test_padding_round_trips_to_a_bucket(payload: bytes) -> None:
    framed = [pad(payload, "pow2"), pad(payload, 4096)]

    assert [unpad(f) for f in framed] == [payload, payload]
    assert len(framed[0]) & (len(framed[0]) - 1) == 0 and len(framed[1]) % 4096 == 0


def test_tampered_padding_is_refused() -> None:
    framed = bytearray(pad(b"abc", 64))
    framed[-1] = 1

    with pytest.raises(IntegrityError):
        unpad(bytes(framed))


@pytest.mark.parametrize("spec", ["pow3", 0, 63, True, 1 << 31])
def test_bad_pad_specs_are_refused(spec: object) -> None:
    with pytest.raises(ValueError, match="pad must be"):
        check_pad(spec)
