"""P1 and P6: the same Paddle training run plainly and as a teeflow task through the whole platform.

For each workload, the same model, data, seed and epochs run (a) as a plain Paddle script in its
own process (bench/plain_baselines.py's independent training code) and (b) as a teeflow task: two
hospitals seal and upload their data, the creator proposes, every participant approves (signing and
wrapping keys to the attested enclave), the task runs in a fresh sim-enclave executor process, and
the recipient downloads and decrypts the model and metrics. Runs alternate plain / teeflow so a
change in machine load hits both; figures are medians over ``--repeats``.

Split of the teeflow time (seconds, medians):
- function: the built-in inside the enclave (the executor's phase timer), its host calls and
  sealing excluded;
- crypto: enclave signature checks, input decryption, output / checkpoint / event sealing, plus the
  members' own sealing of inputs and unsealing of outputs (timed on the same bytes);
- enclave io: the enclave waiting on its host (reading inputs, handing a checkpoint or event to
  the outbox thread that uploads it while training goes on, the final drain);
- scheduling: everything else: HTTP, database, blob store, approvals, queueing, uploads.

The note adds the per-epoch cost of what teeflow puts around the training step (the function's
time beyond the whole plain run, the enclave io, the enclave's crypto, and the fixed scheduling
cost spread over the epochs), the function / plain ratio, the CPU time of the executor process
and of the function's thread alone over the plain process's (steadier than wall time when other
work shares the cores), the
outbox's background upload time (it overlaps the training), and the load average.

P6 is the executor process's peak RSS (VmHWM) over the plain script's.

    .venv/bin/python bench/bench_training.py [--repeats 5] [--cnn-epochs 40] [--mlp-epochs 2000]
        [--only cnn|mlp] [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _report import TARGETS, Figure, write_json

BENCH = Path(__file__).resolve().parent
SEED = 0


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    builtin: str
    args: dict[str, Any]
    outputs: tuple[str, ...] = ("model", "metrics")
    files: dict[str, bytes] = field(default_factory=dict)


def workloads(cnn_epochs: int, mlp_epochs: int) -> list[Workload]:
    from teeflow.functions.datasets import breast_cancer_hospitals, digits_hospitals

    bc = breast_cancer_hospitals()
    dg = digits_hospitals()
    return [
        Workload(
            "mlp",
            f"tabular MLP, breast cancer, 2 hospitals, {mlp_epochs} epochs",
            "tabular-train",
            {
                "label_column": "malignant",
                "id_column": "patient_id",
                "model": "mlp",
                "hidden": [32],
                "epochs": mlp_epochs,
                "batch_size": 32,
                "learning_rate": 0.01,
                "seed": SEED,
            },
            # metrics_public: the full metrics carry one line per epoch, over their 64 KiB bound
            # at 2000 epochs (functions/outputs.py).
            outputs=("model", "metrics_public"),
            files={"hospital_a": bc["hospital_a.csv"], "hospital_b": bc["hospital_b.csv"]},
        ),
        Workload(
            "cnn",
            f"CNN, digits images, 2 hospitals, {cnn_epochs} epochs",
            "image-classify-train",
            {
                "model": "cnn",
                "epochs": cnn_epochs,
                "batch_size": 64,
                "learning_rate": 1e-3,
                "seed": SEED,
            },
            files={"hospital_a": dg["hospital_a.npz"], "hospital_b": dg["hospital_b.npz"]},
        ),
    ]


# ------------------------------------------------------------------------------------- plain


def vm_hwm_kib(pid: int | str = "self") -> int:
    """Peak resident set of a process (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/<pid>/status")


def plain_worker(key: str, cnn_epochs: int, mlp_epochs: int) -> None:
    """Child process: run the plain Paddle script for one workload, print JSON."""
    warnings.filterwarnings("ignore")
    import pandas as pd

    from plain_baselines import plain_digits, plain_tabular

    work = {w.key: w for w in workloads(cnn_epochs, mlp_epochs)}[key]
    start, start_cpu = time.perf_counter(), time.process_time()
    if key == "mlp":
        pooled = pd.concat(
            [pd.read_csv(io.BytesIO(b)) for b in work.files.values()], ignore_index=True
        )
        metrics = plain_tabular(
            pooled,
            label="malignant",
            id_col="patient_id",
            hidden=[32],
            epochs=mlp_epochs,
            bs=32,
            lr=0.01,
        )
    else:
        metrics = plain_digits(list(work.files.values()), epochs=cnn_epochs, bs=64, lr=1e-3)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_kib": vm_hwm_kib(), "metrics": metrics}))


def run_plain(key: str, cnn_epochs: int, mlp_epochs: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--plain-worker",
            key,
            "--cnn-epochs",
            str(cnn_epochs),
            "--mlp-epochs",
            str(mlp_epochs),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=BENCH,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------------ teeflow


def _timings(log: Path, task_id: str) -> dict[str, float]:
    pattern = re.compile(rf"task {task_id} (\w+); timings (\{{.*\}})")
    for line in log.read_text(errors="replace").splitlines():
        match = pattern.search(line)
        if match:
            timings: dict[str, float] = json.loads(match.group(2))
            return timings
    raise RuntimeError(f"the executor logged no timings for task {task_id}")


def run_teeflow(work: Workload) -> dict[str, Any]:
    import psutil

    from bench_task_latency import _member, sim_policy
    from teeflow.crypto import DataKey, seal_bytes, unseal_bytes
    from teeflow.server.launcher import LocalPlatform

    root = Path(tempfile.mkdtemp(prefix="teeflow-bench-train-"))
    with LocalPlatform(root / "platform", executors=1) as platform:
        policy = sim_policy(platform)
        owners = {slot: _member(platform, root, slot, policy) for slot in work.files}
        creator = _member(platform, root, "researcher", policy)
        members = [*owners.values(), creator]
        try:
            executor = psutil.Process(platform.executors[0].pid)
            cpu_before = sum(executor.cpu_times()[:2])  # user + system
            start = time.perf_counter()
            datasets = {
                slot: owners[slot].upload_dataset(data, name=f"{slot}.bin", kind="table")
                for slot, data in work.files.items()
            }
            task = creator.propose(
                work.builtin,
                inputs={slot: d["id"] for slot, d in datasets.items()},
                outputs={slot: {"recipients": ["researcher"]} for slot in work.outputs},
                arguments=work.args,
            )
            for member in members:
                member.approve(task["id"])
            creator.run(task["id"])
            done = creator.wait(task["id"], timeout=3600)
            if done["status"] != "succeeded":
                raise RuntimeError(f"task failed: {done['failure_reason']}")
            outputs = {slot: creator.output(task["id"], slot) for slot in work.outputs}
            total = time.perf_counter() - start
            executor_cpu = sum(executor.cpu_times()[:2]) - cpu_before
            rss_kib = vm_hwm_kib(platform.executors[0].pid)
            enclave = _timings(platform.data_dir / "logs" / "executor-0.log", task["id"])
        finally:
            for member in members:
                member.close()

    # The members' own crypto, timed again on the same bytes (the client does not split it out).
    key = DataKey.generate()
    member_crypto = 0.0
    for data in work.files.values():
        began = time.perf_counter()
        seal_bytes(data, key)
        member_crypto += time.perf_counter() - began
    for data in outputs.values():
        assert isinstance(data, bytes)
        sealed = seal_bytes(data, key)
        began = time.perf_counter()
        unseal_bytes(sealed, key)
        member_crypto += time.perf_counter() - began
    function = enclave.get("function", 0.0)
    crypto = enclave.get("crypto", 0.0) + enclave.get("checks", 0.0) + member_crypto
    reported = outputs.get("metrics_public", outputs.get("metrics", b"{}"))
    assert isinstance(reported, bytes)
    metrics = json.loads(reported)
    metrics = metrics.get("test", metrics)
    return {
        "seconds": total,
        "function": function,
        "function cpu": enclave.get("function (cpu)", 0.0),
        "crypto": crypto,
        "enclave io": enclave.get("io", 0.0),
        "enclave crypto": enclave.get("crypto", 0.0),
        "background io": enclave.get("io (background)", 0.0),
        "executor cpu": executor_cpu,
        "scheduling": total - function - crypto - enclave.get("io", 0.0),
        "rss_kib": rss_kib,
        "metrics": metrics,
    }


# --------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cnn-epochs", type=int, default=40)
    parser.add_argument("--mlp-epochs", type=int, default=2000)
    parser.add_argument("--only", choices=["cnn", "mlp"], default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plain-worker", choices=["cnn", "mlp"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        plain_worker(args.plain_worker, args.cnn_epochs, args.mlp_epochs)
        return

    figures: list[Figure] = []
    for work in workloads(args.cnn_epochs, args.mlp_epochs):
        if args.only and work.key != args.only:
            continue
        plain_runs, tee_runs = [], []
        load_before = os.getloadavg()[0]
        for _ in range(args.repeats):
            plain_runs.append(run_plain(work.key, args.cnn_epochs, args.mlp_epochs))
            tee_runs.append(run_teeflow(work))

        def med(runs: list[dict[str, Any]], name: str) -> float:
            return float(statistics.median(r[name] for r in runs))

        plain_s, tee_s = med(plain_runs, "seconds"), med(tee_runs, "seconds")
        epochs = args.mlp_epochs if work.key == "mlp" else args.cnn_epochs
        function = med(tee_runs, "function")
        # Per epoch, what teeflow adds around the training step: the function's time beyond the
        # whole plain run (progress and checkpoint hooks, state serialisation, input parsing),
        # and the enclave's waits on its host and its sealing of checkpoints and events.
        added = {
            "function - plain": (function - plain_s) / epochs * 1e3,
            "enclave io": med(tee_runs, "enclave io") / epochs * 1e3,
            "enclave crypto (inputs, checkpoints, events, outputs)": med(tee_runs, "enclave crypto")
            / epochs
            * 1e3,
            "scheduling": med(tee_runs, "scheduling") / epochs * 1e3,
        }
        # CPU seconds: the executor process over the whole task against the plain process.
        # Steadier than wall time when other work shares the cores (it is not what the target
        # bounds, which is wall time on a quiet machine).
        cpu_ratio = med(tee_runs, "executor cpu") / max(med(plain_runs, "cpu"), 1e-9)
        # The function's own thread CPU over the plain process's CPU: the P1 comparison with
        # scheduling and crypto taken out (CPU time, less sensitive to load than wall time).
        function_cpu_ratio = med(tee_runs, "function cpu") / max(med(plain_runs, "cpu"), 1e-9)
        per_epoch = ", ".join(f"{part} {value:.2f} ms" for part, value in added.items())
        figures.append(
            Figure(
                id=f"P1-{work.key}",
                name=f"training time: {work.title}",
                plain=plain_s,
                teeflow=tee_s,
                unit="s",
                target=TARGETS[f"P1-{work.key}"],
                note=(
                    f"{args.repeats} runs each, alternating; function / plain "
                    f"{function / plain_s:.3f}; CPU time, executor process / plain process "
                    f"{cpu_ratio:.3f}, function thread / plain process {function_cpu_ratio:.3f}; "
                    f"per epoch: {per_epoch}; background io "
                    f"{med(tee_runs, 'background io'):.2f} s (overlaps the function); "
                    f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on "
                    f"{os.cpu_count()} cores"
                ),
                split={
                    part: med(tee_runs, part)
                    for part in ("function", "crypto", "enclave io", "scheduling")
                },
                split_unit="s",
            )
        )
        figures.append(
            Figure(
                id=f"P6-{work.key}",
                name=f"peak RSS while training: {work.title}",
                plain=med(plain_runs, "rss_kib") / 1024,
                teeflow=med(tee_runs, "rss_kib") / 1024,
                unit="MiB",
                target=TARGETS["P6"],
                note="executor process VmHWM vs the plain script's",
            )
        )
        print(f"{work.title}: plain metrics {plain_runs[-1]['metrics']}", flush=True)
        print(f"{work.title}: teeflow metrics {tee_runs[-1]['metrics']}", flush=True)

    for f in figures:
        ratio = f"{f.ratio:.3f}" if f.ratio is not None else "-"
        print(
            f"{f.id:8} {f.name:60} plain {f.plain:9.2f} {f.unit:3} teeflow {f.teeflow:9.2f} "
            f"{f.unit:3} ratio {ratio} (target {f.target}) {f.note}"
        )
        if f.split:
            print(f"{'':8} teeflow split: {f.split_text()}")
    write_json(figures, args.json)


if __name__ == "__main__":
    main()
