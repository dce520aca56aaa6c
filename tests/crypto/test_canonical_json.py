"""Canonical JSON against the RFC 8785 examples (tests/vectors/rfc8785.json)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from teeflow.crypto import CryptoError, canonical_hash, canonical_json, sha256_hex

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc8785.json").read_text(encoding="utf-8")
)


def _double(hex_bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(hex_bits))[0]
    return value


@pytest.mark.parametrize("case", VECTORS["objects"], ids=[c["name"] for c in VECTORS["objects"]])
def test_object_canonicalises_as_in_rfc_8785(case: dict[str, Any]) -> None:
    value = json.loads(case["input"])

    out = canonical_json(value)

    assert out == case["expected"].encode("utf-8")


@pytest.mark.parametrize("case", VECTORS["numbers"], ids=[c["ieee754"] for c in VECTORS["numbers"]])
def test_number_serialises_as_in_rfc_8785_appendix_b(case: dict[str, Any]) -> None:
    value = _double(case["ieee754"])

    out = canonical_json(value)

    assert out == case["expected"].encode("ascii")


@pytest.mark.parametrize("bits", VECTORS["rejected_numbers"])
def test_nan_and_infinity_are_rejected(bits: str) -> None:
    value = _double(bits)
    assert math.isnan(value) or math.isinf(value)

    with pytest.raises(CryptoError, match="canonicalised"):
        canonical_json({"x": value})


def test_key_order_and_whitespace_do_not_change_the_hash() -> None:
    one = json.loads('{"b": 1, "a": [1, 2, {"d": null, "c": true}]}')
    two = json.loads('{ "a":[1,2,{"c":true,"d":null}],\n "b":1 }')

    assert canonical_hash(one) == canonical_hash(two) == sha256_hex(canonical_json(one))


def test_non_json_values_are_rejected() -> None:
    with pytest.raises(CryptoError):
        canonical_json({"x": b"bytes"})
