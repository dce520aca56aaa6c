"""Private files and directories: secrets created once, atomically, by whichever of several racing
processes comes first, in directories only their owner may enter."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["private_directory", "read_or_create_secret"]


def private_directory(path: Path, *, tighten: bool = False) -> Path:
    """Create ``path`` and any missing parent as directories of mode 0700, whatever the umask.

    Directories that already exist keep their mode, but for ``path`` itself when ``tighten``
    (its group and other bits are then cleared). Returns ``path``.
    """
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a racing process made it first
            directory.mkdir(mode=0o700)
            directory.chmod(0o700)
    if tighten and path.stat().st_mode & 0o077:
        path.chmod(path.stat().st_mode & 0o700)
    return path


def read_or_create_secret(path: Path, make: Callable[[], bytes]) -> bytes:
    """The contents of ``path``; if it does not exist, ``make()`` is written there (mode 0600).

    The bytes go to a private temporary file first and are linked into place, so a process racing
    to create the same file never reads it half-written: the first link wins and every process
    returns the winner's bytes.
    """
    path = Path(path)
    if path.exists():
        return path.read_bytes()
    private_directory(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(make())
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its secret
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_bytes()
