"""Secret files created once: racing processes all read the winner's bytes, never a half-written
file (executors booting together on a fresh platform directory used to disagree on its secret)."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from teeflow.crypto import private_directory, read_or_create_secret


def _race(args: tuple[str, int]) -> bytes:
    path, index = args
    return read_or_create_secret(Path(path), lambda: os.urandom(4096) + bytes([index]))


def test_racing_processes_agree_on_one_complete_secret(tmp_path: Path) -> None:
    path = tmp_path / "platform" / "sealing-secret"
    with multiprocessing.get_context("fork").Pool(8) as pool:
        results = pool.map(_race, [(str(path), i) for i in range(32)])

    assert len(set(results)) == 1
    assert len(results[0]) == 4097
    assert path.read_bytes() == results[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["sealing-secret"]  # no temporary left


def test_an_existing_secret_is_returned_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    first = read_or_create_secret(path, lambda: b"first")
    assert read_or_create_secret(path, lambda: b"second") == first == b"first"


def test_secret_and_its_new_directories_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "a" / "b" / "secret"
        read_or_create_secret(path, lambda: b"key")
    finally:
        os.umask(old)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_private_directory_tightens_only_when_asked(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)

    private_directory(loose)
    kept = stat.S_IMODE(loose.stat().st_mode)
    private_directory(loose, tighten=True)

    assert kept == 0o755
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
