"""The ``run(ctx)`` API that every teeflow function, built-in or uploaded, is written against.

A function sees its task only through a :class:`Context`: decrypted inputs (in enclave memory), the
contract's arguments, the output slots the contract names, and two channels that leave the enclave
under the contract's rules: ``progress`` (only to the parties on the disclosure list, encrypted) and
``checkpoint`` (sealed under a key only the enclave derives).

Contract with the enclave runtime:
- ``ctx.inputs`` holds exactly the contract's input slots; ``ctx.outputs`` exactly its output slots.
- A function must write every output slot it is given; the runtime fails the task otherwise.
- A function raises :class:`FunctionError` with a message meant for the parties; any other exception
  also fails the task, its text shown only to the parties the contract names.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "Context",
    "FunctionError",
    "InputData",
    "OutputData",
]


class FunctionError(Exception):
    """A function's own, party-facing failure (bad arguments, unusable data)."""


@dataclass
class InputData:
    """One decrypted input slot, held in memory."""

    slot: str
    data: bytes
    owner: str = ""

    def read_bytes(self) -> bytes:
        return self.data

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    def text(self) -> str:
        return self.data.decode("utf-8")

    def to_pandas(self, **kwargs: Any) -> pd.DataFrame:
        """Read a CSV (default) or Parquet table (detected by its magic bytes)."""
        import pandas as pd

        if self.data[:4] == b"PAR1":
            return pd.read_parquet(self.open(), **kwargs)
        return pd.read_csv(self.open(), **kwargs)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Load an ``.npz`` archive into a dict of arrays (no pickles are allowed)."""
        import numpy as np

        with np.load(self.open(), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}


@dataclass
class OutputData:
    """One output slot; the runtime seals what is written here for the contract's recipients."""

    slot: str
    _buffer: io.BytesIO = field(default_factory=io.BytesIO, repr=False)
    written: bool = False

    def write(self, data: bytes) -> None:
        self._buffer.write(data)
        self.written = True

    def write_text(self, text: str) -> None:
        self.write(text.encode("utf-8"))

    def write_json(self, obj: Any) -> None:
        self.write(json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"))

    def write_file(self, path: Path) -> None:
        self.write(Path(path).read_bytes())

    def getvalue(self) -> bytes:
        return self._buffer.getvalue()


ProgressSink = Callable[[Mapping[str, Any]], None]
CheckpointSink = Callable[[bytes], None]


def _drop_progress(_: Mapping[str, Any]) -> None:
    return None


def _drop_checkpoint(_: bytes) -> None:
    return None


def _always() -> bool:
    return True


@dataclass
class Context:
    """What a function sees of its task."""

    inputs: Mapping[str, InputData]
    args: Mapping[str, Any]
    outputs: Mapping[str, OutputData]
    scratch: Path
    """A private directory for temporary files (in enclave memory under a real TEE)."""
    _progress: ProgressSink = _drop_progress
    _checkpoint: CheckpointSink = _drop_checkpoint
    _checkpoint_due: Callable[[], bool] = _always
    _restored: bytes | None = None
    min_rows: int = 0
    """The fewest rows behind any aggregate the function may disclose (the strictest input
    policy's threshold, enclave/policies.py); built-ins withhold smaller ones
    (functions/thresholds.py)."""
    privacy_spent: dict[str, float] | None = None
    """A DP trainer sets ``{"epsilon", "delta"}`` it spent; the enclave's receipt states it."""

    def progress(self, **metrics: Any) -> None:
        """Report progress (e.g. ``epoch=3, loss=0.41``); only disclosed parties can read it."""
        self._progress(metrics)

    def checkpoint(self, state: bytes) -> None:
        """Save resumable state; another executor resumes from the latest one after a crash."""
        self._checkpoint(state)

    def checkpoint_due(self) -> bool:
        """Whether a checkpoint is worth its cost now (the executor paces them; by default one
        a second). Ask before building the state; a crash redoes the work since the last one."""
        return self._checkpoint_due()

    def restore(self) -> bytes | None:
        """The latest checkpoint of this task, or None on a fresh start."""
        return self._restored

    def arg(self, name: str, default: Any = None, *, required: bool = False) -> Any:
        if name in self.args:
            return self.args[name]
        if required:
            raise FunctionError(f"argument {name!r} is required; add it to the task's arguments")
        return default
