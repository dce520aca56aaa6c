"""Control-plane CPU per task in P5 (throughput): only bench_task_latency.py's P5 part.

``--tasks`` echo tasks are proposed and approved first (uncounted); then the creator runs them all
from 8 threads and waits for each, as P5 does. It prints the control plane's CPU (``/proc``,
user + system) per task over the run and wait, the executors' and the members' (this process:
the clients' signing and HTTP) CPU per task, the tasks per second
and the load average. ``--py-spy FILE`` samples the control plane at 1 kHz over the same span, only
while a thread holds the GIL (``--gil``: a thread waiting for the GIL is not counted as busy)
(collapsed stacks; needs py-spy on PATH).

With ``--postgres URL`` the control plane runs ``--workers`` processes on PostgreSQL (a fresh
schema, dropped after); the control plane's CPU is then that of every worker process, and the
database's that of every ``postgres`` process on the machine.

    .venv/bin/python bench/bench_p5_cpu.py [--tasks 200] [--executors 2] [--py-spy /tmp/p5.txt]
        [--postgres postgresql+psycopg://... --workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_task_cpu import cpu_seconds, members_with_dataset
from bench_task_latency import postgres_schema
from teeflow.server.launcher import LocalPlatform


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (uvicorn's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found.extend(int(child) for child in children)
    return found


def _named(name: str) -> list[int]:
    """Every process whose command name is ``name`` (all of a PostgreSQL server's processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each of ``pids`` that is still running. A process that starts during the
    run counts whole; one that exits during it is not counted (PostgreSQL's backends for the
    control plane's pooled connections live through the run)."""
    found = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except OSError:
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--executors", type=int, default=2)
    parser.add_argument("--py-spy", type=Path, default=None, help="collapsed stacks of the server")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--workers", type=int, default=1, help="control-plane processes")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="teeflow-p5cpu-"))
    env = {"TEEFLOW_MAX_OPEN_TASKS": str(args.tasks + 10)}
    try:
        with (
            postgres_schema(args.postgres) as database_url,
            LocalPlatform(
                root / "p",
                executors=args.executors,
                env=env | ({"TEEFLOW_DATABASE_URL": database_url} if database_url else {}),
                workers=args.workers,
            ) as platform,
        ):
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
                        *(("--subprocesses",) if args.workers > 1 else ()),
                    ]
                )
                time.sleep(1.0)
            server_pid = platform.server.pid
            groups: list[Callable[[], list[int]]] = [
                lambda: [server_pid, *_children(server_pid)],
                lambda: [e.pid for e in platform.executors],
                lambda: _named("postgres") if args.postgres else [],
            ]
            before = [_cpu_by_pid(group()) for group in groups]
            members_before = time.process_time()
            start = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(creator.run, batch))
            ran = time.perf_counter()
            for task_id in batch:
                assert creator.wait(task_id)["status"] == "succeeded"
            wall = time.perf_counter() - start
            after = [_cpu_by_pid(group()) for group in groups]
            members_cpu = time.process_time() - members_before
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=120)
            creator.close()
            owner.close()
            per = 1000 / args.tasks
            server, executors, postgres = (
                per * sum(cpu - then.get(pid, 0.0) for pid, cpu in now.items())
                for now, then in zip(after, before, strict=True)
            )
            members = per * members_cpu
            where = f"PostgreSQL, {args.workers} workers" if args.postgres else "SQLite"
            print(
                f"P5 {args.tasks} tasks, {args.executors} executors, {where}:"
                f" {args.tasks / wall:.1f} tasks/s"
                f" (runs sent in {ran - start:.2f} s); CPU per task ms: control plane {server:.2f}"
                f"  executors {executors:.2f}  members (this process) {members:.2f}"
                + (f"  postgres {postgres:.2f}" if args.postgres else "")
                + f"  (load average {os.getloadavg()[0]:.1f})"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
