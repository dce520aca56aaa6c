"""Enclave-signed events (enclave/events.py) and the member's check of them (client/_events.py)."""

from __future__ import annotations

from typing import Any

import pytest

from teeflow.client._events import EventChecker
from teeflow.crypto import (
    IntegrityError,
    PrivateKey,
    SigningKey,
    b64e,
    canonical_json,
    hpke_seal,
    key_wrap_info,
)
from teeflow.enclave.events import open_event, seal_event

CHASH = "ab" * 32
ATTEMPT = "cd" * 16


@pytest.fixture
def keys() -> dict[str, Any]:
    return {"enclave": SigningKey.generate(), "bob": PrivateKey.generate()}


def _sealed(keys: dict[str, Any], *, seq: int = 1, recipient: str = "bob", **kw: Any) -> str:
    args: dict[str, Any] = {
        "chash": CHASH,
        "recipient": recipient,
        "recipient_key": keys["bob"].public_key,
        "signing_key": keys["enclave"],
        "attempt": ATTEMPT,
        "seq": seq,
    }
    return seal_event({"kind": "progress", "epoch": seq}, **{**args, **kw})


def _open(keys: dict[str, Any], payload: str, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "chash": CHASH,
        "recipient": "bob",
        "receiving_key": keys["bob"],
        "enclave_key": keys["enclave"].verify_key,
    }
    return open_event(payload, **{**args, **kw})


def test_an_event_opens_with_its_binding(keys: dict[str, Any]) -> None:
    body = _open(keys, _sealed(keys, seq=3))

    assert (body["seq"], body["attempt"], body["data"]) == (
        3,
        ATTEMPT,
        {"kind": "progress", "epoch": 3},
    )


def test_an_event_sealed_by_anyone_else_is_refused(keys: dict[str, Any]) -> None:
    # What the operator can do: seal to bob's public key; it cannot sign with the enclave key.
    plain = canonical_json({"kind": "error", "message": "forged"})
    forged = b64e(
        hpke_seal(plain, keys["bob"].public_key, info=key_wrap_info("event", CHASH, "bob"))
    )
    other_signer = _sealed(keys, signing_key=SigningKey.generate())

    for payload in (forged, other_signer):
        with pytest.raises(IntegrityError, match="not signed by the task's enclave key"):
            _open(keys, payload)


def test_an_event_for_another_task_or_recipient_is_refused(keys: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError, match="does not open"):
        _open(keys, _sealed(keys), chash="00" * 32)
    with pytest.raises(IntegrityError, match="does not open"):
        _open(keys, _sealed(keys, recipient="alice"))


def test_the_checker_shows_genuine_events_once_and_counts_the_rest(keys: dict[str, Any]) -> None:
    checker = EventChecker(
        task_id="t1",
        chash=CHASH,
        recipient="bob",
        receiving_key=keys["bob"],
        enclave_key=keys["enclave"].verify_key,
    )
    first, second = _sealed(keys, seq=1), _sealed(keys, seq=2)
    deliveries = [
        {"seq": 1, "payload": first},
        {"seq": 2, "payload": "AAAA"},
        {"seq": 3, "payload": second},
        {"seq": 4, "payload": first},  # the operator serves the first one again
    ]

    shown = checker.check(deliveries)
    again = checker.check(deliveries)  # asking twice shows the same, rejects the same

    assert [e["epoch"] for e in shown] == [e["epoch"] for e in again] == [1, 2]
    assert [r.seq for r in checker.rejected] == [2, 4]
    assert "replay" in checker.rejected[1].reason and checker.last_seq == 4
