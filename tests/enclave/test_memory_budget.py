"""The enclave refuses a task that would not fit its TEE's memory, before running anything."""

from __future__ import annotations

import pytest
from session_kit import NOW, make_served

from teeflow.enclave.memory import MemoryBudgetExceeded, check_memory_budget, parse_size


def test_a_task_declaring_more_than_the_limit_is_refused(model_bytes: bytes) -> None:
    served = make_served(model_bytes, arguments={"memory_bytes": 64 << 30})
    served.runtime.memory_limit_bytes = 8 << 30

    result = served.runtime.execute(served.bundle, served.host, now=NOW)

    assert result.status == "failed"
    assert "65536 MiB (declared)" in result.reason and "limit is 8192 MiB" in result.reason
    assert result.outputs == {}
    assert result.receipt["body"]["status"] == "failed"


def test_a_task_estimated_above_the_limit_is_refused(model_bytes: bytes) -> None:
    served = make_served(model_bytes)
    served.runtime.memory_limit_bytes = 1 << 20  # less than this process already holds

    result = served.runtime.execute(served.bundle, served.host, now=NOW)

    assert result.status == "failed" and "(estimated)" in result.reason


def test_estimate_counts_the_inputs() -> None:
    small = check_memory_budget({"arguments": {}}, 0, limit=None)
    large = check_memory_budget({"arguments": {}}, 100 << 20, limit=None)
    assert large - small >= 8 * (100 << 20) - (64 << 20)  # RSS may move a little in between
    with pytest.raises(MemoryBudgetExceeded):
        check_memory_budget({"arguments": {"memory_bytes": 2 << 30}}, 0, limit=1 << 30)


@pytest.mark.parametrize(
    ("text", "size"), [("8G", 8 << 30), ("512M", 512 << 20), ("1024", 1024), ("4GiB", 4 << 30)]
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="like 8G"):
        parse_size("lots")
