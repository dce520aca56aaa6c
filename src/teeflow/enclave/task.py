"""What the untrusted host hands the enclave for one task, and what the enclave hands back.

:class:`TaskBundle` (contract, approvals, provenance) and the :class:`Host` byte streams come in;
nothing in them is believed before enclave/checks.py and enclave/opening.py check it.
:class:`OpenedTask` is a task past every check, :class:`ExecutionResult` its sealed outputs and
signed receipt (enclave/runtime.py runs it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from teeflow.enclave.checks import TaskRejected
from teeflow.enclave.events import EventCounter
from teeflow.enclave.run_state import RunGrant
from teeflow.functions.api import InputData

__all__ = [
    "ExecutionResult",
    "Host",
    "OpenRefused",
    "OpenedTask",
    "SealedOutput",
    "TaskBundle",
]


class Host(Protocol):
    """Untrusted I/O the enclave uses. Nothing it returns is believed without a check."""

    def read_input(self, slot: str) -> bytes: ...

    def read_function_source(self) -> bytes: ...

    def load_checkpoint(self) -> bytes | None: ...

    def save_checkpoint(self, sealed: bytes, sequence: int) -> None: ...

    def emit_event(self, recipient: str, payload: str) -> None: ...


@dataclass(frozen=True)
class TaskBundle:
    """What the control plane hands the enclave for one task."""

    contract: Mapping[str, Any]
    approvals: Mapping[str, Mapping[str, Any]]
    """username -> {"signature": b64, "wrapped_keys": {slot: b64}}"""
    joint_inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """input slot -> {"receipt": signed receipt of the producing task, "wrapped_key": b64}"""
    run_authorisation: Mapping[str, Any] | None = None
    """The creator's signed run authorisation (enclave/run_state.py); none: the task never runs."""
    withdrawals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """username -> that participant's signed withdrawal of its approval."""


@dataclass(frozen=True)
class SealedOutput:
    ciphertext: bytes
    ciphertext_sha256: str
    wrapped_keys: dict[str, str]
    """recipient username -> b64 HPKE-wrapped key; for a joint output: {"enclave": …}."""
    joint_owners: list[str] | None


@dataclass(frozen=True)
class ExecutionResult:
    status: str
    """"succeeded" or "failed"."""
    outputs: dict[str, SealedOutput]
    receipt: dict[str, Any]
    reason: str
    """Public failure reason (never function data); empty on success."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase (see :class:`PhaseTimer`); for the executor's log and benchmarks."""


@dataclass(frozen=True)
class OpenedTask:
    """A task that passed every check, its inputs decrypted in enclave memory."""

    contract_hash: str
    inputs: dict[str, InputData]
    input_hashes: dict[str, str]
    """slot -> the ciphertext SHA-256 that was checked (for the receipt)."""
    source: str | None
    """Uploaded function source; None for a built-in."""
    grant: RunGrant
    """The run authorisation the task runs under."""
    restored: bytes | None = None
    """The function's state from the sealed checkpoint, if the host handed one in."""
    checkpoint_seq: int = 0
    events: EventCounter = field(default_factory=EventCounter)
    """The enclave's event sequence, continued from the checkpoint."""
    min_rows: int = 0
    """Aggregation threshold from the strictest input policy (enclave/policies.py)."""
    spend: dict[str, dict[str, float]] = field(default_factory=dict)
    """input slot -> the DP budget the task declares it spends (enclave/budget.py)."""


class OpenRefused(TaskRejected):
    """:meth:`EnclaveRuntime.open_task` refused the task; says how far the checks got."""

    def __init__(self, reason: str, *, contract_hash: str, input_hashes: dict[str, str]) -> None:
        super().__init__(reason)
        self.contract_hash = contract_hash
        self.input_hashes = input_hashes
