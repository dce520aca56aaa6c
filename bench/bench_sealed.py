"""Throughput of the sealed-file format against its floor: raw AES-256-GCM and a memcpy.

Run: ``.venv/bin/python bench/bench_sealed.py [--mib 256] [--repeats 5]``

Everything runs in one process on the same data so the figures compare: seal and unseal a
``--mib`` MiB stream (BytesIO source, a sink that drops what it gets), raw ``AESGCM.encrypt`` /
``AESGCM.decrypt`` over the same bytes as 1 MiB records, and ``numpy.copyto`` of the whole buffer.
Each figure is the median of ``--repeats`` runs, in GB/s (10^9 bytes per second) of plaintext.
The target is unseal >= 0.8 x raw decrypt.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rich.console import Console
from rich.table import Table

from _report import Figure, write_json
from teeflow.crypto import CHUNK_SIZE, DataKey, seal_stream, unseal_stream

TARGET_RATIO = 0.8


class NullSink(io.RawIOBase):
    """A writable stream that counts and drops what it is given."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        size = memoryview(data).nbytes  # type: ignore[arg-type]
        self.count += size
        return size


def median_rates(
    cases: dict[str, Callable[[], object]], size: int, repeats: int
) -> dict[str, float]:
    """GB/s per case, median of ``repeats``. Cases run round-robin, so a change in machine load
    hits all of them alike and the ratios stay fair."""
    for run in cases.values():
        run()  # warm-up: allocator, page faults, OpenSSL dispatch
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: size / statistics.median(t) / 1e9 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="stream size in MiB")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    size = args.mib << 20
    plaintext = os.urandom(size)
    key = DataKey.generate()
    sealed_buf = io.BytesIO()
    seal_stream(io.BytesIO(plaintext), sealed_buf, key)
    sealed = sealed_buf.getvalue()

    aead = AESGCM(key.raw)
    records = [plaintext[i : i + CHUNK_SIZE] for i in range(0, size, CHUNK_SIZE)]
    nonces = [i.to_bytes(12, "big") for i in range(len(records))]
    encrypted = [aead.encrypt(n, r, b"") for n, r in zip(nonces, records, strict=True)]

    def raw_encrypt() -> None:
        for nonce, record in zip(nonces, records, strict=True):
            aead.encrypt(nonce, record, b"")

    def raw_decrypt() -> None:
        for nonce, record in zip(nonces, encrypted, strict=True):
            aead.decrypt(nonce, record, b"")

    source = np.frombuffer(plaintext, dtype=np.uint8)
    target = np.empty_like(source)

    cases: dict[str, Callable[[], object]] = {
        "numpy memcpy": lambda: np.copyto(target, source),
        "raw AESGCM.encrypt (1 MiB records)": raw_encrypt,
        "raw AESGCM.decrypt (1 MiB records)": raw_decrypt,
        "seal_stream": lambda: seal_stream(io.BytesIO(plaintext), NullSink(), key),
        "unseal_stream": lambda: unseal_stream(io.BytesIO(sealed), NullSink(), key),
    }
    rates = median_rates(cases, size, args.repeats)

    table = Table(title=f"sealed format, {args.mib} MiB, median of {args.repeats}")
    table.add_column("case")
    table.add_column("GB/s", justify="right")
    for name, rate in rates.items():
        table.add_row(name, f"{rate:.2f}")
    console = Console()
    console.print(table)
    unseal_ratio = rates["unseal_stream"] / rates["raw AESGCM.decrypt (1 MiB records)"]
    seal_ratio = rates["seal_stream"] / rates["raw AESGCM.encrypt (1 MiB records)"]
    verdict = "meets" if unseal_ratio >= TARGET_RATIO else "MISSES"
    console.print(
        f"unseal / raw decrypt = {unseal_ratio:.2f} ({verdict} the {TARGET_RATIO} target); "
        f"seal / raw encrypt = {seal_ratio:.2f}",
        highlight=False,
    )
    memcpy = rates["numpy memcpy"]
    note = f"{args.mib} MiB stream, median of {args.repeats}; memcpy {memcpy:.2f} GB/s"
    write_json(
        [
            Figure(
                "P3-unseal",
                "unseal throughput vs raw AES-256-GCM decrypt",
                rates["raw AESGCM.decrypt (1 MiB records)"],
                rates["unseal_stream"],
                "GB/s",
                target=f">= {TARGET_RATIO}",
                note=note,
            ),
            Figure(
                "P3-seal",
                "seal throughput vs raw AES-256-GCM encrypt",
                rates["raw AESGCM.encrypt (1 MiB records)"],
                rates["seal_stream"],
                "GB/s",
                note=note + "; seal also hashes the ciphertext (SHA-256) for the contract",
            ),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
