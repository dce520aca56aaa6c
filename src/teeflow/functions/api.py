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

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from teeflow.crypto import DataKey

__all__ = [
    "Context",
    "FunctionError",
    "InputData",
    "OutputData",
]


class FunctionError(Exception):
    """A function's own, party-facing failure (bad arguments, unusable data)."""


class InputData:
    """One input slot in enclave memory: its plaintext, or its checked ciphertext and key, then
    decrypted only as it is read.

    A sealed input (:meth:`sealed`) is decrypted a chunk at a time by :meth:`open`, so a function
    that parses as it reads (``tabular-predict``) never holds the whole plaintext; ``data`` (and
    everything built on it) decrypts it whole on first use and keeps it. A chunk that fails
    authentication raises FunctionError naming the slot.
    """

    def __init__(self, slot: str, data: bytes | None = None, owner: str = "") -> None:
        self.slot = slot
        self.owner = owner
        self._data = data
        self._sealed: tuple[bytes, DataKey] | None = None
        self._size = 0 if data is None else len(data)

    @classmethod
    def sealed(cls, slot: str, ciphertext: bytes, key: DataKey, owner: str = "") -> InputData:
        """An input decrypted as it is read. Raises IntegrityError for a malformed header or
        another key's ciphertext."""
        from teeflow.crypto import sealed_plaintext_size

        found = cls(slot, None, owner)
        found._sealed = (ciphertext, key)
        found._size = sealed_plaintext_size(ciphertext, key)
        return found

    def __repr__(self) -> str:
        return f"InputData(slot={self.slot!r}, size={self._size}, owner={self.owner!r})"

    @property
    def size(self) -> int:
        """Plaintext bytes (known without decrypting)."""
        return self._size

    @property
    def data(self) -> bytes:
        """The whole plaintext (decrypted now if it is still sealed)."""
        if self._data is None:
            with self._decrypting():
                from teeflow.crypto import unseal_bytes

                assert self._sealed is not None
                self._data = unseal_bytes(*self._sealed)
            self._sealed = None
        return self._data

    def read_bytes(self) -> bytes:
        return self.data

    def open(self) -> BinaryIO:
        """The plaintext as a binary file; for a sealed input, decrypted as it is read (reads
        raise FunctionError if a chunk fails authentication)."""
        if self._sealed is None:
            return io.BytesIO(self.data)
        from teeflow.crypto import UnsealReader

        with self._decrypting():
            reader = UnsealReader(io.BytesIO(self._sealed[0]), self._sealed[1])
        return cast(BinaryIO, io.BufferedReader(_Failing(reader, self._decrypting)))

    def text(self) -> str:
        return self.data.decode("utf-8")

    def to_pandas(self, **kwargs: Any) -> pd.DataFrame:
        """Read a CSV (default) or Parquet table (detected by its magic bytes)."""
        import pandas as pd

        with self.open() as head:
            parquet = head.read(4) == b"PAR1"
        if parquet:
            return pd.read_parquet(self.open(), **kwargs)
        return pd.read_csv(self.open(), **kwargs)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Load an ``.npz`` archive into a dict of arrays (no pickles are allowed)."""
        import numpy as np

        with np.load(self.open(), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    @contextlib.contextmanager
    def _decrypting(self) -> Iterator[None]:
        from teeflow.crypto import IntegrityError

        try:
            yield
        except IntegrityError as exc:
            raise FunctionError(f"input {self.slot!r} does not decrypt: {exc}") from None


class _Failing(io.RawIOBase):
    """A raw reader whose reads run inside ``guard`` (to turn crypto errors into ours)."""

    def __init__(
        self, raw: io.RawIOBase, guard: Callable[[], contextlib.AbstractContextManager[None]]
    ) -> None:
        super().__init__()
        self._raw = raw
        self._guard = guard

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        with self._guard():
            return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


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

    def clear(self) -> None:
        """Drop what was written (a function that starts the output over)."""
        self._buffer = io.BytesIO()
        self.written = False


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
