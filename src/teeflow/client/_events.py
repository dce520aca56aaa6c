"""Checking the enclave's events before a member sees one (enclave/events.py has the format).

The control plane stores and serves events, so it can insert one (sealing to a member needs only
the member's public key) or serve a genuine one twice. :class:`EventChecker` lets through only
events that open for this member, carry the enclave's signature for this contract and this
member, and were not already shown under another delivery; every other one is counted and
logged as rejected, never returned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from teeflow.crypto import IntegrityError, PrivateKey, VerifyKey
from teeflow.enclave.events import open_event

__all__ = ["EventChecker", "RejectedEvent"]

log = logging.getLogger("teeflow.client")


@dataclass(frozen=True)
class RejectedEvent:
    seq: int
    """The control plane's sequence number of the rejected delivery."""
    reason: str


@dataclass
class EventChecker:
    """Verifies one task's events for one member; remembers what it has shown."""

    task_id: str
    chash: str
    recipient: str
    receiving_key: PrivateKey
    enclave_key: VerifyKey
    rejected: list[RejectedEvent] = field(default_factory=list)
    last_seq: int = 0
    """The highest delivery checked, shown or rejected."""
    _shown: dict[tuple[str, int], int] = field(default_factory=dict)
    """(enclave attempt, enclave seq) -> the delivery (control-plane seq) it was shown under."""

    def check(self, deliveries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The genuine events among ``deliveries`` (``{"seq", "payload"}`` each), in order, as
        ``{"seq": control-plane seq, "enclave_seq": …, **data}``."""
        out: list[dict[str, Any]] = []
        for delivery in deliveries:
            seq = int(delivery["seq"])
            self.last_seq = max(self.last_seq, seq)
            try:
                body = open_event(
                    str(delivery.get("payload", "")),
                    chash=self.chash,
                    recipient=self.recipient,
                    receiving_key=self.receiving_key,
                    enclave_key=self.enclave_key,
                )
            except IntegrityError as exc:
                self._reject(seq, f"{exc} (forged, or not from this task's enclave)")
                continue
            key = (str(body["attempt"]), int(body["seq"]))
            first = self._shown.setdefault(key, seq)
            if first != seq:
                self._reject(seq, f"replay of the enclave's event {key[1]} (delivery {first})")
                continue
            out.append({**dict(body["data"]), "seq": seq, "enclave_seq": key[1]})
        return out

    def _reject(self, seq: int, reason: str) -> None:
        if any(r.seq == seq for r in self.rejected):
            return
        self.rejected.append(RejectedEvent(seq, reason))
        log.warning("task %s: rejected event %d: %s", self.task_id, seq, reason)
