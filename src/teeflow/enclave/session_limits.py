"""The limits of an inference session, as the signed contract states them, and the enclave's
bookkeeping that enforces them (docs/inference.md, "Limits").

Every limit is an argument of the session's contract, so every participant signed it and the
model's owner saw it in the review (client/_session_review.py). The defaults are modest: a
session is for a requester's day-to-day scoring, not for bulk export; batch scoring of a large
table is a ``tabular-predict`` task, which the model's owner approves for that very table.

=========================  =========  ===========================================================
argument                   default    why
=========================  =========  ===========================================================
``max_rows_per_request``   100        a request scores a handful of cases, never a bulk table
``max_rows``               10,000     a day of online scoring; bulk scoring is a batch task
``max_requests``           1,000      bounds the number of probes as well as the rows
``max_requests_per_minute`` 60        one a second on average: interactive use, not a scraper
``max_seconds``            86,400     one day; a longer session is a new contract to approve
``decimals``               (none)     probabilities to full precision unless the contract rounds
=========================  =========  ===========================================================

The counters (:class:`SessionCounters`) survive a session resumed on another executor: the
enclave seals them into the session's checkpoint (key derived from its identity and the contract
hash) before the answers they count leave it, with the requesters' anti-replay windows
(enclave/session_replay.py: bounded, so the checkpoint does not grow with the session). A resumed
session starts from the last checkpoint,
so it never counts fewer requests or rows than were answered, unless the operator hands it an
older checkpoint (there is no monotonic counter in the simulated TEE): then it may answer again
at most what was answered after that checkpoint.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from teeflow.crypto import DataKey, IntegrityError, seal_bytes, unseal_bytes
from teeflow.enclave.checks import TaskRejected
from teeflow.enclave.identity import derive_key
from teeflow.enclave.session_replay import ReplayWindows
from teeflow.functions.builtins.signatures import IMAGE_SERVE

__all__ = [
    "DEFAULTS",
    "LARGE",
    "RATE_WINDOW_SECONDS",
    "RateWindow",
    "SessionCounters",
    "SessionLimits",
    "counters_key",
    "round_probabilities",
]

# Defaults and ranges come from the session built-ins' declaration (functions/builtins/
# signatures.py), the one source the proposer's client, the docs and this check all read.
_DECLARED = {arg.name: arg for arg in IMAGE_SERVE.arguments if arg.name != "requesters"}
DEFAULTS: Mapping[str, int | float | None] = {
    name: float(arg.default) if arg.type == "float" else arg.default
    for name, arg in _DECLARED.items()
}
LARGE: Mapping[str, int | float] = {
    "max_rows_per_request": 1_000,
    "max_rows": 100_000,
    "max_requests": 10_000,
    "max_requests_per_minute": 600,
    "max_seconds": 7 * 86_400.0,
}
"""Above these a review warns the model's owner: enough for bulk export or model extraction."""
RATE_WINDOW_SECONDS = 60.0
_RANGES: Mapping[str, tuple[int | float, int | float]] = {
    name: (int(arg.low), int(arg.high))
    for name, arg in _DECLARED.items()
    if arg.low is not None and arg.high is not None
}


@dataclass(frozen=True)
class SessionLimits:
    """Who may query the session, how much, how fast, for how long, and how precisely."""

    requesters: frozenset[str]
    max_rows_per_request: int = 100
    max_rows: int = 10_000
    max_requests: int = 1_000
    max_requests_per_minute: int = 60
    max_seconds: float = 86_400.0
    decimals: int | None = None

    @classmethod
    def from_arguments(cls, args: Mapping[str, Any]) -> SessionLimits:
        """The limits from a contract's ``arguments``. TaskRejected says which one is wrong."""
        requesters = args.get("requesters")
        if (
            not isinstance(requesters, list)
            or not requesters
            or not all(isinstance(r, str) for r in requesters)
        ):
            raise TaskRejected("an inference session needs the argument 'requesters'")
        values: dict[str, Any] = {}
        for name, default in DEFAULTS.items():
            value: Any = args.get(name, default)
            if value is None and name == "decimals":
                values[name] = None
                continue
            low, high = _RANGES[name]
            integer = name != "max_seconds"
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (integer and not isinstance(value, int))
            ):
                kind = "a number" if name == "max_seconds" else "an integer"
                raise TaskRejected(f"argument {name!r} must be {kind} from {low} to {high}")
            if not low <= value <= high or (isinstance(value, float) and not math.isfinite(value)):
                raise TaskRejected(f"argument {name!r} must be from {low} to {high}, not {value}")
            values[name] = float(value) if name == "max_seconds" else int(value)
        return cls(frozenset(requesters), **values)

    @classmethod
    def from_contract(cls, contract: Mapping[str, Any]) -> SessionLimits:
        # validate_contract made every requester a participant, whose keys the contract pins.
        return cls.from_arguments(contract["arguments"])

    def large(self) -> dict[str, int | float]:
        """The limits above :data:`LARGE`, by argument name."""
        mine = asdict(self)
        return {name: mine[name] for name, bound in LARGE.items() if mine[name] > bound}


@dataclass
class SessionCounters:
    """What a session has served so far; sealed into its checkpoint (module docstring)."""

    answered: int = 0
    failed: int = 0
    refused: int = 0
    rows: int = 0
    elapsed_seconds: float = 0.0
    """Seconds served by earlier runs of the session (executors it was resumed from)."""
    started_at: str = ""
    sequence: int = 0
    """Checkpoints sealed so far (the control plane keeps only a newer one)."""
    by_requester: dict[str, dict[str, int]] = field(default_factory=dict)
    replay: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The requesters' anti-replay windows (enclave/session_replay.py): at most
    ``REPLAY_WINDOW`` request ids per requester, however long the session runs."""

    def count(self, requester: str, outcome: str, rows: int = 0) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        if outcome in ("answered", "failed"):  # a requester's own use of the session
            mine = self.by_requester.setdefault(requester, {"answered": 0, "failed": 0, "rows": 0})
            mine[outcome] += 1
            mine["rows"] = mine.get("rows", 0) + rows
            self.rows += rows

    @property
    def used(self) -> int:
        return self.answered + self.failed

    def seal(self, key: DataKey) -> bytes:
        """The counters as a sealed checkpoint (key: :func:`counters_key`)."""
        return seal_bytes(json.dumps(asdict(self), separators=(",", ":")).encode("utf-8"), key)

    @classmethod
    def unseal(cls, sealed: bytes, key: DataKey) -> SessionCounters:
        """Counters from a checkpoint the enclave sealed; TaskRejected if it is not one."""
        try:
            fields = json.loads(unseal_bytes(sealed, key))
            # A checkpoint of the old format lists every id used ("seen"): ids of that format
            # no longer pass REQUEST_ID, so none of them can be replayed and the list is dropped.
            fields.pop("seen", None)
            counters = cls(**fields)
            ReplayWindows.from_state(counters.replay)  # ValueError unless it is one
            return counters
        except IntegrityError:
            raise TaskRejected(
                "the session checkpoint does not decrypt: it was altered or is another task's"
            ) from None
        except (ValueError, TypeError, KeyError, AttributeError):
            raise TaskRejected("the session checkpoint is not the enclave's counters") from None


def counters_key(secret: bytes, contract_hash: str) -> DataKey:
    """The key of a session's sealed counters: derived from the enclave identity's secret (so
    every executor of the measurement has it) and bound to the contract."""
    return derive_key(secret, purpose="session-counters", context=contract_hash)


class RateWindow:
    """Requests admitted in the last :data:`RATE_WINDOW_SECONDS` (a sliding window)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._times: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more request may be admitted (0 if it may now)."""
        while self._times and self._times[0] <= now - RATE_WINDOW_SECONDS:
            self._times.popleft()
        if len(self._times) < self.per_minute:
            return 0.0
        return self._times[0] + RATE_WINDOW_SECONDS - now

    def admit(self, now: float) -> None:
        self._times.append(now)


def round_probabilities(answer: Any, decimals: int | None) -> Any:
    """The answer with every probability (a prediction's ``probability`` or ``p_<class>``)
    rounded to ``decimals``; unchanged when ``decimals`` is None."""
    if decimals is None or not isinstance(answer, dict):
        return answer
    predictions = answer.get("predictions")
    if not isinstance(predictions, list):
        return answer
    rounded = []
    for row in predictions:
        if isinstance(row, dict):
            row = {
                key: round(value, decimals)
                if _is_probability(key) and isinstance(value, float)
                else value
                for key, value in row.items()
            }
        rounded.append(row)
    return {**answer, "predictions": rounded}


def _is_probability(key: str) -> bool:
    return key == "probability" or key.startswith("p_")
