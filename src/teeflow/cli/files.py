"""``teeflow seal`` / ``teeflow unseal``: encrypt a file under a fresh data key, and back.

Outputs are written to a temp file in the destination's directory, fsynced and renamed into
place only on success, so a failed unseal (tampered, truncated, wrong key) leaves no partial
plaintext behind. The data-key file is JSON, mode 0600::

    {"type": "teeflow.data-key", "version": 1, "algorithm": "AES-256-GCM",
     "key_id": "<hex, as in the sealed header>", "key": "<base64 of the 32-byte key>"}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO, cast

import typer

from teeflow.cli._output import emit, fail, progress
from teeflow.client.keyring import write_private_file
from teeflow.crypto import CryptoError, DataKey, IntegrityError, b64d, b64e, seal_stream
from teeflow.crypto import unseal_stream as _unseal_stream

__all__ = ["read_data_key", "register", "write_data_key"]

_KEY_TYPE = "teeflow.data-key"

JsonOut = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Force = Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")]


def write_data_key(path: Path, key: DataKey) -> None:
    """Write ``key`` to a new file (mode 0600); FileExistsError if ``path`` exists."""
    document = {
        "type": _KEY_TYPE,
        "version": 1,
        "algorithm": "AES-256-GCM",
        "key_id": key.key_id.hex(),
        "key": b64e(key.raw),
    }
    write_private_file(path, json.dumps(document, indent=2).encode("utf-8") + b"\n")


def read_data_key(path: Path) -> DataKey:
    """Read a key file written by :func:`write_data_key`; CryptoError if it is not one."""
    try:
        document = json.loads(path.read_bytes())
        if document["type"] != _KEY_TYPE or document["version"] != 1:
            raise CryptoError(f"{path} is not a teeflow data-key file")
        key = DataKey(b64d(document["key"]))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CryptoError(f"{path} is not a teeflow data-key file") from exc
    if key.key_id.hex() != document.get("key_id", key.key_id.hex()):
        raise CryptoError(f"{path} is damaged: its key does not match its key id")
    return key


class _CountingReader:
    """Passes reads through and reports how many bytes went by."""

    def __init__(self, src: BinaryIO, advance: Callable[[int], None]) -> None:
        self._src, self._advance = src, advance

    def readinto(self, buffer: memoryview) -> int:
        got = self._src.readinto(buffer)  # type: ignore[attr-defined]
        self._advance(got)
        return cast(int, got)

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size)
        self._advance(len(data))
        return data


@contextmanager
def _replace_on_success(path: Path, *, force: bool, private: bool) -> Iterator[BinaryIO]:
    """Yield a temp file beside ``path``; rename it over ``path`` only if the block succeeds."""
    if path.exists() and not force:
        fail(f"{path} exists; use --force to replace it")
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    tmp = Path(name)
    done = False
    try:
        with os.fdopen(fd, "wb") as out:
            if not private:  # ciphertext is not secret: the usual umask-based mode
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(out.fileno(), 0o666 & ~umask)
            yield out
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
        done = True
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def _input_size(path: Path) -> int:
    if not path.is_file():
        fail(f"{path} is not a readable file")
    return path.stat().st_size


def seal(
    src: Annotated[Path, typer.Argument(help="File to encrypt.", metavar="IN")],
    dst: Annotated[Path, typer.Argument(help="Sealed file to write.", metavar="OUT")],
    key_out: Annotated[
        Path, typer.Option("--key-out", help="Where to write the new data key (mode 0600).")
    ],
    force: Force = False,
    as_json: JsonOut = False,
) -> None:
    """Encrypt IN to OUT under a fresh data key, written to --key-out."""
    size = _input_size(src)
    if dst.exists() and not force:
        fail(f"{dst} exists; use --force to replace it")
    key = DataKey.generate()
    try:
        write_data_key(key_out, key)
    except FileExistsError:
        fail(f"{key_out} exists; a data-key file is never overwritten")
    except OSError as exc:
        fail(f"cannot write the key file {key_out}: {exc.strerror or exc}")
    done = False
    try:
        with (
            _replace_on_success(dst, force=force, private=False) as out,
            src.open("rb") as fin,
            progress(size, label="sealing", enabled=not as_json) as advance,
        ):
            info = seal_stream(cast(BinaryIO, _CountingReader(fin, advance)), out, key)
        done = True
    except OSError as exc:
        fail(f"sealing failed: {exc.strerror or exc}; nothing was written")
    finally:
        if not done:
            key_out.unlink(missing_ok=True)
    result = {
        "output": str(dst),
        "key_file": str(key_out),
        "key_id": key.key_id.hex(),
        "plaintext_size": info.plaintext_size,
        "ciphertext_size": info.ciphertext_size,
        "ciphertext_digest": info.ciphertext_digest,
    }
    emit(result, as_json=as_json, title="Sealed")


def unseal(
    src: Annotated[Path, typer.Argument(help="Sealed file to decrypt.", metavar="IN")],
    dst: Annotated[Path, typer.Argument(help="Plaintext file to write.", metavar="OUT")],
    key_file: Annotated[Path, typer.Option("--key", help="The data-key file from seal.")],
    force: Force = False,
    as_json: JsonOut = False,
) -> None:
    """Decrypt IN to OUT; on any tampering, exit non-zero and write nothing."""
    size = _input_size(src)
    try:
        key = read_data_key(key_file)
    except CryptoError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read the key file {key_file}: {exc.strerror or exc}")
    try:
        with (
            _replace_on_success(dst, force=force, private=True) as out,
            src.open("rb") as fin,
            progress(size, label="unsealing", enabled=not as_json) as advance,
        ):
            plaintext_size = _unseal_stream(cast(BinaryIO, _CountingReader(fin, advance)), out, key)
    except IntegrityError as exc:
        fail(f"unseal failed: {exc}; no output was written")
    except OSError as exc:
        fail(f"unseal failed: {exc.strerror or exc}; no output was written")
    result = {"output": str(dst), "key_id": key.key_id.hex(), "plaintext_size": plaintext_size}
    emit(result, as_json=as_json, title="Unsealed")


def register(app: typer.Typer) -> None:
    """Add the top-level ``seal`` and ``unseal`` commands to ``app``."""
    app.command("seal")(seal)
    app.command("unseal")(unseal)
