"""P4 / P5: a trivial `echo` task through the whole platform: latency, and throughput.

Latency (P4), one flow at a time, 1 executor: propose -> approve (creator, with its run
authorisation: the task is queued as the last approval arrives, no `run` call) -> approve (owner;
each approval signs and wraps its key to the attested enclave) -> wait -> output (download with the
receipt, check, decrypt). Real HTTP, real executor processes. Beside it: a bare authenticated HTTP
round trip to the same server, the floor any request pays. The split gives the median of each
step (propose, approve-creator, approve-owner, wait, output) and the HTTP round trips one flow
makes.

Throughput (P5): ``--tasks`` echo tasks are proposed and approved first (untimed: approvals are a
person's act; the creator approves without its run authorisation); then the clock runs from the
first explicit `run` to the last task succeeded, with the creator starting them from 8 threads
(as before approvals could carry the run, so the figure stays comparable). With 2 and with 4
executors, on SQLite (one control-plane process) and, given ``--postgres URL``, on PostgreSQL
with ``--workers`` control-plane processes (each run in a fresh schema, dropped after).

    .venv/bin/python bench/bench_task_latency.py [--runs 50] [--tasks 200] [--json PATH]
        [--postgres postgresql+psycopg://...] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from _report import TARGETS, Figure, write_json
from teeflow.attestation import Policy, SimQuotingKey, sim_measurement
from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.launcher import LocalPlatform

STEPS = ("propose", "approve-creator", "approve-owner", "wait", "output")


def _member(platform: LocalPlatform, root: Path, name: str, policy: Policy) -> Client:
    keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
    client = Client(platform.url, keys=keys, home=MemberHome(root / name), policy=policy)
    client.register(name, "benchmark-password")
    client.login(name, "benchmark-password", remember=False)
    return client


def sim_policy(platform: LocalPlatform) -> Policy:
    """A member policy that trusts this platform's simulated TEE at the current measurement."""
    quoting = SimQuotingKey.load_or_create(platform.data_dir / "platform")
    return Policy(
        allowed_tees=frozenset({"sim"}),
        allow_simulated=True,
        sim_quoting_keys=frozenset({quoting.public_key_hex}),
        allowed_measurements=frozenset({sim_measurement()}),
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


@contextmanager
def postgres_schema(url: str | None) -> Iterator[str | None]:
    """A fresh schema in ``url``'s database for one run (dropped after); None: SQLite."""
    if url is None:
        yield None
        return
    schema = f"teeflow_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


class _Counted:
    """Counts the HTTP requests the members' clients send (event hook)."""

    def __init__(self, *clients: Client) -> None:
        self.count = 0
        for client in clients:
            client.http.event_hooks["request"].append(self._hook)

    def _hook(self, _request: httpx.Request) -> None:
        self.count += 1


def propose_and_approve(
    creator: Client,
    owner: Client,
    dataset_id: str,
    clock: Callable[[str, Callable[[], Any]], Any],
    *,
    run: bool = False,
) -> str:
    """Propose an `echo` task on the owner's dataset, delivered to the owner, and have both
    approve it (the creator first; with ``run`` its approval carries the run authorisation, so the
    owner's approval queues the task). ``clock(step, call)`` runs each step: the task's id."""
    task = clock(
        "propose",
        lambda: creator.propose(
            "echo", inputs={"data": dataset_id}, outputs={"data": {"recipients": ["owner"]}}
        ),
    )
    clock("approve-creator", lambda: creator.approve(task["id"], run=run))
    clock("approve-owner", lambda: owner.approve(task["id"]))
    return str(task["id"])


def measure(
    executors: int, runs: int, tasks: int, *, database_url: str | None, workers: int
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="teeflow-bench-"))
    # The throughput batch holds `tasks` unfinished tasks of one member at once: above the default
    # per-member quota (server/quotas.py), so the bench's platform raises it.
    env = {"TEEFLOW_MAX_OPEN_TASKS": str(max(tasks, runs) + 10)}
    if database_url:
        env["TEEFLOW_DATABASE_URL"] = database_url
    with LocalPlatform(
        root / "platform", executors=executors, env=env, workers=workers
    ) as platform:
        policy = sim_policy(platform)
        creator, owner = (_member(platform, root, n, policy) for n in ("creator", "owner"))
        counted = _Counted(creator, owner)
        try:
            dataset = owner.upload_dataset(b"id,amount\nu1,1\n", name="tiny.csv", kind="table")
            owner.attest()
            creator.attest()
            steps: dict[str, list[float]] = {step: [] for step in STEPS}

            def timed(step: str, call: Callable[[], Any]) -> Any:
                start = time.perf_counter()
                result = call()
                steps[step].append((time.perf_counter() - start) * 1000)
                return result

            def untimed(_step: str, call: Callable[[], Any]) -> Any:
                return call()

            floor = []
            for _ in range(runs):
                start = time.perf_counter()
                creator.http.get("/v1/users/me").raise_for_status()
                floor.append((time.perf_counter() - start) * 1000)

            latencies = []
            requests_before = counted.count
            for _ in range(runs):
                start = time.perf_counter()
                task_id = propose_and_approve(creator, owner, dataset["id"], timed, run=True)
                done = timed("wait", lambda: creator.wait(task_id))  # noqa: B023
                assert done["status"] == "succeeded", done["failure_reason"]
                timed("output", lambda: owner.output(task_id, "data"))  # noqa: B023
                latencies.append((time.perf_counter() - start) * 1000)
            round_trips = (counted.count - requests_before) / max(runs, 1)

            throughput = 0.0
            if tasks:
                batch = [
                    propose_and_approve(creator, owner, dataset["id"], untimed)
                    for _ in range(tasks)
                ]
                start = time.perf_counter()
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(creator.run, batch))
                for task_id in batch:
                    done = creator.wait(task_id)
                    assert done["status"] == "succeeded", done["failure_reason"]
                throughput = tasks / (time.perf_counter() - start)
        finally:
            creator.close()
            owner.close()
        phases = _executor_phases(platform.data_dir / "logs")
    return {
        "floor_p50": statistics.median(floor) if floor else 0.0,
        "p50": statistics.median(latencies) if latencies else 0.0,
        "p95": _percentile(latencies, 0.95) if latencies else 0.0,
        "throughput": throughput,
        "split": {step: statistics.median(v) for step, v in steps.items() if v},
        "round_trips": round_trips,
        "executor": phases,
    }


def _executor_phases(logs: Path) -> dict[str, float]:
    """Median per-task phase times (ms) from the executors' ``timings`` log lines."""
    import json

    phases: dict[str, list[float]] = {}
    for log in logs.glob("executor-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "; timings " in line:
                for phase, seconds in json.loads(line.split("; timings ", 1)[1]).items():
                    phases.setdefault(phase, []).append(seconds * 1000)
    return {phase: statistics.median(values) for phase, values in sorted(phases.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEEFLOW_BENCH_POSTGRES_URL"),
        help="also measure on this PostgreSQL database (a fresh schema per run)",
    )
    parser.add_argument("--workers", type=int, default=2, help="control planes on PostgreSQL")
    args = parser.parse_args()
    load = os.getloadavg()
    figures = []
    m = measure(1, args.runs, 0, database_url=None, workers=1)
    note = (
        f"{args.runs} sequential flows, SQLite, {m['round_trips']:.0f} HTTP round trips from the"
        " members per flow; plain = one authenticated HTTP round trip"
    )
    split = dict(m["split"])
    split.update({f"executor {k}": v for k, v in m["executor"].items()})
    figures += [
        Figure(
            "P4-p50",
            "echo task latency p50, 1 executor",
            m["floor_p50"],
            m["p50"],
            "ms",
            target_on="teeflow",
            target=TARGETS["P4"],
            note=note,
            split=split,
            split_unit="ms",
        ),
        Figure(
            "P4-p95",
            "echo task latency p95, 1 executor",
            m["floor_p50"],
            m["p95"],
            "ms",
            target_on="teeflow",
            note=note,
        ),
    ]
    databases: list[tuple[str, str | None, int]] = [("sqlite", None, 1)]
    if args.postgres:
        databases.append(("pg", args.postgres, args.workers))
    for name, url, workers in databases:
        for executors in (2, 4):
            with postgres_schema(url) as schema_url:
                m = measure(executors, 0, args.tasks, database_url=schema_url, workers=workers)
            where = "SQLite, 1 worker" if url is None else f"PostgreSQL, {workers} workers"
            figures.append(
                Figure(
                    f"P5-{name}-{executors}x",
                    f"echo task throughput, {executors} executors, {where}",
                    None,
                    m["throughput"],
                    "tasks/s",
                    target_on="teeflow",
                    target=TARGETS["P5"] if executors == 2 else "",
                    note=f"{args.tasks} approved tasks run at once; run -> all succeeded",
                    split={f"executor {k}": v for k, v in m["executor"].items()},
                    split_unit="ms",
                )
            )
    print(
        f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; at end: "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    for f in figures:
        plain = "-" if f.plain is None else f"{f.plain:.1f}"
        print(f"{f.id:12} {f.name:60} {f.teeflow:8.1f} {f.unit:7} (plain {plain}) {f.target}")
        if f.split:
            print(f"{'':12}   split: {f.split_text()}")
    write_json(figures, args.json)


if __name__ == "__main__":
    main()
