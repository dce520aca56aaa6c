"""LocalBlobStore: a blob is complete or absent, keys cannot escape the root, uploads are capped."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from teeflow.server.blobs import BlobNotFound, BlobTooLarge, LocalBlobStore, validate_key


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_write_streams_hashes_and_commits(blobs: LocalBlobStore) -> None:
    chunks = [b"a" * 1000, b"b" * 10, b""]

    with blobs.writer("datasets/d1/content") as writer:
        for chunk in chunks:
            writer.write(chunk)
        assert not blobs.exists("datasets/d1/content")  # nothing visible before commit
        assert writer.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()

    assert writer.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert writer.size == blobs.size("datasets/d1/content") == 1010
    with blobs.open("datasets/d1/content") as handle:
        assert handle.read() == b"".join(chunks)
    assert files_under(blobs.root) == [blobs.root / "datasets/d1/content"]


def test_an_exception_leaves_nothing(blobs: LocalBlobStore) -> None:
    with pytest.raises(RuntimeError), blobs.writer("k") as writer:
        writer.write(b"partial")
        raise RuntimeError("client went away")

    assert not blobs.exists("k")
    assert files_under(blobs.root) == []
    with pytest.raises(RuntimeError, match="after the blob has been committed"):
        _ = writer.sha256


def test_an_interrupted_write_keeps_the_old_blob(blobs: LocalBlobStore) -> None:
    with blobs.writer("k") as writer:
        writer.write(b"old")

    with pytest.raises(KeyboardInterrupt), blobs.writer("k") as writer:
        writer.write(b"new but incomplete")
        raise KeyboardInterrupt

    with blobs.open("k") as handle:
        assert handle.read() == b"old"
    assert files_under(blobs.root) == [blobs.root / "k"]


def test_max_bytes_stops_the_upload_mid_stream(blobs: LocalBlobStore) -> None:
    with pytest.raises(BlobTooLarge), blobs.writer("big", max_bytes=10) as writer:
        writer.write(b"x" * 6)
        writer.write(b"x" * 5)

    assert not blobs.exists("big")
    assert files_under(blobs.root) == []
    with blobs.writer("fits", max_bytes=10) as writer:
        writer.write(b"x" * 10)
    assert blobs.size("fits") == 10


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", ".hidden", "a/.tmp-x.part",
     "a\\b", "a b", "ünicode", "a/", "x" * 513],
)  # fmt: skip
def test_unsafe_keys_are_rejected(blobs: LocalBlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)
    with pytest.raises(ValueError):
        blobs.writer(key)
    with pytest.raises(ValueError):
        blobs.open(key)


def test_symlink_out_of_the_root_is_rejected(blobs: LocalBlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    blobs.root.mkdir(parents=True)
    (blobs.root / "link").symlink_to(outside)

    with pytest.raises(ValueError, match="outside"):
        blobs.writer("link/file")


def test_missing_blobs(blobs: LocalBlobStore) -> None:
    assert not blobs.exists("nope")
    assert not blobs.delete("nope")
    with pytest.raises(BlobNotFound):
        blobs.open("nope")
    with pytest.raises(BlobNotFound):
        blobs.size("nope")


def test_delete(blobs: LocalBlobStore) -> None:
    with blobs.writer("a/b") as writer:
        writer.write(b"1")

    assert blobs.delete("a/b")
    assert not blobs.exists("a/b")


def test_a_writer_is_single_use(blobs: LocalBlobStore) -> None:
    writer = blobs.writer("k")
    with pytest.raises(RuntimeError):
        writer.write(b"outside the block")
    with writer:
        writer.write(b"1")
    with pytest.raises(RuntimeError), writer:
        pass
