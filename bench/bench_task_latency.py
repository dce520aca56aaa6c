"""P4 / P5: a trivial `echo` task through the whole platform: latency, and throughput.

Latency (P4), one flow at a time: propose -> every approval (each signs and wraps its key to the
attested enclave) -> run -> wait -> output (download, check against the receipt, decrypt). Real
HTTP, real executor processes. Beside it: a bare authenticated HTTP round trip to the same server,
the floor any request pays.

Throughput (P5): ``--tasks`` echo tasks are proposed and approved first (untimed: approvals are a
person's act); then the clock runs from the first `run` to the last task succeeded, with the
creator starting them from 4 threads. Both with 1 and with 2 executors.

    .venv/bin/python bench/bench_task_latency.py [--runs 50] [--tasks 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _report import Figure, write_json
from teeflow.attestation import Policy, SimQuotingKey, sim_measurement
from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.launcher import LocalPlatform


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


def measure(executors: int, runs: int, tasks: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="teeflow-bench-"))
    with LocalPlatform(root / "platform", executors=executors) as platform:
        policy = sim_policy(platform)
        creator, owner = (_member(platform, root, n, policy) for n in ("creator", "owner"))
        try:
            dataset = owner.upload_dataset(b"id,amount\nu1,1\n", name="tiny.csv", kind="table")
            owner.attest()
            creator.attest()

            def propose_and_approve() -> str:
                task = creator.propose(
                    "echo",
                    inputs={"data": dataset["id"]},
                    outputs={"data": {"recipients": ["owner"]}},
                )
                creator.approve(task["id"])
                owner.approve(task["id"])
                return str(task["id"])

            floor = []
            for _ in range(runs):
                start = time.perf_counter()
                creator.http.get("/v1/users/me").raise_for_status()
                floor.append((time.perf_counter() - start) * 1000)

            latencies = []
            for _ in range(runs):
                start = time.perf_counter()
                task_id = propose_and_approve()
                creator.run(task_id)
                done = creator.wait(task_id)
                assert done["status"] == "succeeded", done["failure_reason"]
                owner.output(task_id, "data")
                latencies.append((time.perf_counter() - start) * 1000)

            batch = [propose_and_approve() for _ in range(tasks)]
            start = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(creator.run, batch))
            for task_id in batch:
                done = creator.wait(task_id)
                assert done["status"] == "succeeded", done["failure_reason"]
            elapsed = time.perf_counter() - start
        finally:
            creator.close()
            owner.close()
    return {
        "floor_p50": statistics.median(floor),
        "p50": statistics.median(latencies),
        "p95": _percentile(latencies, 0.95),
        "throughput": tasks / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures = []
    for executors in (1, 2):
        m = measure(executors, args.runs, args.tasks)
        label = f"{executors} executor{'s' if executors > 1 else ''}"
        note = f"{args.runs} sequential flows; plain = one authenticated HTTP round trip"
        figures += [
            Figure(
                f"P4-p50-{executors}x",
                f"echo task latency p50, {label}",
                m["floor_p50"],
                m["p50"],
                "ms",
                target_on="teeflow",
                target="<= 150",
                note=note,
            ),
            Figure(
                f"P4-p95-{executors}x",
                f"echo task latency p95, {label}",
                m["floor_p50"],
                m["p95"],
                "ms",
                target_on="teeflow",
                note=note,
            ),
            Figure(
                f"P5-{executors}x",
                f"echo task throughput, {label}",
                None,
                m["throughput"],
                "tasks/s",
                target_on="teeflow",
                target=">= 50",
                note=f"{args.tasks} approved tasks run at once; run -> all succeeded",
            ),
        ]
    for f in figures:
        plain = "-" if f.plain is None else f"{f.plain:.1f}"
        print(f"{f.id:10} {f.name:42} {f.teeflow:8.1f} {f.unit:7} (plain {plain}) {f.target}")
    write_json(figures, args.json)


if __name__ == "__main__":
    main()
