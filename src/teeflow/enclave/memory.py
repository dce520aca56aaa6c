"""The enclave's memory budget: refuse a task that would not fit, record what a task used.

A TEE has a fixed memory limit (SGX: the enclave size / EPC; TDX and SEV-SNP: the CVM's memory).
Past it an SGX enclave pages EPC (slow) or fails, a CVM swaps or is killed. The executor is
configured with the limit (``--memory-limit``); a task may declare what it needs
(``arguments.memory_bytes``), otherwise it is estimated from the decrypted inputs.

Peak memory is the process's high-water resident set (``VmHWM``), reset at each task start
through ``/proc/self/clear_refs`` (Linux 4.0+) so it is per task; where that is not available,
the lifetime peak (``ru_maxrss``) is reported instead.
"""

from __future__ import annotations

import contextlib
import re
import resource
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "INPUT_EXPANSION",
    "MemoryBudgetExceeded",
    "check_memory_budget",
    "parse_size",
    "peak_memory_bytes",
    "reset_peak_memory",
    "resident_bytes",
]

INPUT_EXPANSION = 8
"""Estimated working memory per byte of decrypted input (parsed tables, tensors, gradients)."""
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class MemoryBudgetExceeded(Exception):
    """The task needs more memory than this enclave has; the message is public."""


def parse_size(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"1048576"`` -> bytes (binary units); ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)I?B?\s*", text.upper())
    if not match:
        raise ValueError(f"memory size {text!r} is not like 8G, 512M or a number of bytes")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _status_bytes(field: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def resident_bytes() -> int:
    """The process's resident set now (bytes)."""
    return _status_bytes("VmRSS") or 0


def reset_peak_memory() -> None:
    """Start a new peak-memory window (best effort)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_bytes() -> int:
    """Peak resident set since :func:`reset_peak_memory` (or process start), including the
    largest child process (uploaded functions run in a sandbox child)."""
    own = _status_bytes("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return max(own, children)


def check_memory_budget(contract: Mapping[str, Any], input_bytes: int, *, limit: int | None) -> int:
    """The task's declared or estimated memory (bytes); MemoryBudgetExceeded above ``limit``."""
    declared = contract.get("arguments", {}).get("memory_bytes")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        need, how = declared, "declared"
    else:
        need, how = resident_bytes() + INPUT_EXPANSION * input_bytes, "estimated"
    if limit is not None and need > limit:
        raise MemoryBudgetExceeded(
            f"task needs about {need >> 20} MiB ({how}) but this enclave's memory limit is "
            f"{limit >> 20} MiB; run it on an executor with a larger TEE (--memory-limit, SGX "
            "enclave size / CVM memory) or reduce its inputs"
        )
    return need
