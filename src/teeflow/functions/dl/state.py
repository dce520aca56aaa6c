"""Pickle-free (de)serialisation of Paddle state and the per-epoch training checkpoint.

Model weights and checkpoints are zips of ``.npz`` arrays plus JSON. Paddle's own ``paddle.save`` /
``paddle.load`` use pickle, and a model blob may come from another party: unpickling it inside the
enclave would run that party's code. ``np.load(..., allow_pickle=False)`` cannot.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from teeflow.functions.api import Context, FunctionError

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainState",
    "arrays_from_npz",
    "arrays_to_npz",
    "check_zip",
    "exact_json",
    "fingerprint",
    "read_zip",
    "run_fingerprint",
    "tensor_arrays",
    "write_zip",
]

CHECKPOINT_FORMAT = "teeflow-train-checkpoint/1"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def arrays_to_npz(arrays: Mapping[str, Any]) -> bytes:
    """Paddle tensors or numpy arrays, by name, as ``.npz`` bytes."""
    buffer = io.BytesIO()
    plain = {
        name: np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        for name, value in arrays.items()
    }
    np.savez(buffer, **plain)  # type: ignore[arg-type]
    return buffer.getvalue()


def tensor_arrays(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A Paddle state dict (model or optimizer) as copied numpy arrays, by name."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not hasattr(value, "numpy"):
            raise FunctionError(f"cannot save non-tensor state entry {name!r}")
        arrays[name] = np.array(value.numpy(), copy=True)
    return arrays


def arrays_from_npz(data: bytes) -> dict[str, np.ndarray]:
    """Arrays from ``.npz`` bytes; never unpickles. Raises ValueError on anything malformed,
    FunctionError on a zip that would expand beyond :func:`check_zip`'s bounds."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_zip(archive, size=len(data), what="an array archive")
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError("not a valid .npz archive") from exc


def write_zip(members: Mapping[str, bytes]) -> bytes:
    """A zip with fixed timestamps and sorted members, so equal content gives equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            archive.writestr(zipfile.ZipInfo(name, date_time=_FIXED_TIME), members[name])
    return buffer.getvalue()


MAX_ZIP_BYTES = 8 << 30
"""Most bytes a zip may expand to, whatever its size."""
MAX_ZIP_RATIO = 200
"""Most a zip may expand relative to its own size (beyond a 64 MiB allowance): image and array
zips expand a few times, a zip bomb thousands of times."""
MAX_ZIP_MEMBERS = 1_000_000


def check_zip(archive: zipfile.ZipFile, *, size: int, what: str) -> None:
    """Refuse, before reading anything, a zip whose members declare more than
    ``min(MAX_ZIP_BYTES, max(64 MiB, MAX_ZIP_RATIO * size))`` bytes in all, or more than
    :data:`MAX_ZIP_MEMBERS` members. Reading stays bounded by these declared sizes: Python's
    zipfile stops each member at its declared size and fails its CRC if the data says otherwise.
    """
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise FunctionError(f"{what} has more than {MAX_ZIP_MEMBERS} files")
    limit = min(MAX_ZIP_BYTES, max(64 << 20, MAX_ZIP_RATIO * size))
    declared = sum(info.file_size for info in infos)
    if declared > limit:
        raise FunctionError(
            f"{what} would expand to {declared / (1 << 20):.0f} MiB, more than the "
            f"{limit / (1 << 20):.0f} MiB a zip of {size / (1 << 20):.1f} MiB may; split it, "
            "or send it less compressed"
        )


def read_zip(data: bytes, *, what: str) -> dict[str, bytes]:
    """Every member of a zip, within the bounds of :func:`check_zip`."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_zip(archive, size=len(data), what=what)
            return {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FunctionError(f"{what} is not a valid zip archive") from exc


def exact_json(document: Any, *, what: str) -> bytes:
    """``document`` as JSON that loads back to exactly ``document``, or FunctionError.

    Written in the document's own key order (never sorted: RFC 8785 and ``sort_keys`` reorder
    keys, and a reader that took meaning from key order would get another document back), with
    no NaN or infinity, and checked by loading it again: same keys in the same order, same types,
    same values. Anything that would not survive (a non-finite number, a non-string key, a tuple
    where a list is read, a numpy scalar) is refused here rather than loaded back wrong.
    """
    try:
        text = json.dumps(document, indent=1, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FunctionError(f"{what} holds a value that cannot be saved exactly ({exc})") from exc
    if not _same(json.loads(text), document):
        raise FunctionError(f"{what} would not load back exactly as saved")
    return text.encode("utf-8")


def _same(loaded: Any, saved: Any) -> bool:
    """Equal values, equal types and equal key order, all the way down."""
    if type(loaded) is not type(saved):
        return False
    if isinstance(saved, dict):
        return list(loaded) == list(saved) and all(_same(loaded[key], saved[key]) for key in saved)
    if isinstance(saved, list):
        return len(loaded) == len(saved) and all(
            _same(a, b) for a, b in zip(loaded, saved, strict=True)
        )
    return bool(loaded == saved)


def fingerprint(config: Mapping[str, Any]) -> str:
    """A short hash of the settings a checkpoint is only valid for."""
    canonical = json.dumps(config, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()[:16]


def run_fingerprint(ctx: Context, slots: Iterable[str], net_config: Mapping[str, Any]) -> str:
    """The :func:`fingerprint` a training checkpoint is bound to: the network's settings, the
    task's arguments and the SHA-256 of each input slot's plaintext, in ``slots`` order, so a
    checkpoint resumes only the same training on the same data."""
    digest = hashlib.sha256()
    for slot in slots:
        digest.update(hashlib.sha256(ctx.inputs[slot].read_bytes()).digest())
    return fingerprint({**net_config, **dict(ctx.args), "data": digest.hexdigest()})


@dataclass
class TrainState:
    """Everything needed to continue training exactly where an epoch ended."""

    epoch: int
    """Epochs completed."""
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    rng: dict[str, Any]
    """``numpy.random.RandomState.get_state(legacy=False)`` of the shuffling RNG."""
    history: list[dict[str, Any]] = field(default_factory=list)
    config_fingerprint: str = ""

    def to_bytes(self) -> bytes:
        rng = dict(self.rng)
        keys = np.asarray(rng.pop("state")["key"], dtype=np.uint32)
        pos = int(self.rng["state"]["pos"])
        meta = {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "history": self.history,
            "config_fingerprint": self.config_fingerprint,
            "rng": {**rng, "pos": pos},
        }
        return write_zip(
            {
                "meta.json": exact_json(meta, what="the checkpoint"),
                "model.npz": arrays_to_npz(self.model),
                "optimizer.npz": arrays_to_npz(self.optimizer),
                "rng.npz": arrays_to_npz({"key": keys}),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainState:
        members = read_zip(data, what="the checkpoint")
        try:
            meta = json.loads(members["meta.json"])
            if meta.get("format") != CHECKPOINT_FORMAT:
                raise FunctionError("the checkpoint has an unknown format; start the task afresh")
            rng_meta = dict(meta["rng"])
            pos = rng_meta.pop("pos")
            rng_meta["state"] = {"key": arrays_from_npz(members["rng.npz"])["key"], "pos": pos}
            return cls(
                epoch=int(meta["epoch"]),
                model=arrays_from_npz(members["model.npz"]),
                optimizer=arrays_from_npz(members["optimizer.npz"]),
                rng=rng_meta,
                history=list(meta["history"]),
                config_fingerprint=str(meta["config_fingerprint"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise FunctionError("the checkpoint is incomplete; start the task afresh") from exc
