"""`make bench`: run every benchmark, then write bench/results/report.{json,md} and print a table.

Each benchmark runs in its own process (so one's memory does not inflate another's) and writes its
figures as JSON; this script adds the machine and library versions and renders the report. Every
figure compares plain and teeflow measured in the same run.

    .venv/bin/python bench/run_all.py [--quick] [--only P1,P3] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import ssl
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent

# (group, script, full arguments, quick arguments)
SUITE: list[tuple[str, str, list[str], list[str]]] = [
    (
        "P1/P6",
        "bench_training.py",
        [],
        ["--repeats", "1", "--cnn-epochs", "2", "--mlp-epochs", "9"],
    ),
    ("P2", "bench_inference.py", [], ["--quick"]),
    ("P3", "bench_sealed.py", [], ["--mib", "32", "--repeats", "3"]),
    ("P4/P5", "bench_task_latency.py", [], ["--runs", "10", "--tasks", "40"]),
    ("P8", "bench_attestation.py", [], ["--rounds", "20"]),
    ("P9", "bench_dp.py", [], ["--epochs", "5", "--epsilons", "1,8"]),
]


def environment() -> dict[str, Any]:
    import cryptography
    import paddle
    from cryptography.hazmat.backends.openssl.backend import backend

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=BENCH,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "paddlepaddle": paddle.__version__,
        "cryptography": cryptography.__version__,
        "openssl (cryptography)": backend.openssl_version_text(),
        "openssl (python ssl)": ssl.OPENSSL_VERSION,
        "teeflow commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "load average at start (1, 5, 15 min)": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "tee": "sim (no TEE hardware on this machine)",
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _split(figure: dict[str, Any]) -> str:
    split = figure.get("split") or {}
    unit = figure.get("split_unit", "")
    return ", ".join(f"{part} {_fmt(value)} {unit}" for part, value in split.items()) or "-"


def render_markdown(env: dict[str, Any], figures: list[dict[str, Any]], failures: list[str]) -> str:
    lines = ["# teeflow benchmarks: confidential versus plain", ""]
    lines += [f"- {key}: {value}" for key, value in env.items()]
    lines += [
        "",
        "Each row compares the same work done plainly and through teeflow in the same run. "
        "`bound` is the quantity the target applies to: teeflow / plain (ratio), teeflow itself "
        "(absolute), or teeflow - plain (added).",
        "",
        "| id | figure | plain | teeflow | unit | bound | target | met | teeflow split | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "-"}[f.get("met")]
        bound = f"{_fmt(f.get('bounded'))} ({f.get('target_on', 'ratio')})"
        lines.append(
            f"| {f['id']} | {f['name']} | {_fmt(f.get('plain'))} | {_fmt(f['teeflow'])} | "
            f"{f['unit']} | {bound} | {f.get('target') or '-'} | {met} | {_split(f)} | "
            f"{f.get('note', '')} |"
        )
    if failures:
        lines += ["", "## Benchmarks that did not finish", ""]
        lines += [f"- {failure}" for failure in failures]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the pipeline")
    parser.add_argument("--only", default="", help="comma-separated groups, e.g. P3,P8")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    only = {g.strip() for g in args.only.split(",") if g.strip()}

    env = environment()
    figures: list[dict[str, Any]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        for group, script, full, quick in SUITE:
            if only and not only & set(group.split("/")):
                continue
            out = Path(scratch) / f"{script}.json"
            command = [sys.executable, str(BENCH / script), *(quick if args.quick else full)]
            print(f"== {group}: {' '.join(command[1:])}", flush=True)
            started = time.monotonic()
            result = subprocess.run([*command, "--json", str(out)], cwd=BENCH, check=False)
            print(f"== {group}: {time.monotonic() - started:.0f} s", flush=True)
            if result.returncode != 0 or not out.exists():
                failures.append(f"{group} ({script}) exited with status {result.returncode}")
                continue
            figures += json.loads(out.read_text())

    args.out.mkdir(parents=True, exist_ok=True)
    env["load average at end (1, 5, 15 min)"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    report = {"environment": env, "figures": figures, "failures": failures}
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(env, figures, failures)
    (args.out / "report.md").write_text(markdown)
    print()
    print(markdown)
    print(f"wrote {args.out / 'report.md'} and {args.out / 'report.json'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
