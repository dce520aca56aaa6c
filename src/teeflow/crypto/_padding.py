"""Length-hiding padding of a plaintext before it is sealed (docs/sealed-format.md, "Padding").

A contract may ask for an output to be padded (``"pad": "pow2"`` or a bucket size in bytes). The
enclave then seals not the output but a frame of it::

    frame = "TFPAD1" (6 bytes) | len(plaintext) as u64 big-endian (8 bytes) | plaintext | zeros

whose total length is the smallest power of two (at least :data:`MIN_POW2`), or the smallest
multiple of the bucket, that holds it. The sealed file is an ordinary sealed file of the frame;
a recipient that knows the contract asked for padding unseals it and calls :func:`unpad` to get
the exact bytes back. So the ciphertext size reveals only the bucket, not the length.
"""

from __future__ import annotations

import struct

from teeflow.crypto._errors import IntegrityError

__all__ = ["MAX_BUCKET", "MIN_POW2", "PAD_MAGIC", "check_pad", "pad", "unpad"]

PAD_MAGIC = b"TFPAD1"
_HEADER = struct.Struct(">6sQ")
MIN_POW2 = 64
MAX_BUCKET = 1 << 30


def check_pad(spec: object) -> str | int:
    """``spec`` if it is ``"pow2"`` or a bucket of 64 bytes to 1 GiB; else ValueError."""
    if spec == "pow2":
        return "pow2"
    if isinstance(spec, int) and not isinstance(spec, bool) and MIN_POW2 <= spec <= MAX_BUCKET:
        return spec
    raise ValueError(f'pad must be "pow2" or a bucket size of {MIN_POW2} to {MAX_BUCKET} bytes')


def pad(plaintext: bytes, spec: str | int) -> bytes:
    """The frame of ``plaintext`` padded as ``spec`` (see :func:`check_pad`) asks."""
    spec = check_pad(spec)
    needed = _HEADER.size + len(plaintext)
    if spec == "pow2":
        total = max(MIN_POW2, 1 << (needed - 1).bit_length())
    else:
        bucket = int(spec)
        total = -(-needed // bucket) * bucket
    return _HEADER.pack(PAD_MAGIC, len(plaintext)) + plaintext + bytes(total - needed)


def unpad(frame: bytes) -> bytes:
    """The plaintext inside ``frame``; IntegrityError if it is not a well-formed frame."""
    if len(frame) < _HEADER.size:
        raise IntegrityError("padded plaintext is shorter than its frame header")
    magic, length = _HEADER.unpack_from(frame)
    body = frame[_HEADER.size :]
    if magic != PAD_MAGIC or length > len(body) or any(body[length:]):
        raise IntegrityError("padded plaintext is not a well-formed padding frame")
    return body[:length]
