"""verify_chain detects every edit, deletion and reordering, and names the first bad entry."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from teeflow.server.audit import (
    GENESIS_HASH,
    AuditChainError,
    AuditRecord,
    entry_hash,
    event_to_dict,
    export_jsonl,
    format_ts,
    read_jsonl,
    verify_chain,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
EDITABLE = ("seq", "ts", "actor", "action", "subject", "details", "prev_hash", "hash")


def make_chain(n: int = 5) -> list[dict[str, Any]]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        fields = {
            "seq": seq,
            "ts": format_ts(T0 + timedelta(seconds=seq)),
            "actor": f"user{seq % 2}",
            "action": "task.approve",
            "subject": f"task{seq}",
            "details": {"n": seq, "nested": {"ok": True}},
        }
        digest = entry_hash(prev, fields)
        events.append({**fields, "prev_hash": prev, "hash": digest})
        prev = digest
    return events


def tampered(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, dict):
        return {**value, "n": -1}
    return value[:-1] + ("0" if value[-1] != "0" else "1")


def test_an_untouched_chain_verifies() -> None:
    chain = make_chain()

    verify_chain(chain)
    verify_chain(chain, head=chain[-1]["hash"])
    verify_chain(chain[2:], prev_hash=chain[1]["hash"], start_seq=3)


@pytest.mark.parametrize("field", EDITABLE)
@pytest.mark.parametrize("index", range(5))
def test_editing_any_field_of_any_entry_is_detected(field: str, index: int) -> None:
    chain = make_chain()
    chain[index][field] = tampered(chain[index][field])

    with pytest.raises(AuditChainError) as caught:
        verify_chain(chain)

    # An edited seq is reported under the seq it now claims; every other edit under its own.
    assert caught.value.seq == chain[index]["seq"]


@pytest.mark.parametrize("index", range(5))
def test_deleting_an_entry_is_detected(index: int) -> None:
    chain = make_chain()
    del chain[index]

    if index == 4:  # a cut-off tail is only visible against a known head
        verify_chain(chain)
        with pytest.raises(AuditChainError):
            verify_chain(chain, head=make_chain()[-1]["hash"])
        return
    with pytest.raises(AuditChainError) as caught:
        verify_chain(chain)
    assert caught.value.seq == index + 2
    assert "missing or moved" in caught.value.reason


def test_reordering_is_detected() -> None:
    chain = make_chain()
    chain[1], chain[2] = chain[2], chain[1]

    with pytest.raises(AuditChainError) as caught:
        verify_chain(chain)

    assert caught.value.seq == 3


def test_reordering_with_renumbering_is_detected() -> None:
    chain = make_chain()
    chain[1], chain[2] = chain[2], chain[1]
    chain[1]["seq"], chain[2]["seq"] = 2, 3

    with pytest.raises(AuditChainError) as caught:
        verify_chain(chain)

    assert caught.value.seq == 2


def test_a_rewritten_suffix_does_not_match_the_known_head() -> None:
    chain = make_chain()
    forged = copy.deepcopy(chain)
    forged[3]["details"] = {"n": 99}
    forged[3]["hash"] = entry_hash(forged[3]["prev_hash"], forged[3])
    forged[4]["prev_hash"] = forged[3]["hash"]
    forged[4]["hash"] = entry_hash(forged[4]["prev_hash"], forged[4])

    verify_chain(forged)  # internally consistent ...
    with pytest.raises(AuditChainError):
        verify_chain(forged, head=chain[-1]["hash"])  # ... but not the log the auditor saw


def test_malformed_entries_are_rejected() -> None:
    chain = make_chain(2)
    del chain[1]["actor"]

    with pytest.raises(AuditChainError, match="lacks actor"):
        verify_chain(chain)


def test_export_round_trip() -> None:
    records = [
        AuditRecord(
            seq=e["seq"], ts=T0 + timedelta(seconds=e["seq"]), actor=e["actor"],
            action=e["action"], subject=e["subject"], details=e["details"],
            prev_hash=e["prev_hash"], hash=e["hash"],
        )
        for e in make_chain()
    ]  # fmt: skip

    lines = list(export_jsonl(records))

    assert all(line.endswith("\n") for line in lines)
    assert [event_to_dict(r) for r in records] == make_chain()
    verify_chain(read_jsonl(lines))
    lines[2] = lines[2].replace("task.approve", "task.reject")
    with pytest.raises(AuditChainError) as caught:
        verify_chain(read_jsonl(lines))
    assert caught.value.seq == 3
