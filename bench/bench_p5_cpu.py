"""Control-plane CPU per task in P5 (throughput): only bench_task_latency.py's P5 part.

``--tasks`` echo tasks are proposed and approved first (uncounted); then the creator runs them all
from 8 threads and waits for each, as P5 does. It prints the control plane's CPU (``/proc``,
user + system) per task over the run and wait, the executors' and the members' (this process:
the clients' signing and HTTP) CPU per task, the tasks per second
and the load average. ``--py-spy FILE`` samples the control plane at 1 kHz over the same span, only
while a thread holds the GIL (``--gil``: a thread waiting for the GIL is not counted as busy)
(collapsed stacks; needs py-spy on PATH).

    .venv/bin/python bench/bench_p5_cpu.py [--tasks 200] [--executors 2] [--py-spy /tmp/p5.txt]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_task_cpu import cpu_seconds, members_with_dataset
from teeflow.server.launcher import LocalPlatform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--executors", type=int, default=2)
    parser.add_argument("--py-spy", type=Path, default=None, help="collapsed stacks of the server")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="teeflow-p5cpu-"))
    env = {"TEEFLOW_MAX_OPEN_TASKS": str(args.tasks + 10)}
    try:
        with LocalPlatform(root / "p", executors=args.executors, env=env) as platform:
            assert platform.server is not None
            creator, owner, dataset = members_with_dataset(platform, root)
            batch = []
            for _ in range(args.tasks):
                task = creator.propose(
                    "echo",
                    inputs={"data": dataset["id"]},
                    outputs={"data": {"recipients": ["owner"]}},
                )
                creator.approve(task["id"])
                owner.approve(task["id"])
                batch.append(str(task["id"]))
            spy = None
            if args.py_spy is not None and shutil.which("py-spy"):
                spy = subprocess.Popen(
                    [
                        *("py-spy", "record", "--rate", "1000", "--nonblocking", "--gil"),
                        *("-p", str(platform.server.pid), "-o", str(args.py_spy)),
                        *("--format", "raw"),
                    ]
                )
                time.sleep(1.0)
            pids = [platform.server.pid] + [e.pid for e in platform.executors]
            before = [cpu_seconds(pid) for pid in pids]
            members_before = time.process_time()
            start = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(creator.run, batch))
            ran = time.perf_counter()
            for task_id in batch:
                assert creator.wait(task_id)["status"] == "succeeded"
            wall = time.perf_counter() - start
            after = [cpu_seconds(pid) for pid in pids]
            members_cpu = time.process_time() - members_before
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=120)
            creator.close()
            owner.close()
            per = 1000 / args.tasks
            server = per * (after[0] - before[0])
            executors = per * sum(a - b for a, b in zip(after[1:], before[1:], strict=True))
            members = per * members_cpu
            print(
                f"P5 {args.tasks} tasks, {args.executors} executors:"
                f" {args.tasks / wall:.1f} tasks/s"
                f" (runs sent in {ran - start:.2f} s); CPU per task ms: control plane {server:.2f}"
                f"  executors {executors:.2f}  members (this process) {members:.2f}"
                f"  (load average {os.getloadavg()[0]:.1f})"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
