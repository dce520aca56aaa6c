"""The sandbox for uploaded functions: the API round-trips, and each confinement holds.

Each security test runs a function that tries to break one guarantee, asserts it failed with a
party-facing reason, then asserts the executor (this process) still runs the next function.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import teeflow
from teeflow.functions.api import Context, InputData, OutputData
from teeflow.functions.sandbox import (
    SandboxError,
    SandboxIsolation,
    run_in_sandbox,
    sandbox_isolation,
    validate_source,
)

ISOLATION = sandbox_isolation()
needs_sandbox = pytest.mark.skipif(
    not ISOLATION.available,
    reason=f"no uploaded function runs on this host: {ISOLATION.refusal()}",
)


def make_ctx(
    scratch: Path, inputs: dict[str, bytes] | None = None, outputs: tuple[str, ...] = ("out",)
) -> tuple[Context, list[dict[str, Any]], list[bytes]]:
    progress: list[dict[str, Any]] = []
    checkpoints: list[bytes] = []
    ctx = Context(
        inputs={s: InputData(slot=s, data=d, owner=f"org-{s}") for s, d in (inputs or {}).items()},
        args={"suffix": "!", "n": 3},
        outputs={slot: OutputData(slot=slot) for slot in outputs},
        scratch=scratch,
        _progress=lambda metrics: progress.append(dict(metrics)),
        _checkpoint=checkpoints.append,
        _restored=b"state-1",
    )
    return ctx, progress, checkpoints


def function(body: str) -> str:
    return "def run(ctx):\n" + textwrap.indent(textwrap.dedent(body), "    ")


def assert_executor_still_works(scratch: Path) -> None:
    ctx, _, _ = make_ctx(scratch, {"a": b"ok"})
    run_in_sandbox(function("ctx.outputs['out'].write(ctx.inputs['a'].read_bytes())"), ctx)
    assert ctx.outputs["out"].getvalue() == b"ok"


def run_failing(source: str, scratch: Path, **limits: Any) -> SandboxError:
    ctx, _, _ = make_ctx(scratch)
    with pytest.raises(SandboxError) as caught:
        run_in_sandbox(source, ctx, **limits)
    return caught.value


ROUND_TRIP = function(
    """
    import os
    print("stdout must not corrupt the pipe")
    assert os.listdir(ctx.scratch) == [], "the working directory starts empty"
    (ctx.scratch / "tmp.bin").write_bytes(b"x")
    ctx.progress(epoch=1, loss=0.5, note="warm-up", done=False)
    ctx.checkpoint(b"from:" + ctx.restore())
    data = ctx.inputs["a"].read_bytes() + ctx.inputs["b"].read_bytes()
    ctx.outputs["out"].write(data * ctx.arg("n") + ctx.arg("suffix").encode())
    ctx.outputs["meta"].write_json({
        "env": sorted(os.environ), "uid": os.getuid(), "owner": ctx.inputs["b"].owner,
        "cwd_is_scratch": os.path.samefile(".", ctx.scratch),
    })
    """
)


@needs_sandbox
def test_round_trip_of_inputs_args_outputs_progress_and_checkpoint(tmp_path: Path) -> None:
    big = os.urandom(20 << 20)  # more than one 16 MiB frame each way
    ctx, progress, checkpoints = make_ctx(tmp_path, {"a": big, "b": b"\x00"}, ("out", "meta"))

    run_in_sandbox(ROUND_TRIP, ctx)

    assert ctx.outputs["out"].getvalue() == (big + b"\x00") * 3 + b"!"
    meta = ctx.outputs["meta"].getvalue()
    assert b'"env": [\n    "HOME",\n    "LANG",\n    "PATH",\n    "TMPDIR"\n  ]' in meta
    assert b'"cwd_is_scratch": true' in meta and b'"owner": "org-b"' in meta
    if ISOLATION.sandbox_uid is not None:
        assert f'"uid": {ISOLATION.sandbox_uid}'.encode() in meta
    assert progress == [{"epoch": 1, "loss": 0.5, "note": "warm-up", "done": False}]
    assert checkpoints == [b"from:state-1"]
    assert list(tmp_path.iterdir()) == []  # the run's working directory is removed


def test_validate_source_hashes_without_running() -> None:
    source = "open('/tmp/teeflow-must-not-exist', 'w')\ndef run(ctx):\n    pass\n"

    digest = validate_source(source)

    assert digest == hashlib.sha256(source.encode()).hexdigest()
    assert not Path("/tmp/teeflow-must-not-exist").exists()


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("def run(ctx):\n  return (\n", "does not compile"),
        ("return 1\ndef run(ctx): pass\n", "does not compile"),
        ("def main(ctx):\n    pass\n", "defines no top-level `def run"),
    ],
)
def test_validate_source_rejects_bad_modules(source: str, reason: str) -> None:
    with pytest.raises(SandboxError, match=reason) as caught:
        validate_source(source)
    assert caught.value.kind == "invalid_source"


@needs_sandbox
def test_network_is_unreachable(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        source = function(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)")

        error = run_failing(source, tmp_path)

        assert error.kind == "exception"
        assert "OSError" in error.reason and "Network is unreachable" in error.reason
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever reached the executor's listener
    assert_executor_still_works(tmp_path)


@pytest.fixture
def key_dir() -> Iterator[Path]:
    """A world-walkable directory with a root-only key file and a world-readable file."""
    path = Path(tempfile.mkdtemp(prefix="teeflow-keys-"))
    path.chmod(0o755)
    (path / "executor.key").write_bytes(b"root secret")
    (path / "executor.key").chmod(0o600)
    (path / "public.txt").write_bytes(b"public")
    (path / "public.txt").chmod(0o644)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


@needs_sandbox
def test_host_files_outside_the_view_are_absent(tmp_path: Path, key_dir: Path) -> None:
    ctx, _, _ = make_ctx(tmp_path)
    source = function(
        f"""
        from pathlib import Path
        for name in ("public.txt", "executor.key"):
            try:
                Path("{key_dir}", name).read_bytes()
                ctx.outputs["out"].write(name.encode() + b" read;")
            except OSError as exc:
                ctx.outputs["out"].write(name.encode() + type(exc).__name__.encode() + b";")
        """
    )

    run_in_sandbox(source, ctx)

    # Even the world-readable file is not there: the host's /tmp is not in the sandbox's tree.
    assert ctx.outputs["out"].getvalue() == (
        b"public.txtFileNotFoundError;executor.keyFileNotFoundError;"
    )
    assert_executor_still_works(tmp_path)


@needs_sandbox
def test_function_runs_as_nobody_without_capabilities(tmp_path: Path) -> None:
    ctx, _, _ = make_ctx(tmp_path)
    source = function(
        """
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        keys = ("Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs")
        ctx.outputs["out"].write_json({k: fields[k].split() for k in keys})
        """
    )

    run_in_sandbox(source, ctx)

    status = json.loads(ctx.outputs["out"].getvalue())
    assert status["Uid"] == ["65534"] * 4 and status["Gid"] == ["65534"] * 4
    assert status["Groups"] == []
    assert {k: int(status[k][0], 16) for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")} == {
        "CapEff": 0,
        "CapPrm": 0,
        "CapBnd": 0,
        "CapAmb": 0,
    }
    assert status["NoNewPrivs"] == ["1"]


CODE = [Path(sys.prefix), Path(sys.base_prefix), Path(teeflow.__file__).parent]
"""Where the sandbox's code comes from (the package last)."""

PRIVATE_TMP = function(
    """
    import json, os
    seen = {}
    for place in ("/tmp", "/var/tmp", "/dev/shm"):
        seen[place] = os.listdir(place)
        with open(os.path.join(place, ctx.arg("name")), "wb") as handle:
            handle.write(ctx.inputs["a"].read_bytes())
    ctx.outputs["out"].write_json(seen)
    """
)


@needs_sandbox
def test_temporary_directories_are_private_empty_and_vanish(tmp_path: Path) -> None:
    name = f"teeflow-sandbox-{os.urandom(8).hex()}"
    ctx, _, _ = make_ctx(tmp_path, {"a": b"plaintext"})
    ctx.args["name"] = name

    run_in_sandbox(PRIVATE_TMP, ctx)

    seen = json.loads(ctx.outputs["out"].getvalue())
    for place, names in seen.items():  # empty, but for where the code itself is installed
        assert set(names) <= {
            p.relative_to(place).parts[0] for p in CODE if p.is_relative_to(place)
        }
    for place in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not Path(place, name).exists()
    assert list(tmp_path.iterdir()) == []


@needs_sandbox
def test_the_view_of_the_code_is_read_only_and_minimal(tmp_path: Path) -> None:
    package = CODE[-1]
    ctx, _, _ = make_ctx(tmp_path)
    source = function(
        f"""
        import os
        try:
            open("{package}/planted.py", "w")
            planted = "written"
        except OSError as exc:
            planted = type(exc).__name__
        flags = {{p: bool(os.statvfs(p).f_flag & os.ST_RDONLY) for p in ("/", "{package}")}}
        ctx.outputs["out"].write_json({{
            "planted": planted, "read_only": flags, "top": sorted(os.listdir("/")),
            "scratch_writable": os.access(ctx.scratch, os.W_OK),
        }})
        """
    )

    run_in_sandbox(source, ctx)

    seen = json.loads(ctx.outputs["out"].getvalue())
    assert seen["planted"] in ("OSError", "PermissionError")
    assert not (package / "planted.py").exists()
    assert seen["read_only"] == {"/": True, str(package): True}
    assert seen["scratch_writable"] is True
    code_tops = {p.parts[1] for p in CODE}
    system = {"usr", "lib", "lib64", "bin", "sbin", "etc", "dev", "proc", "tmp", "var"}
    assert set(seen["top"]) <= system | code_tops | {"scratch"}


def test_without_isolation_no_function_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = SandboxIsolation(False, None, ("unshare cannot create network, PID and mount ...",))
    monkeypatch.setattr("teeflow.functions.sandbox.sandbox_isolation", lambda: bare)
    marker = tmp_path / "ran"
    ctx, _, _ = make_ctx(tmp_path)

    with pytest.raises(SandboxError) as caught:
        run_in_sandbox(function(f"open({str(marker)!r}, 'w')"), ctx)

    assert caught.value.kind == "isolation"
    assert "cannot confine uploaded functions (unshare cannot create" in str(caught.value)
    assert "run the executor as root" in str(caught.value)
    assert not marker.exists()


@needs_sandbox
def test_fork_bomb_is_bounded(tmp_path: Path) -> None:
    source = function("import os\nwhile True:\n    os.fork()")
    started = time.monotonic()

    error = run_failing(source, tmp_path, max_processes=16, timeout_s=8)

    assert error.kind == "processes", error
    assert "limit of 16 processes" in error.reason
    assert time.monotonic() - started < 8
    # this run's children name their run directory, under tmp_path, in their command line
    mine = [p for p in psutil.process_iter(["cmdline"]) if "_sandbox_child" in str(p.info)]
    leftovers = [p for p in mine if str(tmp_path) in str(p.info)]
    assert leftovers == []
    assert_executor_still_works(tmp_path)


@needs_sandbox
def test_allocating_10_gb_is_stopped(tmp_path: Path) -> None:
    error = run_failing(function("blob = bytearray(10 * 10**9)"), tmp_path)

    assert error.kind == "memory"
    assert error.reason == "function exceeded its memory limit of 2.0 GiB"
    assert_executor_still_works(tmp_path)


@needs_sandbox
def test_infinite_loop_times_out(tmp_path: Path) -> None:
    started = time.monotonic()

    error = run_failing(function("while True:\n    pass"), tmp_path, timeout_s=1)

    assert error.kind == "timeout"
    assert str(error) == "function timed out after 1 s"
    assert time.monotonic() - started < 5
    assert_executor_still_works(tmp_path)


@needs_sandbox
def test_exception_reports_type_message_and_traceback(tmp_path: Path) -> None:
    error = run_failing(function("x = 1\nraise ValueError('bad thing')"), tmp_path)

    assert error.kind == "exception"
    assert error.reason == "function raised ValueError: bad thing"
    assert 'File "<uploaded function>", line 3, in run' in error.details
    assert "_sandbox_child" not in error.details
    assert_executor_still_works(tmp_path)


@needs_sandbox
def test_function_error_is_passed_to_the_parties(tmp_path: Path) -> None:
    source = "from teeflow.functions.api import FunctionError\n" + function(
        "raise FunctionError('column age is missing')"
    )

    error = run_failing(source, tmp_path)

    assert (error.kind, str(error)) == ("function_error", "function failed: column age is missing")


@needs_sandbox
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("import ctypes\nctypes.string_at(0)", "function crashed (SIGSEGV)"),
        ("import os\nos._exit(5)", "function process ended unexpectedly (exit status 5)"),
    ],
)
def test_crash_is_reported(tmp_path: Path, body: str, reason: str) -> None:
    error = run_failing(function(body), tmp_path)

    assert (error.kind, error.reason) == ("crash", reason)
    assert_executor_still_works(tmp_path)


@needs_sandbox
def test_garbage_on_the_pipe_is_a_protocol_error(tmp_path: Path) -> None:
    source = function(
        """
        import os
        for fd in map(int, os.listdir("/proc/self/fd")):
            if fd > 2:
                try:
                    os.write(fd, b"\\xff" * 64)
                except OSError:
                    pass
        """
    )

    error = run_failing(source, tmp_path)

    assert error.kind == "protocol"
    assert_executor_still_works(tmp_path)


def test_isolation_report_names_what_applied() -> None:
    report = ISOLATION.describe()

    assert set(report) >= {"namespaces", "sandbox_uid", "available", "seccomp", "rlimits"}
    if os.geteuid() == 0:
        assert report["sandbox_uid"] == 65534
    assert report["available"] == (ISOLATION.refusal() == "")
