"""A sealed uploaded function works with the operator: it leaves its input on the host and reads
the platform's files. Issue 11, row 6: neither may succeed.

The platform runs in a directory every user may walk (as ``/srv/teeflow`` would be), so only the
platform's own file modes and the sandbox's private file system stand between the function and
the data directory. Afterwards the operator (this test) scans the host's shared temporary
directories and the data directory for the input's canary.
"""

from __future__ import annotations

import json
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from teeflow.functions.sandbox import sandbox_isolation
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory

pytestmark = pytest.mark.skipif(
    not sandbox_isolation().available,
    reason="this host cannot confine uploaded functions (needs root and unshare)",
)

MAX_SCANNED_BYTES = 64 << 20
HOST_SHARED = (Path("/dev/shm"), Path("/tmp"), Path("/var/tmp"))

LEAKY_FUNCTION = """
import json
import os
from pathlib import Path


def run(ctx):
    data = ctx.inputs["data"].read_bytes()
    written = {}
    for place in ("/dev/shm", "/tmp", "/var/tmp"):
        target = Path(place) / ctx.arg("leak_name")
        try:
            target.write_bytes(data)
            written[place] = "written"
        except OSError as exc:
            written[place] = type(exc).__name__
    root = Path(ctx.arg("data_dir"))
    reads = {}
    for name in ctx.arg("targets"):
        try:
            reads[name] = len((root / name).read_bytes())
        except OSError as exc:
            reads[name] = type(exc).__name__
    try:
        listing = sorted(os.listdir(root))
    except OSError as exc:
        listing = type(exc).__name__
    ctx.outputs["report"].write_json({"written": written, "reads": reads, "listing": listing})
"""


@pytest.fixture(scope="module")
def platform() -> Iterator[LocalPlatform]:
    """A platform whose data directory's parent every user may walk; the platform picks the
    modes of everything it creates."""
    parent = Path(tempfile.mkdtemp(prefix="teeflow-operator-"))
    parent.chmod(0o755)
    env = {"TEEFLOW_CHECKPOINT_INTERVAL_S": "0"}
    try:
        with LocalPlatform(parent / "data", executors=1, env=env) as running:
            yield running
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def scan_recent(roots: list[Path], marker: bytes, since: float, skip: list[Path]) -> list[str]:
    """Files under ``roots`` changed since ``since`` that contain ``marker`` (other processes'
    files come and go: what vanishes or cannot be read while scanning is passed over). Files
    over :data:`MAX_SCANNED_BYTES` are passed over: the function here writes a few bytes."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                info = path.lstat()
                recent = info.st_mtime >= since and info.st_size <= MAX_SCANNED_BYTES
                if not stat.S_ISREG(info.st_mode) or not recent:
                    continue
                if any(path.is_relative_to(s) for s in skip):
                    continue
                if marker in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_uploaded_function_leaves_no_plaintext_and_reads_no_platform_file(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    canary = f"canary-{secrets.token_hex(16)}".encode()
    leak_name = f"teeflow-leak-{secrets.token_hex(8)}"
    function = alice.upload_function(
        LEAKY_FUNCTION, name="leaky", sealed=True, inputs=["data"], outputs=["report"]
    )
    dataset = bank.upload_dataset(b"id,secret\n1," + canary + b"\n", name="rows.csv")
    data_dir = platform.data_dir
    targets = [str(p.relative_to(data_dir)) for p in files_under(data_dir)]
    assert {"teeflow.db", "executor-secret"} <= set(targets)
    started = time.time() - 1  # file times have coarse resolution on some file systems
    task = alice.propose(
        function["id"],
        inputs={"data": dataset["id"]},
        outputs={"report": {"recipients": ["alice"]}},
        arguments={"data_dir": str(data_dir), "targets": targets, "leak_name": leak_name},
    )
    alice.approve(task["id"])
    bank.approve(task["id"])
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=120)

    assert done["status"] == "succeeded", done["failure_reason"]
    report = alice.output(task["id"], "report")
    assert isinstance(report, bytes)
    result = json.loads(report)
    readable = {name: size for name, size in result["reads"].items() if isinstance(size, int)}
    assert readable == {}, f"the function read platform files: {readable}"
    assert result["listing"] in ("FileNotFoundError", "PermissionError")
    homes = [alice.home.root, bank.home.root]
    leaks = scan_recent([*HOST_SHARED, data_dir], canary, started, skip=homes)
    assert leaks == [], f"plaintext left on the host: {leaks}"
    for place in HOST_SHARED:
        assert not (place / leak_name).exists()


def test_platform_files_are_private_to_its_user(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    bank = member("bank")
    bank.upload_dataset(b"id,amount\n1,2\n", name="modes.csv")  # a blob, WAL pages, audit rows

    entries = [platform.data_dir, *platform.data_dir.rglob("*")]
    loose = {
        str(path): oct(stat.S_IMODE(path.lstat().st_mode))
        for path in entries
        if path.lstat().st_mode & 0o077
    }

    assert loose == {}, "the platform left files group or world accessible"
    names = {p.name for p in entries}
    assert {"teeflow.db", "executor-secret", "blobs", "logs", "platform"} <= names
