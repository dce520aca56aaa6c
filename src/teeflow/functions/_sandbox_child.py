"""The child side of the sandbox: runs an uploaded ``run(ctx)`` behind a pipe.

Started by :mod:`teeflow.functions.sandbox` as ``python -I -m teeflow.functions._sandbox_child
LIMITS_JSON``. It lowers its own resource limits, then (when it is PID 1 of a fresh PID namespace)
forks one worker and stays as a small init that reports how the worker ended. The worker reads the
task from stdin and answers on stdout, one frame per message::

    frame = u32 header length | u64 body length | header (UTF-8 JSON object) | body (raw bytes)

No pickle crosses the pipe: the executor must never unpickle what untrusted code produced. The frame
helpers here are shared with the parent, which treats every frame from the child as hostile.
"""

from __future__ import annotations

import json
import linecache
import os
import resource
import struct
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from teeflow.functions._sandbox_fs import IsolationError, drop_privileges, enter_private_root
from teeflow.functions.api import Context, FunctionError, InputData, OutputData

__all__ = ["ProtocolError", "read_frame", "write_frame"]

_PREFIX = struct.Struct(">IQ")
MAX_HEADER_BYTES = 1 << 20
MAX_FRAME_BYTES = 1 << 30
CHUNK_BYTES = 16 << 20
SOURCE_NAME = "<uploaded function>"
EXIT_MEMORY = 3
"""Worker exit status when it ran out of memory and could not even report it."""
EXIT_ISOLATION = 4
"""Exit status when the private file system or the privilege drop failed (nothing ran)."""
_METRIC_TYPES = (bool, int, float, str, type(None))


class ProtocolError(Exception):
    """A frame that breaks the sandbox protocol (truncated, oversized or malformed)."""


def write_frame(stream: IO[bytes], header: Mapping[str, Any], body: bytes = b"") -> None:
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    stream.write(_PREFIX.pack(len(raw), len(body)) + raw)
    if body:
        stream.write(body)
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    # Read in bounded steps so a lying length costs only the bytes really sent.
    buf = bytearray()
    while len(buf) < size:
        chunk = stream.read(min(size - len(buf), CHUNK_BYTES))
        if not chunk:
            raise ProtocolError("the pipe closed in the middle of a frame")
        buf += chunk
    return bytes(buf)


def read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """The next frame, or None at a clean end of stream."""
    prefix = stream.read(_PREFIX.size)
    if not prefix:
        return None
    if len(prefix) != _PREFIX.size:
        raise ProtocolError("the pipe closed in the middle of a frame")
    header_len, body_len = _PREFIX.unpack(prefix)
    if header_len > MAX_HEADER_BYTES or body_len > MAX_FRAME_BYTES:
        raise ProtocolError("a frame is larger than the sandbox allows")
    try:
        header = json.loads(_read_exact(stream, header_len))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("a frame header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise ProtocolError("a frame header is not a JSON object")
    return header, _read_exact(stream, body_len)


class _Pipe:
    """The worker's end of the protocol; only the worker's own process may use it."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self.reader = reader
        self.writer = writer
        self.pid = os.getpid()

    def send(self, header: Mapping[str, Any], body: bytes = b"") -> None:
        if os.getpid() != self.pid:
            raise RuntimeError("ctx can only be used from the function's own process")
        write_frame(self.writer, header, body)

    def receive(self) -> tuple[dict[str, Any], bytes]:
        frame = read_frame(self.reader)
        if frame is None:
            raise ProtocolError("the executor closed the pipe early")
        return frame


class _PipeOutput(OutputData):
    """An output slot whose writes stream to the executor, in chunks."""

    def __init__(self, slot: str, pipe: _Pipe) -> None:
        super().__init__(slot=slot)
        self._pipe = pipe

    def write(self, data: bytes) -> None:
        view = memoryview(data).cast("B")
        for start in range(0, max(len(view), 1), CHUNK_BYTES):
            self._pipe.send(
                {"op": "write", "slot": self.slot}, bytes(view[start : start + CHUNK_BYTES])
            )
        self.written = True


def _metric(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        value = item()
    if not isinstance(value, _METRIC_TYPES):
        raise TypeError(f"progress values must be numbers or strings, not {type(value).__name__}")
    return value


def _build_context(pipe: _Pipe) -> tuple[str, Context]:
    start, source = pipe.receive()
    inputs: dict[str, InputData] = {}
    for spec in start["inputs"]:
        _, data = pipe.receive()
        inputs[spec["slot"]] = InputData(slot=spec["slot"], data=data, owner=spec["owner"])
    restored = pipe.receive()[1] if start["restored"] else None
    outputs = {slot: _PipeOutput(slot, pipe) for slot in start["outputs"]}

    def progress(metrics: Mapping[str, Any]) -> None:
        pipe.send({"op": "progress", "metrics": {str(k): _metric(v) for k, v in metrics.items()}})

    def checkpoint(state: bytes) -> None:
        pipe.send({"op": "checkpoint"}, bytes(state))

    ctx = Context(
        inputs=inputs,
        args=start["args"],
        outputs=outputs,
        scratch=Path(start["scratch"]),
        _progress=progress,
        _checkpoint=checkpoint,
        _restored=restored,
    )
    return source.decode("utf-8"), ctx


def _error_header(exc: BaseException) -> dict[str, Any]:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != SOURCE_NAME:
        tb = tb.tb_next  # start at the uploaded code's own frames, not this module's
    lines = traceback.format_exception(type(exc), exc, tb or exc.__traceback__)
    tail = "".join(lines[-12:])[-4000:]
    return {
        "op": "error",
        "type": type(exc).__name__,
        "message": str(exc)[:2000],
        "function_error": isinstance(exc, FunctionError),
        "traceback": tail,
    }


def _work(pipe: _Pipe) -> int:
    """Run the uploaded function once; the exit status says whether a terminal frame was sent."""
    try:
        source, ctx = _build_context(pipe)
        linecache.cache[SOURCE_NAME] = (len(source), None, source.splitlines(True), SOURCE_NAME)
        namespace: dict[str, Any] = {"__name__": "uploaded_function", "__builtins__": __builtins__}
        # Running the uploaded code is this process's whole purpose; it is confined by the parent.
        exec(compile(source, SOURCE_NAME, "exec"), namespace)  # noqa: S102
        namespace["run"](ctx)
    except MemoryError:
        if os.getpid() != pipe.pid:
            os._exit(EXIT_MEMORY)
        try:
            pipe.send({"op": "error", "type": "MemoryError", "message": "", "traceback": ""})
        except MemoryError:
            os._exit(EXIT_MEMORY)
        return 1
    except BaseException as exc:  # noqa: BLE001 - every failure of untrusted code is reported
        if os.getpid() != pipe.pid:  # a forked copy of the function: never speak for the task
            os._exit(1)
        pipe.send(_error_header(exc))
        return 1
    if os.getpid() != pipe.pid:
        os._exit(0)
    pipe.send({"op": "done"})
    return 0


def _apply_limits(limits: Mapping[str, int]) -> None:
    for name, value in limits.items():
        which = getattr(resource, f"RLIMIT_{name.upper()}")
        hard = value + 1 if name == "cpu" else value  # SIGXCPU first, SIGKILL a second later
        resource.setrlimit(which, (value, hard))


def _supervise(pipe: _Pipe) -> int:
    """As PID 1 of the sandbox's namespace: run one worker, then report how it ended."""
    worker = os.fork()
    if worker == 0:
        pipe.pid = os.getpid()
        code = 1
        try:
            code = _work(pipe)
        finally:
            os._exit(code)
    while True:
        try:
            pid, status = os.wait()  # init also reaps the function's orphans
        except ChildProcessError:
            return 1
        if pid == worker:
            break
    code = os.waitstatus_to_exitcode(status)
    write_frame(pipe.writer, {"op": "exit", "status": code})
    return 0


def _confine(config: Mapping[str, Any]) -> None:
    """Enter the private root and drop root, before any untrusted byte is read.

    The code was imported above while still root, so the function runs whatever directory
    teeflow is installed in; its later imports come through the read-only binds of the new root.
    """
    fs = config["fs"]
    enter_private_root(fs["root"], fs["scratch"], tmpfs_bytes=fs["tmpfs_bytes"])
    drop_privileges(config["uid"], config["gid"])


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    try:
        _confine(config)
    except (IsolationError, OSError, KeyError) as exc:
        print(f"sandbox: could not confine the function: {exc}", file=sys.stderr)
        return EXIT_ISOLATION
    _apply_limits(config["limits"])
    # Claim the protocol pipes; fd 0 becomes /dev/null and fd 1 goes to stderr, so the
    # function's print() can never corrupt a frame. os.dup gives non-inheritable fds.
    reader = os.fdopen(os.dup(0), "rb")
    writer = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    pipe = _Pipe(reader, writer)
    if os.getpid() == 1:
        return _supervise(pipe)
    return _work(pipe)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
