"""Blob stores: a blob is complete or absent, keys cannot escape the store, uploads are capped.

The contract tests run against every store: the local directory and S3, the latter against moto's
S3 server on loopback HTTP with a part size small enough that most blobs are multipart uploads.
"""

from __future__ import annotations

import hashlib
import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from moto.server import ThreadedMotoServer
from pydantic import ValidationError

from teeflow.crypto import DataKey, seal_bytes
from teeflow.server.blobs import (
    BlobError,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    LocalBlobStore,
    open_blob_store,
    validate_key,
)
from teeflow.server.launcher import free_port
from teeflow.server.s3_blobs import S3BlobStore
from teeflow.server.settings import Settings

PART = 256  # bytes per multipart part in these tests (moto is told to accept parts this small)
PREFIX = "deployment-a"
ACCESS_KEY = "AKIATEEFLOWCANARY000"
SECRET_KEY = "teeflow/secret+canary/DO-NOT-LEAK-0123456789"

Stored = Callable[[], list[str]]


@dataclass
class Backend:
    store: BlobStore
    stored: Stored
    """Every blob, partial file or pending upload the store holds, keyed like blobs."""


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment (boto3's standard chain), and no other AWS config."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _client(endpoint_url: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint_url, config=Config(retries={"max_attempts": 1}))


@pytest.fixture
def s3(moto_url: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    # S3 (and moto) refuse non-final parts under 5 MiB; moto reads this limit once, at import.
    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", PART)
    return _client(moto_url)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"teeflow-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


def _pending_uploads(s3: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def _objects(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        local = LocalBlobStore(tmp_path / "blobs")

        def local_files() -> list[str]:
            files = (p for p in local.root.rglob("*") if p.is_file())
            return sorted(p.relative_to(local.root).as_posix() for p in files)

        return Backend(local, local_files)

    s3 = request.getfixturevalue("s3")
    bucket = request.getfixturevalue("bucket")

    def objects_and_uploads() -> list[str]:
        keys = [k.removeprefix(f"{PREFIX}/") for k in _objects(s3, bucket)]
        pending = [f"(pending) {k}" for k in _pending_uploads(s3, bucket)]
        return sorted(keys + pending)

    store = S3BlobStore(s3, bucket=bucket, prefix=PREFIX, part_size=PART)
    return Backend(store, objects_and_uploads)


@pytest.fixture
def blobs(backend: Backend) -> BlobStore:
    return backend.store


@pytest.fixture
def stored(backend: Backend) -> Stored:
    return backend.stored


# --- the contract: every store ----------------------------------------------------------------


def test_write_streams_hashes_and_commits(blobs: BlobStore, stored: Stored) -> None:
    chunks = [b"a" * 1000, b"b" * 10, b""]

    with blobs.writer("datasets/d1/content") as writer:
        for chunk in chunks:
            writer.write(chunk)
        assert not blobs.exists("datasets/d1/content")  # nothing visible before commit
        assert writer.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()

    assert writer.digest == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert writer.size == blobs.size("datasets/d1/content") == 1010
    with blobs.open("datasets/d1/content") as handle:
        assert handle.read() == b"".join(chunks)
    assert stored() == ["datasets/d1/content"]


def test_a_sealed_v2_blob_is_recorded_by_its_blake3_digest(blobs: BlobStore) -> None:
    sealed = seal_bytes(b"x" * 3000, DataKey.generate(), chunk_size=1024)
    old = seal_bytes(b"x" * 3000, DataKey.generate(), chunk_size=1024, digest="sha256")

    with blobs.writer("new") as writer:
        for begin in range(0, len(sealed), 5):  # the header arrives in pieces
            writer.write(sealed[begin : begin + 5])
    with blobs.writer("old") as old_writer:
        old_writer.write(old)

    assert writer.digest == "blake3:" + blake3.blake3(sealed).hexdigest()
    assert old_writer.digest == hashlib.sha256(old).hexdigest()


def test_reads_stream_in_requested_sizes(blobs: BlobStore) -> None:
    data = bytes(range(256)) * 5
    with blobs.writer("k") as writer:
        writer.write(data)

    with blobs.open("k") as handle:
        first, second, rest, end = handle.read(100), handle.read(1000), handle.read(), handle.read()

    assert (first, second, rest, end) == (data[:100], data[100:1100], data[1100:], b"")
    assert handle.closed


def test_an_empty_blob(blobs: BlobStore) -> None:
    with blobs.writer("empty"):
        pass

    assert blobs.size("empty") == 0
    with blobs.open("empty") as handle:
        assert handle.read() == b""


def test_an_exception_leaves_nothing(blobs: BlobStore, stored: Stored) -> None:
    with pytest.raises(RuntimeError), blobs.writer("k") as writer:
        writer.write(b"partial" * 100)  # more than one part: the S3 upload has begun
        raise RuntimeError("client went away")

    assert not blobs.exists("k")
    assert stored() == []
    with pytest.raises(RuntimeError, match="after the blob has been committed"):
        _ = writer.digest


def test_an_interrupted_write_keeps_the_old_blob(blobs: BlobStore, stored: Stored) -> None:
    with blobs.writer("k") as writer:
        writer.write(b"old")

    with pytest.raises(KeyboardInterrupt), blobs.writer("k") as writer:
        writer.write(b"new but incomplete" * 100)
        raise KeyboardInterrupt

    with blobs.open("k") as handle:
        assert handle.read() == b"old"
    assert stored() == ["k"]


def test_a_rewrite_replaces_the_blob_on_commit(blobs: BlobStore, stored: Stored) -> None:
    with blobs.writer("k") as writer:
        writer.write(b"old" * 200)

    with blobs.writer("k") as writer:
        writer.write(b"new")
        with blobs.open("k") as handle:
            assert handle.read() == b"old" * 200  # the old blob until the new one commits

    with blobs.open("k") as handle:
        assert handle.read() == b"new"
    assert stored() == ["k"]


def test_max_bytes_stops_the_upload_mid_stream(blobs: BlobStore, stored: Stored) -> None:
    with pytest.raises(BlobTooLarge), blobs.writer("big", max_bytes=1000) as writer:
        writer.write(b"x" * 600)
        writer.write(b"x" * 401)

    assert not blobs.exists("big")
    assert stored() == []
    with blobs.writer("fits", max_bytes=1000) as writer:
        writer.write(b"x" * 1000)
    assert blobs.size("fits") == 1000


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", ".hidden", "a/.tmp-x.part",
     "a\\b", "a b", "ünicode", "a/", "x" * 513],
)  # fmt: skip
def test_unsafe_keys_are_rejected(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)
    for operation in (blobs.writer, blobs.open, blobs.exists, blobs.delete, blobs.size):
        with pytest.raises(ValueError):
            operation(key)


def test_missing_blobs(blobs: BlobStore) -> None:
    assert not blobs.exists("nope")
    assert not blobs.delete("nope")
    with pytest.raises(BlobNotFound):
        blobs.open("nope")
    with pytest.raises(BlobNotFound):
        blobs.size("nope")


def test_delete(blobs: BlobStore, stored: Stored) -> None:
    with blobs.writer("a/b") as writer:
        writer.write(b"1")

    assert blobs.delete("a/b")
    assert not blobs.exists("a/b")
    assert stored() == []


def test_a_writer_is_single_use(blobs: BlobStore) -> None:
    writer = blobs.writer("k")
    with pytest.raises(RuntimeError):
        writer.write(b"outside the block")
    with writer:
        writer.write(b"1")
    with pytest.raises(RuntimeError), writer:
        pass


# --- local only -------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_symlink_out_of_the_root_is_rejected(local: LocalBlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    local.root.mkdir(parents=True)
    (local.root / "link").symlink_to(outside)

    with pytest.raises(ValueError, match="outside"):
        local.writer("link/file")


def test_sweep_removes_only_stale_temporary_files(local: LocalBlobStore) -> None:
    with local.writer("datasets/d1/content") as writer:
        writer.write(b"complete")
    stale = local.root / "datasets" / "d2" / ".tmp-crashed.part"
    fresh = local.root / "datasets" / "d3" / ".tmp-uploading.part"
    for path in (stale, fresh):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"half an upload")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    assert local.sweep_temporary(older_than_s=3600) == 1

    assert not stale.exists() and fresh.exists()
    assert local.exists("datasets/d1/content")
    assert local.sweep_temporary(older_than_s=0) == 1
    assert not fresh.exists()
    with local.open("datasets/d1/content") as handle:
        assert handle.read() == b"complete"


def test_local_writes_go_to_a_hidden_temp_file_beside_the_blob(local: LocalBlobStore) -> None:
    with local.writer("a/b") as writer:
        writer.write(b"1")
        during = [p.name for p in (local.root / "a").iterdir()]

    assert len(during) == 1 and during[0].startswith(".tmp-") and during[0].endswith(".part")
    with pytest.raises(ValueError):
        validate_key(f"a/{during[0]}")  # no key can name a temporary file
    assert [p.name for p in (local.root / "a").iterdir()] == ["b"]


# --- S3 only ----------------------------------------------------------------------------------


@pytest.fixture
def s3_store(s3: Any, bucket: str) -> S3BlobStore:
    return S3BlobStore(s3, bucket=bucket, prefix=PREFIX, part_size=PART)


def _record_part_sizes(s3: Any) -> list[int]:
    sizes: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["Body"]))

    s3.meta.events.register("provide-client-params.s3.UploadPart", record)
    return sizes


def test_a_multipart_blob_round_trips_in_bounded_parts(s3: Any, s3_store: S3BlobStore) -> None:
    data = uuid.uuid4().bytes * 50  # 800 bytes: parts of 256, 256, 256 and 32
    part_sizes = _record_part_sizes(s3)

    with s3_store.writer("model/weights") as writer:
        for start in range(0, len(data), 70):  # chunks that straddle part boundaries
            writer.write(data[start : start + 70])

    assert part_sizes == [PART, PART, PART, 32]
    etag = s3.head_object(Bucket=s3_store.bucket, Key=f"{PREFIX}/model/weights")["ETag"]
    assert etag.strip('"').endswith("-4")  # S3's ETag of a 4-part upload
    assert writer.digest == hashlib.sha256(data).hexdigest()
    with s3_store.open("model/weights") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == writer.digest


def test_a_small_blob_is_one_put(s3: Any, s3_store: S3BlobStore) -> None:
    part_sizes = _record_part_sizes(s3)

    with s3_store.writer("small") as writer:
        writer.write(b"x" * (PART - 1))

    assert part_sizes == []
    assert "-" not in s3.head_object(Bucket=s3_store.bucket, Key=f"{PREFIX}/small")["ETag"]
    assert _pending_uploads(s3, s3_store.bucket) == []


def test_a_failed_part_aborts_the_upload(s3: Any, s3_store: S3BlobStore) -> None:
    part_sizes = _record_part_sizes(s3)

    def fail_third_part(params: dict[str, Any], **_: Any) -> None:
        if params["PartNumber"] == 3:
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    s3.meta.events.register("provide-client-params.s3.UploadPart", fail_third_part)

    with pytest.raises(BlobError, match="unreachable"), s3_store.writer("k") as writer:
        writer.write(b"x" * PART * 4)

    assert len(part_sizes) == 3
    assert _objects(s3, s3_store.bucket) == []
    assert _pending_uploads(s3, s3_store.bucket) == []


def test_an_oversize_upload_aborts_after_parts_were_sent(s3: Any, s3_store: S3BlobStore) -> None:
    part_sizes = _record_part_sizes(s3)

    with pytest.raises(BlobTooLarge), s3_store.writer("big", max_bytes=3 * PART) as writer:
        writer.write(b"x" * 2 * PART)
        writer.write(b"x" * (PART + 1))

    assert part_sizes == [PART, PART]
    assert _objects(s3, s3_store.bucket) == []
    assert _pending_uploads(s3, s3_store.bucket) == []


def test_keys_are_joined_under_the_prefix(s3: Any) -> None:
    store = S3BlobStore(s3, bucket="b", prefix="/team/prod/")

    assert store.object_key("datasets/d1/content") == "team/prod/datasets/d1/content"
    assert S3BlobStore(s3, bucket="b").object_key("a/b") == "a/b"
    for prefix in ("../x", "a/../b", "a//b", ".hidden", "a b", "x" * 600):
        with pytest.raises(ValueError, match="prefix"):
            S3BlobStore(s3, bucket="b", prefix=prefix)


def _full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def test_a_missing_bucket_is_a_clear_error_without_credentials(s3: Any) -> None:
    store = S3BlobStore(s3, bucket="no-such-bucket", part_size=PART)

    with pytest.raises(BlobError, match="'no-such-bucket' does not exist") as on_check:
        store.check()
    with pytest.raises(BlobError, match="does not exist") as on_write, store.writer("k") as w:
        w.write(b"x")
    with pytest.raises(BlobError, match="does not exist") as on_read:
        store.open("k")

    for error in (on_check.value, on_write.value, on_read.value):
        assert not isinstance(error, BlobNotFound)
        assert ACCESS_KEY not in _full_text(error) and SECRET_KEY not in _full_text(error)


def test_an_unreachable_endpoint_is_a_clear_error_without_credentials(aws_env: None) -> None:
    store = S3BlobStore(_client(f"http://127.0.0.1:{free_port()}"), bucket="b")

    with (
        pytest.raises(BlobError, match="TEEFLOW_S3_ENDPOINT_URL") as on_write,
        store.writer("k") as w,
    ):
        w.write(b"x")
    with pytest.raises(BlobError, match="unreachable") as on_check:
        store.check()

    for error in (on_write.value, on_check.value):
        assert ACCESS_KEY not in _full_text(error) and SECRET_KEY not in _full_text(error)


# --- selection by settings --------------------------------------------------------------------


def test_local_is_the_default(tmp_path: Path) -> None:
    store = open_blob_store(Settings(data_dir=tmp_path))

    assert isinstance(store, LocalBlobStore)
    assert store.root == (tmp_path / "blobs").resolve()


def test_s3_without_a_bucket_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TEEFLOW_BLOB_STORE", "s3")

    with pytest.raises(ValidationError, match="set TEEFLOW_S3_BUCKET"):
        Settings(data_dir=tmp_path)


def test_s3_is_selected_by_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto_url: str, s3: Any, bucket: str
) -> None:
    for name, value in {
        "TEEFLOW_BLOB_STORE": "s3",
        "TEEFLOW_S3_ENDPOINT_URL": moto_url,
        "TEEFLOW_S3_BUCKET": bucket,
        "TEEFLOW_S3_PREFIX": "env-prefix",
        "TEEFLOW_S3_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)

    store = open_blob_store(Settings(data_dir=tmp_path))
    with store.writer("a/b") as writer:
        writer.write(b"ciphertext")

    assert isinstance(store, S3BlobStore)
    assert _objects(s3, bucket) == ["env-prefix/a/b"]
    assert not (tmp_path / "blobs").exists()


def test_s3_selected_with_a_missing_bucket_fails_at_start(
    moto_url: str, aws_env: None, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path, blob_store="s3", s3_endpoint_url=moto_url, s3_bucket="missing"
    )

    with pytest.raises(BlobError, match="'missing' does not exist: create it"):
        open_blob_store(settings)
