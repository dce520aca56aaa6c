"""Generate tests/vectors/sealed_v1.json and sealed_v2.json, the known-answer vectors of the
sealed format: version 1 (content digest SHA-256) and version 2 (one more header byte naming the
content digest, BLAKE3).

Run once, commit the output, never regenerate to make a failing test pass: a diff in the JSON
means the format changed. Run: ``.venv/bin/python tests/vectors/make_sealed_vectors.py [1|2]``
(both when no version is given).

The ciphertexts are built here from the layout in docs/sealed-format.md with nothing but
``struct`` and ``AESGCM``, independently of teeflow's writer, then cross-checked against it, so
the vectors pin the documented format and not merely whatever the code happens to do.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import sys
from pathlib import Path

import blake3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY = bytes(range(32))
PREFIX = bytes.fromhex("a0a1a2a3a4a5a6")
VERSION = 1
"""The version being generated (main() sets it)."""


def header_size() -> int:
    # magic 6, version 1, algorithm 1, chunk size 4, key id 16, prefix 7 [, digest 1 in v2]
    return 35 if VERSION == 1 else 36


def content_digest(sealed: bytes) -> str:
    """The digest a contract binds: SHA-256 hex (v1), "blake3:" + BLAKE3 hex (v2)."""
    if VERSION == 1:
        return hashlib.sha256(sealed).hexdigest()
    return "blake3:" + blake3.blake3(sealed).hexdigest()


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"teeflow/v1/key-id\x00" + key).digest()[:16]


def header(chunk_size: int) -> bytes:
    # magic | version | algorithm (1 = AES-256-GCM) | chunk size | key id | nonce prefix
    # [| digest (2 = BLAKE3), version 2 only]
    if VERSION == 1:
        return struct.pack(">6sBBI16s7s", b"TFSEAL", 1, 1, chunk_size, key_id(KEY), PREFIX)
    return struct.pack(">6sBBI16s7sB", b"TFSEAL", 2, 1, chunk_size, key_id(KEY), PREFIX, 2)


def nonce(counter: int, final: bool) -> bytes:
    return PREFIX + struct.pack(">IB", counter, int(final))


def chunks(plaintext: bytes, chunk_size: int) -> list[bytes]:
    parts = [plaintext[i : i + chunk_size] for i in range(0, len(plaintext), chunk_size)]
    return parts or [b""]


def seal(plaintext: bytes, chunk_size: int, finals: list[bool] | None = None) -> bytes:
    """The reference writer; ``finals`` overrides the final flags (a writer getting them wrong)."""
    aad = header(chunk_size)
    parts = chunks(plaintext, chunk_size)
    flags = finals or [i == len(parts) - 1 for i in range(len(parts))]
    aead = AESGCM(KEY)
    return aad + b"".join(
        aead.encrypt(nonce(i, flags[i]), parts[i], aad) for i in range(len(parts))
    )


def pattern(size: int) -> bytes:
    return bytes((7 * i + 3) % 251 for i in range(size))


VALID = [
    ("empty", b"", 1 << 20),
    ("one byte", b"\x00", 1 << 20),
    ("short text, default chunk size", b"data usable but invisible", 1 << 20),
    ("one full chunk", pattern(16), 16),
    ("two full chunks, the last one final", pattern(32), 16),
    ("three chunks and a short tail", pattern(16 * 3 + 7), 16),
    ("chunk size 1", b"teeflow", 1),
]


def invalid_cases() -> list[tuple[str, bytes]]:
    tail = pattern(16 * 3 + 7)
    good = seal(tail, 16)
    block = 16 + 16
    HEADER = header_size()
    body = good[HEADER:]
    blocks = [body[i : i + block] for i in range(0, len(body), block)]
    return [
        ("final flag moved from chunk 3 to chunk 1", seal(tail, 16, [False, True, False, False])),
        ("chunk 1 also marked final", seal(tail, 16, [False, True, False, True])),
        ("no chunk marked final", seal(tail, 16, [False, False, False, False])),
        ("truncated at a chunk boundary", good[: HEADER + 2 * block]),
        ("truncated inside a chunk", good[: HEADER + 2 * block + 5]),
        ("chunks 0 and 1 swapped", good[:HEADER] + blocks[1] + blocks[0] + b"".join(blocks[2:])),
        ("chunk 1 dropped", good[:HEADER] + blocks[0] + b"".join(blocks[2:])),
        ("one byte appended", good + b"\x00"),
        ("header: chunk size field edited (byte 8)", good[:8] + bytes([good[8] ^ 1]) + good[9:]),
        ("bit flipped in the last tag", good[:-1] + bytes([good[-1] ^ 0x80])),
    ] + (
        []
        if VERSION == 1
        else [
            ("header: digest byte edited (byte 35)", good[:35] + b"\x01" + good[36:]),
            ("header: version 2 relabelled as version 1", good[:6] + b"\x01" + good[7:]),
        ]
    )


def main() -> None:
    global VERSION
    for version in [int(sys.argv[1])] if len(sys.argv) > 1 else [1, 2]:
        VERSION = version
        write_vectors()


def write_vectors() -> None:
    from teeflow.crypto import DataKey, IntegrityError, seal_stream, unseal_stream  # cross-check

    out = Path(__file__).with_name(f"sealed_v{VERSION}.json")
    valid = []
    for name, plaintext, chunk_size in VALID:
        expected = seal(plaintext, chunk_size)
        ours = io.BytesIO()
        info = seal_stream(
            io.BytesIO(plaintext),
            ours,
            DataKey(KEY),
            chunk_size=chunk_size,
            nonce_prefix=PREFIX,
            digest="sha256" if VERSION == 1 else "blake3",
        )
        if ours.getvalue() != expected or info.ciphertext_digest != content_digest(expected):
            raise SystemExit(f"teeflow's writer disagrees with the reference for {name!r}")
        case = {
            "name": name,
            "chunk_size": chunk_size,
            "plaintext": plaintext.hex(),
            "sealed": expected.hex(),
        }
        # v1's field keeps its name so the committed file never changes.
        case["sealed_sha256" if VERSION == 1 else "content_digest"] = content_digest(expected)
        valid.append(case)
    invalid = invalid_cases()
    for name, blob in invalid:
        try:
            unseal_stream(io.BytesIO(blob), io.BytesIO(), DataKey(KEY))
        except IntegrityError:
            continue
        raise SystemExit(f"teeflow's reader accepts the invalid vector {name!r}")
    document = {
        "format": f"teeflow sealed file v{VERSION} (docs/sealed-format.md)",
        "generator": "tests/vectors/make_sealed_vectors.py",
        "key": KEY.hex(),
        "nonce_prefix": PREFIX.hex(),
        "valid": valid,
        "invalid": [{"name": n, "sealed": blob.hex()} for n, blob in invalid],
    }
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(valid)} valid, {len(document['invalid'])} invalid)")


if __name__ == "__main__":
    main()
