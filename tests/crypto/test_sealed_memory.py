"""A sealed file of any size streams in bounded memory: 1 GiB seals and unseals under 200 MB RSS."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

GIB = 1 << 30
RSS_LIMIT = 200 * 10**6

# Runs in a fresh interpreter so the peak RSS is that of sealing and unsealing alone.
CHILD = """
import json, sys
from teeflow.crypto import DataKey, seal_stream, unseal_stream
src, sealed, opened = sys.argv[1:4]
key = DataKey.generate()
with open(src, "rb") as fin, open(sealed, "wb") as fout:
    info = seal_stream(fin, fout, key)
with open(sealed, "rb") as fin, open(opened, "wb") as fout:
    size = unseal_stream(fin, fout, key)
# VmHWM is this process image's own peak; ru_maxrss would also count the (large) pytest
# parent that forked it, because Linux carries it across fork and exec.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
peak = int(hwm.split()[1]) * 1024
print(json.dumps({"peak_rss": peak, "plaintext_size": size, "sealed_size": info.ciphertext_size}))
"""


def _write_file(path: Path, size: int) -> str:
    """Write ``size`` bytes of varied content in 1 MiB blocks; returns its SHA-256."""
    digest = hashlib.sha256()
    block = bytearray(hashlib.shake_256(b"teeflow-memory-test").digest(1 << 20))
    with path.open("wb") as out:
        for i in range(size >> 20):
            block[:8] = i.to_bytes(8, "big")  # no two blocks alike
            out.write(block)
            digest.update(block)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc (Linux)")
def test_one_gib_seals_and_unseals_in_bounded_memory(tmp_path: Path) -> None:
    source, sealed, opened = tmp_path / "plain", tmp_path / "sealed", tmp_path / "opened"
    expected = _write_file(source, GIB)

    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(sealed), str(opened)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    report = json.loads(result.stdout)

    assert report["plaintext_size"] == GIB
    assert report["peak_rss"] < RSS_LIMIT, f"peak RSS {report['peak_rss'] / 1e6:.0f} MB"
    assert _sha256_file(opened) == expected
