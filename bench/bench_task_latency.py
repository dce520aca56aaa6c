"""Latency of a trivial `echo` task through the whole platform, over N runs.

propose -> every approval (each signs, wraps its key to the attested enclave) -> run -> wait ->
output (download, check against the receipt, decrypt). Real HTTP, real executor processes.

    .venv/bin/python bench/bench_task_latency.py [--runs 50] [--executors 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--executors", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="teeflow-bench-"))
    with LocalPlatform(root / "platform", executors=args.executors) as platform:
        quoting = SimQuotingKey.load_or_create(platform.data_dir / "platform")
        policy = Policy(
            allowed_tees=frozenset({"sim"}),
            allow_simulated=True,
            sim_quoting_keys=frozenset({quoting.public_key_hex}),
            allowed_measurements=frozenset({sim_measurement()}),
        )
        creator, owner = (_member(platform, root, n, policy) for n in ("creator", "owner"))
        dataset = owner.upload_dataset(b"id,amount\nu1,1\n", name="tiny.csv", kind="table")
        owner.attest()
        creator.attest()
        latencies = []
        for _ in range(args.runs):
            start = time.perf_counter()
            task = creator.propose(
                "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["owner"]}}
            )
            creator.approve(task["id"])
            owner.approve(task["id"])
            creator.run(task["id"])
            done = creator.wait(task["id"], poll=0.01)
            assert done["status"] == "succeeded", done["failure_reason"]
            owner.output(task["id"], "data")
            latencies.append((time.perf_counter() - start) * 1000)
        creator.close()
        owner.close()
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"echo task, {args.runs} runs, {args.executors} executor(s): "
        f"p50 {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, "
        f"min {latencies[0]:.0f} ms, max {latencies[-1]:.0f} ms"
    )


if __name__ == "__main__":
    main()
