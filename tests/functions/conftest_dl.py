"""Helpers for the PaddlePaddle built-in tests: build a Context, run a built-in, collect outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teeflow.functions.api import Context, InputData, OutputData
from teeflow.functions.registry import get_builtin


@dataclass
class Run:
    outputs: dict[str, bytes]
    progress: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[bytes] = field(default_factory=list)

    def json(self, slot: str) -> Any:
        return json.loads(self.outputs[slot])


class Crash(Exception):
    """Raised from the checkpoint sink to simulate an executor dying after an epoch."""


def run_builtin(
    name: str,
    inputs: dict[str, bytes],
    args: dict[str, Any],
    outputs: tuple[str, ...],
    scratch: Path,
    *,
    restored: bytes | None = None,
    crash_after_checkpoints: int | None = None,
) -> Run:
    """Run built-in ``name`` through a Context; optionally crash after N checkpoints."""
    run = Run(outputs={})

    def on_checkpoint(state: bytes) -> None:
        run.checkpoints.append(state)
        if crash_after_checkpoints is not None and len(run.checkpoints) >= crash_after_checkpoints:
            raise Crash

    slots = {slot: OutputData(slot) for slot in outputs}
    scratch.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        inputs={slot: InputData(slot, data) for slot, data in inputs.items()},
        args=args,
        outputs=slots,
        scratch=scratch,
        _progress=lambda metrics: run.progress.append(dict(metrics)),
        _checkpoint=on_checkpoint,
        _restored=restored,
    )
    get_builtin(name).load()(ctx)
    run.outputs = {slot: out.getvalue() for slot, out in slots.items() if out.written}
    return run
