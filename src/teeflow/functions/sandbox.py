"""Run an uploaded function's ``run(ctx)`` in a confined child process of the executor.

The uploaded code never runs in the executor's process. The child (``_sandbox_child``) gets the
task through a pipe and answers with output writes, progress and checkpoints, which this side
validates and applies to the real :class:`~teeflow.functions.api.Context`. The child gets:

- no network (``unshare --net``: only a down loopback), its own PID, IPC and UTS namespaces;
- its own file system (``_sandbox_fs``): a private mount namespace whose root holds only a
  read-only view of the system, the interpreter and teeflow, empty private ``/tmp``,
  ``/var/tmp`` and ``/dev/shm``, and the run's scratch directory, the one place it may write;
- uid/gid ``nobody``, no capabilities (bounding set included), no_new_privs;
- an env of PATH, LANG, HOME and TMPDIR only; no extra fds;
- RLIMIT_AS, RLIMIT_NPROC, RLIMIT_CPU, RLIMIT_FSIZE, no core files, and a wall-clock timeout.

Where the host cannot give all of it (the executor is not root, or ``unshare`` is missing or
refused), no uploaded function runs: :func:`run_in_sandbox` fails closed with a
``kind="isolation"`` error, because the guarantee that plaintext never stays on the host depends
on it. :func:`sandbox_isolation` reports what this host gives. Every failure of the function
raises :class:`SandboxError` with a party-facing reason; the executor process lives on.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from teeflow.functions._sandbox_child import (
    EXIT_ISOLATION,
    EXIT_MEMORY,
    ProtocolError,
    read_frame,
    write_frame,
)
from teeflow.functions._sandbox_fs import SCRATCH, RunDir, run_dir
from teeflow.functions.api import Context

__all__ = [
    "SandboxError",
    "SandboxIsolation",
    "run_in_sandbox",
    "sandbox_isolation",
    "validate_source",
]

SANDBOX_UID = SANDBOX_GID = 65534  # nobody / nogroup
MAX_SOURCE_BYTES = 1 << 20
MAX_OUTPUT_BYTES = 4 << 30
_NAMESPACES = (
    "--net",
    "--ipc",
    "--uts",
    "--pid",
    "--mount",
    "--fork",
    "--kill-child",
    "--mount-proc",
)


class SandboxError(Exception):
    """An uploaded function failed or was stopped; ``str(exc)`` is meant for the parties.

    ``kind`` is one of: invalid_source, isolation, function_error, exception, memory, processes,
    timeout, cpu, crash, protocol, output_limit. ``details`` holds the last lines of the function's
    traceback, if any.
    """

    def __init__(self, reason: str, *, kind: str, details: str = "") -> None:
        super().__init__(f"{reason}\n{details}".rstrip() if details else reason)
        self.reason = reason
        self.kind = kind
        self.details = details


@dataclasses.dataclass(frozen=True)
class SandboxIsolation:
    """What confinement this host gives uploaded functions (measured once per process)."""

    namespaces: bool
    """Private network, PID, IPC, UTS and mount namespaces (``unshare`` works here)."""
    sandbox_uid: int | None
    """The uid the function runs as (nobody) where the executor is root; else None."""
    missing: tuple[str, ...]

    @property
    def available(self) -> bool:
        """Whether uploaded functions run here at all: without every confinement none does."""
        return self.namespaces and self.sandbox_uid is not None

    def describe(self) -> dict[str, Any]:
        rlimits = ["AS", "NPROC", "CPU", "FSIZE", "CORE", "wall-clock timeout"]
        report = {**dataclasses.asdict(self), "available": self.available, "seccomp": False}
        return {**report, "missing": list(self.missing), "rlimits": rlimits}

    def refusal(self) -> str:
        """Why no uploaded function runs on this host (empty when they do)."""
        if self.available:
            return ""
        return (
            f"this executor cannot confine uploaded functions ({'; '.join(self.missing)}), "
            "so it runs none: run the executor as root on a Linux host with util-linux unshare"
        )


def _works(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def sandbox_isolation() -> SandboxIsolation:
    missing: list[str] = []
    root = os.geteuid() == 0
    if not root:
        missing.append("the executor is not root, so it cannot drop to nobody")
    unshare = shutil.which("unshare")
    namespaces = bool(unshare) and _works([str(unshare), *_NAMESPACES, "true"])
    if not namespaces:
        missing.append("unshare cannot create network, PID and mount namespaces here")
    return SandboxIsolation(namespaces, SANDBOX_UID if root else None, tuple(missing))


def validate_source(source: str) -> str:
    """Check an uploaded module compiles and defines ``run``; return its SHA-256 (the code hash).

    Nothing of the source runs here: it is parsed and compiled, never executed.
    """
    encoded = source.encode("utf-8")
    if len(encoded) > MAX_SOURCE_BYTES:
        raise SandboxError("function source is larger than 1 MiB", kind="invalid_source")
    try:
        tree = ast.parse(source, filename="<uploaded function>")
        compile(tree, "<uploaded function>", "exec")
    except SyntaxError as exc:
        raise SandboxError(
            f"function source does not compile: {exc.msg} (line {exc.lineno})",
            kind="invalid_source",
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        reason = f"function source does not compile: {type(exc).__name__}"
        raise SandboxError(reason, kind="invalid_source") from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == "run" for node in tree.body):
        raise SandboxError(
            "function source defines no top-level `def run(ctx)`", kind="invalid_source"
        )
    return hashlib.sha256(encoded).hexdigest()


def _command(run: RunDir, limits: _Limits) -> list[str]:
    unshare = shutil.which("unshare") or "unshare"
    fs = {"root": str(run.root), "scratch": str(run.work), "tmpfs_bytes": limits.memory_bytes}
    config = {"limits": limits.rlimits(), "uid": SANDBOX_UID, "gid": SANDBOX_GID, "fs": fs}
    python = [sys.executable, "-I", "-B", "-m", "teeflow.functions._sandbox_child"]
    return [unshare, *_NAMESPACES, "--", *python, json.dumps(config)]


def _feed(stream: IO[bytes], source: str, ctx: Context) -> None:
    """Send the task to the child (in a thread: a child that never reads must not block us)."""
    try:
        start = {
            "op": "start",
            "args": dict(ctx.args),
            "outputs": list(ctx.outputs),
            "inputs": [{"slot": s, "owner": d.owner} for s, d in ctx.inputs.items()],
            "restored": ctx.restore() is not None,
            "scratch": SCRATCH,  # where the child sees its run's work directory
        }
        write_frame(stream, start, source.encode("utf-8"))
        for data in ctx.inputs.values():
            write_frame(stream, {"op": "input"}, data.data)
        restored = ctx.restore()
        if restored is not None:
            write_frame(stream, {"op": "restored"}, restored)
        stream.close()
    except (OSError, ValueError):  # the child is gone; its exit status tells why
        return


def _metrics(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) > 256:
        raise ProtocolError("progress metrics are not a small JSON object")
    for key, item in value.items():
        short = len(key) <= 128 and (len(item) <= 4096 if isinstance(item, str) else True)
        if not short or not isinstance(item, (bool, int, float, str, type(None))):
            raise ProtocolError("a progress metric is not a short number or string")
    return value


class _Child:
    """The running child: kills its whole process group once, and never after it is reaped."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.timed_out = False
        self._lock = threading.Lock()
        self._reaped = False

    def kill(self, *, timed_out: bool = False) -> None:
        with self._lock:
            if self._reaped:
                return
            self.timed_out = self.timed_out or timed_out
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                return

    def finish(self, grace_s: float) -> int:
        """Give the child ``grace_s`` to exit, kill what is left of its group, reap it."""
        deadline = time.monotonic() + grace_s
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.kill()  # stragglers; the group id stays ours until the leader is reaped below
        with self._lock:
            self._reaped = True
            return self.proc.wait()

    def _exited(self) -> bool:
        flags = os.WEXITED | os.WNOWAIT | os.WNOHANG  # look, but leave it to reap
        return os.waitid(os.P_PID, self.proc.pid, flags) is not None


def _apply(ctx: Context, child: _Child, *, wait_exit_frame: bool) -> dict[str, Any]:
    """Apply the child's frames to ``ctx``; return the terminal ones seen (done/error/exit)."""
    seen: dict[str, Any] = {}
    total = 0
    stream = child.proc.stdout
    if stream is None:
        raise RuntimeError("sandbox child has no stdout pipe")
    while (frame := read_frame(stream)) is not None:
        header, body = frame
        op = header.get("op")
        if op in ("done", "error"):
            if "done" in seen or "error" in seen:
                raise ProtocolError("the function sent two final frames")
            seen[op] = header
            if not wait_exit_frame:
                break
        elif op == "exit":
            seen[op] = header
            break
        elif "done" in seen or "error" in seen:
            raise ProtocolError("the function sent frames after it finished")
        elif op == "write" and isinstance(slot := header.get("slot"), str) and slot in ctx.outputs:
            total += len(body)
            if total > MAX_OUTPUT_BYTES:
                limit = MAX_OUTPUT_BYTES >> 30
                raise SandboxError(f"function wrote more than {limit} GiB", kind="output_limit")
            ctx.outputs[slot].write(body)
        elif op == "progress":
            ctx.progress(**_metrics(header.get("metrics")))
        elif op == "checkpoint":
            ctx.checkpoint(body)
        else:
            raise ProtocolError(f"unexpected frame {str(op)[:40]!r}")
    return seen


def _tail(log: IO[bytes], limit: int = 2000) -> str:
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - limit))
    return log.read().decode("utf-8", "replace").strip()


def _verdict(seen: Mapping[str, Any], code: int, *, timed_out: bool, limits: _Limits) -> None:
    """Raise the party-facing SandboxError for how the run ended, or return if it succeeded."""
    if timed_out:
        raise SandboxError(f"function timed out after {limits.timeout_s:g} s", kind="timeout")
    if "exit" in seen and isinstance(seen["exit"].get("status"), int):
        code = seen["exit"]["status"]  # the worker's own status, reported by the namespace's init
    error = seen.get("error")
    if error is not None:
        kind, message = str(error.get("type", "Exception"))[:100], str(error.get("message", ""))
        if kind == "MemoryError":
            raise SandboxError(limits.memory_message(), kind="memory")
        if error.get("function_error") is True:
            raise SandboxError(f"function failed: {message}", kind="function_error")
        details = str(error.get("traceback", ""))
        if kind == "BlockingIOError" and message.startswith("[Errno 11]"):
            reason = f"function hit its limit of {limits.max_processes} processes and threads"
            raise SandboxError(reason, kind="processes", details=details)
        raise SandboxError(f"function raised {kind}: {message}", kind="exception", details=details)
    if "done" in seen and code == 0:
        return
    if code == EXIT_MEMORY:
        raise SandboxError(limits.memory_message(), kind="memory")
    if code == EXIT_ISOLATION:
        reason = "the sandbox could not confine the function, so it did not run"
        raise SandboxError(reason, kind="isolation")
    if code == -signal.SIGXCPU:
        raise SandboxError(f"function used more than {limits.cpu_s} s of CPU time", kind="cpu")
    if code == -signal.SIGKILL:
        reason = f"function was killed by the system (most likely: {limits.memory_message()})"
        raise SandboxError(reason, kind="memory")
    if code < 0:
        raise SandboxError(f"function crashed ({signal.Signals(-code).name})", kind="crash")
    raise SandboxError(f"function process ended unexpectedly (exit status {code})", kind="crash")


@dataclasses.dataclass(frozen=True)
class _Limits:
    timeout_s: float
    memory_bytes: int
    max_processes: int

    @property
    def cpu_s(self) -> int:
        # CPU time across all cores; the wall-clock timeout normally fires first.
        return math.ceil(self.timeout_s) * (os.cpu_count() or 1) + 1

    def rlimits(self) -> dict[str, int]:
        memory, nproc = self.memory_bytes, self.max_processes
        return {"as": memory, "nproc": nproc, "cpu": self.cpu_s, "fsize": memory, "core": 0}

    def memory_message(self) -> str:
        return f"function exceeded its memory limit of {self.memory_bytes / (1 << 30):.1f} GiB"


def run_in_sandbox(
    source: str,
    ctx: Context,
    *,
    timeout_s: float = 600,
    memory_bytes: int = 2 << 30,
    max_processes: int = 64,
) -> None:
    """Run the uploaded module's ``run(ctx)`` in a confined child; raise SandboxError on failure.

    Outputs, progress and checkpoints reach ``ctx`` as the child sends them. ``max_processes``
    counts every process and thread of the sandbox user; ``memory_bytes`` bounds each process's
    address space (inputs included) and each file it writes.
    """
    validate_source(source)
    if timeout_s <= 0 or memory_bytes <= 0 or max_processes < 2:
        raise ValueError("timeout_s and memory_bytes must be positive and max_processes >= 2")
    limits = _Limits(timeout_s, memory_bytes, max_processes)
    iso = sandbox_isolation()
    if not iso.available:
        raise SandboxError(iso.refusal(), kind="isolation")
    json.dumps(dict(ctx.args))  # fail here, in the executor, on arguments that are not JSON
    with (
        run_dir(Path(ctx.scratch), SANDBOX_UID, SANDBOX_GID) as run,
        tempfile.TemporaryFile() as log,
    ):
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": SCRATCH, "TMPDIR": SCRATCH}
        proc = subprocess.Popen(
            _command(run, limits),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=run.work,
            env=env,
            close_fds=True,
            start_new_session=True,
        )
        child = _Child(proc)
        timer = threading.Timer(timeout_s, child.kill, kwargs={"timed_out": True})
        feeder = threading.Thread(target=_feed, args=(proc.stdin, source, ctx))
        timer.start()
        feeder.start()
        seen: dict[str, Any] = {}
        broken = ""
        try:
            seen = _apply(ctx, child, wait_exit_frame=True)
        except ProtocolError as exc:
            broken = str(exc)
        finally:
            timer.cancel()
            code = child.finish(grace_s=0.0 if broken else 5.0)
            feeder.join()
            timer.join()
            for stream in filter(None, (proc.stdin, proc.stdout)):
                stream.close()
        if broken and not child.timed_out:
            raise SandboxError(f"function broke the sandbox protocol: {broken}", kind="protocol")
        try:
            _verdict(seen, code, timed_out=child.timed_out, limits=limits)
        except SandboxError as exc:
            if exc.kind not in ("crash", "isolation"):
                raise
            raise SandboxError(exc.reason, kind=exc.kind, details=_tail(log)) from None
