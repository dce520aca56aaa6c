"""CPU time per trivial `echo` flow, per process: control plane, executor, member clients.

CPU time (``/proc/PID/stat`` utime + stime) does not grow with the machine's load the way wall
time does, so it compares two versions of the task path on a busy machine. One flow, as
bench_task_latency.py's P4: propose -> approve (creator, with its run authorisation) -> approve
(owner; the task is queued with it) -> wait -> output (with its receipt, one request); three
untimed flows first. It also prints the HTTP round trips the members make per flow.
``--py-spy FILE`` also samples the control plane with py-spy (if installed) into a flame graph
(SVG; collapsed stacks if FILE ends in .txt) over the counted flows.

    .venv/bin/python bench/bench_task_cpu.py [--runs 30] [--py-spy /tmp/cp.svg]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_task_latency import _Counted, _member, propose_and_approve, sim_policy
from teeflow.client import Client
from teeflow.server.launcher import LocalPlatform


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def members_with_dataset(platform: LocalPlatform, root: Path) -> tuple[Client, Client, Any]:
    """The members ``creator`` and ``owner``, attested, and ``owner``'s one-row table."""
    policy = sim_policy(platform)
    creator, owner = (_member(platform, root, n, policy) for n in ("creator", "owner"))
    dataset = owner.upload_dataset(b"id,amount\nu1,1\n", name="t.csv", kind="table")
    owner.attest()
    creator.attest()
    return creator, owner, dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--py-spy", type=Path, default=None, help="flame graph of the server")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="teeflow-cpu-"))
    try:
        with LocalPlatform(root / "p", executors=1) as platform:
            assert platform.server is not None
            creator, owner, dataset = members_with_dataset(platform, root)
            steps: dict[str, list[float]] = {}

            def timed(name: str, step: Callable[[], Any]) -> Any:
                start = time.perf_counter()
                result = step()
                steps.setdefault(name, []).append(time.perf_counter() - start)
                return result

            def flow() -> None:
                task_id = propose_and_approve(creator, owner, dataset["id"], timed, run=True)
                timed("wait", lambda: creator.wait(task_id))
                timed("output", lambda: owner.output(task_id, "data"))

            for _ in range(3):
                flow()
            steps.clear()
            spy = None
            if args.py_spy is not None and shutil.which("py-spy"):
                spy = subprocess.Popen(
                    [
                        *("py-spy", "record", "-p", str(platform.server.pid)),
                        *("-o", str(args.py_spy)),
                        *(("--format", "raw") if args.py_spy.suffix == ".txt" else ()),
                    ]
                )
                time.sleep(1.0)
            server, executor = platform.server.pid, platform.executors[0].pid
            s0, e0, c0 = cpu_seconds(server), cpu_seconds(executor), time.process_time()
            counted = _Counted(creator, owner)
            w0 = time.perf_counter()
            for _ in range(args.runs):
                flow()
            w1 = time.perf_counter()
            round_trips = counted.count / args.runs
            s1, e1, c1 = cpu_seconds(server), cpu_seconds(executor), time.process_time()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            per = 1000 / args.runs
            print(
                f"per flow ms: wall {per * (w1 - w0):.1f}  CPU control plane {per * (s1 - s0):.1f}"
                f"  executor {per * (e1 - e0):.1f}  clients {per * (c1 - c0):.1f}"
                f"  (load average {os.getloadavg()[0]:.1f}); {round_trips:.0f} member round trips"
            )
            medians = {k: round(1000 * statistics.median(v), 1) for k, v in steps.items()}
            print("wall median ms per step", medians)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
