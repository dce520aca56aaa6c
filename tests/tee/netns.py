"""A second "host" on this machine: a process in network, mount and PID namespaces of its own
(``unshare --net --mount --pid --fork``), joined to the test's network by a veth pair.

Inside, the process sees its own loopback and one interface (``ADDRESS/30``); the only address it
can reach is the outer end of the pair, where the control plane listens. Directories named in
``hide`` (the control plane's data, the key service's, other hosts') are covered with an empty
tmpfs in its mount namespace, so it shares no files with them. Needs root and iproute2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["NetnsHost", "netns_unavailable"]

UNSHARE = shutil.which("unshare")
IP = shutil.which("ip")

# Runs inside the namespaces: cover the hidden directories, wait for the inner end of the veth
# pair to be moved in, configure it, then become the executor (exec keeps the PID).
_INSIDE = r"""
set -e
peer="$1"; addr="$2"; shift 2
while [ "$1" != "--" ]; do mount -t tmpfs -o mode=0700 tmpfs "$1"; shift; done
shift
i=0
until ip link show "$peer" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 1200 ]; then echo "netns host: $peer never arrived" >&2; exit 97; fi
  sleep 0.05
done
ip link set lo up
ip addr add "$addr/30" dev "$peer"
ip link set "$peer" up
exec "$@"
"""


def netns_unavailable() -> str | None:
    """Why a process cannot get network namespaces and a veth pair here, or None if it can."""
    if os.geteuid() != 0:
        return "network namespaces and veth pairs need root"
    if UNSHARE is None or IP is None:
        return "needs util-linux unshare and iproute2 ip"
    probe = subprocess.run(
        [
            *(UNSHARE, "--net", "--mount", "--pid", "--fork", "--", IP, "link", "add"),
            *("tfprobe0", "type", "veth", "peer", "name", "tfprobe1"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare/veth refused: {probe.stderr.strip()[:200]}"
    return None


def _ip(*args: str) -> None:
    assert IP is not None
    subprocess.run([IP, *args], check=True, capture_output=True)


class NetnsHost:
    """One namespaced host; ``index`` (1-250) picks its /30 and interface names.

    :meth:`create` makes the veth pair (the outer end gets ``host_ip``, usable at once, e.g. to
    listen on); :meth:`prefix` is the command prefix that enters the namespaces; :meth:`connect`
    moves the inner end into the started process's namespace; :meth:`close` removes the pair.
    """

    def __init__(self, index: int, *, hide: Sequence[Path] = ()) -> None:
        net = 100 + os.getpid() % 150  # tests of several checkouts on one machine don't collide
        self.host_ip = f"10.{net}.{index}.1"
        self.ip = f"10.{net}.{index}.2"
        tag = f"{os.getpid() % 100000}x{index}"
        self.outer, self.inner = f"tfo{tag}", f"tfi{tag}"
        self.hide = [str(path) for path in hide]

    def create(self) -> NetnsHost:
        _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.outer)
        _ip("link", "set", self.outer, "up")
        return self

    def prefix(self) -> list[str]:
        assert UNSHARE is not None
        return [
            *(UNSHARE, "--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"),
            *("--", "sh", "-c", _INSIDE, "netns-host", self.inner, self.ip, *self.hide, "--"),
        ]

    def connect(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        """Move the inner end into ``process``'s network namespace once it has one."""
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + timeout
        while os.readlink(f"/proc/{process.pid}/ns/net") == own:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the namespaced process never got its network namespace")
            time.sleep(0.01)
        _ip("link", "set", self.inner, "netns", str(process.pid))

    def close(self) -> None:
        subprocess.run([IP or "ip", "link", "del", self.outer], capture_output=True, check=False)
