"""A member's uploads: data sealed on its own machine, function code sealed or plain.

Only ciphertext leaves the machine: :func:`upload_dataset` checks a table or image file first
(client/_schema.py), seals it under a fresh key into a private temporary file, keeps the key and
schema summary in the member's home, then streams the ciphertext up with its content digest.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from teeflow.client._schema import checked_schema
from teeflow.crypto import DataKey, seal_stream, sha256_hex

if TYPE_CHECKING:
    from teeflow.client._client import Client

__all__ = ["upload_dataset", "upload_function"]


def upload_dataset(
    client: Client,
    source: Path | bytes,
    *,
    name: str,
    kind: str = "other",
    description: str = "",
    rows: int | None = None,
) -> dict[str, Any]:
    """Seal ``source`` locally under a fresh key and upload only the ciphertext.

    ``rows`` publishes a schema summary (the table's row count) that the other participants
    of a task using it see in their review; without it they see "unknown".

    A table or image file (``kind`` table or images, or a .csv/.parquet/.zip/.npz file) is
    checked here first (client/_schema.py): ClientError says what is wrong, and its schema
    summary is kept in this member's home (published only by :meth:`Client.publish_schema`).
    """
    schema = checked_schema(source, kind=kind, name=name)  # before anything leaves this machine
    key = DataKey.generate()
    body: dict[str, Any] = {"name": name, "kind": kind, "description": description}
    if rows is not None:
        body["rows"] = rows
    record = client._call("POST", "/v1/datasets", json=body)
    sealed = _TempSealed(client.home.root / "tmp")
    try:
        with _open_source(source) as handle:
            info = seal_stream(handle, sealed.handle, key)
        sealed.handle.seek(0)
        client.home.save_dataset_key(
            record["id"],
            key,
            ciphertext_sha256=info.ciphertext_digest,
            name=name,
            schema=schema,
        )
        result: dict[str, Any] = client._call(
            "PUT",
            f"/v1/datasets/{record['id']}/content",
            content=_chunks(sealed.handle),
            headers={
                # The content digest (BLAKE3 for new files; docs/sealed-format.md).
                "X-Content-SHA256": info.ciphertext_digest,
                "Content-Length": str(info.ciphertext_size),
            },
        )
    finally:
        sealed.close()
    return result


def upload_function(
    client: Client,
    source: str,
    *,
    name: str,
    sealed: bool = True,
    description: str = "",
    inputs: list[str] | None = None,
    outputs: list[str] | Mapping[str, Mapping[str, Any]] | None = None,
    arguments: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Register ``source`` as a function (see :meth:`Client.upload_function`): its code
    uploaded as a sealed dataset (``sealed``) or in plain, bound by its SHA-256."""
    code = source.encode("utf-8")
    if sealed:
        dataset = upload_dataset(client, code, name=f"{name}.py", kind="function")
    else:
        dataset = _upload_plain(client, code, name=f"{name}.py")
    body = {
        "name": name,
        "description": description,
        "code_sha256": sha256_hex(code),
        "sealed": sealed,
        "source_dataset_id": dataset["id"],
        "inputs": inputs or [],
        "outputs": (
            {k: dict(v) for k, v in outputs.items()}
            if isinstance(outputs, Mapping)
            else list(outputs or [])
        ),
        "arguments": arguments or {},
    }
    result: dict[str, Any] = client._call("POST", "/v1/functions", json=body)
    return result


def _upload_plain(client: Client, code: bytes, *, name: str) -> dict[str, Any]:
    record = client._call("POST", "/v1/datasets", json={"name": name, "kind": "function"})
    result: dict[str, Any] = client._call(
        "PUT",
        f"/v1/datasets/{record['id']}/content",
        content=code,
        headers={"X-Content-SHA256": sha256_hex(code)},
    )
    return result


class _TempSealed:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        import tempfile

        self.handle: BinaryIO = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        self.handle.close()


def _open_source(source: Path | bytes) -> BinaryIO:
    if isinstance(source, bytes):
        return io.BytesIO(source)
    return Path(source).open("rb")


def _chunks(handle: BinaryIO, size: int = 1 << 20) -> Any:
    while block := handle.read(size):
        yield block
