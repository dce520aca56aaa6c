"""Other members' public keys, pinned in this member's home (DESIGN.md guarantee 6).

The control plane serves every member's public keys, and it is not trusted: an operator who
swaps a row of its ``users`` table could have a contract wrap an output to its own key. So a
member's client keeps the keys of every member it dealt with (trust on first use: the first
contract that shows a member pins its keys) and refuses any later contract that shows other
keys for that member. Two members confirm the pin out of band by comparing a safety number.

Safety number (docs/decisions/0009-pinned-member-keys.md), after Signal's numeric fingerprint:

    bundle      = canonical_json({"enc_pk": b64, "sign_pk": b64})        # RFC 8785
    h_0         = SHA-512(b"teeflow/v1/safety-number\\x00" || bundle || username)
    h_i         = SHA-512(h_{i-1} || bundle)            for i = 1 .. 5200
    identity    = the first 30 bytes of h_5200, as six 5-byte big-endian integers mod 100000,
                  each written as 5 decimal digits                        # 30 digits
    safety(a,b) = the two identities, the smaller first                  # 60 digits

It is the same on both members' machines, changes when either member's keys change, and is shown
in groups of five digits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from teeflow.client._errors import ClientError
from teeflow.client._home import MemberHome
from teeflow.crypto import CryptoError, PublicKey, VerifyKey, canonical_json, fingerprint

__all__ = [
    "KEY_FIELDS",
    "check_participants",
    "format_digits",
    "identity_number",
    "key_fingerprint",
    "parse_digits",
    "participant_trust",
    "safety_number",
]

KEY_FIELDS = ("sign_pk", "enc_pk")
_ITERATIONS = 5200  # as Signal's NumericFingerprintGenerator
_DOMAIN = b"teeflow/v1/safety-number\x00"


def _bundle(keys: Mapping[str, Any]) -> bytes:
    return canonical_json({field: str(keys[field]) for field in KEY_FIELDS})


def identity_number(name: str, keys: Mapping[str, Any]) -> str:
    """30 decimal digits derived from ``name`` and its public keys (see the module docstring)."""
    bundle = _bundle(keys)
    digest = hashlib.sha512(_DOMAIN + bundle + name.encode("utf-8")).digest()
    for _ in range(_ITERATIONS):
        digest = hashlib.sha512(digest + bundle).digest()
    chunks = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return "".join(f"{chunk:05d}" for chunk in chunks)


def safety_number(
    me: str, my_keys: Mapping[str, Any], other: str, other_keys: Mapping[str, Any]
) -> str:
    """60 digits both members compute alike: the two identity numbers, the smaller first."""
    return "".join(sorted((identity_number(me, my_keys), identity_number(other, other_keys))))


def format_digits(digits: str) -> str:
    """Digits in groups of five: ``12345 67890 ...``."""
    return " ".join(digits[i : i + 5] for i in range(0, len(digits), 5))


def parse_digits(text: str) -> str:
    """The digits of a safety number typed with any spacing; ValueError if anything else."""
    digits = "".join(text.split())
    if not digits.isdigit() or not digits.isascii():
        raise ValueError("a safety number holds only digits (spaces are ignored)")
    return digits


def key_fingerprint(keys: Mapping[str, Any]) -> str:
    """The short hex fingerprint `teeflow keys show` prints for these public keys."""
    try:
        return fingerprint(VerifyKey.from_b64(keys["sign_pk"]), PublicKey.from_b64(keys["enc_pk"]))
    except (CryptoError, KeyError, TypeError, ValueError):
        return "(malformed keys)"


def _same(pinned: Mapping[str, Any], keys: Mapping[str, Any]) -> bool:
    return all(pinned.get(field) == keys.get(field) for field in KEY_FIELDS)


def pin_record(keys: Mapping[str, Any], *, source: str, verified: bool = False) -> dict[str, Any]:
    """What the home stores for one member."""
    return {
        **{field: str(keys[field]) for field in KEY_FIELDS},
        "pinned_at": datetime.now(UTC).isoformat(),
        "source": source,
        "verified": verified,
    }


def mismatch_message(name: str, pinned: Mapping[str, Any], keys: Mapping[str, Any]) -> str:
    """Says which member, which keys changed, old and new fingerprints, and what to do."""
    changed = [field for field in KEY_FIELDS if pinned.get(field) != keys.get(field)]
    state = "verified" if pinned.get("verified") else "pinned on first use"
    return (
        f"the keys shown for {name!r} differ from the ones you {state} "
        f"({pinned.get('source', 'earlier')}): {', '.join(changed)} changed; fingerprint "
        f"{key_fingerprint(pinned)} -> {key_fingerprint(keys)}. The control plane may be "
        f"impersonating {name!r}: do not approve. If {name!r} really has new keys, compare "
        f"safety numbers with them out of band, then run `teeflow member verify {name} "
        "--replace --safety-number DIGITS`"
    )


def check_participants(contract: Mapping[str, Any], *, me: str, home: MemberHome) -> None:
    """Raise ClientError if the contract shows other keys for a member this home pinned; pin
    the members seen for the first time (trust on first use)."""
    participants: Mapping[str, Mapping[str, Any]] = contract["participants"]
    pinned = home.pinned_members()
    fresh: dict[str, Mapping[str, Any]] = {}
    for name, keys in sorted(participants.items()):
        if name == me:
            continue  # review compares these with the member's own keyring
        record = pinned.get(name)
        if record is None:
            fresh[name] = keys
        elif not _same(record, keys):
            raise ClientError(mismatch_message(name, record, keys))
    source = f"task {contract.get('task_id', '?')}"
    for name, keys in fresh.items():
        home.pin_member(name, pin_record(keys, source=source))


def participant_trust(contract: Mapping[str, Any], *, me: str, home: MemberHome) -> dict[str, str]:
    """participant -> "you", "verified", "unverified" (pinned on first use), "new" (not yet
    pinned) or "KEYS CHANGED", for `teeflow task show`."""
    pinned = home.pinned_members()
    marks: dict[str, str] = {}
    for name, keys in contract["participants"].items():
        record = pinned.get(name)
        if name == me:
            marks[name] = "you"
        elif record is None:
            marks[name] = "new"
        elif not _same(record, keys):
            marks[name] = "KEYS CHANGED"
        else:
            marks[name] = "verified" if record.get("verified") else "unverified"
    return marks
