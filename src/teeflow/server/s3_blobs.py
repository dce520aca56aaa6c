"""Blob storage in an S3-compatible object store (the production deployment).

The same guarantee as :class:`~teeflow.server.blobs.LocalBlobStore`: a blob is either absent or
complete. A writer buffers one part at a time (bounded memory), hashes as it goes and streams full
parts into a multipart upload; the object becomes visible only when a clean ``with`` exit completes
the upload (or, for a blob smaller than one part, puts it in one request). An exception, an
interruption or an oversize upload aborts the multipart upload instead, so nothing is stored and an
older object under the key survives. If even the abort fails (the store is unreachable), the
pending parts stay invisible; a bucket lifecycle rule ``AbortIncompleteMultipartUpload`` removes
them.

Credentials come from boto3's standard chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, instance roles ...), never from teeflow's settings. Errors are translated to
:class:`~teeflow.server.blobs.BlobError` with the S3 error code and what to check, never with a
credential or the server's free-text message.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from teeflow.crypto import SealedDigest
from teeflow.server.blobs import BlobError, BlobNotFound, BlobTooLarge, validate_key

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["DEFAULT_PART_SIZE", "S3BlobStore"]

DEFAULT_PART_SIZE = 8 << 20
"""Bytes per multipart part: S3 requires at least 5 MiB for every part but the last."""

_MAX_OBJECT_KEY = 1024  # S3's limit on an object key, in bytes (keys here are ASCII)
_MAX_BLOB_KEY = 512  # validate_key's limit
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_REFUSED = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
)
_log = logging.getLogger(__name__)


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "") or "unknown"


class S3BlobStore:
    """Blobs as objects ``PREFIX/KEY`` in one bucket of an S3-compatible store."""

    def __init__(
        self,
        client: S3Client,
        *,
        bucket: str,
        prefix: str = "",
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        """``client`` is a boto3 S3 client; ``part_size`` below 5 MiB only suits test servers."""
        if not bucket:
            raise ValueError("an S3 blob store needs a bucket name")
        if part_size <= 0:
            raise ValueError("part_size must be positive")
        prefix = prefix.strip("/")
        if prefix:
            if len(prefix) + 1 + _MAX_BLOB_KEY > _MAX_OBJECT_KEY:
                raise ValueError("the S3 prefix is too long for S3's 1024-byte object keys")
            try:
                validate_key(prefix)
            except ValueError as exc:
                raise ValueError(f"invalid S3 prefix: {exc}") from None
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._part_size = part_size

    @classmethod
    def connect(
        cls,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> S3BlobStore:
        """A store with its own client; credentials from boto3's standard chain."""
        config = Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 3},
            # Integrity is the sealed format's and the pinned SHA-256's job; the newer default
            # checksum headers are rejected by some S3-compatible servers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        return cls(client, bucket=bucket, prefix=prefix, part_size=part_size)

    @property
    def bucket(self) -> str:
        return self._bucket

    def object_key(self, key: str) -> str:
        """The S3 object key of blob ``key``; :class:`ValueError` if ``key`` is not safe."""
        return "/".join((self._prefix, *validate_key(key)) if self._prefix else validate_key(key))

    def check(self) -> None:
        """Fail now, with what to fix, if the bucket is missing or out of reach."""
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND | {"NoSuchBucket"}:
                raise BlobError(
                    f"S3 bucket {self._bucket!r} does not exist: create it, or set "
                    "TEEFLOW_S3_BUCKET (and TEEFLOW_S3_ENDPOINT_URL) to an existing one"
                ) from exc
            raise self._error(exc, "reach the bucket") from exc
        except BotoCoreError as exc:
            raise self._error(exc, "reach the bucket") from exc

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise BlobNotFound(f"no blob {key!r}") from exc
            raise self._error(exc, action) from exc
        except BotoCoreError as exc:
            raise self._error(exc, action) from exc

    def _error(self, exc: ClientError | BotoCoreError, action: str) -> BlobError:
        where = f"S3 bucket {self._bucket!r}"
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code == "NoSuchBucket":
                return BlobError(f"could not {action}: {where} does not exist (TEEFLOW_S3_BUCKET)")
            if code in _REFUSED:
                return BlobError(
                    f"{where} refused to {action} ({code}): check the AWS credentials in the "
                    "server's environment and their permissions on the bucket"
                )
            return BlobError(f"could not {action} in {where}: S3 error {code}")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return BlobError(
                f"could not {action} in {where}: no usable AWS credentials; set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or another source boto3 reads)"
            )
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            return BlobError(
                f"could not {action} in {where}: the S3 endpoint is unreachable; check "
                "TEEFLOW_S3_ENDPOINT_URL and the network"
            )
        return BlobError(f"could not {action} in {where}: {type(exc).__name__}")

    def writer(self, key: str, *, max_bytes: int | None = None) -> _S3Writer:
        """A context manager that streams a new blob to ``key`` (replacing any old one on commit).

        ``with store.writer(key) as w: w.write(chunk)``; then ``w.digest`` and ``w.size``.
        """
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        return _S3Writer(self, self.object_key(key), max_bytes)

    def open(self, key: str) -> BinaryIO:
        """The blob as a streaming binary file (``with``, ``read(n)``); :class:`BlobNotFound`."""
        object_key = self.object_key(key)
        with self._errors("read the blob", key):
            body = self._client.get_object(Bucket=self._bucket, Key=object_key)["Body"]
        return io.BufferedReader(_S3Reader(self, body, key), buffer_size=1 << 20)

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except BlobNotFound:
            return False
        return True

    def delete(self, key: str) -> bool:
        """Delete the blob; True if there was one."""
        if not self.exists(key):
            return False
        with self._errors("delete the blob", key):
            self._client.delete_object(Bucket=self._bucket, Key=self.object_key(key))
        return True

    def size(self, key: str) -> int:
        object_key = self.object_key(key)
        with self._errors("read the blob's size", key):
            return self._client.head_object(Bucket=self._bucket, Key=object_key)["ContentLength"]


class _S3Reader(io.RawIOBase):
    """A botocore ``StreamingBody`` as a raw binary stream, with errors as :class:`BlobError`."""

    def __init__(self, store: S3BlobStore, body: StreamingBody, key: str) -> None:
        super().__init__()
        self._store = store
        self._body = body
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with self._store._errors("read the blob", self._key):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class _S3Writer:
    def __init__(self, store: S3BlobStore, object_key: str, max_bytes: int | None) -> None:
        self._store = store
        self._client = store._client
        self._bucket = store._bucket
        self._key = object_key
        self._part_size = store._part_size
        self._max_bytes = max_bytes
        self._hash = SealedDigest()  # BLAKE3 or SHA-256, as the sealed file's header names
        self._written = 0
        self._buffer = bytearray()  # at most one part
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._used = False
        self._open = False
        self._committed = False

    def __enter__(self) -> _S3Writer:
        if self._used:
            raise RuntimeError("a blob writer can be used once")
        self._used = self._open = True
        return self

    def write(self, data: bytes) -> None:
        if not self._open:
            raise RuntimeError("write() outside the writer's `with` block")
        if self._max_bytes is not None and self._written + len(data) > self._max_bytes:
            self._discard()
            raise BlobTooLarge(f"blob is larger than the limit of {self._max_bytes} bytes")
        self._hash.update(data)
        self._written += len(data)
        view = memoryview(data)
        while view:
            room = self._part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == self._part_size:
                self._upload_part()

    def hexdigest(self) -> str:
        """Content digest of what was written so far (crypto.SealedDigest): check it before the
        block ends to refuse a blob."""
        return self._hash.hexdigest()

    def _upload_part(self) -> None:
        try:
            if self._upload_id is None:
                created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            part = bytes(self._buffer)
            self._buffer.clear()
            uploaded = self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
            )
            self._parts.append({"ETag": uploaded["ETag"], "PartNumber": number})
        except (ClientError, BotoCoreError) as exc:
            self._discard()
            raise self._store._error(exc, "upload the blob") from exc
        except BaseException:
            self._discard()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or not self._open:
            self._discard()
            return
        try:
            if self._upload_id is None:
                self._client.put_object(
                    Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer)
                )
            else:
                if self._buffer:
                    self._upload_part()
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except (ClientError, BotoCoreError) as error:
            self._discard()
            raise self._store._error(error, "store the blob") from error
        except BaseException:
            self._discard()
            raise
        self._upload_id = None
        self._buffer = bytearray()
        self._open = False
        self._committed = True

    def _discard(self) -> None:
        self._open = False
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=upload_id
            )
        except (ClientError, BotoCoreError) as exc:
            # The caller's error matters more; the parts stay invisible until a lifecycle rule.
            reason = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            _log.warning("could not abort the S3 multipart upload of %r: %s", self._key, reason)

    @property
    def digest(self) -> str:
        if not self._committed:
            raise RuntimeError("the digest is known only after the blob has been committed")
        return self._hash.hexdigest()

    @property
    def size(self) -> int:
        if not self._committed:
            raise RuntimeError("size is known only after the blob has been committed")
        return self._written
