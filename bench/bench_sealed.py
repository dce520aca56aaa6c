"""Throughput of the sealed-file format against its floor: raw AES-256-GCM and a memcpy.

Run: ``.venv/bin/python bench/bench_sealed.py [--mib 256] [--repeats 9]``

Everything runs in one process on the same data so the figures compare: seal and unseal a
``--mib`` MiB stream (BytesIO source, a sink that drops what it gets), ``unseal_bytes``, raw
AES-256-GCM over the same bytes as 1 MiB records (encrypt: ``AESGCM.encrypt_into`` from views of
the same in-memory plaintext into one reused buffer handed to the same sink, so raw and seal read,
encrypt and write alike and differ only in what seal adds; decrypt: ``AESGCM.decrypt``), BLAKE3
and SHA-256 alone over the same bytes (the content digests of versions 2 and 1 that seal
computes for the contract), sealing as version 1 (SHA-256) beside the default version 2 (BLAKE3),
and ``numpy.copyto`` of the whole buffer. Cases run round-robin (ABAB), each figure is the
median of ``--repeats`` runs, in GB/s (10^9 bytes per second) of plaintext, both per second of
wall time (what a member waits) and per second of CPU time of the process, all threads (what it
costs; steadier on a loaded machine). The load average is printed with the figures. Targets
(issue 16): unseal >= 0.9 x raw decrypt, seal >= 0.6 x raw encrypt.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rich.console import Console
from rich.table import Table

from _report import TARGETS, Figure, write_json
from teeflow.crypto import CHUNK_SIZE, DataKey, seal_stream, unseal_bytes, unseal_stream


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
) -> tuple[dict[str, float], dict[str, float]]:
    """(wall GB/s, CPU GB/s) per case, medians of ``repeats``. Cases run round-robin, so a change
    in machine load hits all of them alike and the ratios stay fair."""
    for run in cases.values():
        run()  # warm-up: allocator, page faults, OpenSSL dispatch
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)

    def rates(times: dict[str, list[float]]) -> dict[str, float]:
        return {name: size / max(statistics.median(t), 1e-9) / 1e9 for name, t in times.items()}

    return rates(wall), rates(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="stream size in MiB")
    parser.add_argument("--repeats", type=int, default=9)
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

    whole = memoryview(plaintext)
    sealed_record = memoryview(bytearray(CHUNK_SIZE + 16))

    def raw_encrypt() -> None:
        sink = NullSink()
        for nonce, begin in zip(nonces, range(0, size, CHUNK_SIZE), strict=True):
            record = whole[begin : begin + CHUNK_SIZE]
            out = sealed_record[: len(record) + 16]
            aead.encrypt_into(nonce, record, b"", out)
            sink.write(out)

    def raw_decrypt() -> None:
        for nonce, record in zip(nonces, encrypted, strict=True):
            aead.decrypt(nonce, record, b"")

    def hash_alone(digest: hashlib._Hash | blake3.blake3) -> Callable[[], None]:
        def run() -> None:
            hasher = digest.copy()
            view = memoryview(sealed)
            for begin in range(0, len(view), CHUNK_SIZE + 16):
                hasher.update(view[begin : begin + CHUNK_SIZE + 16])

        return run

    source = np.frombuffer(plaintext, dtype=np.uint8)
    target = np.empty_like(source)

    cases: dict[str, Callable[[], object]] = {
        "numpy memcpy": lambda: np.copyto(target, source),
        "raw AESGCM.encrypt_into (1 MiB records)": raw_encrypt,
        "raw AESGCM.decrypt (1 MiB records)": raw_decrypt,
        "BLAKE3 alone (blake3, 1 MiB updates)": hash_alone(blake3.blake3()),
        "SHA-256 alone (hashlib, 1 MiB updates)": hash_alone(hashlib.sha256()),
        "seal_stream": lambda: seal_stream(io.BytesIO(plaintext), NullSink(), key),
        "seal_stream v1 (SHA-256)": lambda: seal_stream(
            io.BytesIO(plaintext), NullSink(), key, digest="sha256"
        ),
        "unseal_stream": lambda: unseal_stream(io.BytesIO(sealed), NullSink(), key),
        "unseal_bytes": lambda: unseal_bytes(sealed, key),
    }
    load_before = os.getloadavg()[0]
    rates, cpu = median_rates(cases, size, args.repeats)
    load = f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"

    table = Table(title=f"sealed format, {args.mib} MiB, median of {args.repeats}; {load}")
    table.add_column("case")
    table.add_column("GB/s (wall)", justify="right")
    table.add_column("GB/s (CPU)", justify="right")
    for name, rate in rates.items():
        table.add_row(name, f"{rate:.2f}", f"{cpu[name]:.2f}")
    console = Console()
    console.print(table)
    decrypt = "raw AESGCM.decrypt (1 MiB records)"
    encrypt = "raw AESGCM.encrypt_into (1 MiB records)"
    hashing = "BLAKE3 alone (blake3, 1 MiB updates)"
    sha256 = "SHA-256 alone (hashlib, 1 MiB updates)"
    for what, case, raw in (
        ("unseal", "unseal_stream", decrypt),
        ("seal", "seal_stream", encrypt),
    ):
        console.print(
            f"{what} / raw: wall {rates[case] / rates[raw]:.2f}, CPU {cpu[case] / cpu[raw]:.2f} "
            f"(target {TARGETS['P3-' + what]})",
            highlight=False,
        )
    console.print(
        f"seal v1 (SHA-256) / raw: wall {rates['seal_stream v1 (SHA-256)'] / rates[encrypt]:.2f}; "
        f"BLAKE3 alone / raw encrypt: CPU {cpu[hashing] / cpu[encrypt]:.2f}, SHA-256 alone "
        f"{cpu[sha256] / cpu[encrypt]:.2f}: the ceilings of a seal that hashes every ciphertext "
        "byte on a second core",
        highlight=False,
    )

    def seconds_per_gb(rate: float) -> float:
        return 1.0 / rate if rate else 0.0

    note = (
        f"{args.mib} MiB stream, median of {args.repeats}, wall time; {load}; memcpy "
        f"{rates['numpy memcpy']:.2f} GB/s"
    )
    write_json(
        [
            Figure(
                "P3-unseal",
                "unseal throughput vs raw AES-256-GCM decrypt",
                rates[decrypt],
                rates["unseal_stream"],
                "GB/s",
                target=TARGETS["P3-unseal"],
                note=note + f"; CPU-time ratio {cpu['unseal_stream'] / cpu[decrypt]:.2f}",
                split={
                    "AES-GCM decrypt": seconds_per_gb(cpu[decrypt]),
                    "rest (reads, writes)": max(
                        0.0, seconds_per_gb(cpu["unseal_stream"]) - seconds_per_gb(cpu[decrypt])
                    ),
                },
                split_unit="CPU s/GB",
            ),
            Figure(
                "P3-seal",
                "seal throughput vs raw AES-256-GCM encrypt",
                rates[encrypt],
                rates["seal_stream"],
                "GB/s",
                target=TARGETS["P3-seal"],
                note=note
                + f"; CPU-time ratio {cpu['seal_stream'] / cpu[encrypt]:.2f}; seal also hashes "
                "the ciphertext (BLAKE3, sealed format v2) for the contract, on two lanes "
                "that each hash what they encrypted; "
                "v1 (SHA-256) seal / raw "
                f"{rates['seal_stream v1 (SHA-256)'] / rates[encrypt]:.2f}",
                split={
                    "AES-GCM encrypt": seconds_per_gb(cpu[encrypt]),
                    "BLAKE3": seconds_per_gb(cpu[hashing]),
                    "rest": max(
                        0.0,
                        seconds_per_gb(cpu["seal_stream"])
                        - seconds_per_gb(cpu[encrypt])
                        - seconds_per_gb(cpu[hashing]),
                    ),
                },
                split_unit="CPU s/GB",
            ),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
