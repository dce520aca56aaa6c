"""The function's side of a task: its context (checkpoints, progress events) and its call.

Checkpoints and progress are sealed in the function's own thread (enclave/checkpoint_seal.py,
enclave/sealing.py) and left to the outbox to upload; the function itself is a registered
built-in or uploaded code run in the sandbox (functions/sandbox.py). Any exception it raises
fails the task with a party-facing message, never the enclave.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.outbox import Outbox
from teeflow.enclave.sealing import sealed_events
from teeflow.enclave.task import Host, OpenedTask
from teeflow.enclave.timing import Pace, PhaseTimer, TimedHost
from teeflow.functions.api import Context, FunctionError, OutputData

__all__ = ["run_function", "scratch_root", "task_context"]


def task_context(
    opened: OpenedTask,
    contract: Mapping[str, Any],
    outputs: dict[str, OutputData],
    scratch: Path,
    host: Host,
    timer: PhaseTimer,
    outbox: Outbox,
    *,
    identity: EnclaveIdentity,
    seal_checkpoint: Callable[[str, bytes], bytes],
    checkpoint_interval_s: float,
    progress_interval_s: float,
) -> Context:
    """The function's context. Checkpoints (sealed by ``seal_checkpoint(contract hash,
    payload)``, at most once per ``checkpoint_interval_s`` where the function asks) and progress
    events (signed by ``identity``, at most once per ``progress_interval_s``) are sealed here, in
    the function's thread, and uploaded by ``outbox`` while the function goes on."""
    raw_host = host.inner if isinstance(host, TimedHost) else host
    chash = opened.contract_hash
    counter = [opened.checkpoint_seq]
    run_id = bytes.fromhex(opened.grant.run_id)
    events = opened.events

    checkpoint_pace = Pace(checkpoint_interval_s)
    progress_pace = Pace(progress_interval_s)
    held: list[Mapping[str, Any]] = []

    def save(state: bytes) -> None:
        counter[0] += 1
        sequence = counter[0]
        with timer.phase("crypto"):
            header = sequence.to_bytes(8, "big") + events.seq.to_bytes(8, "big") + run_id
            sealed = seal_checkpoint(chash, header + state)
        with timer.phase("io"):  # only waits while the previous upload holds the queue
            outbox.submit(lambda: raw_host.save_checkpoint(sealed, sequence))
        checkpoint_pace.mark()

    def progress(metrics: Mapping[str, Any]) -> None:
        # Called with no metrics: send what is held back. Otherwise the latest metrics win.
        if metrics:
            held[:] = [metrics]
            if not progress_pace.due():
                return
        if held:
            data = {"kind": "progress", **held.pop()}
            sealed = sealed_events(identity, chash, contract, "progress", timer, data, events)
            for name, payload in sealed:
                with timer.phase("io"):
                    outbox.submit(functools.partial(raw_host.emit_event, name, payload))
            progress_pace.mark()

    return Context(
        inputs=opened.inputs,
        args=dict(contract["arguments"]),
        outputs=outputs,
        scratch=scratch,
        _progress=progress,
        _checkpoint=save,
        _checkpoint_due=checkpoint_pace.due,
        _restored=opened.restored,
    )


def run_function(
    contract: Mapping[str, Any], source: str | None, ctx: Context, *, timeout_s: float
) -> str | None:
    """Run the contract's built-in, or the uploaded ``source`` in the sandbox (for at most
    ``timeout_s`` seconds); return a party-facing error message, or None on success."""
    function = contract["function"]
    try:
        if source is None:
            from teeflow.functions.registry import get_builtin

            get_builtin(function["name"]).load()(ctx)
        else:
            from teeflow.functions.sandbox import run_in_sandbox

            run_in_sandbox(source, ctx, timeout_s=timeout_s)
    except FunctionError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - any function failure fails the task, not the enclave
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return f"function raised {last}"
    return None


def scratch_root() -> str | None:
    """Task scratch space in memory (/dev/shm) where the host has it."""
    shm = Path("/dev/shm")  # noqa: S108 - a fresh mkdtemp (0700) inside it, not a fixed name
    return str(shm) if shm.is_dir() else None
