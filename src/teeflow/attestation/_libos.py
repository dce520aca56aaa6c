"""Enclave sizing and LibOS configurations (Gramine, Occlum, SCONE) from one set of figures.

The figures are measured, not guessed: peak resident memory and peak thread count of the
executor running the training benchmark here (docs/tee-hosts.md, "Sizing", gives the command
and the numbers). An SGX enclave's size is fixed at build time (without EDMM), so it is the
peak with headroom, rounded up to a power of two as Gramine requires.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MEASURED",
    "EnclaveFootprint",
    "render_occlum_config",
    "render_scone_config",
]


@dataclass(frozen=True)
class EnclaveFootprint:
    """Peak memory (bytes) and threads of one executor, and the headroom to apply."""

    peak_memory_bytes: int
    peak_threads: int
    memory_headroom: float = 2.0
    thread_headroom: int = 16

    @property
    def enclave_size_bytes(self) -> int:
        """Peak x headroom, rounded up to a power of two (Gramine's sgx.enclave_size rule)."""
        need = int(self.peak_memory_bytes * self.memory_headroom)
        return 1 << max(need - 1, 1).bit_length()

    @property
    def enclave_size(self) -> str:
        """``enclave_size_bytes`` as Gramine writes it (``"4G"``, ``"512M"``)."""
        size = self.enclave_size_bytes
        for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
            if size >= 1 << shift and size % (1 << shift) == 0:
                return f"{size >> shift}{unit}"
        return str(size)

    @property
    def max_threads(self) -> int:
        return self.peak_threads + self.thread_headroom


MEASURED = EnclaveFootprint(peak_memory_bytes=605_280 << 10, peak_threads=5)
"""An executor training the tabular MLP (tests/tee/test_tee_executors.py: 40 epochs, checkpoint
every epoch) on this 2-core machine: peak RSS 591 MiB (VmHWM of the executor process), peak 5
threads (``Threads`` in /proc/PID/status), sampled every 0.2 s. Paddle's thread pools grow with
the host's cores, hence the thread headroom; re-measure on the target host and pass
``--enclave-size`` / ``--max-threads`` (docs/tee-hosts.md, "Sizing")."""


def render_occlum_config(
    footprint: EnclaveFootprint = MEASURED, *, python: str = "/bin/python3"
) -> str:
    """An ``Occlum.json`` for the executor (Occlum 0.30 layout), sized from ``footprint``."""
    user_space = footprint.enclave_size_bytes
    config: dict[str, Any] = {
        "resource_limits": {
            "user_space_size": f"{user_space >> 20}MB",
            "kernel_space_heap_size": "64MB",
            "max_num_of_threads": footprint.max_threads,
        },
        "process": {
            "default_stack_size": "4MB",
            "default_heap_size": "256MB",
            "default_mmap_size": f"{(user_space >> 20) // 2}MB",
        },
        "entry_points": ["/bin"],
        "env": {
            "default": ["PYTHONHOME=/opt/python", "TEEFLOW_TEE=sgx"],
            "untrusted": ["TEEFLOW_EXECUTOR_SECRET"],
        },
        "metadata": {
            "product_id": 0,
            "version_number": 0,
            "debuggable": False,
            "enable_kss": False,
        },
        "mount": [
            {
                "target": "/",
                "type": "unionfs",
                "options": {
                    "layers": [
                        {
                            "target": "/",
                            "type": "sefs",
                            "source": "./build/mount/__ROOT",
                            "options": {"MAC": ""},
                        },
                        {"target": "/", "type": "sefs", "source": "./run/mount/__ROOT"},
                    ]
                },
            },
            {"target": "/proc", "type": "procfs"},
            {"target": "/dev", "type": "devfs"},
            {"target": "/tmp", "type": "ramfs"},  # noqa: S108 - enclave-private
        ],
    }
    header = (
        f"// Occlum.json for the teeflow executor; run: occlum run {python} -m teeflow.executor "
        "--tee sgx ...\n// The image's MRENCLAVE is the measurement to allow-list. Sized from "
        "teeflow.attestation MEASURED.\n"
    )
    return header + json.dumps(config, indent=2) + "\n"


def render_scone_config(footprint: EnclaveFootprint = MEASURED) -> str:
    """SCONE environment and a CAS session skeleton for the executor, sized from ``footprint``."""
    heap = footprint.enclave_size_bytes
    lines = [
        "# SCONE configuration for the teeflow executor (scone-python image).",
        "# Environment for the enclave (set in the image or the CAS session):",
        f"SCONE_HEAP={heap >> 20}M",
        "SCONE_STACK=4M",
        f"SCONE_ETHREADS={min(footprint.max_threads, 64)}",
        "SCONE_ALLOW_DLOPEN=2    # only libraries whose hashes are in the protected FSPF",
        "SCONE_MODE=HW           # never SIM or AUTO in production",
        "",
        "# CAS session (scone session create session.yml):",
        "name: teeflow-executor",
        "version: '0.3'",
        "services:",
        "  - name: executor",
        "    mrenclaves: [$MRENCLAVE]   # the measurement to allow-list",
        "    command: python3 -m teeflow.executor --tee sgx --server $SERVER --data-dir /data",
        "    fspf_path: /fspf/fs.fspf",
        "    fspf_key: $FSPF_KEY",
        "    fspf_tag: $FSPF_TAG",
        "security:",
        "  attestation:",
        "    tolerate: []             # no debug, no outdated TCB",
    ]
    return "\n".join(lines) + "\n"
