"""The sandbox's own file system: a minimal root, built from an allow-list, then pivoted into.

Runs in the sandbox child while it is still root, inside the fresh mount namespace ``unshare``
gave it, before it drops to ``nobody`` (:func:`drop_privileges`). The new root is an empty tmpfs
holding only:

- read-only binds of the system directories (``/usr``, the ``/lib`` and ``/bin`` links), a few
  public ``/etc`` files the dynamic loader needs, and every directory the child's own imports
  come from (its ``sys.prefix`` and ``sys.path``, the teeflow package), each at its own path, so
  the function imports the same code wherever teeflow is installed, even under a directory
  ``nobody`` cannot walk;
- ``/dev/null``, ``zero``, ``full``, ``random``, ``urandom``; a fresh ``/proc`` of its own PID
  namespace;
- its own empty tmpfs ``/tmp``, ``/var/tmp`` and ``/dev/shm``, gone when the namespace ends
  (where teeflow itself is installed under one of them, its mount point shows there);
- the task's scratch directory at :data:`SCRATCH`, the only host directory it may write.

Everything else of the host (the platform's data directory, other tasks' scratch, the host's
``/tmp`` and ``/dev/shm``) is not in the tree at all: ``pivot_root`` detaches the old root. See
docs/decisions/0008-sandbox-private-root.md for why an allow-list and not a deny-list.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "SCRATCH",
    "IsolationError",
    "RunDir",
    "code_paths",
    "drop_privileges",
    "enter_private_root",
    "run_dir",
]

SCRATCH = "/scratch"
SYSTEM_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group")
DEVICES = ("null", "zero", "full", "random", "urandom")
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")  # noqa: S108 - fresh tmpfs mounts in the sandbox

# <linux/mount.h>, <sys/prctl.h>
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MNT_DETACH = 0x2
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
# statvfs f_flag bits that a read-only remount must keep (ST_* -> MS_*).
_KEPT_FLAGS = {os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: 0x400, os.ST_NODIRATIME: 0x800}


class IsolationError(Exception):
    """The child could not build its private file system or drop its privileges."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise IsolationError(f"{what}: {os.strerror(errno)}")


def _encode(value: str | None) -> bytes | None:
    return value.encode() if value is not None else None


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    result = _libc().mount(
        _encode(source), target.encode(), _encode(fstype), ctypes.c_ulong(flags), _encode(data)
    )
    _check(result, f"mount {source or fstype or ''} on {target}")


def _bind(source: str, target: str, *, read_only: bool, root: str) -> None:
    place = Path(target)
    parent = str(place.parent.resolve())
    if parent != root and not parent.startswith(root + "/"):
        # an absolute symbolic link on the way would put the mount point on the host
        raise IsolationError(f"{source} is reached through a link that leaves the sandbox")
    if Path(source).is_dir():
        place.mkdir(parents=True, exist_ok=True)
    else:
        place.parent.mkdir(parents=True, exist_ok=True)
        place.touch()
    _mount(source, target, None, MS_BIND)
    if read_only:
        kept = os.statvfs(source).f_flag
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        flags |= sum(ms for st, ms in _KEPT_FLAGS.items() if kept & st)
        _mount(None, target, None, flags)


def _outermost(paths: Iterable[str]) -> list[str]:
    """Absolute, existing paths, without those another one already contains on the same mount."""
    chosen: list[Path] = []
    candidates = {Path(os.path.normpath(p)) for p in paths if p and Path(p).is_absolute()}
    for path in sorted(candidates):
        if not path.exists():
            continue
        parent = next((c for c in chosen if path.is_relative_to(c)), None)
        if parent is not None and parent.stat().st_dev == path.stat().st_dev:
            continue
        chosen.append(path)
    return [str(path) for path in chosen]


def code_paths() -> list[str]:
    """Where this interpreter's imports come from: prefixes, ``sys.path``, the teeflow package
    (an editable install maps it from outside ``sys.path``)."""
    package = Path(__file__).parent.parent  # teeflow/, not imported: its __init__ pulls in more
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return _outermost([*prefixes, *sys.path, str(package)])


def enter_private_root(root: str, scratch: str, *, tmpfs_bytes: int) -> None:
    """Build the sandbox's root on the empty directory ``root`` and ``pivot_root`` into it.

    Needs CAP_SYS_ADMIN in a mount namespace of its own. Afterwards ``/`` is the new root (read
    only), the working directory is :data:`SCRATCH` (``scratch`` of the host), and ``/tmp``,
    ``/var/tmp`` and ``/dev/shm`` are each an empty tmpfs of at most ``tmpfs_bytes``.
    Raises :class:`IsolationError`.
    """
    syscall = _SYS_PIVOT_ROOT.get(platform.machine())
    if syscall is None:
        raise IsolationError(f"pivot_root is not known on {platform.machine()}")
    root = str(Path(root).resolve())
    old_umask = os.umask(0o022)  # mount points every user may walk, whatever the executor's umask
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates to the host
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        for path in SYSTEM_PATHS:
            if Path(path).is_symlink():
                Path(root + path).symlink_to(Path(path).readlink())
            elif Path(path).is_dir():
                _bind(path, root + path, read_only=True, root=root)
        # before the code: teeflow installed under /tmp must show through its private /tmp
        for path in PRIVATE_TMP:
            Path(root + path).mkdir(parents=True, exist_ok=True)
            options = f"mode=1777,size={tmpfs_bytes},nr_inodes=65536"
            _mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, options)
        for path in code_paths():
            _bind(path, root + path, read_only=True, root=root)
        for name in ETC_FILES:
            if Path("/etc", name).exists():
                _bind(f"/etc/{name}", f"{root}/etc/{name}", read_only=True, root=root)
        for name in DEVICES:
            _bind(f"/dev/{name}", f"{root}/dev/{name}", read_only=False, root=root)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
            Path(root, "dev", name).symlink_to(target)
        _bind(scratch, root + SCRATCH, read_only=False, root=root)
        Path(root, "proc").mkdir()
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        # pivot_root(".", ".") stacks the old root under the new one; detaching it leaves no
        # path back to the host's files (the runc / LXC idiom, pivot_root(2) NOTES).
        os.chdir(root)
        _check(_libc().syscall(syscall, b".", b"."), "pivot_root")
        _check(_libc().umount2(b".", MNT_DETACH), "detach the host's root")
        os.chdir("/")
        _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.chdir(SCRATCH)
    except OSError as exc:
        raise IsolationError(f"building the private root failed: {exc.strerror}") from None
    finally:
        os.umask(old_umask)


@dataclasses.dataclass(frozen=True)
class RunDir:
    """One run's directory in the task's scratch (0700, root): ``work`` becomes the child's
    writable :data:`SCRATCH`, ``root`` the mount point of its private root."""

    path: Path

    @property
    def work(self) -> Path:
        return self.path / "work"

    @property
    def root(self) -> Path:
        return self.path / "root"


@contextmanager
def run_dir(scratch: Path, uid: int, gid: int) -> Iterator[RunDir]:
    """(executor side) A fresh run directory, removed with all the function wrote when it ends."""
    scratch.mkdir(parents=True, exist_ok=True)
    run = RunDir(Path(tempfile.mkdtemp(prefix="sandbox-", dir=scratch)))
    try:
        run.work.mkdir(mode=0o700)
        os.chown(run.work, uid, gid)
        run.root.mkdir(mode=0o700)
        yield run
    finally:
        shutil.rmtree(run.path, ignore_errors=True)


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` for good: no groups, no capabilities (bounding set included),
    ``no_new_privs``. Raises :class:`IsolationError` if any capability survives."""
    libc = _libc()
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    zero = ctypes.c_ulong(0)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), zero, zero, zero), "no_new_privs")
    for cap in range(last_cap + 1):
        dropped = libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), zero, zero, zero)
        _check(dropped, "drop the capability bounding set")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    status = Path("/proc/self/status").read_text()
    caps = [line.split()[1] for line in status.splitlines() if line.startswith("Cap")]
    if any(int(value, 16) for value in caps) or os.getuid() == 0:
        raise IsolationError("capabilities survived the privilege drop")
